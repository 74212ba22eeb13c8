"""Exercises of lesson 02: im2col, conv2d (with loops), conv2d_backward."""
from __future__ import annotations

import numpy as np

from ..ops import conv2d, conv2d_backward, im2col
from ..shapes import conv_output_size, pair
from .core import Case, Output, backward_case, exercise, shape_text

_IMG = Output("y", axes=("sample", "channel", "row", "column"))

# (N, C, H, W), (C_out, KH, KW), hyper-parameters: odd and non-square sizes, stride, padding, dilation, groups
_CONV_GRID = [
    ((1, 1, 5, 5), (1, 3, 3), {}),
    ((2, 3, 7, 9), (4, 3, 3), {"padding": 1}),
    ((2, 3, 7, 9), (4, 3, 2), {"stride": 2, "padding": (1, 0)}),
    ((1, 2, 9, 8), (3, 3, 3), {"padding": 2, "dilation": 2}),
    ((2, 4, 6, 7), (6, 3, 3), {"stride": (1, 2), "padding": 1, "groups": 2}),
    ((1, 3, 5, 6), (3, 3, 3), {"padding": 1, "groups": 3}),
    ((1, 2, 9, 7), (2, 2, 2), {"stride": 3}),
]


def _label(x, w, b, hyper):
    parts = [f"x {shape_text(x)}", f"w {shape_text(w)}"] + (["b"] if b is not None else [])
    return ", ".join(parts + [f"{k}={v}" for k, v in hyper.items()])


