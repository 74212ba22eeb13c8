"""Thin layers over the ops: each holds its parameters, their gradients and the cache of its last forward.

=================  =============================================  ==============================
layer              op pair (``minseg.ops``)                       parameters
=================  =============================================  ==============================
Conv2d             conv2d / conv2d_backward                       weight (C_out, C_in/g, KH, KW), bias
ConvTranspose2d    conv_transpose2d / _backward                   weight (C_in, C_out/g, KH, KW), bias
SeparableConv2d    depthwise Conv2d + pointwise 1x1 Conv2d        see ``num_parameters()``
Linear             linear / linear_backward                       weight (D_out, D_in), bias
MaxPool2d          max_pool2d / _backward (keeps the switches)    -
MaxUnpool2d        max_unpool2d / _backward                       -
Upsample           bilinear_interpolate / _backward               -
GlobalAvgPool2d    global_avg_pool2d / _backward                  -
ReLU, Dropout      relu, dropout (``minseg.ops.activations``)     -
Flatten, Identity  reshapes                                       -
Sequential         runs children in order, backward in reverse    -
=================  =============================================  ==============================

Weights are He-initialised (``N(0, 2 / fan_in)``, PyTorch's ``kaiming_normal_``
with the ReLU gain) from an explicit ``rng`` (a seed or a
``numpy.random.Generator``), so a seed fixes a model's initial weights; biases
start at 0. Parameters are float32 by default; pass ``dtype=np.float64`` for
gradient checks.
"""
from __future__ import annotations

import numpy as np

from ..ops.activations import dropout, dropout_backward, relu, relu_backward
from ..ops.conv import conv2d, conv2d_backward
from ..ops.conv_transpose import conv_transpose2d, conv_transpose2d_backward
from ..ops.interpolate import bilinear_interpolate, bilinear_interpolate_backward, bilinear_kernel
from ..ops.linear import linear, linear_backward
from ..ops.context import global_avg_pool2d, global_avg_pool2d_backward
from ..ops.pooling import max_pool2d, max_pool2d_backward
from ..ops.unpooling import max_unpool2d, max_unpool2d_backward
from ..shapes import conv_transpose_output_size, pair
from .module import Module, Parameter, as_dtype, kaiming_normal, make_rng

__all__ = [
    "Conv2d", "ConvTranspose2d", "SeparableConv2d", "Linear",
    "MaxPool2d", "MaxUnpool2d", "Upsample", "GlobalAvgPool2d",
    "ReLU", "Dropout", "Flatten", "Identity", "Sequential", "ModuleList",
]


