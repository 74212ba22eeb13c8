"""``BatchNorm2d``: the layer over ``minseg.ops.batch_norm2d``, with running statistics."""
from __future__ import annotations

import numpy as np

from ..ops.normalization import batch_norm2d, batch_norm2d_backward, batch_norm_relu2d, batch_norm_relu2d_backward
from .module import Module, Parameter, as_dtype

__all__ = ["BatchNorm2d"]


class BatchNorm2d(Module):
    """Batch normalisation per channel of NCHW input, PyTorch's ``nn.BatchNorm2d``.

    Training mode normalises with the batch's mean and biased variance and
    updates the running estimates with ``momentum`` (the *unbiased* variance,
    ``M / (M - 1)`` times the biased one, ``M = N H W``); evaluation mode uses
    the running estimates. See ``minseg.ops.normalization`` for the formulas.

    Parameters
    ----------
    num_features : int
        C, the number of channels.
    eps : float
        Added to the variance (1e-5).
    momentum : float
        Weight of the new batch in the running averages (0.1).
    affine : bool
        Learn a scale ``weight`` (gamma, init 1) and shift ``bias`` (beta, init 0).
    dtype : float32 or float64

    Buffers: ``running_mean`` (init 0), ``running_var`` (init 1), ``num_batches_tracked``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 *, dtype=np.float32):
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"BatchNorm2d: expected num_features to be an int >= 1, got {num_features!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm2d: expected momentum in [0, 1], got {momentum!r}")
        dt = as_dtype(dtype)
        self.num_features, self.eps, self.momentum, self.affine = num_features, float(eps), float(momentum), affine
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dt))
            self.bias = Parameter(np.zeros(num_features, dtype=dt))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dt))
        self.register_buffer("running_var", np.ones(num_features, dtype=dt))
        self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        self._cache = None

    def forward(self, x):
        return self._forward(x, batch_norm2d)

    def backward(self, dy):
        return self._backward(batch_norm2d_backward(dy, self._cache))

    def forward_relu(self, x):
        """``relu(self.forward(x))`` fused (``ops.batch_norm_relu2d``): what ``ConvBNReLU`` runs."""
        return self._forward(x, batch_norm_relu2d)

    def backward_relu(self, dy):
        """The backward of ``forward_relu``: ``dy`` with respect to its output, returns dL/dx."""
        return self._backward(batch_norm_relu2d_backward(dy, self._cache))

    def _forward(self, x, op):
        gamma = self.weight.data if self.affine else None
        beta = self.bias.data if self.affine else None
        if x.ndim == 4 and x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d: expected x with {self.num_features} channels, got shape {tuple(x.shape)}")
        y, self._cache = op(x, gamma, beta, running_mean=self.running_mean, running_var=self.running_var,
                            training=self.training, eps=self.eps)
        stats = self._cache.bn if op is batch_norm_relu2d else self._cache
        if self.training and stats.mean is not None:  # an empty batch has no statistics to learn from
            N, _, H, W = x.shape
            M = N * H * W
            m = self.momentum
            # in place, so the arrays registered as buffers stay the same objects
            self.running_mean *= 1 - m
            self.running_mean += m * stats.mean
            self.running_var *= 1 - m
            self.running_var += (m * M / (M - 1)) * stats.var
            self.num_batches_tracked += 1
        return y

    def _backward(self, grads):
        dx, dgamma, dbeta = grads
        if self.affine:
            self.weight.grad, self.bias.grad = dgamma, dbeta
        return dx

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum:g}, affine={self.affine}"
