"""backend: dispatch, device moves, scatter-add with repeated indices."""
import numpy as np
import pytest

from minseg import backend


def test_numpy_arrays_dispatch_to_numpy():
    assert backend.get_array_module(np.zeros(2), None, 3.0) is np
    assert backend.get_array_module() is np


def test_has_gpu_is_false_or_really_usable():
    """has_gpu() must mean "a CUDA device is usable", never merely "cupy imports"."""
    if backend.has_gpu():
        import cupy

        assert cupy.cuda.is_available()
        assert float(cupy.ones(3).sum()) == 3.0
    else:
        assert backend.has_gpu() is False


def test_to_device_and_back(xp):
    x = np.arange(6.0).reshape(2, 3)
    on = backend.to_device(x, "gpu" if xp is not np else "cpu")
    assert backend.get_array_module(on) is xp
    np.testing.assert_array_equal(backend.to_numpy(on), x)


def test_to_device_errors():
    with pytest.raises(ValueError, match="expected device 'cpu' or 'gpu', got 'tpu'"):
        backend.to_device(np.zeros(1), "tpu")
    if not backend.has_gpu():
        with pytest.raises(RuntimeError, match="usable CUDA device"):
            backend.to_device(np.zeros(1), "gpu")


def test_scatter_add_accumulates_repeated_indices(xp):
    target = xp.zeros(4)
    idx = xp.asarray([1, 1, 3, 1])
    backend.scatter_add(target, idx, xp.asarray([1.0, 2.0, 5.0, 4.0]))
    np.testing.assert_array_equal(backend.to_numpy(target), [0, 7, 0, 5])
    # the naive assignment keeps only one of the repeated writes: the bug scatter_add avoids
    naive = np.zeros(4)
    naive[[1, 1, 3, 1]] += [1.0, 2.0, 5.0, 4.0]
    assert naive[1] != 7


def test_scatter_add_flat_keeps_dtype(xp):
    out = backend.scatter_add_flat(xp.asarray([0, 2, 2]), xp.asarray([1.5, 1.0, 2.0], dtype=xp.float32), 4)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(backend.to_numpy(out), [1.5, 0, 3.0, 0])


def test_workspace_is_reused_and_never_leaks_into_results():
    import minseg.backend as B
    from minseg.ops import conv2d, conv2d_backward

    a = B.workspace(np, (3, 4), np.float32)
    b = B.workspace(np, (2, 5), np.float32)
    assert a.shape == (3, 4) and b.shape == (2, 5) and np.shares_memory(a, b)  # one buffer per dtype, reused
    c = B.workspace(np, (3, 4), np.float64)
    assert c.dtype == np.float64 and not np.shares_memory(a, c)
    big = B.workspace(np, (B._WORKSPACE_MAX_BYTES // 4 + 1,), np.float32)  # above the cap: a fresh array
    assert not np.shares_memory(big, a)
    # a result computed with the workspace stays intact when the next convolution reuses it
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((4, 3, 3, 3))
    y1, cache = conv2d(x, w, padding=1)
    dx1, dw1, _ = conv2d_backward(np.ones_like(y1), cache)
    kept = [y1.copy(), dx1.copy(), dw1.copy()]
    conv2d(rng.standard_normal((5, 3, 11, 7)), w, padding=2)
    for got, want in zip((y1, dx1, dw1), kept):
        np.testing.assert_array_equal(got, want)