def _check_channels(name, x, C):
    if x.ndim != 4 or x.shape[1] != C:
        raise ValueError(f"{name}: expected x of shape (N, {C}, H, W), got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------- convolutions

class Conv2d(Module):
    """2-D convolution layer, PyTorch's ``nn.Conv2d`` (same arguments and weight layout).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, dilation : int or (int, int)
    groups : int
    bias : bool
    rng : int or numpy.random.Generator, optional
        Source of the He-normal initial weights (fan_in = C_in / groups * KH * KW).
    dtype : float32 (default) or float64

    Shapes: (N, C_in, H, W) -> (N, C_out, H_out, W_out), ``H_out = floor((H + 2p - d(k-1) - 1)/s) + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, *, rng=None, dtype=np.float32):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: expected in_channels and out_channels divisible by groups={groups}, "
                             f"got {in_channels} and {out_channels}")
        dt = as_dtype(dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride, self.padding = pair(stride, "stride", "Conv2d"), pair(padding, "padding", "Conv2d")
        self.dilation, self.groups = pair(dilation, "dilation", "Conv2d"), groups
        KH, KW = self.kernel_size
        fan_in = in_channels // groups * KH * KW
        self.weight = Parameter(kaiming_normal((out_channels, in_channels // groups, KH, KW), fan_in,
                                               make_rng(rng), dt))
        self.bias = Parameter(np.zeros(out_channels, dtype=dt)) if bias else None
        self._cache = None

    def forward(self, x):
        _check_channels("Conv2d", x, self.in_channels)
        y, self._cache = conv2d(x, self.weight.data, None if self.bias is None else self.bias.data,
                                stride=self.stride, padding=self.padding, dilation=self.dilation,
                                groups=self.groups)
        return y

    def backward(self, dy):
        dx, dw, db = conv2d_backward(dy, self._cache)
        self.weight.grad = dw
        if self.bias is not None:
            self.bias.grad = db
        return dx

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class ConvTranspose2d(Module):
    """Transposed convolution layer, PyTorch's ``nn.ConvTranspose2d`` (weight (C_in, C_out/groups, KH, KW)).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, output_padding, dilation : int or (int, int)
    groups : int
    bias : bool
    init : {"he", "bilinear"}
        "he": He-normal with PyTorch's fan_in for this layout (C_out / groups * KH * KW).
        "bilinear": every channel upsamples itself with the bilinear kernel
        (``minseg.ops.bilinear_kernel``) and no other channel (needs
        ``in_channels == out_channels``), as FCN initialises its upsampling; bias 0.
    trainable : bool
        False keeps the weight fixed (a buffer, saved in ``state_dict`` but not
        returned by ``parameters()``), like FCN-32s' final fixed upsampling.
    rng, dtype : as for ``Conv2d``

    Shapes: (N, C_in, H, W) -> (N, C_out, H_out, W_out),
    ``H_out = (H - 1)s - 2p + d(k-1) + output_padding + 1``; ``forward(x, output_size=...)`` picks
    the output_padding that gives a requested size, as PyTorch does.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, *, init: str = "he", trainable: bool = True,
                 rng=None, dtype=np.float32):
        super().__init__()
        op = "ConvTranspose2d"
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{op}: expected in_channels and out_channels divisible by groups={groups}, "
                             f"got {in_channels} and {out_channels}")
        if init not in ("he", "bilinear"):
            raise ValueError(f"{op}: expected init 'he' or 'bilinear', got {init!r}")
        dt = as_dtype(dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", op)
        self.stride, self.padding = pair(stride, "stride", op), pair(padding, "padding", op)
        self.output_padding = pair(output_padding, "output_padding", op)
        self.dilation, self.groups, self.init, self.trainable = pair(dilation, "dilation", op), groups, init, trainable
        KH, KW = self.kernel_size
        shape = (in_channels, out_channels // groups, KH, KW)
        if init == "bilinear":
            if in_channels != out_channels:
                raise ValueError(f"{op}: expected in_channels == out_channels for init='bilinear', "
                                 f"got {in_channels} and {out_channels}")
            k2d = bilinear_kernel((KH, KW), dtype=dt)  # (KH, KW)
            w = np.zeros(shape, dtype=dt)
            for c in range(in_channels):  # channel c feeds only output channel c
                w[c, c % (out_channels // groups)] = k2d
        else:
            w = kaiming_normal(shape, out_channels // groups * KH * KW, make_rng(rng), dt)
        if trainable:
            self.weight = Parameter(w)
        else:
            self.register_buffer("weight_fixed", w)
        self.bias = Parameter(np.zeros(out_channels, dtype=dt)) if bias else None
        self._cache = None

    @property
    def weight_array(self):
        """The weight as an array, whether trainable (a Parameter) or fixed (a buffer)."""
        return self.weight.data if self.trainable else self.weight_fixed

    def output_size(self, H: int, W: int, output_padding=None):
        """``(H_out, W_out)`` for an (H, W) input."""
        op_h, op_w = self.output_padding if output_padding is None else output_padding
        (KH, KW), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return (conv_transpose_output_size(H, KH, sh, ph, op_h, dh),
                conv_transpose_output_size(W, KW, sw, pw, op_w, dw))

    def forward(self, x, output_size=None):
        _check_channels("ConvTranspose2d", x, self.in_channels)
        output_padding = self.output_padding
        if output_size is not None:
            H_out, W_out = pair(tuple(output_size)[-2:], "output_size", "ConvTranspose2d")
            H0, W0 = self.output_size(x.shape[2], x.shape[3], (0, 0))
            output_padding = (H_out - H0, W_out - W0)  # conv_transpose2d checks its range
        y, self._cache = conv_transpose2d(x, self.weight_array, None if self.bias is None else self.bias.data,
                                          stride=self.stride, padding=self.padding,
                                          output_padding=output_padding, dilation=self.dilation,
                                          groups=self.groups)
        return y

    def backward(self, dy):
        dx, dw, db = conv_transpose2d_backward(dy, self._cache)
        if self.trainable:
            self.weight.grad = dw
        if self.bias is not None:
            self.bias.grad = db
        return dx

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}")
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.init != "he":
            s += f", init={self.init!r}"
        if not self.trainable:
            s += ", trainable=False"
        return s


class SeparableConv2d(Module):
    """Depthwise-separable convolution: a depthwise KxK conv (``groups = C_in``) then a pointwise 1x1 conv.

    Parameters: ``C_in K^2`` (depthwise) ``+ C_in C_out`` (pointwise) ``[+ C_out bias]``,
    against ``C_in C_out K^2`` for a full KxK convolution: about ``1/C_out + 1/K^2``
    as many (Chollet, "Xception", 2017; Howard et al., "MobileNets", 2017). DeepLab v3+
    uses it, dilated, in its ASPP.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, dilation : of the depthwise convolution
    bias : bool
        Bias of the pointwise convolution (the depthwise one has none).
    rng, dtype : as for ``Conv2d``
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 bias: bool = True, *, rng=None, dtype=np.float32):
        super().__init__()
        rng = make_rng(rng)
        self.depthwise = Conv2d(in_channels, in_channels, kernel_size, stride, padding, dilation,
                                groups=in_channels, bias=False, rng=rng, dtype=dtype)
        self.pointwise = Conv2d(in_channels, out_channels, 1, bias=bias, rng=rng, dtype=dtype)

    def forward(self, x):
        return self.pointwise.forward(self.depthwise.forward(x))

    def backward(self, dy):
        return self.depthwise.backward(self.pointwise.backward(dy))


class Linear(Module):
    """Fully-connected layer ``y = x W^T + b``, PyTorch's ``nn.Linear``; He-initialised (fan_in = D_in).

    Shapes: (N, D_in) -> (N, D_out).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, rng=None, dtype=np.float32):
        super().__init__()
        dt = as_dtype(dtype)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(kaiming_normal((out_features, in_features), in_features, make_rng(rng), dt))
        self.bias = Parameter(np.zeros(out_features, dtype=dt)) if bias else None
        self._cache = None

    def forward(self, x):
        y, self._cache = linear(x, self.weight.data, None if self.bias is None else self.bias.data)
        return y

    def backward(self, dy):
        dx, dw, db = linear_backward(dy, self._cache)
        self.weight.grad = dw
        if self.bias is not None:
            self.bias.grad = db
        return dx

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}" + ("" if self.bias is not None else ", bias=False")


# --------------------------------------------------------------------------- pooling and resampling

class MaxPool2d(Module):
    """Max-pooling that keeps its switches, PyTorch's ``nn.MaxPool2d``.

    After ``forward``, ``indices`` holds the argmax of every window as flat
    offsets into each (N, C) input plane (PyTorch's convention) and
    ``input_size`` the (H, W) it pooled: exactly what ``MaxUnpool2d`` needs
    to put values back where they came from (SegNet, DeconvNet).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size", "MaxPool2d")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", "MaxPool2d")
        self.padding, self.dilation = pair(padding, "padding", "MaxPool2d"), pair(dilation, "dilation", "MaxPool2d")
        self.ceil_mode = ceil_mode
        self._cache = None
        self.input_size = None

    @property
    def indices(self):
        """The switches of the last forward pass: (N, C, H_out, W_out) int flat offsets into each plane."""
        return None if self._cache is None else self._cache.indices

    def forward(self, x):
        y, self._cache = max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        self.input_size = tuple(x.shape[2:])
        return y

    def backward(self, dy):
        return max_pool2d_backward(dy, self._cache)

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.ceil_mode:
            s += ", ceil_mode=True"
        return s


class MaxUnpool2d(Module):
    """Max-unpooling with a pooling layer's switches, PyTorch's ``nn.MaxUnpool2d``.

    ``forward(x, indices, output_size=None)``: zeros, then every value of ``x`` written at
    its switch. Pass the pooled input's size as ``output_size`` when it was odd
    (``MaxPool2d.input_size``), so the sizes line up again.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size", "MaxUnpool2d")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", "MaxUnpool2d")
        self.padding = pair(padding, "padding", "MaxUnpool2d")
        self._cache = None

    def forward(self, x, indices, output_size=None):
        y, self._cache = max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding,
                                      output_size=output_size)
        return y

    def backward(self, dy):
        return max_unpool2d_backward(dy, self._cache)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class Upsample(Module):
    """Bilinear resizing, PyTorch's ``nn.Upsample(mode="bilinear")``.

    Give ``size`` or ``scale_factor`` at construction, or a ``size`` to
    ``forward(x, size=...)`` (e.g. the input image's size, which varies).
    """

    def __init__(self, size=None, scale_factor=None, align_corners: bool = False):
        super().__init__()
        self.size, self.scale_factor, self.align_corners = size, scale_factor, align_corners
        self._cache = None

    def forward(self, x, size=None):
        if size is not None:
            y, self._cache = bilinear_interpolate(x, size=size, align_corners=self.align_corners)
        else:
            y, self._cache = bilinear_interpolate(x, size=self.size, scale_factor=self.scale_factor,
                                                  align_corners=self.align_corners)
        return y

    def backward(self, dy):
        return bilinear_interpolate_backward(dy, self._cache)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode='bilinear', align_corners={self.align_corners}"