def _conv_inputs(rng, bias=True):
    for i, (xs, (C_out, KH, KW), hyper) in enumerate(_CONV_GRID):
        g = hyper.get("groups", 1)
        x = rng.standard_normal(xs)
        w = rng.standard_normal((C_out, xs[1] // g, KH, KW))
        b = rng.standard_normal(C_out) if bias and i % 3 != 0 else None
        yield x, w, b, hyper


# --------------------------------------------------------------------------- im2col

def _im2col_cases(rng):
    grid = [((1, 1, 4, 4), 3, {}), ((2, 3, 5, 7), (3, 2), {"padding": 1}),
            ((2, 2, 7, 6), 3, {"stride": 2, "padding": (0, 1)}), ((1, 2, 8, 9), 3, {"dilation": 2, "padding": 1}),
            ((1, 1, 9, 7), 2, {"stride": 3})]
    cases = []
    for xs, k, hyper in grid:
        x = rng.standard_normal(xs)
        cases.append(Case((x, k), dict(hyper), f"x {shape_text(x)}, kernel_size={k}" +
                          "".join(f", {a}={v}" for a, v in hyper.items()), extra={"x": x, "k": k, "hyper": hyper}))
    return cases


def _cols_view(bad, case):
    """The columns as (C, KH, KW, N, H_out, W_out), so errors are located by tap and output pixel."""
    x, hyper = case.extra["x"], case.extra["hyper"]
    N, C, H, W = x.shape
    KH, KW = pair(case.extra["k"])
    sh, sw = pair(hyper.get("stride", 1))
    ph, pw = pair(hyper.get("padding", 0))
    dh, dw = pair(hyper.get("dilation", 1))
    H_out, W_out = conv_output_size(H, KH, sh, ph, dh), conv_output_size(W, KW, sw, pw, dw)
    if bad.shape != (C * KH * KW, N * H_out * W_out):
        return bad
    return bad.reshape(C, KH, KW, N, H_out, W_out)  # (C, KH, KW, N, H_out, W_out)


ex_im2col = exercise(
    "im2col", reference=im2col, cases=_im2col_cases,
    outputs=[Output("cols", axes=("channel", "kernel row kh", "kernel column kw", "sample", "output row",
                                  "output column"), view=_cols_view)],
    spec="im2col(x, kernel_size, stride=1, padding=0, dilation=1) -> cols (C*KH*KW, N*H_out*W_out), "
         "rows ordered (c, kh, kw), columns (n, i, j)")


@ex_im2col.mistake("rows ordered (kh, kw, c) instead of (c, kh, kw)",
                   hint="row (c*KH + kh)*KW + kw must match w.reshape(C_out, -1): the channel varies slowest")
def _rows_tap_first(x, kernel_size, stride=1, padding=0, dilation=1):
    N, C = x.shape[:2]
    KH, KW = pair(kernel_size)
    cols = im2col(x, kernel_size, stride, padding, dilation)
    return cols.reshape(C, KH, KW, -1).transpose(1, 2, 0, 3).reshape(C * KH * KW, -1)  # (KH*KW*C, L)


@ex_im2col.mistake("columns ordered (i, j, n) instead of (n, i, j)",
                   hint="column (n*H_out + i)*W_out + j: the sample varies slowest")
def _cols_sample_last(x, kernel_size, stride=1, padding=0, dilation=1):
    N = x.shape[0]
    cols = im2col(x, kernel_size, stride, padding, dilation)
    return cols.reshape(cols.shape[0], N, -1).transpose(0, 2, 1).reshape(cols.shape[0], -1)  # (K, L*N)


@ex_im2col.mistake("output transposed: (N*H_out*W_out, C*KH*KW) instead of (C*KH*KW, N*H_out*W_out)",
                   hint="one column per receptive field, one row per (c, kh, kw)")
def _transposed(x, kernel_size, stride=1, padding=0, dilation=1):
    return im2col(x, kernel_size, stride, padding, dilation).T.copy()


@ex_im2col.mistake("kernel taps reversed (kernel flipped)", hint="tap (kh, kw) reads x_pad[i*s + kh*d, j*s + kw*d]")
def _taps_reversed(x, kernel_size, stride=1, padding=0, dilation=1):
    N, C = x.shape[:2]
    KH, KW = pair(kernel_size)
    cols = im2col(x, kernel_size, stride, padding, dilation)
    return cols.reshape(C, KH, KW, -1)[:, ::-1, ::-1].reshape(C * KH * KW, -1)


# --------------------------------------------------------------------------- conv2d

def _conv2d_cases(rng):
    return [Case((x, w, b), dict(hyper), _label(x, w, b, hyper)) for x, w, b, hyper in _conv_inputs(rng)]


ex_conv2d = exercise(
    "conv2d", reference=conv2d, cases=_conv2d_cases, outputs=[_IMG], returns_cache=True,
    spec="conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1) -> y (or y, cache), "
         "H_out = floor((H + 2p - d(k-1) - 1)/s) + 1")


@ex_conv2d.mistake("kernel flipped (convolution instead of cross-correlation)",
                   hint="y[n, o, i, j] sums w[o, c, kh, kw] * x_pad[n, c, i*s + kh*d, j*s + kw*d]: "
                        "the kernel is not rotated, as in every framework")
def _kernel_flipped(x, w, b=None, **hyper):
    return conv2d(x, np.ascontiguousarray(w[..., ::-1, ::-1]), b, **hyper)[0]


@ex_conv2d.mistake("bias missing", hint="add b[o] to every pixel of output channel o")
def _bias_missing(x, w, b=None, **hyper):
    return conv2d(x, w, None, **hyper)[0]


@ex_conv2d.mistake("output size off by one (the + 1 of H_out = floor((H + 2p - d(k-1) - 1)/s) + 1 is missing)",
                   hint="count the window positions: the first starts at 0, the last at (H_out - 1)*s")
def _size_short(x, w, b=None, **hyper):
    return conv2d(x, w, b, **hyper)[0][:, :, :-1, :-1]


@ex_conv2d.mistake("dilation ignored (taps adjacent)", hint="tap kh reads row i*s + kh*d")
def _dilation_ignored(x, w, b=None, **hyper):
    if pair(hyper.get("dilation", 1)) == (1, 1):
        return conv2d(x, w, b, **hyper)[0]
    y = conv2d(x, w, b, **{**hyper, "dilation": 1})[0]
    H_out, W_out = conv2d(x, w, b, **hyper)[0].shape[2:]
    return y[:, :, :H_out, :W_out]


@ex_conv2d.mistake("stride ignored in the input position (i + kh*d instead of i*s + kh*d)",
                   hint="output pixel i's window starts at input row i*s - p")
def _stride_ignored(x, w, b=None, **hyper):
    y_full = conv2d(x, w, b, **{**hyper, "stride": 1})[0]
    H_out, W_out = conv2d(x, w, b, **hyper)[0].shape[2:]
    return y_full[:, :, :H_out, :W_out]


# --------------------------------------------------------------------------- conv2d_backward

def _conv2d_backward_cases(rng):
    cases = []
    for i, (x, w, b, hyper) in enumerate(_conv_inputs(rng)):
        cases.append(backward_case(conv2d, {"x": x, "w": w, "b": b}, ("x", "w", "b"), rng=rng,
                                   numeric=i in (1, 2, 4), label="conv2d(" + _label(x, w, b, hyper) + ")", **hyper))
    return cases


ex_conv2d_backward = exercise(
    "conv2d_backward", reference=conv2d_backward, cases=_conv2d_backward_cases,
    outputs=[Output("dx"), Output("dw", axes=("output channel", "input channel", "kernel row", "kernel column")),
             Output("db", axes=("channel",), spatial=None, optional=True)],
    spec="conv2d_backward(dy, cache) -> (dx, dw, db); db is None when cache.has_bias is False")


def _grads(dy, cache):
    return conv2d_backward(dy, cache)


@ex_conv2d_backward.mistake("dx computed with the kernel not flipped",
                            hint="dx is the full convolution of dy with the kernel rotated 180 degrees "
                                 "(the transpose of the forward): dx_pad[n, c, i*s + kh*d, j*s + kw*d] += "
                                 "w[o, c, kh, kw] * dy[n, o, i, j]")
def _dx_unflipped(dy, cache):
    dx, dw, db = _grads(dy, cache)
    if cache.w.shape[2:] == (1, 1):
        return dx, dw, db
    dx2, _, _ = conv2d_backward(dy, cache._replace(w=np.ascontiguousarray(cache.w[..., ::-1, ::-1])))
    return dx2, dw, db


@ex_conv2d_backward.mistake("padding not cropped from dx",
                            hint="the gradient of x_pad has the padding around it: dx = dx_pad[:, :, p:p + H, p:p + W]")
def _padding_not_cropped(dy, cache):
    dx, dw, db = _grads(dy, cache)
    (ph, pw) = cache.padding
    N, C, H, W = cache.x.shape
    x_pad = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    x_pad[:, :, ph:ph + H, pw:pw + W] = cache.x
    dx_pad, _, _ = conv2d_backward(dy, cache._replace(x=x_pad, padding=(0, 0)))
    return dx_pad, dw, db


@ex_conv2d_backward.mistake("dw with kernel axes swapped (kh and kw exchanged)",
                            hint="dw[o, c, kh, kw] pairs dy[n, o, i, j] with x_pad[n, c, i*s + kh*d, j*s + kw*d]")
def _dw_axes_swapped(dy, cache):
    dx, dw, db = _grads(dy, cache)
    return dx, np.ascontiguousarray(dw.swapaxes(2, 3)), db


@ex_conv2d_backward.mistake("dw with channel axes swapped: (C_in, C_out, KH, KW) instead of (C_out, C_in, KH, KW)",
                            hint="dw has the shape of w")
def _dw_channels_swapped(dy, cache):
    dx, dw, db = _grads(dy, cache)
    return dx, np.ascontiguousarray(dw.swapaxes(0, 1)), db


@ex_conv2d_backward.mistake("dw flipped (kernel rotated 180 degrees)",
                            hint="dw[o, c, kh, kw] = sum of dy[n, o, i, j] * x_pad[n, c, i*s + kh*d, j*s + kw*d]")
def _dw_flipped(dy, cache):
    dx, dw, db = _grads(dy, cache)
    return dx, np.ascontiguousarray(dw[..., ::-1, ::-1]), db


@ex_conv2d_backward.mistake("db not summed over the batch",
                            hint="b is shared by every sample: db = dy.sum(axis=(0, 2, 3))")
def _db_per_sample(dy, cache):
    dx, dw, db = _grads(dy, cache)
    return dx, dw, None if db is None else dy.sum(axis=(2, 3))


@ex_conv2d_backward.mistake("db averaged over the batch instead of summed",
                            hint="the loss already holds the mean; db = dy.sum(axis=(0, 2, 3))")
def _db_mean(dy, cache):
    dx, dw, db = _grads(dy, cache)
    return dx, dw, None if db is None else db / dy.shape[0]
