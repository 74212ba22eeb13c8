"""minseg.nn.blocks: the skip glue (concat / split, crop / crop_backward, pad_to / pad_to_backward, offsets)."""
import numpy as np
import pytest

from minseg.gradcheck import numerical_gradient
from minseg.nn.blocks import center_crop_offsets, concat, crop, crop_backward, pad_to, pad_to_backward, split


def test_concat_adds_channels_and_split_is_its_backward():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 5, 7)), rng.standard_normal((2, 4, 5, 7))
    y, sizes = concat([a, b])
    assert y.shape == (2, 7, 5, 7) and sizes == [3, 4]
    np.testing.assert_array_equal(y[:, :3], a)
    np.testing.assert_array_equal(y[:, 3:], b)
    dy = rng.standard_normal(y.shape)
    da, db = split(dy, sizes)
    np.testing.assert_allclose(da, numerical_gradient(lambda a_: concat([a_, b])[0], a, dy), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(db, numerical_gradient(lambda b_: concat([a, b_])[0], b, dy), rtol=1e-7, atol=1e-9)


def re_shape(shape):
    """A regular expression matching ``(2, 4, 6, 7)`` for that shape."""
    return r"\(" + ", ".join(str(s) for s in shape) + r"\)"


@pytest.mark.parametrize("shape", [(2, 4, 6, 7), (2, 4, 5, 6), (1, 4, 5, 7)])
def test_concat_of_mismatched_maps_names_both_shapes(shape):
    skip = np.zeros((2, 4, 5, 7))
    with pytest.raises(ValueError, match=r"concat: expected arrays of shape \(N, C, H, W\) with the N, H and W of "
                                         r"arrays\[0\] \(2, 4, 5, 7\), got arrays\[1\] of shape "
                                         + re_shape(shape) + r" \(crop the larger"):
        concat([skip, np.zeros(shape)])


def test_concat_of_a_3d_array_is_a_clear_error():
    with pytest.raises(ValueError, match=r"got arrays\[1\] of shape \(4, 5, 7\)"):
        concat([np.zeros((2, 4, 5, 7)), np.zeros((4, 5, 7))])



@pytest.mark.parametrize("size, target, expected", [((568, 568), (392, 392), (88, 88)), ((13, 20), (10, 11), (1, 4)),
                                                     ((7, 7), (7, 7), (0, 0))])
def test_center_crop_offsets(size, target, expected):
    assert center_crop_offsets(size, target) == expected


def test_center_crop_offsets_of_a_larger_target_is_a_clear_error():
    with pytest.raises(ValueError, match=r"center_crop_offsets: expected a target no larger than \(10, 10\), "
                                         r"got \(11, 4\)"):
        center_crop_offsets((10, 10), (11, 4))


def test_crop_backward_is_the_adjoint_of_crop():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8))
    top, left = center_crop_offsets((9, 8), (6, 5))
    y = crop(x, top, left, 6, 5)
    np.testing.assert_array_equal(y, x[:, :, 1:7, 1:6])
    dy = rng.standard_normal(y.shape)
    dx = crop_backward(dy, x.shape, top, left)
    np.testing.assert_allclose(dx, numerical_gradient(lambda x_: crop(x_, top, left, 6, 5), x, dy),
                               rtol=1e-7, atol=1e-9)
    assert np.sum(x * dx) == pytest.approx(np.sum(y * dy), rel=1e-12)


def test_crop_outside_the_map_is_a_clear_error():
    with pytest.raises(ValueError, match=r"crop: expected the window \(2:8, 0:3\) inside x of shape \(1, 1, 7, 7\)"):
        crop(np.zeros((1, 1, 7, 7)), 2, 0, 6, 3)


def test_pad_to_backward_is_the_adjoint_of_pad_to():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2, 6, 5))
    y = pad_to(x, 8, 8)
    assert y.shape == (1, 2, 8, 8) and not y[:, :, 6:].any() and not y[:, :, :, 5:].any()
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(pad_to_backward(dy, 6, 5), numerical_gradient(lambda x_: pad_to(x_, 8, 8), x, dy),
                               rtol=1e-7, atol=1e-9)
    assert pad_to(x, 6, 5) is x
    with pytest.raises(ValueError, match=r"pad_to: expected x no larger than \(5, 5\), got shape \(1, 2, 6, 5\)"):
        pad_to(x, 5, 5)
