"""The adjoint test <A x, y> == <x, A^T y> for every linear op of the decoder and its backward.

For a linear map ``A`` the backward pass *is* multiplication by ``A^T``, so
``<A x, y> == <x, backward(y)>`` for random ``x`` and ``y`` checks a whole
backward in one number, to round-off. It also ties pairs of ops together:
the transposed convolution is the adjoint of the convolution, and
max-unpooling is the adjoint of gathering by the switches.
"""
import numpy as np
import pytest

from minseg.ops import (
    bed_of_nails_unpool,
    bed_of_nails_unpool_backward,
    bilinear_interpolate,
    bilinear_interpolate_backward,
    broadcast_to_size,
    broadcast_to_size_backward,
    conv2d,
    conv2d_backward,
    conv_transpose2d,
    conv_transpose2d_backward,
    convolution_matrix,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
    max_unpool2d,
    max_unpool2d_backward,
    upsample_nearest,
    upsample_nearest_backward,
)

RNG = np.random.default_rng(0)
W_CONV = RNG.standard_normal((6, 2, 3, 3))                         # conv: 4 -> 6 channels, groups 2
W_T = RNG.standard_normal((4, 3, 4, 4))                            # transposed: 4 -> 6 channels, groups 2
SWITCHES = np.stack([RNG.permutation(9 * 11)[:4 * 5] for _ in range(6)]).reshape(2, 3, 4, 5)


def _op(forward, backward, **hyper):
    """(A, A^T) from an op pair: A x = forward(x)[0], A^T y = backward(y, cache)[0 or whole]."""
    def A(x):
        return forward(x, **hyper)[0]

    def AT(y, x):
        g = backward(y, forward(x, **hyper)[1])
        return g[0] if isinstance(g, tuple) else g
    return A, AT


# name: (A, A^T, x shape)
LINEAR_OPS = {
    "conv2d": (*_op(conv2d, conv2d_backward, w=W_CONV, stride=2, padding=1, dilation=2, groups=2), (2, 4, 9, 8)),
    "conv_transpose2d": (*_op(conv_transpose2d, conv_transpose2d_backward, w=W_T, stride=2, padding=1,
                              output_padding=1, groups=2), (2, 4, 5, 4)),
    "bilinear align_corners=False": (*_op(bilinear_interpolate, bilinear_interpolate_backward,
                                          scale_factor=(2.5, 0.5)), (2, 3, 5, 6)),
    "bilinear align_corners=True": (*_op(bilinear_interpolate, bilinear_interpolate_backward, size=(7, 3),
                                         align_corners=True), (2, 3, 5, 6)),
    "upsample_nearest": (*_op(upsample_nearest, upsample_nearest_backward, size=(11, 7)), (2, 3, 5, 6)),
    "max_unpool2d": (*_op(max_unpool2d, max_unpool2d_backward, indices=SWITCHES, kernel_size=3, stride=2,
                          output_size=(9, 11)), (2, 3, 4, 5)),
    "bed_of_nails_unpool": (*_op(bed_of_nails_unpool, bed_of_nails_unpool_backward, stride=(2, 3)), (2, 3, 4, 5)),
    "global_avg_pool2d": (*_op(global_avg_pool2d, global_avg_pool2d_backward), (2, 3, 4, 5)),
    "broadcast_to_size": (*_op(broadcast_to_size, broadcast_to_size_backward, size=(4, 5)), (2, 3, 1, 1)),
}


@pytest.mark.parametrize("name", list(LINEAR_OPS))
def test_adjoint_identity(name):
    A, AT, shape = LINEAR_OPS[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    Ax = A(x)
    y = rng.standard_normal(Ax.shape)
    lhs, rhs = float((Ax * y).sum()), float((x * AT(y, x)).sum())
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs)), f"{name}: <Ax, y> = {lhs!r}, <x, A^T y> = {rhs!r}"


def test_conv_transpose_is_the_adjoint_of_conv():
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)> with the same hyper-parameters and weights."""
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 2, 3, 3))
    hyper = dict(stride=2, padding=1, dilation=1, groups=2)
    z, _ = conv2d(x, w, **hyper)
    y = rng.standard_normal(z.shape)
    t, _ = conv_transpose2d(y, w, output_padding=(0, 1), **hyper)  # output_padding restores (9, 8)
    assert t.shape == x.shape
    assert float((z * y).sum()) == pytest.approx(float((x * t).sum()), rel=1e-12)


def test_convolution_matrix_transpose_is_the_adjoint():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 2, 3, 2))
    C = convolution_matrix(w, (2, 6, 5), stride=(2, 1), padding=1, dilation=(1, 2))
    x, y = rng.standard_normal(C.shape[1]), rng.standard_normal(C.shape[0])
    assert float((C @ x) @ y) == pytest.approx(float(x @ (C.T @ y)), rel=1e-12)


def test_max_unpool_is_the_adjoint_of_gathering_by_the_switches():
    """Pooling selects x.flat[switches]; its backward and max-unpooling are both that selection's transpose."""
    rng = np.random.default_rng(4)
    x = rng.permutation(2 * 3 * 8 * 6).reshape(2, 3, 8, 6) / 7.0
    pooled, cache = max_pool2d(x, 2)
    u = rng.standard_normal(x.shape)
    gathered = np.take_along_axis(u.reshape(2, 3, -1), cache.indices.reshape(2, 3, -1), axis=2).reshape(pooled.shape)
    y = rng.standard_normal(pooled.shape)
    unpooled, _ = max_unpool2d(y, cache.indices, 2)
    lhs = float((gathered * y).sum())
    assert lhs == pytest.approx(float((u * unpooled).sum()), rel=1e-12)
    assert lhs == pytest.approx(float((u * max_pool2d_backward(y, cache)).sum()), rel=1e-12)
