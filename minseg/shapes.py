"""Output-size formulas, receptive fields, and argument checks: one home for shape arithmetic.

Every op, layer, test and lesson takes its sizes from here, so a formula is
written once. The formulas are PyTorch's (``torch.nn.Conv2d`` and friends),
which are those of Dumoulin & Visin, "A guide to convolution arithmetic for
deep learning" (2016), extended with dilation.

The check helpers raise ``ValueError`` / ``TypeError`` whose message names
the op, the argument, the expected and the actual value, e.g.::

    conv2d: expected x of shape (N, C, H, W), got shape (3, 32, 32)
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "pair",
    "conv_output_size",
    "conv_transpose_output_size",
    "pool_output_size",
    "unpool_output_size",
    "receptive_field",
    "CHUNK_BYTES",
    "chunk_size",
    "check_array",
    "check_ndim",
    "check_float",
    "check_shape",
    "check_nchw",
    "check_positive",
    "check_nonnegative",
    "check_conv_operands",
    "check_bias",
]


# --------------------------------------------------------------------------- arguments

def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def pair(value, name: str = "value", op: str = "minseg") -> tuple[int, int]:
    """Normalise an int or a pair of ints to a ``(h, w)`` tuple.

    >>> pair(3)
    (3, 3)
    >>> pair((1, 2))
    (1, 2)

    Raises
    ------
    TypeError
        When ``value`` is not an int or a length-2 sequence of ints.
    """
    if _is_int(value):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{op}: expected {name} to be an int or a pair of ints, got {value!r}")


def check_positive(value: tuple[int, int], name: str, op: str) -> tuple[int, int]:
    """Raise ``ValueError`` unless both entries of ``value`` are >= 1."""
    if min(value) < 1:
        raise ValueError(f"{op}: expected {name} >= 1, got {value}")
    return value


def check_nonnegative(value: tuple[int, int], name: str, op: str) -> tuple[int, int]:
    """Raise ``ValueError`` unless both entries of ``value`` are >= 0."""
    if min(value) < 0:
        raise ValueError(f"{op}: expected {name} >= 0, got {value}")
    return value


def check_array(x, name: str, op: str):
    """Raise ``TypeError`` unless ``x`` is a NumPy or CuPy array."""
    if not (isinstance(x, np.ndarray) or hasattr(x, "__cuda_array_interface__")):
        raise TypeError(f"{op}: expected {name} to be a numpy or cupy ndarray, got {type(x).__name__}")
    return x


def check_ndim(x, ndim: int, name: str, op: str, letters: str | None = None):
    """Raise ``ValueError`` unless ``x.ndim == ndim``; ``letters`` names the axes in the message."""
    check_array(x, name, op)
    if x.ndim != ndim:
        layout = f" of shape ({letters})" if letters else f" with {ndim} dimensions"
        raise ValueError(f"{op}: expected {name}{layout}, got shape {tuple(x.shape)}")
    return x


def check_float(x, name: str, op: str):
    """Raise ``TypeError`` unless ``x`` has a floating dtype (float16/32/64)."""
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected {name} with a floating dtype (float32 or float64), got dtype {x.dtype}")
    return x


def check_shape(a, expected, name: str, op: str):
    """Raise ``ValueError`` unless ``a`` is an array of exactly the shape ``expected``.

    The check every backward makes of its upstream gradient::

        check_shape(dy, (N, C_out, H_out, W_out), "dy", "conv2d_backward")
        # conv2d_backward: expected dy of shape (2, 4, 5, 5), got shape (2, 4, 5, 6)
    """
    check_array(a, name, op)
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{op}: expected {name} of shape {tuple(expected)}, got shape {tuple(a.shape)}")
    return a


def check_nchw(x, name: str, op: str):
    """Raise unless ``x`` is a 4-D ``(N, C, H, W)`` array with a floating dtype."""
    check_ndim(x, 4, name, op, "N, C, H, W")
    return check_float(x, name, op)


def steps(start: int, count: int, step: int) -> slice:
    """The slice ``start, start + step, ..., start + (count - 1) * step`` of ``count >= 1`` positions.

    Strided windows start here: tap ``k`` of every output of a stride-``s``
    window is ``x[steps(k * d, n_out, s)]``.
    """
    return slice(start, start + (count - 1) * step + 1, step)


def check_conv_operands(x, w, b, groups, op: str, x_letters: str, w_letters: str) -> None:
    """The checks every convolution-like op makes of its operands.

    ``x`` and ``w`` are 4-D floating arrays of one dtype, all of ``x, w, b``
    live on one device (NumPy or CuPy), and ``groups`` is an int >= 1.
    ``x_letters`` / ``w_letters`` name the expected axes in the messages.
    """
    from .backend import get_array_module  # noqa: PLC0415  (backend and shapes are both at the bottom)

    check_ndim(x, 4, "x", op, x_letters)
    check_ndim(w, 4, "w", op, w_letters)
    check_float(x, "x", op)
    check_float(w, "w", op)
    get_array_module(x, w, b)  # raises TypeError on a numpy / cupy mix
    if w.dtype != x.dtype:
        raise TypeError(f"{op}: expected w with the dtype of x ({x.dtype}), got dtype {w.dtype}")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{op}: expected groups to be an int >= 1, got {groups!r}")


def check_bias(b, C_out: int, dtype, op: str) -> None:
    """Raise unless ``b`` is None or a ``(C_out,)`` array of ``dtype``."""
    if b is None:
        return
    check_ndim(b, 1, "b", op, "C_out")
    if b.shape[0] != C_out:
        raise ValueError(f"{op}: expected b of shape ({C_out},), got shape {tuple(b.shape)}")
    if b.dtype != dtype:
        raise TypeError(f"{op}: expected b with the dtype of x ({dtype}), got dtype {b.dtype}")


# --------------------------------------------------------------------------- sizes

def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis.

    ``out = floor((size + 2 p - d (k - 1) - 1) / s) + 1``

    May return a value < 1; callers check it (see ``minseg.ops.conv``).
    """
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """Output length of a transposed convolution along one axis.

    ``out = (size - 1) s - 2 p + d (k - 1) + output_padding + 1``

    This is the size of the input of the convolution whose transpose it is;
    ``output_padding`` picks one of the ``s`` input sizes that a strided
    convolution maps to the same output size.
    """
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def pool_output_size(size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Output length of max-pooling along one axis, PyTorch's rule.

    ``out = floor_or_ceil((size + 2 p - d (k - 1) - 1) / s) + 1``; with
    ``ceil_mode`` the last window must still start inside the input or the
    left padding: when ``(out - 1) s >= size + p`` it is dropped.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
    else:
        out = span // stride + 1
    return out


def unpool_output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Default output length of max-unpooling along one axis: ``(size - 1) s - 2 p + k``."""
    return (size - 1) * stride - 2 * padding + kernel


def receptive_field(layers) -> int:
    """Receptive field (in input pixels, along one axis) of a stack of layers.

    Parameters
    ----------
    layers : iterable of (kernel, stride, dilation)
        From the input upwards.

    Returns
    -------
    int
        ``r = 1 + sum_l d_l (k_l - 1) * prod_{m<l} s_m``

    >>> receptive_field([(3, 1, 1), (3, 1, 1)])   # two 3x3 convs see 5x5
    5
    >>> receptive_field([(3, 1, 2)])               # one 3x3 conv at rate 2 sees 5x5
    5
    """
    r, jump = 1, 1
    for k, s, d in layers:
        r += d * (k - 1) * jump
        jump *= s
    return r


# --------------------------------------------------------------------------- batch chunks

# The byte budget of one chunk of a convolution's column matrix (conv2d) or phase grid
# (conv_transpose2d): large enough for efficient matrix products, small enough that the buffer
# is reused from the heap instead of being page-faulted in on every call.
CHUNK_BYTES = 8 * 2**20


def chunk_size(n_total: int, bytes_per_sample: int) -> int:
    """How many samples to process at once so that one chunk's buffer is about ``CHUNK_BYTES``.

    At least 1 (one sample whose buffer alone exceeds the budget still runs), at most ``n_total``.

    >>> chunk_size(10, 3 * 2**20)  # 8 MiB holds two samples of 3 MiB
    2
    """
    return max(1, min(n_total, CHUNK_BYTES // max(1, bytes_per_sample)))
