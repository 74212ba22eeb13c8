"""NumPy / CuPy dispatch: the one module of minseg that imports CuPy.

Every op starts with ``xp = get_array_module(x, w, ...)`` and then writes
``xp.zeros``, ``xp.matmul`` ... so the same source runs on the CPU (NumPy)
and on an NVIDIA GPU (CuPy). CuPy is imported lazily, on first need, so
``import minseg`` never touches CUDA.

CuPy can be *installed* on a machine without a GPU: it then imports fine and
fails at the first allocation. ``has_gpu()`` is therefore the test to use,
never "does cupy import".

References
----------
CuPy user guide, "Basics of CuPy" and "Differences between CuPy and NumPy"
(duplicate-index assignment is undefined on the GPU: use ``scatter_add``).
"""
from __future__ import annotations

import functools
import math
import threading

import numpy as np

__all__ = [
    "get_array_module",
    "is_cupy_array",
    "has_cupy",
    "has_gpu",
    "gpu_unavailable_reason",
    "to_numpy",
    "to_device",
    "scatter_add",
    "scatter_add_flat",
    "plane_offsets",
    "pad_to",
    "workspace",
]


@functools.lru_cache(maxsize=None)
def _cupy():
    """Import and return the ``cupy`` module, or None when it is not installed."""
    try:
        import cupy  # noqa: PLC0415  (lazy on purpose: the only cupy import)
    except Exception:  # ImportError, or a broken CUDA install raising on import
        return None
    return cupy


def has_cupy() -> bool:
    """True when the ``cupy`` package imports (a GPU may still be missing)."""
    return _cupy() is not None


@functools.lru_cache(maxsize=None)
def has_gpu() -> bool:
    """True only when CuPy imports *and* a CUDA device is usable."""
    cp = _cupy()
    if cp is None:
        return False
    try:
        return bool(cp.cuda.is_available())
    except Exception:  # CUDARuntimeError and friends: no usable device
        return False


def gpu_unavailable_reason() -> str | None:
    """Why ``device="gpu"`` cannot be used here, in one line, or None when a CUDA device is usable."""
    if has_gpu():
        return None
    if not has_cupy():
        return 'cupy is not installed (install the gpu extra: pip install -e ".[gpu]")'
    return "cupy is installed but cupy.cuda.is_available() is False (no usable CUDA device)"


def is_cupy_array(x) -> bool:
    """True when ``x`` is a ``cupy.ndarray``, decided without importing CuPy."""
    return type(x).__module__.split(".")[0] == "cupy" and hasattr(x, "__cuda_array_interface__")


def get_array_module(*arrays):
    """Return ``numpy`` or ``cupy``: the array module that owns ``arrays``.

    ``None`` entries and Python scalars are ignored. NumPy arrays and CuPy
    arrays must not be mixed in one call.

    Parameters
    ----------
    *arrays : numpy.ndarray, cupy.ndarray, scalar or None

    Returns
    -------
    module
        ``numpy`` when every array is a NumPy array (or there are none),
        ``cupy`` when every array is a CuPy array.

    Raises
    ------
    TypeError
        When NumPy and CuPy arrays are mixed.
    """
    if all(a is None or type(a) is np.ndarray for a in arrays):  # the common case, decided quickly
        return np
    kinds = set()
    for a in arrays:
        if a is None or np.isscalar(a):
            continue
        if is_cupy_array(a):
            kinds.add("cupy")
        elif isinstance(a, np.ndarray):
            kinds.add("numpy")
    if kinds == {"cupy", "numpy"}:
        described = ", ".join(
            "cupy.ndarray" if is_cupy_array(a) else type(a).__name__
            for a in arrays
            if a is not None and not np.isscalar(a)
        )
        raise TypeError(
            "expected all arrays on one device (all numpy.ndarray or all cupy.ndarray), "
            f"got a mix: ({described}); move them with minseg.backend.to_device first"
        )
    if kinds == {"cupy"}:
        return _cupy()
    return np


