"""gradcheck: numerical gradients, the report, the suite behind `minseg gradcheck`."""
import numpy as np
import pytest

from minseg import gradcheck


def _square(x):
    return x ** 2, x


def _square_backward(dy, x):
    return 2 * x * dy


def test_numerical_gradient_of_a_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    dy = np.array([[1.0, 2.0], [3.0, 4.0]])
    g = gradcheck.numerical_gradient(lambda v: np.sin(v), x, dy)
    np.testing.assert_allclose(g, np.cos(x) * dy, rtol=1e-9)
    np.testing.assert_array_equal(x, [[1.0, -2.0], [0.5, 3.0]])  # restored


def test_numerical_gradient_rejects_views():
    with pytest.raises(ValueError, match="C-contiguous"):
        gradcheck.numerical_gradient(np.sin, np.zeros((3, 4))[:, ::2], np.ones((3, 2)))


def test_rel_error():
    assert gradcheck.rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert gradcheck.rel_error(np.array([1.0]), np.array([1.1])) == pytest.approx(0.1 / 1.1)
    assert gradcheck.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        gradcheck.rel_error(np.zeros(2), np.zeros(3))


def test_report_passes_and_fails():
    x = np.random.default_rng(0).standard_normal((3, 4))
    good = gradcheck.check_backward(_square, _square_backward, {"x": x})
    assert good.passed and good.rows[0].max_abs_error < 1e-7
    bad = gradcheck.check_backward(_square, lambda dy, c: -_square_backward(dy, c), {"x": x})
    assert not bad.passed
    text = str(bad)
    assert "FAIL" in text and "max abs err" in text and "worst at" in text
    assert bad.rows[0].worst_index == tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(x)), x.shape))


def test_inputs_are_not_modified_and_run_in_float64():
    x = np.ones((2, 2), dtype=np.float32)
    seen = []

    def fwd(v):
        seen.append(v.dtype)
        return v * 3, None

    gradcheck.check_backward(fwd, lambda dy, c: 3 * dy, [x])
    assert set(seen) == {np.dtype(np.float64)}
    assert x.dtype == np.float32 and (x == 1).all()


def test_builtin_suite_passes_and_prints_a_table():
    lines = []
    assert gradcheck.run_suite(out=lines.append)
    text = "\n".join(lines)
    assert "conv2d dilated" in text and "gradient checks passed" in text
    assert "FAIL" not in text
