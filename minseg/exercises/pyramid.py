"""Exercises of lesson 06: receptive_field, conv_output_size (with dilation), adaptive_max_pool2d (and its
backward), spatial_pyramid_pool.

``receptive_field`` and ``conv_output_size`` have the signatures of
``minseg.shapes`` and return an int; the others have the signatures of
``minseg.ops``. The adaptive-pooling cases mix tie-free inputs (checked
against central differences in the backward), integer inputs with tied
maxima, sizes that the bins do not divide (overlapping bins) and outputs
larger than the input (every pixel in two bins), so that each known mistake
gives an answer of its own.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..ops import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d,
                   adaptive_max_pool2d_backward, spatial_pyramid_pool)
from ..ops.pyramid import AdaptiveAvgPool2dCache, AdaptiveMaxPool2dCache, adaptive_output_size
from ..shapes import conv_output_size, receptive_field
from .core import AnswerProblem, Case, Output, backward_case, exercise, indices_extract, shape_text

_IMG = Output("y", axes=("sample", "channel", "row", "column"))


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _int_extract(name, what):
    """An ``extract`` for a function that returns one int: the int as an int64 array of shape (1,)."""
    def extract(value, case):
        if value is None:
            raise AnswerProblem(f"expected {name} to return an int ({what}), got None (a missing return?)")
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value.item()
        if not _is_int(value):
            raise AnswerProblem(f"expected {name} to return an int ({what}; // floors), "
                                f"got {type(value).__name__} {value!r}")
        return (np.array([int(value)], dtype=np.int64),)  # (1,)
    return extract


# =========================================================================== receptive_field

# stacks of (kernel, stride, dilation), from the input upwards
_RF_GRID = [
    ("one 3x3 conv", [(3, 1, 1)]),
    ("one 3x3 conv at rate 2", [(3, 1, 2)]),
    ("three 3x3 convs", [(3, 1, 1)] * 3),
    ("3x3 convs at rates 1, 2, 4 (exponential dilation)", [(3, 1, 1), (3, 1, 2), (3, 1, 4)]),
    ("conv, pool 2x2, conv, pool, conv", [(3, 1, 1), (2, 2, 1), (3, 1, 1), (2, 2, 1), (3, 1, 1)]),
    ("strided 7x7, strided 3x3, then 3x3 at rate 2",
     [(7, 2, 1), (3, 2, 1), (3, 1, 1), (3, 1, 2)]),
    ("three stride-2 3x3 convs, then a 3x3 at rate 3", [(3, 2, 1), (3, 2, 1), (3, 2, 1), (3, 1, 3)]),
    ("a 5x5 at rate 2 after a stride-3 1x1", [(1, 3, 1), (5, 1, 2)]),
    ("an empty stack", []),
]


def _rf_cases(rng):
    return [Case((list(layers),), {}, f"{text}: {layers}") for text, layers in _RF_GRID]


ex_receptive_field = exercise(
    "receptive_field", reference=receptive_field, cases=_rf_cases,
    outputs=[Output("r", axes=("value",), spatial=None)], extract=_int_extract("receptive_field", "input pixels"),
    spec="receptive_field(layers) -> r, an int: the receptive field along one axis, in input pixels, of the "
         "stack layers = [(kernel, stride, dilation), ...] from the input up")


@ex_receptive_field.mistake("receptive field without the dilation term (d_l (k_l - 1) computed as k_l - 1)",
                            hint="a k-tap kernel at rate d spans d(k - 1) + 1 pixels: each layer adds "
                                 "d (k - 1) times the jump")
def _rf_no_dilation(layers):
    return receptive_field([(k, s, 1) for k, s, d in layers])


@ex_receptive_field.mistake("strides not multiplied (jump not accumulated)",
                            hint="one step of layer l's input is prod_{m<l} s_m input pixels: multiply the jump "
                                 "by every stride below, not only the last one")
def _rf_last_stride_only(layers):
    r, jump = 1, 1
    for k, s, d in layers:
        r += d * (k - 1) * jump
        jump = s                                   # the mistake: the last stride instead of the product
    return r


@ex_receptive_field.mistake("strides not multiplied (jump not accumulated)",
                            hint="one step of layer l's input is prod_{m<l} s_m input pixels: multiply the jump "
                                 "by every stride below, not only the last one")
def _rf_strides_summed(layers):
    r, jump = 1, 1
    for k, s, d in layers:
        r += d * (k - 1) * jump
        jump += s - 1                              # the mistake: the strides added instead of multiplied
    return r


@ex_receptive_field.mistake("strides ignored (every layer counted at the input's resolution)",
                            hint="after a stride-2 layer one step is 2 input pixels: r += d (k - 1) * jump, "
                                 "jump = the product of the strides below")
def _rf_no_stride(layers):
    return receptive_field([(k, 1, d) for k, s, d in layers])


# =========================================================================== conv_output_size

# (size, kernel, stride, padding, dilation)
_SIZE_GRID = [
    (5, 3, 1, 0, 1),
    (7, 3, 1, 1, 1),
    (9, 3, 1, 2, 2),
    (9, 3, 1, 0, 2),
    (16, 3, 1, 4, 4),
    (17, 3, 2, 1, 2),
    (64, 3, 1, 6, 6),
    (12, 5, 1, 0, 3),
    (10, 2, 3, 0, 1),
    (33, 3, 2, 0, 3),
]


def _size_cases(rng):
    return [Case((n, k, s, p, d), {}, f"size={n}, kernel={k}, stride={s}, padding={p}, dilation={d}")
            for n, k, s, p, d in _SIZE_GRID]


ex_conv_output_size = exercise(
    "conv_output_size", reference=conv_output_size, cases=_size_cases,
    outputs=[Output("H_out", axes=("value",), spatial=None)],
    extract=_int_extract("conv_output_size", "the output length"),
    spec="conv_output_size(size, kernel, stride=1, padding=0, dilation=1) -> H_out, an int: the output "
         "length of a convolution along one axis")


@ex_conv_output_size.mistake("dilation ignored", hint="a k-tap kernel at rate d spans d(k - 1) + 1 input pixels, "
                                                      "not k: H_out = floor((H + 2p - d(k - 1) - 1) / s) + 1")
def _size_no_dilation(size, kernel, stride=1, padding=0, dilation=1):
    return conv_output_size(size, kernel, stride, padding, 1)


@ex_conv_output_size.mistake("dilation applied as d*k instead of d*(k-1)+1",
                             hint="the taps are d apart: from the first to the last tap there are k - 1 gaps "
                                  "of d, so the kernel spans d(k - 1) + 1 pixels")
def _size_d_times_k(size, kernel, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * kernel) // stride + 1


@ex_conv_output_size.mistake("the + 1 missing (H_out = floor((H + 2p - d(k - 1) - 1) / s) + 1)",
                             hint="count the window positions: the first starts at 0, the last at (H_out - 1) s")
def _size_no_plus_one(size, kernel, stride=1, padding=0, dilation=1):
    return conv_output_size(size, kernel, stride, padding, dilation) - 1


# =========================================================================== adaptive_max_pool2d

def _ties(rng, shape):
    """Integer-valued inputs: most bins hold several equal maxima."""
    return rng.integers(-2, 3, size=shape).astype(np.float64)


# x maker, shape (N, C, H, W), output_size: tie-free and tied, divisible and overlapping bins, outputs larger
# than the input, non-square, None keeping an axis
_POOL_GRID = [
    ("normal", (2, 3, 8, 8), 4),
    ("normal", (2, 2, 7, 10), (3, 4)),
    ("ties", (2, 3, 9, 7), (4, 3)),
    ("ties", (1, 2, 10, 10), 4),
    ("ties", (2, 2, 5, 6), (3, 4)),
    ("normal", (1, 3, 3, 2), (5, 4)),             # more bins than pixels: every pixel in one or two bins
    ("ties", (2, 1, 13, 11), (4, None)),
    ("normal", (1, 2, 6, 9), 1),
]
_MAKERS = {"normal": lambda rng, s: rng.standard_normal(s), "ties": _ties}
_MAKER_TEXT = {"normal": "", "ties": " (integers: tied maxima)"}


def _pool_cases(rng):
    cases = []
    for kind, shape, size in _POOL_GRID:
        x = _MAKERS[kind](rng, shape)
        cases.append(Case((x, size), {}, f"x {shape_text(x)}{_MAKER_TEXT[kind]}, output_size={size!r}"))
    return cases


_pool_extract = indices_extract("adaptive_max_pool2d", "where each maximum came from")


ex_adaptive_max_pool2d = exercise(
    "adaptive_max_pool2d", reference=adaptive_max_pool2d, cases=_pool_cases, extract=_pool_extract,
    outputs=[_IMG, Output("indices", axes=("sample", "channel", "row", "column"))],
    spec="adaptive_max_pool2d(x, output_size) -> (y, indices) (or y, cache with cache.indices); bin i covers "
         "rows floor(i*H/H_out) .. ceil((i+1)*H/H_out) - 1 (likewise columns); indices[n, c, i, j] = h*W + w, "
         "the first maximum in row-major order")


def _floor_bins(n, out):
    """Bins with floor at both ends: ``[floor(i n / out), floor((i + 1) n / out))`` (may be empty)."""
    return [((i * n) // out, ((i + 1) * n) // out) for i in range(out)]


def _right_bins(n, out):
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


def _sppnet_bins(n, out):
    """SPPNet's sliding windows: size ceil(n / out), stride floor(n / out) (the last may run past the end)."""
    size, step = -(-n // out), n // out
    return [(i * step, min(i * step + size, n)) for i in range(out)]


def _bin_scan(x, output_size, *, bins=_right_bins, last_tie=False, index="plane"):
    """Max over each bin, scanned in row-major order, with the flat index ``h*W + w`` of the winner.

    bins : (n, out) -> list of (start, end) along one axis; last_tie : a pixel takes over when >= (the last of
    tied maxima wins) instead of > (the first); index : "plane" (h*W + w, right) or "bin" (the position
    in the bin, row-major).
    """
    N, C, H, W = x.shape
    H_out, W_out = adaptive_output_size(output_size, (H, W))
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    indices = np.empty((N, C, H_out, W_out), dtype=np.int64)
    for i, (h0, h1) in enumerate(bins(H, H_out)):
        for j, (w0, w1) in enumerate(bins(W, W_out)):
            if h1 <= h0 or w1 <= w0:
                raise ValueError(f"bin ({i}, {j}) is empty")
            window = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)             # (N, C, bin rows * bin columns)
            flat = window[:, :, ::-1] if last_tie else window             # argmax keeps the first: reverse for last
            k = np.argmax(flat, axis=2)                                   # (N, C)
            if last_tie:
                k = window.shape[2] - 1 - k
            y[:, :, i, j] = np.take_along_axis(window, k[..., None], 2)[..., 0]
            indices[:, :, i, j] = k if index == "bin" else (h0 + k // (w1 - w0)) * W + (w0 + k % (w1 - w0))
    return y, indices


@ex_adaptive_max_pool2d.mistake("bins computed with floor at both ends",
                                hint="the end of bin i is rounded up, ceil((i + 1) H / H_out), so the bins cover "
                                     "the whole axis and overlap where H_out does not divide H")
def _pool_floor_floor(x, output_size):
    return _bin_scan(x, output_size, bins=_floor_bins)


@ex_adaptive_max_pool2d.mistake("last of tied maxima",
                                hint="a pixel takes over only when it is strictly larger (>, not >=): PyTorch "
                                     "keeps the first of equal maxima in row-major order, and the gradient goes there")
def _pool_last_tie(x, output_size):
    return _bin_scan(x, output_size, last_tie=True)


@ex_adaptive_max_pool2d.mistake("SPPNet's sliding windows (size ceil(H/n), stride floor(H/n)) instead of the "
                                "adaptive bins",
                                hint="bin i starts at floor(i H / H_out) and ends at ceil((i + 1) H / H_out): "
                                     "the last bin always ends at H")
def _pool_sppnet_windows(x, output_size):
    return _bin_scan(x, output_size, bins=_sppnet_bins)


@ex_adaptive_max_pool2d.mistake("indices relative to the bin instead of flat indices h*W + w into the input plane",
                                hint="indices[n, c, i, j] = h*W + w with (h, w) the winner's row and column in x: "
                                     "the backward reads it without knowing the bins")
def _pool_bin_index(x, output_size):
    return _bin_scan(x, output_size, index="bin")


# =========================================================================== adaptive_max_pool2d_backward

def _pool_backward_cases(rng):
    cases = []
    for kind, shape, size in _POOL_GRID:
        x = _MAKERS[kind](rng, shape)
        cases.append(backward_case(adaptive_max_pool2d, {"x": x}, ("x",), rng=rng, numeric=kind == "normal",
                                   label=f"adaptive_max_pool2d(x {shape_text(x)}{_MAKER_TEXT[kind]}, "
                                         f"output_size={size!r})", output_size=size))
    return cases


ex_adaptive_max_pool2d_backward = exercise(
    "adaptive_max_pool2d_backward", reference=adaptive_max_pool2d_backward, cases=_pool_backward_cases,
    outputs=[Output("dx")],
    spec="adaptive_max_pool2d_backward(dy, cache) -> dx of shape cache.x_shape; "
         "dx[n, c].flat[cache.indices[n, c, i, j]] += dy[n, c, i, j]")


@ex_adaptive_max_pool2d_backward.mistake("overlapping bins: gradient assigned instead of accumulated",
                                         hint="when two bins pick the same pixel, both gradients reach it: add "
                                              "(np.add.at, or += in a loop), since dx.flat[idx] = dy keeps only one")
def _grad_assigned(dy, cache: AdaptiveMaxPool2dCache):
    N, C, H, W = cache.x_shape
    dx = np.zeros((N, C, H * W), dtype=dy.dtype)                 # (N, C, H*W)
    idx = cache.indices.reshape(N, C, -1)                        # (N, C, H_out*W_out)
    g = dy.reshape(N, C, -1)                                     # (N, C, H_out*W_out)
    for n in range(N):
        for c in range(C):
            dx[n, c, idx[n, c]] = g[n, c]                        # repeated indices: the last write stays
    return dx.reshape(N, C, H, W)


@ex_adaptive_max_pool2d_backward.mistake("gradient spread over the bin (average pooling's gradient) instead of "
                                         "sent to the maximum",
                                         hint="only the maximum influenced y: dy goes to the pixel at "
                                              "cache.indices, nothing to the other pixels of the bin")
def _grad_average(dy, cache: AdaptiveMaxPool2dCache):
    return adaptive_avg_pool2d_backward(dy, AdaptiveAvgPool2dCache(cache.x_shape, tuple(dy.shape[2:])))


# =========================================================================== spatial_pyramid_pool

# x maker, shape, levels, mode
_SPP_GRID = [
    ("normal", (2, 3, 8, 8), (4, 2, 1), "max"),
    ("normal", (1, 2, 13, 10), (4, 2, 1), "max"),
    ("ties", (2, 2, 9, 11), (4, 2, 1), "max"),
    ("normal", (2, 3, 7, 5), (3, 1), "max"),
    ("normal", (1, 4, 3, 5), (4, 2, 1), "max"),           # smaller than the finest level: bins repeat pixels
    ("normal", (2, 2, 10, 12), (4, 2, 1), "avg"),
    ("normal", (1, 3, 6, 6), (1, 2, 3, 6), "avg"),        # PSPNet's levels
]


def _spp_cases(rng):
    cases = []
    for kind, shape, levels, mode in _SPP_GRID:
        x = _MAKERS[kind](rng, shape)
        cases.append(Case((x, levels, mode), {}, f"x {shape_text(x)}{_MAKER_TEXT[kind]}, levels={levels}, "
                                                  f"mode={mode!r}"))
    return cases


ex_spatial_pyramid_pool = exercise(
    "spatial_pyramid_pool", reference=spatial_pyramid_pool, cases=_spp_cases,
    outputs=[Output("y", axes=("sample", "feature"), spatial=None)], returns_cache=True,
    spec="spatial_pyramid_pool(x, levels=(4, 2, 1), mode='max') -> y (N, C * sum(l*l)) (or y, cache): "
         "for each level in order, the (N, C, l, l) adaptive pool flattened in C-order (channel, bin row, "
         "bin column), concatenated")


def _pools(x, levels, mode):
    pool = adaptive_max_pool2d if mode == "max" else adaptive_avg_pool2d
    return [pool(x, level)[0] for level in levels]               # each (N, C, l, l)


@ex_spatial_pyramid_pool.mistake("flattened in the wrong order (levels or channel/position order swapped)",
                                 hint="level after level in the order given; within a level the (N, C, l, l) "
                                      "pool flattened in C-order: y_l[n, c*l*l + i*l + j]")
def _spp_positions_first(x, levels=(4, 2, 1), mode="max"):
    N = x.shape[0]
    return np.concatenate([p.transpose(0, 2, 3, 1).reshape(N, -1) for p in _pools(x, levels, mode)], axis=1)


@ex_spatial_pyramid_pool.mistake("flattened in the wrong order (levels or channel/position order swapped)",
                                 hint="level after level in the order given; within a level the (N, C, l, l) "
                                      "pool flattened in C-order: y_l[n, c*l*l + i*l + j]")
def _spp_levels_reversed(x, levels=(4, 2, 1), mode="max"):
    N = x.shape[0]
    return np.concatenate([p.reshape(N, -1) for p in _pools(x, levels, mode)][::-1], axis=1)


@ex_spatial_pyramid_pool.mistake("flattened in the wrong order (levels or channel/position order swapped)",
                                 hint="level after level in the order given; within a level the (N, C, l, l) "
                                      "pool flattened in C-order: y_l[n, c*l*l + i*l + j]")
def _spp_bins_transposed(x, levels=(4, 2, 1), mode="max"):
    N = x.shape[0]
    return np.concatenate([p.transpose(0, 1, 3, 2).reshape(N, -1) for p in _pools(x, levels, mode)], axis=1)


@ex_spatial_pyramid_pool.mistake("average instead of max",
                                 hint="mode='max' (SPPNet's) takes the maximum of each bin: adaptive_max_pool2d")
def _spp_average(x, levels=(4, 2, 1), mode="max"):
    return spatial_pyramid_pool(x, levels, "avg")[0]


@ex_spatial_pyramid_pool.mistake("max instead of average (mode ignored)",
                                 hint="mode='avg' takes the mean of each bin: adaptive_avg_pool2d")
def _spp_always_max(x, levels=(4, 2, 1), mode="max"):
    return spatial_pyramid_pool(x, levels, "max")[0]