class GlobalAvgPool2d(Module):
    """Global average pooling: (N, C, H, W) -> (N, C, 1, 1), the mean of each plane (ParseNet, ASPP image pooling)."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        y, self._cache = global_avg_pool2d(x)
        return y

    def backward(self, dy):
        return global_avg_pool2d_backward(dy, self._cache)


# --------------------------------------------------------------------------- elementwise and glue

class ReLU(Module):
    """``max(x, 0)``; backward passes the gradient where the output is positive."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        y, self._cache = relu(x)
        return y

    def backward(self, dy):
        return relu_backward(dy, self._cache)


class Dropout(Module):
    """Inverted dropout with drop probability ``p``: active in training mode, the identity in eval mode.

    ``rng`` (seed or Generator) draws the masks, so a seeded run is reproducible.
    """

    def __init__(self, p: float = 0.5, *, rng=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: expected p in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = make_rng(rng)
        self._cache = None

    def forward(self, x):
        y, self._cache = dropout(x, self.p, training=self.training, rng=self.rng)
        return y

    def backward(self, dy):
        return dropout_backward(dy, self._cache)

    def extra_repr(self) -> str:
        return f"p={self.p:g}"


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W), in C-order: the order ``Linear`` weights see (and convolutionalization undoes)."""

    def __init__(self):
        super().__init__()
        self._shape = None

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._shape)


class Identity(Module):
    """Returns its input; backward returns the gradient."""

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


class ModuleList(Module):
    """A list of modules a model indexes itself (``self.enc[i]``): registered, but with no forward of its own.

    Children are named "0", "1", ... like ``Sequential``'s, so a U-Net's
    state-dict keys read ``"enc.2.0.weight"``; the model decides how the
    modules are wired (skips, poolings in between), which ``Sequential``
    cannot express.
    """

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: expected Module instances, got {type(module).__name__} "
                            f"at position {len(self)}")
        setattr(self, str(len(self)), module)
        return self

    def __len__(self) -> int:
        return len(self._children)

    def __getitem__(self, i):
        return list(self._children.values())[i]

    def __iter__(self):
        return iter(self._children.values())

    def forward(self, x):
        raise TypeError("ModuleList: a list of modules has no forward pass; index it (self.enc[i].forward(x))")

    def backward(self, dy):
        raise TypeError("ModuleList: a list of modules has no backward pass; index it (self.enc[i].backward(dy))")


class Sequential(ModuleList):
    """Modules applied in order; backward applies their backward passes in reverse order.

    A ``ModuleList`` with a forward pass: children are named "0", "1", ... (so
    state-dict keys look like ``"3.weight"``).
    """

    def __init__(self, *layers):
        super().__init__(layers)

    def forward(self, x):
        for layer in self._children.values():
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(list(self._children.values())):
            dy = layer.backward(dy)
        return dy
