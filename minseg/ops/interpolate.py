"""Resizing feature maps: bilinear interpolation and its one-axis matrices, FCN's bilinear kernel.

Bilinear interpolation of a pixel ``P`` between its four neighbours

    A ---- B        P = q (b A + a B) + p (b D + a C)
    |   P  |        a = horizontal fraction, b = 1 - a
    D ---- C        p = vertical fraction,   q = 1 - p

is *separable*: it interpolates along W, then along H. Along one axis it is a
matrix with two non-zeros per row, so the whole operation is two small matrix
products per channel,

    Y = A_h X A_w^T            A_h: (H_out, H),  A_w: (W_out, W)

and its backward pass the transposed products ``dX = A_h^T dY A_w``. Row
``o`` of ``A`` holds ``1 - lambda`` at ``i0`` and ``lambda`` at ``i1`` for
PyTorch's source coordinate (``torch.nn.functional.interpolate``, ``mode="bilinear"``):

    align_corners=False:  src = (o + 0.5) * scale - 0.5, clamped below at 0,
                          scale = in/out, or 1/scale_factor when a scale_factor is given
    align_corners=True:   src = o * (in - 1)/(out - 1)    (0 when out == 1)
    i0 = min(floor(src), in - 1),  i1 = min(i0 + 1, in - 1),  lambda = src - i0

An axis whose size does not change is copied (PyTorch's CPU kernel does the
same, even when a scale_factor other than 1 rounds back to the input size):
its taps are ``1 * x[o] + 0 * x[o]``, so an infinite pixel becomes NaN there,
exactly as in PyTorch.

Two paths, chosen in one line by whether the input (or dy) is finite: the
matrix products above, fast because BLAS does the multiply-adds; and, when a
NaN or inf is present, the four taps gathered (scattered, backward) pixel by
pixel in the order of PyTorch's CPU kernel, so the NaN / inf pattern matches
PyTorch element for element instead of spreading through the zeros of ``A``.

Nearest-neighbour upsampling (``mode="nearest"``, ``unpooling.upsample_nearest``)
copies ``x[nearest_indices(...)]``, ``floor(o * scale)`` computed in float32
as PyTorch does.

``bilinear_kernel`` is FCN's initialisation of an upsampling transposed
convolution; see its docstring for where that convolution agrees with
``bilinear_interpolate`` and where it does not.

References
----------
J. Long, E. Shelhamer, T. Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015, section 3.3 (upsampling is backwards strided
convolution, initialised to bilinear interpolation).
PyTorch ``aten/src/ATen/native/UpSample.h``: ``area_pixel_compute_source_index``,
``compute_source_index_and_lambda``, ``nearest_neighbor_compute_source_index``;
``aten/src/ATen/native/cpu/UpSampleKernel.cpp`` (forward) and
``UpSampleMoreKernel.cpp`` (``cpu_upsample_linear_backward``).
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from ..backend import get_array_module, scatter_add
from ..shapes import check_float, check_ndim, check_positive, check_shape, pair

__all__ = [
    "interpolation_matrix", "linear_taps", "nearest_indices",
    "bilinear_interpolate", "bilinear_interpolate_backward", "BilinearCache",
    "bilinear_kernel",
]


# --------------------------------------------------------------------------- one axis

def interpolation_matrix(in_size: int, out_size: int, align_corners: bool = False, scale=None):
    """The ``(out_size, in_size)`` matrix of 1-D linear interpolation, PyTorch's coordinates.

    Parameters
    ----------
    in_size, out_size : int, >= 1
    align_corners : bool
    scale : float, optional
        The user's ``scale_factor`` for this axis. With ``align_corners=False``
        the source step is ``1 / scale`` instead of ``in_size / out_size``
        (they differ when ``in_size * scale`` is not an integer).

    Returns
    -------
    A : numpy.ndarray of float64, shape (out_size, in_size)
        ``y = A @ x`` interpolates a length-``in_size`` signal; every row has
        ``1 - lambda`` at ``i0`` and ``lambda`` at ``i1`` (summed when
        ``i0 == i1``), so every row sums to 1.

    Examples
    --------
    >>> interpolation_matrix(2, 4)          # src = -0.25 (clamped), 0.25, 0.75, 1.25
    array([[1.  , 0.  ],
           [0.75, 0.25],
           [0.25, 0.75],
           [0.  , 1.  ]])
    """
    if in_size == out_size:  # PyTorch copies an axis whose size does not change
        return np.eye(in_size)
    i0, i1, lam0, lam1 = linear_taps(in_size, out_size, align_corners, scale)
    A = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    A[rows, i0] = lam0        # one (row, column) pair per row: plain writes
    A[rows, i1] += lam1       # adds onto 1 - lambda where i1 == i0 (the last input pixel)
    return A


def linear_taps(in_size: int, out_size: int, align_corners: bool = False, scale=None):
    """The two taps of every output pixel along one axis, as PyTorch's ``compute_source_index_and_lambda``.

    Output ``o`` reads ``lam0[o] * x[i0[o]] + lam1[o] * x[i1[o]]``. An
    unchanged size keeps both taps: ``i0 = i1 = o``, ``lam0 = 1``,
    ``lam1 = 0`` (so ``inf * 0`` makes an infinite input NaN there, as in
    PyTorch). ``interpolation_matrix`` is these taps written as a matrix.

    Returns
    -------
    i0, i1 : numpy.ndarray of int64, shape (out_size,)
    lam0, lam1 : numpy.ndarray of float64, shape (out_size,)
    """
    if in_size == out_size:
        o = np.arange(out_size)
        return o, o, np.ones(out_size), np.zeros(out_size)
    dst = np.arange(out_size, dtype=np.float64)
    if align_corners:
        step = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        src = dst * step
    else:
        step = 1.0 / scale if scale is not None and scale > 0 else in_size / out_size
        src = np.maximum((dst + 0.5) * step - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam1 = np.clip(src - i0, 0.0, 1.0)
    return i0, i1, 1.0 - lam1, lam1


def nearest_indices(in_size: int, out_size: int, scale=None):
    """Source pixel of every output pixel for nearest-neighbour resizing, PyTorch's ``mode="nearest"``.

    ``src[o] = min(floor(o * step), in_size - 1)`` with ``step = 1 / scale``
    when a ``scale`` (the user's scale_factor) is given, else ``in_size / out_size``,
    computed in float32 like PyTorch's kernel; an unchanged size is copied and
    an exact doubling is ``o // 2``.

    Returns
    -------
    numpy.ndarray of int64, shape (out_size,)
    """
    if out_size == in_size:
        return np.arange(out_size)
    if out_size == 2 * in_size:
        return np.arange(out_size) // 2
    if scale is not None and scale > 0:
        step = np.float32(1.0 / scale)
    else:
        step = np.float32(in_size) / np.float32(out_size)
    src = np.floor(np.arange(out_size, dtype=np.float32) * step).astype(np.int64)
    return np.minimum(src, in_size - 1)


# --------------------------------------------------------------------------- arguments

def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def resize_output_size(op, x, size, scale_factor):
    """Validate x, size and scale_factor; return ``(H_out, W_out)`` and the per-axis scales (or None)."""
    check_ndim(x, 4, "x", op, "N, C, H, W")
    check_float(x, "x", op)
    _, C, H, W = x.shape
    if C < 1 or H < 1 or W < 1:  # PyTorch refuses these too; an empty batch (N = 0) is fine
        raise ValueError(f"{op}: expected x with C, H, W >= 1 (N may be 0), got shape {tuple(x.shape)}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: expected exactly one of size and scale_factor, "
                         f"got size={size!r} and scale_factor={scale_factor!r}")
    if size is not None:
        pair_ = (size, size) if isinstance(size, numbers.Integral) and not isinstance(size, bool) else size
        if not (isinstance(pair_, (tuple, list)) and len(pair_) == 2
                and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair_)):
            raise TypeError(f"{op}: expected size to be an int or a pair of ints, got {size!r}")
        if min(pair_) < 1:
            raise ValueError(f"{op}: expected size >= 1, got {tuple(pair_)}")
        return (int(pair_[0]), int(pair_[1])), (None, None)
    scales = (scale_factor, scale_factor) if _is_number(scale_factor) else scale_factor
    if not (isinstance(scales, (tuple, list)) and len(scales) == 2 and all(_is_number(v) for v in scales)):
        raise TypeError(f"{op}: expected scale_factor to be a number or a pair of numbers, got {scale_factor!r}")
    if not all(v > 0 and math.isfinite(v) for v in scales):
        raise ValueError(f"{op}: expected scale_factor > 0 and finite, got {tuple(scales)}")
    out = (int(math.floor(H * float(scales[0]))), int(math.floor(W * float(scales[1]))))
    if min(out) < 1:
        raise ValueError(f"{op}: expected an output size >= 1, got {out} = floor({(H, W)} * {tuple(scales)})")
    return out, (float(scales[0]), float(scales[1]))


# --------------------------------------------------------------------------- bilinear

class BilinearCache(NamedTuple):
    """What ``bilinear_interpolate_backward`` needs.

    Fields
    ------
    x_shape : (N, C, H, W)
    A_h : (H_out, H) interpolation matrix along H, dtype of x
    A_w : (W_out, W) interpolation matrix along W, dtype of x
    align_corners : bool
    scales : (float or None, float or None), the user's scale factors
        These two rebuild the per-tap weights (``linear_taps``) when dy is not finite.
    """

    x_shape: tuple
    A_h: object
    A_w: object
    align_corners: bool = False
    scales: tuple = (None, None)


def bilinear_interpolate(x, size=None, scale_factor=None, align_corners=False):
    """Bilinear resizing, PyTorch's ``F.interpolate(x, size, scale_factor, mode="bilinear", align_corners)``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float
    size : int or (int, int), optional
        Output size ``(H_out, W_out)``.
    scale_factor : float or (float, float), optional
        Exactly one of ``size`` and ``scale_factor``. Then
        ``H_out = floor(H * scale_factor_h)`` and the source step is
        ``1 / scale_factor_h`` (PyTorch's default, ``recompute_scale_factor=None``).
    align_corners : bool
        True: the corner pixels' centres of input and output coincide.
        False: pixels are areas, ``src = (dst + 0.5) * scale - 0.5``.

    Returns
    -------
    y : ndarray, shape (N, C, H_out, W_out), dtype of x
        ``y[n, c] = A_h @ x[n, c] @ A_w.T`` with ``A = interpolation_matrix(...)``
        per axis: ``P = q (b A + a B) + p (b D + a C)`` at every output pixel.
    cache : BilinearCache
        ``(x_shape, A_h, A_w)``.

    Notes
    -----
    Two paths, chosen in one line by ``xp.isfinite(x).all()``:

    - finite ``x`` (the usual case): two matrix products over the whole batch,
      ``(N*C*H, W) @ A_w.T`` then ``A_h @ (N*C, H, W_out)``; fast because
      BLAS does all the multiply-adds;
    - ``x`` with a NaN or inf: the four taps of every output pixel gathered
      and combined as PyTorch's CPU kernel does,
      ``(x00 w0 + x01 w1) h0 + (x10 w0 + x11 w1) h1``, every tap multiplied
      even when its weight is 0. A matrix product would also multiply the
      zeros of ``A`` by the NaN (``0 * inf = NaN``) and spread it along a
      whole row and column; this path gives PyTorch's NaN / inf pattern
      element for element: NaN where a tap is NaN, or an infinite tap has
      weight 0 (a size that does not change keeps a second tap of weight 0),
      or ``+inf`` meets ``-inf``; ``+-inf`` where an infinite tap has weight > 0.

    An empty batch (N = 0) gives an empty output; C, H or W of 0 is refused, as in PyTorch.

    See Also
    --------
    minseg.reference.bilinear_interpolate_loops : the same, pixel by pixel.

    Raises
    ------
    ValueError
        Wrong ndim, both or neither of size / scale_factor, a size or scale
        below what gives one output pixel.
    TypeError
        Integer dtype, or a size / scale_factor of the wrong type.

    References
    ----------
    Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", 2015.
    """
    op = "bilinear_interpolate"
    (H_out, W_out), (sc_h, sc_w) = resize_output_size(op, x, size, scale_factor)
    if not isinstance(align_corners, bool):
        raise TypeError(f"{op}: expected align_corners to be a bool, got {align_corners!r}")
    xp = get_array_module(x)
    N, C, H, W = x.shape
    A_h = xp.asarray(interpolation_matrix(H, H_out, align_corners, sc_h), dtype=x.dtype)
    A_w = xp.asarray(interpolation_matrix(W, W_out, align_corners, sc_w), dtype=x.dtype)
    cache = BilinearCache(tuple(x.shape), A_h, A_w, align_corners, (sc_h, sc_w))
    if bool(xp.isfinite(x).all()):
        return _bilinear_matmul(x, A_h, A_w), cache
    return _bilinear_taps(x, _taps(xp, H, H_out, align_corners, sc_h, x.dtype),
                          _taps(xp, W, W_out, align_corners, sc_w, x.dtype)), cache


def _bilinear_matmul(x, A_h, A_w):
    """The fast path: ``y[n, c] = A_h @ x[n, c] @ A_w.T`` as two batched matrix products."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    H_out, W_out = A_h.shape[0], A_w.shape[0]
    z = xp.matmul(x.reshape(N * C * H, W), A_w.T)                 # (N*C*H, W_out): along W
    y = xp.matmul(A_h, z.reshape(N * C, H, W_out))                # (N*C, H_out, W_out): along H
    return y.reshape(N, C, H_out, W_out)


def _taps(xp, in_size, out_size, align_corners, scale, dtype):
    """``linear_taps`` on the array module of the data, weights in the data's dtype."""
    i0, i1, lam0, lam1 = linear_taps(in_size, out_size, align_corners, scale)
    return xp.asarray(i0), xp.asarray(i1), xp.asarray(lam0, dtype=dtype), xp.asarray(lam1, dtype=dtype)


def _bilinear_taps(x, taps_h, taps_w):
    """The non-finite path: every output pixel from its four taps, in PyTorch's order of operations.

    ``y = (x[h0, w0] lw0 + x[h0, w1] lw1) lh0 + (x[h1, w0] lw0 + x[h1, w1] lw1) lh1``
    (``Interpolate<2, ..., 2>::eval`` in ATen's ``cpu/UpSampleKernel.cpp``),
    a zero weight still multiplying its tap.
    """
    h0, h1, lh0, lh1 = taps_h
    w0, w1, lw0, lw1 = taps_w
    row0, row1 = x[:, :, h0, :], x[:, :, h1, :]                   # (N, C, H_out, W) each
    with np.errstate(invalid="ignore"):                            # inf * 0 and inf - inf: NaN on purpose
        t0 = row0[..., w0] * lw0 + row0[..., w1] * lw1            # (N, C, H_out, W_out): along W in row h0
        t1 = row1[..., w0] * lw0 + row1[..., w1] * lw1            # (N, C, H_out, W_out): along W in row h1
        return t0 * lh0[:, None] + t1 * lh1[:, None]


def bilinear_interpolate_backward(dy, cache: BilinearCache):
    """Gradient of ``bilinear_interpolate``: ``dx[n, c] = A_h.T @ dy[n, c] @ A_w``.

    Every output pixel sends its gradient back to its four source pixels
    with the same four weights; the matrix products do all the sums.

    Parameters
    ----------
    dy : ndarray, shape (N, C, H_out, W_out)
    cache : BilinearCache

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)

    Notes
    -----
    Two paths, as in the forward: the two matrix products, kept when their
    result is finite (a NaN or inf in dy always leaves one there); otherwise PyTorch's scatter, where
    every output pixel adds ``(lh * lw) * dy`` onto each of its four taps,
    zero weights included (``cpu_upsample_linear_backward`` in ATen's
    ``cpu/UpSampleMoreKernel.cpp``), so NaN and inf land exactly where
    PyTorch puts them.

    See Also
    --------
    minseg.reference.bilinear_interpolate_backward_loops : the same, pixel by pixel.
    """
    (N, C, H, W), A_h, A_w, align_corners, (sc_h, sc_w) = cache
    H_out, W_out = A_h.shape[0], A_w.shape[0]
    check_shape(dy, (N, C, H_out, W_out), "dy", "bilinear_interpolate_backward")
    xp = get_array_module(dy, A_h)
    with np.errstate(invalid="ignore"):                            # a non-finite dy is handled below
        dz = xp.matmul(A_h.T, dy.reshape(N * C, H_out, W_out))   # (N*C, H, W_out)
        dx = xp.matmul(dz.reshape(N * C * H, W_out), A_w)        # (N*C*H, W)
    # a NaN or inf in dy always leaves one in dx (every dy pixel reaches dx through a weight > 0), and dx is
    # the smaller array when upsampling: checking it costs less than checking dy
    if bool(xp.isfinite(dx).all()):
        return dx.reshape(N, C, H, W)
    return _bilinear_taps_backward(dy, (N, C, H, W), _taps(xp, H, H_out, align_corners, sc_h, dy.dtype),
                                   _taps(xp, W, W_out, align_corners, sc_w, dy.dtype))


def _bilinear_taps_backward(dy, x_shape, taps_h, taps_w):
    """The non-finite path: ``dx[h_a, w_b] += (lh_a * lw_b) * dy`` for the four taps (a, b) of every output."""
    xp = get_array_module(dy)
    h0, h1, lh0, lh1 = taps_h
    w0, w1, lw0, lw1 = taps_w
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    with np.errstate(invalid="ignore"):                            # inf * 0 and inf - inf: NaN on purpose
        for h, lh in ((h0, lh0), (h1, lh1)):
            for w, lw in ((w0, lw0), (w1, lw1)):
                weight = lh[:, None] * lw[None, :]                    # (H_out, W_out)
                scatter_add(dx, (slice(None), slice(None), h[:, None], w[None, :]), weight * dy)
    return dx


# --------------------------------------------------------------------------- FCN's initialisation

def bilinear_kernel(kernel_size, channels=None, *, dtype=np.float64):
    """The bilinear upsampling filter, and the transposed-convolution weights built from it (FCN's initialisation).

    Parameters
    ----------
    kernel_size : int or (int, int)
        For an upsampling factor ``f`` use ``kernel_size = 2f - f % 2`` with
        ``stride = f`` and ``padding = ceil((f - 1) / 2)``: the output of
        ``conv_transpose2d`` is then exactly ``f`` times the input size.
    channels : int, optional
        Without it, the 2-D filter alone; with it, weights for a
        ``conv_transpose2d`` with ``channels`` inputs and outputs.
    dtype : numpy dtype

    Returns
    -------
    numpy.ndarray
        ``(KH, KW)``: ``outer(t_h, t_w)`` with the tent ``t[k] = 1 - |k - center| / factor``,
        ``factor = ceil(k / 2)``, ``center = factor - 1`` (odd ``k``) or ``factor - 0.5`` (even ``k``).
        With ``channels``: ``(channels, channels, KH, KW)``, that filter on the
        diagonal ``w[c, c]`` (every channel upsamples itself) and zeros elsewhere.

    Examples
    --------
    >>> bilinear_kernel(4)[0]                  # factor 2
    array([0.0625, 0.1875, 0.1875, 0.0625])

    Notes
    -----
    With that recipe, ``conv_transpose2d(x, w, stride=f, padding=...)``
    equals ``bilinear_interpolate(x, scale_factor=f, align_corners=False)``
    on the interior of the output, but not on the border ``f // 2`` pixels
    wide on every side: there the transposed convolution sums fewer than two
    taps (the missing neighbour is its zero padding, so values fade
    towards zero), while ``bilinear_interpolate`` clamps the source
    coordinate and repeats the edge pixel.

    References
    ----------
    Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic
    Segmentation", 2015, section 3.3 (``upsample_filt`` in the authors' ``surgery.py``).
    """
    op = "bilinear_kernel"
    KH, KW = check_positive(pair(kernel_size, "kernel_size", op), "kernel_size", op)
    if channels is not None and (not isinstance(channels, numbers.Integral) or isinstance(channels, bool)
                                 or channels < 1):
        raise ValueError(f"{op}: expected channels to be an int >= 1 or None, got {channels!r}")
    f = np.outer(_tent(KH), _tent(KW)).astype(dtype)               # (KH, KW)
    if channels is None:
        return f
    w = np.zeros((channels, channels, KH, KW), dtype=dtype)
    w[np.arange(channels), np.arange(channels)] = f
    return w


def _tent(k: int):
    """FCN's 1-D bilinear filter of length ``k``: ``1 - |i - center| / factor``."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    return 1 - np.abs(np.arange(k) - center) / factor
