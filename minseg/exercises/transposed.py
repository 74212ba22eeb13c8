"""Exercises of lesson 04: convolution_matrix, conv_transpose2d, max_pool2d, max_pool2d_backward, max_unpool2d.

The cases cover odd and non-square sizes, stride, padding, dilation, groups,
batch > 1, tied maxima (integer-valued inputs, where PyTorch's rule "the
first maximum in row-major window order wins" matters) and overlapping
pooling windows (stride < kernel), where two windows can pick the same pixel:
its gradients add up in ``max_pool2d_backward``, and in ``max_unpool2d`` the
last write (in row-major order of the pooled map) is the one that stays.
"""
from __future__ import annotations

import numpy as np

from ..ops import conv_transpose2d, convolution_matrix, max_pool2d, max_pool2d_backward, max_unpool2d
from ..shapes import conv_output_size, pair, pool_output_size, unpool_output_size
from .core import Case, Output, backward_case, exercise, indices_extract, shape_text

_IMG = Output("y", axes=("sample", "channel", "row", "column"))


def _hyper_text(hyper):
    return "".join(f", {k}={v}" for k, v in hyper.items())


# --------------------------------------------------------------------------- convolution_matrix

# w shape (C_out, C_in // groups, KH, KW), input_size, hyper-parameters
_MATRIX_GRID = [
    ((1, 1, 3, 3), (4, 4), {}),                                    # the lesson's 4 x 16 matrix
    ((2, 3, 3, 2), (3, 5, 6), {"padding": 1}),
    ((3, 2, 3, 3), (5, 7), {"stride": 2, "padding": (1, 0)}),
    ((2, 1, 3, 3), (7, 6), {"padding": 2, "dilation": 2}),
    ((4, 2, 3, 3), (4, 5, 6), {"stride": (1, 2), "padding": 1, "groups": 2}),
    ((3, 1, 2, 2), (3, 7, 5), {"stride": 3, "groups": 3}),
]


def _matrix_sizes(w, input_size, hyper):
    """(C_out, H_out, W_out, C, H, W) of the matrix's rows and columns."""
    C_out, C_g, KH, KW = w.shape
    groups = hyper.get("groups", 1)
    C, H, W = input_size if len(input_size) == 3 else (C_g * groups, *input_size)
    (sh, sw), (ph, pw), (dh, dw) = (pair(hyper.get(k, v)) for k, v in (("stride", 1), ("padding", 0),
                                                                        ("dilation", 1)))
    return C_out, conv_output_size(H, KH, sh, ph, dh), conv_output_size(W, KW, sw, pw, dw), C, H, W


def _matrix_cases(rng):
    cases = []
    for ws, size, hyper in _MATRIX_GRID:
        w = rng.standard_normal(ws)
        label = f"w {shape_text(w)}, input_size={size}" + _hyper_text(hyper)
        cases.append(Case((w, size), dict(hyper), label, extra={"sizes": _matrix_sizes(w, size, hyper)}))
    return cases


def _matrix_view(bad, case):
    """The matrix as (C_out, H_out, W_out, C, H, W): a row is an output pixel, a column an input pixel."""
    return bad.reshape(case.extra["sizes"])  # (C_out, H_out, W_out, C, H, W)


ex_convolution_matrix = exercise(
    "convolution_matrix", reference=convolution_matrix, cases=_matrix_cases,
    outputs=[Output("C", axes=("output channel", "output row", "output column", "input channel", "input row",
                               "input column"), spatial=None, view=_matrix_view)],
    spec="convolution_matrix(w, input_size, *, stride=1, padding=0, dilation=1, groups=1) -> C of shape "
         "(C_out*H_out*W_out, C*H*W) with C @ vec(x) == vec(conv2d(x, w, ...)) for one sample")


@ex_convolution_matrix.mistake("kernel flipped (the matrix of a convolution, not of the cross-correlation)",
                               hint="row (o, i, j) holds w[o, c, kh, kw] in the column of input pixel "
                                    "(c, i*s - p + kh*d, j*s - p + kw*d): the kernel is not rotated")
