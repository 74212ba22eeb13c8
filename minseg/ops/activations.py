"""Elementwise ops: ReLU, softmax / log-softmax over the channel axis, and dropout.

Each is a pure pair ``y, cache = op(x, ...)`` / ``dx = op_backward(dy, cache)``.

    relu(x)        = max(x, 0)                      dx = dy * [y != 0]
    softmax(x)_c   = exp(x_c - m) / sum_k exp(x_k - m),   m = max_k x_k  (stable)
                                                    dx = y * (dy - sum_c dy_c y_c)
    log_softmax(x) = x - m - log sum_k exp(x_k - m) dx = dy - softmax(x) * sum_c dy_c
    dropout(x)     = x * mask / (1 - p)             dx = dy * mask / (1 - p)

Subtracting the maximum before ``exp`` changes nothing mathematically
(softmax is shift invariant) and keeps ``exp`` from overflowing.

ReLU's derivative at exactly 0 is taken as 0, as in PyTorch. ``y`` is ``max(x, 0)``, so
it is positive, zero or NaN, and ``[y != 0]`` is PyTorch's rule "zero where
``y <= 0``": where ``x`` is NaN, ``y`` is NaN and the gradient flows through
(``[y > 0]`` would block it).

References
----------
Nair & Hinton, "Rectified Linear Units Improve Restricted Boltzmann Machines", 2010.
Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from Overfitting", JMLR 2014
(here the "inverted" form: scale at training time, identity at test time, as PyTorch does).
"""
from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from ..backend import get_array_module
from ..shapes import check_array, check_float, check_shape

__all__ = [
    "relu", "relu_backward", "ReluCache",
    "softmax", "softmax_backward", "SoftmaxCache",
    "log_softmax", "log_softmax_backward",
    "dropout", "dropout_backward", "DropoutCache",
]


def _check_axis(op, x, axis):
    if not isinstance(axis, numbers.Integral) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: expected axis to be an int in [{-x.ndim}, {x.ndim}), got {axis!r}")
    return int(axis) % x.ndim


# --------------------------------------------------------------------------- relu

class ReluCache(NamedTuple):
    """Fields: ``y`` the output ``max(x, 0)``; its nonzero entries (positive or NaN) are where gradient flows."""

    y: object


def relu(x):
    """Rectified linear unit ``y = max(x, 0)``, elementwise.

    Parameters
    ----------
    x : ndarray, any shape, float

    Returns
    -------
    y : ndarray, shape and dtype of x
    cache : ReluCache
        ``(y,)``; the output is kept instead of a mask, which costs no extra memory.
    """
    check_array(x, "x", "relu")
    check_float(x, "x", "relu")
    xp = get_array_module(x)
    y = xp.maximum(x, 0)
    return y, ReluCache(y)


def relu_backward(dy, cache: ReluCache):
    """Gradient of ``relu``: ``dx = dy`` where ``y != 0`` (y positive, or NaN as in PyTorch), else 0."""
    check_shape(dy, cache.y.shape, "dy", "relu_backward")
    return dy * (cache.y != 0)  # a float times a bool mask keeps the float dtype (and is ~5x faster than where)


# --------------------------------------------------------------------------- softmax

class SoftmaxCache(NamedTuple):
    """Fields: ``y`` the softmax probabilities, ``axis`` the normalised axis."""

    y: object
    axis: int


def softmax(x, axis: int = 1):
    """Softmax along ``axis`` (the channel axis of NCHW logits by default), computed stably.

    Parameters
    ----------
    x : ndarray, float
    axis : int

    Returns
    -------
    y : ndarray, shape and dtype of x
        ``exp(x - max) / sum(exp(x - max))``; each slice along ``axis`` sums to 1.
    cache : SoftmaxCache
        ``(y, axis)``.

    See Also
    --------
    minseg.reference.softmax_loops : the same, by the definition, with loops.
    """
    check_array(x, "x", "softmax")
    check_float(x, "x", "softmax")
    axis = _check_axis("softmax", x, axis)
    xp = get_array_module(x)
    if x.shape[axis] == 0:                    # nothing to normalise (no maximum to take): empty, as PyTorch
        return x.copy(), SoftmaxCache(x.copy(), axis)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e, SoftmaxCache(e, axis)


def softmax_backward(dy, cache: SoftmaxCache):
    """Gradient of ``softmax``: ``dx = y * (dy - sum(dy * y, axis))``, the Jacobian ``diag(y) - y y^T`` times dy."""
    y, axis = cache
    check_shape(dy, y.shape, "dy", "softmax_backward")
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax(x, axis: int = 1):
    """Log-softmax along ``axis``: ``x - max - log(sum(exp(x - max)))``, never ``log(softmax(x))``.

    Returns
    -------
    y : ndarray, shape and dtype of x
    cache : SoftmaxCache
        ``(softmax(x), axis)``, which is all the backward needs.
    """
    check_array(x, "x", "log_softmax")
    check_float(x, "x", "log_softmax")
    axis = _check_axis("log_softmax", x, axis)
    xp = get_array_module(x)
    if x.shape[axis] == 0:                    # nothing to normalise: empty, as PyTorch
        return x.copy(), SoftmaxCache(x.copy(), axis)
    z = x - x.max(axis=axis, keepdims=True)
    e = xp.exp(z)
    s = e.sum(axis=axis, keepdims=True)
    y = z - xp.log(s)
    e /= s  # the probabilities
    return y, SoftmaxCache(e, axis)


def log_softmax_backward(dy, cache: SoftmaxCache):
    """Gradient of ``log_softmax``: ``dx = dy - softmax(x) * sum(dy, axis)``."""
    p, axis = cache
    check_shape(dy, p.shape, "dy", "log_softmax_backward")
    return dy - p * dy.sum(axis=axis, keepdims=True)


# --------------------------------------------------------------------------- dropout

class DropoutCache(NamedTuple):
    """Fields: ``scale`` = ``mask / (1 - p)`` (same shape as x, dtype of x), or None when dropout is the identity."""

    scale: object


def dropout(x, p: float = 0.5, *, training: bool = True, rng=None):
    """Inverted dropout: zero each entry with probability ``p`` and scale the survivors by ``1 / (1 - p)``.

    Parameters
    ----------
    x : ndarray, any shape, float
    p : float in [0, 1)
        Drop probability.
    training : bool
        When False (or ``p == 0``) the op is the identity, as at test time.
    rng : numpy.random.Generator, optional
        The source of the mask on the CPU (seeded for reproducibility);
        on a GPU the mask is drawn with ``cupy.random``.

    Returns
    -------
    y : ndarray, shape and dtype of x
        ``E[y] = x``.
    cache : DropoutCache
        ``(scale,)`` with ``scale = mask / (1 - p)``, or ``(None,)`` for the identity.
    """
    op = "dropout"
    check_array(x, "x", op)
    check_float(x, "x", op)
    if not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"{op}: expected p in [0, 1), got {p!r}")
    if not training or p == 0:
        return x, DropoutCache(None)
    xp = get_array_module(x)
    if xp is np:
        rng = rng if rng is not None else np.random.default_rng()
        u = rng.random(x.shape, dtype=np.float32)
    else:
        u = xp.random.random(x.shape, dtype=xp.float32)
    scale = (u >= p).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * scale, DropoutCache(scale)


def dropout_backward(dy, cache: DropoutCache):
    """Gradient of ``dropout``: ``dx = dy * mask / (1 - p)`` (``dy`` itself for the identity)."""
    if cache.scale is None:
        return dy
    check_shape(dy, cache.scale.shape, "dy", "dropout_backward")
    return dy * cache.scale