def to_numpy(x):
    """Return ``x`` as a NumPy array (copying from the GPU when needed)."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def to_device(x, device: str = "cpu"):
    """Move an array to ``device``: ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy).

    Raises
    ------
    ValueError
        For an unknown device name.
    RuntimeError
        When ``device="gpu"`` and no CUDA device is usable.
    """
    if device == "cpu":
        return to_numpy(x)
    if device == "gpu":
        if not has_gpu():
            raise RuntimeError(f"to_device: expected a usable CUDA device for device='gpu', got none "
                               f"({gpu_unavailable_reason()})")
        return _cupy().asarray(x)
    raise ValueError(f"to_device: expected device 'cpu' or 'gpu', got {device!r}")


def scatter_add(target, indices, values) -> None:
    """In-place ``target[indices] += values`` where repeated indices *accumulate*.

    ``target[idx] += v`` is wrong when ``idx`` repeats (only one write
    survives, and on the GPU which one is undefined). This is the one place
    minseg accumulates: ``np.add.at`` on the CPU, ``cupyx.scatter_add`` on
    the GPU.

    Parameters
    ----------
    target : ndarray
        Modified in place.
    indices : index expression (int array, tuple of int arrays, slices)
    values : ndarray or scalar, broadcastable to ``target[indices]``
    """
    xp = get_array_module(target, values)
    if xp is np:
        np.add.at(target, indices, values)
    else:
        import cupyx  # noqa: PLC0415  (cupyx ships with cupy; still lazy)

        cupyx.scatter_add(target, indices, values)


def scatter_add_flat(indices, values, size: int):
    """Sum ``values`` into ``size`` bins by flat integer ``indices``: ``out[i] = sum(values[indices == i])``.

    The fast accumulation for flat indices: ``np.bincount`` on the CPU
    (much faster than ``np.add.at``), an atomic scatter on the GPU.
    The result keeps ``values``' dtype.

    Parameters
    ----------
    indices : ndarray of int, shape (M,)
        Every entry in ``[0, size)``.
    values : ndarray, shape (M,)
    size : int

    Returns
    -------
    ndarray, shape (size,)
    """
    xp = get_array_module(indices, values)
    if xp is np:
        return np.bincount(indices, weights=values, minlength=size).astype(values.dtype, copy=False)
    out = xp.zeros(size, dtype=values.dtype)
    scatter_add(out, indices, values)
    return out


def plane_offsets(xp, N: int, C: int, plane_size: int):
    """``(N, C, 1, 1)`` int64 offsets of each ``(n, c)`` plane in the flattened ``(N, C, ...)`` array.

    Adding them to per-plane flat indices (the switches of ``max_pool2d``)
    gives indices into the whole flattened array.
    """
    return (xp.arange(N * C, dtype=xp.int64) * plane_size).reshape(N, C, 1, 1)


def pad_to(a, H: int, W: int, value=0):
    """``a`` (..., h, w) with rows and columns of ``value`` appended at the bottom and right to (..., H, W).

    The one padding helper: U-Net's pad-instead-of-crop (``nn.blocks.pad_to``),
    the extra outputs of a transposed convolution's backward, and the
    training crops that pad labels with ``ignore_index``. Returns ``a`` itself
    when it already has that size.

    Raises
    ------
    ValueError
        When ``a`` is larger than ``(H, W)``.
    """
    h, w = a.shape[-2:]
    if (h, w) == (H, W):
        return a
    if h > H or w > W:
        raise ValueError(f"pad_to: expected an array no larger than ({H}, {W}) in its last two axes, "
                         f"got shape {tuple(a.shape)}")
    xp = get_array_module(a)
    out = xp.full(a.shape[:-2] + (H, W), value, dtype=a.dtype)
    out[..., :h, :w] = a
    return out


# One scratch buffer per thread and dtype, grown as needed (see ``workspace``).
_WORKSPACE = threading.local()
_WORKSPACE_MAX_BYTES = 64 * 2**20


def workspace(xp, shape, dtype):
    """A scratch array of ``shape``, reused from call to call instead of freshly allocated.

    The column buffer of a convolution is megabytes large; ``np.empty`` hands
    back fresh pages on every call and the first write to each one is a page
    fault, which measured about 30% of a 16-channel 64x64 conv2d forward and
    backward. So each thread keeps one buffer per dtype, grown to the largest
    size asked for (up to 64 MiB; larger requests get a fresh array), and
    returns a view of it.

    The contents are garbage: write before reading. Only one workspace of a
    dtype may be in use at a time, and it must never be returned to a caller:
    the next op overwrites it. On CuPy this is ``cupy.empty`` (its memory pool
    already reuses blocks).
    """
    if xp is not np:
        return xp.empty(shape, dtype=dtype)
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    if size * dtype.itemsize > _WORKSPACE_MAX_BYTES:
        return np.empty(shape, dtype=dtype)
    buf = getattr(_WORKSPACE, dtype.str, None)  # this thread's buffer of this dtype (one attribute per dtype)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        setattr(_WORKSPACE, dtype.str, buf)
    return buf[:size].reshape(shape)