def _matrix_flipped(w, input_size, **hyper):
    return convolution_matrix(np.ascontiguousarray(w[..., ::-1, ::-1]), input_size, **hyper)


@ex_convolution_matrix.mistake("rows and columns swapped (C.T instead of C)",
                               hint="one row per output pixel (o, i, j), one column per input pixel (c, h, w): "
                                    "C has shape (C_out*H_out*W_out, C*H*W)")
def _matrix_transposed(w, input_size, **hyper):
    return convolution_matrix(w, input_size, **hyper).T.copy()


@ex_convolution_matrix.mistake("padding ignored", hint="output pixel i's window starts at input row i*s - p; "
                                                       "taps on the padding have no column (they multiply zeros)")
def _matrix_no_padding(w, input_size, **hyper):
    if pair(hyper.get("padding", 0)) == (0, 0):
        return convolution_matrix(w, input_size, **hyper)
    return convolution_matrix(w, input_size, **{**hyper, "padding": 0})


@ex_convolution_matrix.mistake("stride ignored", hint="output pixel i's window starts at input row i*s - p")
def _matrix_no_stride(w, input_size, **hyper):
    return convolution_matrix(w, input_size, **{**hyper, "stride": 1})


@ex_convolution_matrix.mistake("output size off by one (the + 1 of H_out = floor((H + 2p - d(k-1) - 1)/s) + 1 "
                               "is missing)", hint="count the window positions: the first starts at -p, "
                                                   "the last at (H_out - 1)*s - p")
def _matrix_size_short(w, input_size, **hyper):
    C_out, H_out, W_out, C, H, W = _matrix_sizes(w, input_size, hyper)
    M = convolution_matrix(w, input_size, **hyper).reshape(C_out, H_out, W_out, C * H * W)  # rows (o, i, j)
    return M[:, :-1, :-1].reshape(-1, C * H * W)  # (C_out*(H_out - 1)*(W_out - 1), C*H*W)


@ex_convolution_matrix.mistake("groups ignored (every output channel reads the first C // groups input channels)",
                               hint="output channel o belongs to group g = o // (C_out // groups) and reads "
                                    "input channels g*C_g .. g*C_g + C_g - 1, with C_g = w.shape[1]")
def _matrix_groups_ignored(w, input_size, **hyper):
    groups = hyper.get("groups", 1)
    M = convolution_matrix(w, input_size, **hyper)
    if groups == 1:
        return M
    C_out, _, _, C, H, W = _matrix_sizes(w, input_size, hyper)
    first = convolution_matrix(w, (w.shape[1], H, W), **{**hyper, "groups": 1})  # (rows, C_g*H*W)
    out = np.zeros_like(M)
    out[:, :first.shape[1]] = first
    return out


# --------------------------------------------------------------------------- conv_transpose2d

