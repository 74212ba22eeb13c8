"""An empty batch (N = 0) gives an empty output of the right shape, forward and backward, as in PyTorch.

Output shapes are compared with PyTorch's when torch is installed, and with
minseg's own size formulas always.
"""
import numpy as np
import pytest

from minseg import nn, ops


def _cases():
    x = np.zeros((0, 4, 7, 6))
    return {
        "conv2d": (ops.conv2d, ops.conv2d_backward, (x, np.ones((6, 2, 3, 3)), np.ones(6)),
                   dict(stride=2, padding=1, groups=2), (0, 6, 4, 3)),
        "conv_transpose2d": (ops.conv_transpose2d, ops.conv_transpose2d_backward, (x, np.ones((4, 3, 3, 3)), np.ones(6)),
                             dict(stride=2, padding=1, output_padding=1, groups=2), (0, 6, 14, 12)),
        "max_pool2d": (ops.max_pool2d, ops.max_pool2d_backward, (x, 3), dict(stride=2, padding=1), (0, 4, 4, 3)),
        "max_unpool2d": (ops.max_unpool2d, ops.max_unpool2d_backward,
                         (np.zeros((0, 4, 3, 3)), np.zeros((0, 4, 3, 3), dtype=np.int64), 2), {}, (0, 4, 6, 6)),
        "batch_norm2d (training)": (ops.batch_norm2d, ops.batch_norm2d_backward, (x, np.ones(4), np.zeros(4)),
                                    dict(training=True), (0, 4, 7, 6)),
        "batch_norm2d (evaluation)": (ops.batch_norm2d, ops.batch_norm2d_backward, (x, np.ones(4), np.zeros(4)),
                                      dict(running_mean=np.zeros(4), running_var=np.ones(4), training=False),
                                      (0, 4, 7, 6)),
        "global_avg_pool2d": (ops.global_avg_pool2d, ops.global_avg_pool2d_backward, (x,), {}, (0, 4, 1, 1)),
        "broadcast_to_size": (ops.broadcast_to_size, ops.broadcast_to_size_backward, (np.zeros((0, 4, 1, 1)), (5, 3)),
                              {}, (0, 4, 5, 3)),
        "l2_normalize": (ops.l2_normalize, ops.l2_normalize_backward, (x,), {}, (0, 4, 7, 6)),
        "bed_of_nails_unpool": (ops.bed_of_nails_unpool, ops.bed_of_nails_unpool_backward, (x,), {}, (0, 4, 14, 12)),
        "bilinear_interpolate": (ops.bilinear_interpolate, ops.bilinear_interpolate_backward, (x, (9, 4)), {},
                                 (0, 4, 9, 4)),
        "upsample_nearest": (ops.upsample_nearest, ops.upsample_nearest_backward, (x, None, 2), {}, (0, 4, 14, 12)),
        "adaptive_avg_pool2d": (ops.adaptive_avg_pool2d, ops.adaptive_avg_pool2d_backward, (x, 3), {}, (0, 4, 3, 3)),
        "adaptive_max_pool2d": (ops.adaptive_max_pool2d, ops.adaptive_max_pool2d_backward, (x, 3), {}, (0, 4, 3, 3)),
        "relu": (ops.relu, ops.relu_backward, (x,), {}, (0, 4, 7, 6)),
        "softmax": (ops.softmax, ops.softmax_backward, (x,), {}, (0, 4, 7, 6)),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_empty_batch_forward_and_backward(name):
    forward, backward, args, hyper, shape = CASES[name]
    y, cache = forward(*args, **hyper)
    assert y.shape == shape
    grads = backward(np.zeros(y.shape), cache)
    first = grads[0] if isinstance(grads, tuple) else grads
    assert first.shape == args[0].shape
    if isinstance(grads, tuple):  # parameter gradients of an empty batch are zeros of the parameter's shape
        for g, p in zip(grads[1:], args[1:]):
            if g is not None and hasattr(p, "shape"):
                assert g.shape == p.shape and not g.any()


def test_empty_batch_shapes_are_pytorchs():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = torch.zeros(0, 4, 7, 6, dtype=torch.float64)
    ones = lambda *s: torch.ones(*s, dtype=torch.float64)  # noqa: E731
    theirs = {
        "conv2d": F.conv2d(t, ones(6, 2, 3, 3), ones(6), stride=2, padding=1, groups=2),
        "conv_transpose2d": F.conv_transpose2d(t, ones(4, 3, 3, 3), ones(6), stride=2, padding=1, output_padding=1,
                                               groups=2),
        "max_pool2d": F.max_pool2d(t, 3, 2, 1),
        "batch_norm2d (training)": F.batch_norm(t, None, None, ones(4), torch.zeros(4, dtype=torch.float64),
                                                training=True),
        "bilinear_interpolate": F.interpolate(t, size=(9, 4), mode="bilinear", align_corners=False),
        "adaptive_max_pool2d": F.adaptive_max_pool2d(t, 3),
    }
    for name, ty in theirs.items():
        assert CASES[name][4] == tuple(ty.shape), name


def test_batchnorm_layer_on_an_empty_batch_keeps_its_running_statistics():
    bn = nn.BatchNorm2d(3)
    y = bn.forward(np.zeros((0, 3, 5, 5), dtype=np.float32))
    assert y.shape == (0, 3, 5, 5)
    np.testing.assert_array_equal(bn.running_mean, 0)
    np.testing.assert_array_equal(bn.running_var, 1)
    assert bn.backward(np.zeros_like(y)).shape == (0, 3, 5, 5)


def test_conv_transpose2d_refuses_an_empty_image_like_torch():
    with pytest.raises(ValueError, match=r"conv_transpose2d: expected an input image of at least 1x1 pixels, "
                                         r"got x of shape \(1, 1, 0, 0\)"):
        ops.conv_transpose2d(np.zeros((1, 1, 0, 0)), np.ones((1, 1, 3, 3)))