# x shape (N, C_in, H, W), w shape (C_in, C_out // groups, KH, KW), hyper-parameters
_TCONV_GRID = [
    ((1, 1, 2, 2), (1, 1, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),   # the slide's example
    ((2, 3, 4, 5), (3, 3, 3, 3), {"padding": 1}),
    ((2, 2, 3, 4), (2, 3, 3, 2), {"stride": 2, "padding": (1, 0), "output_padding": (1, 0)}),
    ((1, 2, 5, 4), (2, 2, 3, 3), {"stride": (2, 1), "padding": 2, "dilation": 2}),
    ((2, 4, 3, 5), (4, 2, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}),
    ((1, 3, 4, 3), (3, 1, 4, 4), {"stride": 2, "padding": 1, "groups": 3}),
    ((1, 2, 3, 3), (2, 2, 2, 2), {"dilation": 2, "output_padding": 1}),   # output_padding >= stride, < dilation
]


def _tconv_inputs(rng):
    for i, (xs, ws, hyper) in enumerate(_TCONV_GRID):
        x, w = rng.standard_normal(xs), rng.standard_normal(ws)
        b = rng.standard_normal(ws[1] * hyper.get("groups", 1)) if i % 3 != 0 else None
        yield x, w, b, hyper


def _tconv_cases(rng):
    cases = []
    for x, w, b, hyper in _tconv_inputs(rng):
        label = f"x {shape_text(x)}, w {shape_text(w)}" + (", b" if b is not None else "") + _hyper_text(hyper)
        cases.append(Case((x, w, b), dict(hyper), label))
    return cases


ex_conv_transpose2d = exercise(
    "conv_transpose2d", reference=conv_transpose2d, cases=_tconv_cases, outputs=[_IMG], returns_cache=True,
    spec="conv_transpose2d(x, w, b=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1) -> y "
         "(or y, cache); w is (C_in, C_out // groups, KH, KW), "
         "H_out = (H - 1)s - 2p + d(k - 1) + output_padding + 1")


def _tconv(x, w, b, **hyper):
    return conv_transpose2d(x, w, b, **hyper)[0]


@ex_conv_transpose2d.mistake("output_padding ignored",
                             hint="output_padding adds that many rows / columns at the bottom / right: "
                                  "H_out = (H - 1)s - 2p + d(k - 1) + output_padding + 1")
def _tconv_no_output_padding(x, w, b=None, **hyper):
    return _tconv(x, w, b, **{**hyper, "output_padding": 0})


@ex_conv_transpose2d.mistake("padding not cropped from the output",
                             hint="stamp onto the full canvas of (H - 1)s + d(k - 1) + 1 + output_padding rows, "
                                  "then drop p rows / columns on each side")
def _tconv_not_cropped(x, w, b=None, **hyper):
    return _tconv(x, w, b, **{**hyper, "padding": 0})


@ex_conv_transpose2d.mistake("kernel not flipped (the zero-inserted input correlated with w as it is)",
                             hint="each input pixel stamps w[c, o] unrotated at rows h*s + kh*d; written as a "
                                  "correlation over the zero-inserted input that is the kernel rotated 180 degrees")
def _tconv_flip_wrong(x, w, b=None, **hyper):
    return _tconv(x, np.ascontiguousarray(w[..., ::-1, ::-1]), b, **hyper)


@ex_conv_transpose2d.mistake("in/out channel axes of w swapped (w read as (C_out, C_in, KH, KW))",
                             hint="transposed-convolution weights are (C_in, C_out // groups, KH, KW), PyTorch's "
                                  "layout: input channel c stamps w[c, o] onto output channel o")
def _tconv_channels_swapped(x, w, b=None, **hyper):
    G = hyper.get("groups", 1)
    C_in, Co_g, KH, KW = w.shape
    if C_in // G != Co_g:
        raise ValueError("the swapped reading only has a value when C_in // groups == C_out // groups")
    w_swapped = w.reshape(G, Co_g, Co_g, KH, KW).swapaxes(1, 2).reshape(w.shape)  # per group (o, c) <-> (c, o)
    return _tconv(x, np.ascontiguousarray(w_swapped), b, **hyper)


@ex_conv_transpose2d.mistake("bias missing", hint="add b[o] to every pixel of output channel o")
def _tconv_no_bias(x, w, b=None, **hyper):
    return _tconv(x, w, None, **hyper)


# --------------------------------------------------------------------------- max_pool2d

def _ties(rng, shape):
    """Integer-valued inputs: most windows hold several equal maxima."""
    return rng.integers(-2, 3, size=shape).astype(np.float64)


def _with_minus_inf(rng, shape):
    """Integers with -inf pixels, among them the top-left corner (a padded corner window of -infs only)."""
    x = _ties(rng, shape)
    x[rng.random(shape) < 0.2] = -np.inf
    x[:, :, 0, 0] = -np.inf
    x[0, 0, :2, :2] = -np.inf
    return x


# x maker, shape (N, C, H, W), hyper-parameters (stride omitted: it defaults to kernel_size)
_POOL_GRID = [
    ("normal", (2, 3, 6, 8), {"kernel_size": 2}),
    ("ties", (2, 2, 7, 9), {"kernel_size": 2}),
    ("ties", (2, 2, 7, 8), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("ties", (1, 3, 6, 7), {"kernel_size": 3, "stride": 1}),                        # overlapping windows
    ("ties", (2, 1, 9, 8), {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0), "dilation": (2, 1)}),
    ("ties", (1, 2, 8, 7), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ("minus_inf", (2, 2, 5, 6), {"kernel_size": 2, "padding": 1}),
    ("normal", (1, 2, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}),
]
_MAKERS = {"normal": lambda rng, s: rng.standard_normal(s), "ties": _ties, "minus_inf": _with_minus_inf}
_MAKER_TEXT = {"normal": "", "ties": " (integers: tied maxima)", "minus_inf": " (integers and -inf)"}


def _pool_cases(rng):
    cases = []
    for kind, shape, hyper in _POOL_GRID:
        x = _MAKERS[kind](rng, shape)
        k = hyper["kernel_size"]
        rest = {a: v for a, v in hyper.items() if a != "kernel_size"}
        label = f"x {shape_text(x)}{_MAKER_TEXT[kind]}, kernel_size={k}" + _hyper_text(rest)
        cases.append(Case((x, k), rest, label))
    return cases


_pool_extract = indices_extract("max_pool2d", "the switches")


ex_max_pool2d = exercise(
    "max_pool2d", reference=max_pool2d, cases=_pool_cases, extract=_pool_extract,
    outputs=[_IMG, Output("indices", axes=("sample", "channel", "row", "column"))],
    spec="max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> (y, indices) "
         "(or y, cache with cache.indices); indices[n, c, i, j] = h*W + w in the input plane, the first maximum "
         "in row-major window order, padding never a candidate")


def _first_inside(n_out, stride, padding, dilation):
    """Per window along one axis: its first tap position >= 0 (the start ``o*s - p``, moved by whole dilations)."""
    start = np.arange(n_out) * stride - padding
    return start + -(-np.maximum(0, -start) // dilation) * dilation


def _scan(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, last_tie=False,
          pad_value=None, index="plane"):
    """Max-pooling tap by tap in row-major window order, with the switches; the mistakes' variants.

    last_tie : a tap takes over when >= the running maximum (the last of tied maxima wins)
    pad_value : None: taps in the padding are skipped (right); a number: the padding holds that value and
        every tap is a candidate, the running maximum starting at the window's first tap (argmax over the
        padded window)
    index : "plane" h*W + w (right); "window" the tap number kh*KW + kw; "padded" h_pad*(W + 2p) + w_pad
    """
    (KH, KW) = pair(kernel_size)
    (sh, sw) = (KH, KW) if stride is None else pair(stride)
    (ph, pw), (dh, dw) = pair(padding), pair(dilation)
    N, C, H, W = x.shape
    H_out, W_out = pool_output_size(H, KH, sh, ph, dh, ceil_mode), pool_output_size(W, KW, sw, pw, dw, ceil_mode)
    shape = (N, C, H_out, W_out)
    best = np.full(shape, -np.inf)
    if pad_value is None:  # PyTorch: start at -inf with the first tap inside the input
        h0, v0 = _first_inside(H_out, sh, ph, dh), _first_inside(W_out, sw, pw, dw)
    else:                  # argmax over the padded window: start at its tap 0, padding or not
        h0, v0 = np.arange(H_out) * sh - ph, np.arange(W_out) * sw - pw
    h_max = np.broadcast_to(h0[:, None], shape).copy()                       # where the maximum is so far
    v_max = np.broadcast_to(v0[None, :], shape).copy()
    kh0 = (h0 - (np.arange(H_out) * sh - ph)) // dh                          # their tap numbers
    kw0 = (v0 - (np.arange(W_out) * sw - pw)) // dw
    tap = np.broadcast_to(kh0[:, None] * KW + kw0[None, :], shape).copy()
    for kh in range(KH):
        for kw in range(KW):
            h = (np.arange(H_out) * sh - ph + kh * dh)[:, None]                 # (H_out, 1)
            v = (np.arange(W_out) * sw - pw + kw * dw)[None, :]                 # (1, W_out)
            inside = (h >= 0) & (h < H) & (v >= 0) & (v < W)                    # (H_out, W_out)
            cand = x[:, :, np.clip(h, 0, H - 1), np.clip(v, 0, W - 1)]         # (N, C, H_out, W_out)
            if pad_value is None:
                wins = inside & ((cand >= best) if last_tie else (cand > best))
            else:
                cand = np.where(inside, cand, pad_value)
                wins = (cand >= best) if last_tie else (cand > best)
                if kh == kw == 0:
                    wins = np.ones(shape, dtype=bool)
            best = np.where(wins, cand, best)
            h_max, v_max = np.where(wins, h, h_max), np.where(wins, v, v_max)
            tap = np.where(wins, kh * KW + kw, tap)
    if index == "window":
        indices = tap
    elif index == "padded":
        indices = (h_max + ph) * (W + 2 * pw) + (v_max + pw)
    else:
        indices = h_max * W + v_max
    return best, indices.astype(np.int64)


@ex_max_pool2d.mistake("tied maxima: the last maximum wins instead of the first (row-major window order)",
                       hint="a tap takes over only when it is strictly larger (>, not >=): PyTorch keeps the "
                            "first of equal maxima, so the switches (and the gradient) go there")
def _pool_last_tie(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _scan(x, kernel_size, stride, padding, dilation, ceil_mode, last_tie=True)


@ex_max_pool2d.mistake("indices relative to the window (tap kh*KW + kw) instead of flat indices h*W + w "
                       "into the H*W input plane",
                       hint="indices[n, c, i, j] = h*W + w with h = i*s - p + kh*d, w = j*s - p + kw*d: "
                            "max_unpool2d and the backward read it without knowing the window")
def _pool_window_index(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _scan(x, kernel_size, stride, padding, dilation, ceil_mode, index="window")


@ex_max_pool2d.mistake("indices into the padded plane instead of the H*W input plane",
                       hint="subtract the padding: h = i*s - p + kh*d, and use the input's width W")
def _pool_padded_index(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _scan(x, kernel_size, stride, padding, dilation, ceil_mode, index="padded")


@ex_max_pool2d.mistake("padding filled with zeros (a padded 0 beats negative pixels): pad with -inf",
                       hint="max-pooling's padding is -inf, never a candidate: the maximum is over pixels "
                            "inside the input")
def _pool_zero_padding(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _scan(x, kernel_size, stride, padding, dilation, ceil_mode, pad_value=0.0)


@ex_max_pool2d.mistake("padding counted as a candidate: a window of -inf points into the padding",
                       hint="start each window at -inf with the index of its first tap inside the input "
                            "and skip the taps on the padding (np.argmax over the padded window picks tap 0, "
                            "which may be padding)")
def _pool_padding_candidate(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _scan(x, kernel_size, stride, padding, dilation, ceil_mode, pad_value=-np.inf)


@ex_max_pool2d.mistake("stride=None taken as 1 instead of kernel_size",
                       hint="like torch.nn.MaxPool2d, the stride defaults to the kernel size")
def _pool_stride_one(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return max_pool2d(x, kernel_size, 1 if stride is None else stride, padding, dilation, ceil_mode)


@ex_max_pool2d.mistake("ceil_mode ignored", hint="ceil_mode=True rounds H_out up, keeping a last window that "
                                                 "starts inside the input or the left padding")
def _pool_no_ceil(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return max_pool2d(x, kernel_size, stride, padding, dilation, False)


# --------------------------------------------------------------------------- max_pool2d_backward

def _pool_backward_cases(rng):
    cases = []
    for kind, shape, hyper in _POOL_GRID:
        x = _MAKERS[kind](rng, shape)
        label = f"max_pool2d(x {shape_text(x)}{_MAKER_TEXT[kind]}" + _hyper_text(hyper) + ")"
        # central differences need distinct values (no ties, no infinities)
        cases.append(backward_case(max_pool2d, {"x": x}, ("x",), rng=rng, numeric=kind == "normal",
                                   label=label, **hyper))
    return cases


ex_max_pool2d_backward = exercise(
    "max_pool2d_backward", reference=max_pool2d_backward, cases=_pool_backward_cases, outputs=[Output("dx")],
    spec="max_pool2d_backward(dy, cache) -> dx of shape cache.x_shape; dx[n, c].flat[cache.indices[n, c, i, j]] "
         "+= dy[n, c, i, j]")


@ex_max_pool2d_backward.mistake("overlapping windows: gradient assigned instead of accumulated",
                                hint="when two windows pick the same pixel, both gradients reach it: add "
                                     "(np.add.at, or +=  in a loop), since dx.flat[idx] = dy keeps only one")
def _pool_grad_assigned(dy, cache):
    N, C, H, W = cache.x_shape
    dx = np.zeros((N, C, H * W), dtype=dy.dtype)                 # (N, C, H*W)
    idx = cache.indices.reshape(N, C, -1)                        # (N, C, H_out*W_out)
    g = dy.reshape(N, C, -1)                                     # (N, C, H_out*W_out)
    for n in range(N):
        for c in range(C):
            dx[n, c, idx[n, c]] = g[n, c]                        # repeated indices: the last write stays
    return dx.reshape(N, C, H, W)


@ex_max_pool2d_backward.mistake("gradient spread over the window (average pooling's gradient) instead of sent "
                                "to the switch", hint="only the maximum influenced y: dy goes to the pixel at "
                                                      "cache.indices, nothing to the other pixels of the window")
def _pool_grad_average(dy, cache):
    (N, C, H, W), _, (KH, KW), (sh, sw), (ph, pw), (dh, dw), _ = cache
    H_out, W_out = dy.shape[2:]
    dx = np.zeros((N, C, H, W), dtype=dy.dtype)
    for kh in range(KH):
        for kw in range(KW):
            for i in range(H_out):
                for j in range(W_out):
                    h, v = i * sh - ph + kh * dh, j * sw - pw + kw * dw
                    if 0 <= h < H and 0 <= v < W:
                        dx[:, :, h, v] += dy[:, :, i, j] / (KH * KW)
    return dx


# --------------------------------------------------------------------------- max_unpool2d

# x maker, pooled input shape, max_pool2d's hyper-parameters, whether to pass output_size (None, "hw", "nchw")
_UNPOOL_GRID = [
    ("normal", (2, 3, 6, 8), {"kernel_size": 2}, None),
    ("normal", (2, 2, 7, 9), {"kernel_size": 2}, "hw"),                           # odd: output_size needed
    ("ties", (1, 3, 6, 7), {"kernel_size": 3, "stride": 1}, None),                # overlapping: repeated indices
    ("ties", (2, 2, 7, 6), {"kernel_size": 3, "stride": 1}, "nchw"),
    ("normal", (2, 2, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1}, None),
    ("ties", (1, 2, 9, 8), {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0)}, "hw"),
    ("normal", (1, 2, 6, 8), {"kernel_size": 3, "stride": 2, "ceil_mode": True}, "hw"),  # output_size < default
]


def _unpool_cases(rng):
    cases = []
    for kind, shape, hyper, size in _UNPOOL_GRID:
        _, pcache = max_pool2d(_MAKERS[kind](rng, shape), **hyper)
        x = rng.standard_normal(pcache.indices.shape)
        kwargs = {a: v for a, v in hyper.items() if a in ("stride", "padding")}
        if size == "hw":
            kwargs["output_size"] = tuple(shape[2:])
        elif size == "nchw":
            kwargs["output_size"] = tuple(shape)
        repeated = any(len(np.unique(i)) < i.size for i in pcache.indices.reshape(-1, pcache.indices[0, 0].size))
        label = (f"x {shape_text(x)}, switches of a {shape[2]}x{shape[3]} max_pool2d"
                 + (" (ceil_mode)" if hyper.get("ceil_mode") else "") + (" (repeated)" if repeated else "")
                 + f", kernel_size={hyper['kernel_size']}" + _hyper_text(kwargs))
        cases.append(Case((x, pcache.indices, hyper["kernel_size"]), kwargs, label))
    return cases


ex_max_unpool2d = exercise(
    "max_unpool2d", reference=max_unpool2d, cases=_unpool_cases, outputs=[_IMG], returns_cache=True,
    spec="max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None) -> y (or y, cache); "
         "zeros, then y[n, c].flat[indices[n, c, i, j]] = x[n, c, i, j] in row-major order (the last write "
         "stays); default H_out = (H - 1)s - 2p + k")


def _unpool_writes(x, indices, H_out, W_out, order=1, add=False):
    """Zeros of (N, C, H_out, W_out), then the values written (or added) at their indices, in ``order``."""
    N, C = x.shape[:2]
    if indices.max() >= H_out * W_out:
        raise IndexError(f"index {int(indices.max())} is out of bounds for a plane of {H_out * W_out}")
    y = np.zeros((N, C, H_out * W_out), dtype=x.dtype)           # (N, C, H_out*W_out)
    idx, vals = indices.reshape(N, C, -1), x.reshape(N, C, -1)   # (N, C, H*W) each
    for n in range(N):
        for c in range(C):
            for m in range(idx.shape[2])[::order]:
                if add:
                    y[n, c, idx[n, c, m]] += vals[n, c, m]
                else:
                    y[n, c, idx[n, c, m]] = vals[n, c, m]
    return y.reshape(N, C, H_out, W_out)


def _unpool_size(x, kernel_size, stride, padding, output_size):
    if output_size is not None:
        return tuple(output_size)[-2:]
    (kh, kw) = pair(kernel_size)
    (sh, sw) = (kh, kw) if stride is None else pair(stride)
    (ph, pw) = pair(padding)
    return unpool_output_size(x.shape[2], kh, sh, ph), unpool_output_size(x.shape[3], kw, sw, pw)


@ex_max_unpool2d.mistake("overlapping indices: the first write kept instead of the last",
                         hint="write in row-major order of x and let a later value overwrite an earlier one at "
                              "the same index (as NumPy's y.flat[idx] = x and PyTorch's CPU kernel do)")
def _unpool_first_kept(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _unpool_writes(x, indices, *_unpool_size(x, kernel_size, stride, padding, output_size), order=-1)


@ex_max_unpool2d.mistake("overlapping indices: values added instead of written",
                         hint="unpooling writes: a pixel picked twice holds the last value written, not the sum")
def _unpool_added(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _unpool_writes(x, indices, *_unpool_size(x, kernel_size, stride, padding, output_size), add=True)


@ex_max_unpool2d.mistake("output_size ignored (the default size (H - 1)s - 2p + k used)",
                         hint="when output_size is given, its last two entries are (H_out, W_out): the pooled "
                              "input's size, which the default cannot know for odd sizes or ceil_mode")
def _unpool_no_output_size(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _unpool_writes(x, indices, *_unpool_size(x, kernel_size, stride, padding, None))


@ex_max_unpool2d.mistake("stride ignored (the kernel size used as the stride)",
                         hint="stride=None means kernel_size; a given stride sets H_out = (H - 1)s - 2p + k")
def _unpool_no_stride(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _unpool_writes(x, indices, *_unpool_size(x, kernel_size, None, padding, output_size))


@ex_max_unpool2d.mistake("padding ignored in the output size (H_out = (H - 1)s + k instead of (H - 1)s - 2p + k)",
                         hint="the pooled windows started at -p: the unpooled map is 2p smaller than the "
                              "windows' span")
def _unpool_no_padding(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _unpool_writes(x, indices, *_unpool_size(x, kernel_size, stride, 0, output_size))
