"""Exercise of lesson 05: fc_to_conv, convolutionalizing a fully-connected layer.

An FC layer over a flattened (C, k, k) feature map is a k x k convolution with
the same weights: ``Linear`` stores its weight as (out_features, in_features)
with ``in_features = C*k*k`` in ``Flatten``'s C-order (channel slowest, then
row, then column), so ``weight.reshape(out_features, C, k, k)`` is the kernel.
The checker compares the returned layer's weight and bias with minseg's, and
its output on an input larger than k x k (where the convolution slides the FC
layer over every k x k window) with the padding asked for.
"""
from __future__ import annotations

import numpy as np

from ..models.vgg import fc_to_conv
from ..nn.layers import Conv2d, Linear
from .core import AnswerProblem, Case, Output, exercise, shape_text

# (C, k, F, padding, bias, x shape (N, C, H, W)): C > 1, batch > 1, odd and even k, padding, 1x1 (the last FC)
_GRID = [
    (1, 1, 3, 0, True, (2, 1, 3, 4)),
    (3, 3, 4, 0, True, (2, 3, 5, 6)),
    (2, 2, 5, 0, False, (1, 2, 4, 5)),
    (4, 3, 2, 1, True, (2, 4, 5, 4)),
    (3, 5, 6, 2, True, (2, 3, 7, 8)),
    (5, 1, 4, 0, True, (3, 5, 2, 3)),
    (2, 7, 3, 3, True, (1, 2, 7, 9)),
]


def _linear(C, k, F, bias, rng):
    """A float64 ``Linear(C*k*k, F)`` with random weight and (when ``bias``) random bias."""
    fc = Linear(C * k * k, F, bias=bias, rng=rng, dtype=np.float64)
    fc.weight.data[...] = rng.standard_normal(fc.weight.data.shape)
    if bias:
        fc.bias.data[...] = rng.standard_normal(F)
    return fc


def _cases(rng):
    cases = []
    for C, k, F, p, bias, xs in _GRID:
        fc = _linear(C, k, F, bias, rng)
        x = rng.standard_normal(xs)                              # (N, C, H, W), larger than k x k
        label = (f"fc {C * k * k}->{F}{'' if bias else ' (no bias)'}, in_channels={C}, k={k}"
                 + (f", padding={p}" if p else "") + f"; y on x {shape_text(x)}")
        kwargs = {"padding": p} if p else {}
        cases.append(Case((fc, C, k), kwargs, label, extra={"x": x, "F": F, "C": C, "k": k}))
    return cases


def _extract(conv, case):
    """``(weight, bias, y)`` of the returned layer, ``y = conv.forward(x)`` on the case's input."""
    F, C, k, x = case.extra["F"], case.extra["C"], case.extra["k"], case.extra["x"]
    if not isinstance(conv, Conv2d):
        raise AnswerProblem(f"expected fc_to_conv to return a minseg.nn.Conv2d layer, got {type(conv).__name__}")
    w = conv.weight.data
    if tuple(w.shape) != (F, C, k, k):
        raise AnswerProblem(f"expected weight of shape {(F, C, k, k)} (out_channels, in_channels, k, k), "
                            f"got shape {tuple(w.shape)}")
    bias = None if conv.bias is None else conv.bias.data
    try:
        y = conv.forward(x.astype(w.dtype))                      # (N, F, H_out, W_out)
    except (ValueError, TypeError) as err:
        raise AnswerProblem(f"the returned Conv2d fails on x of shape {x.shape}: {err}") from None
    return w, bias, y


ex_fc_to_conv = exercise(
    "fc_to_conv", reference=fc_to_conv, cases=_cases,
    outputs=[Output("weight", axes=("output channel", "input channel", "kernel row", "kernel column")),
             Output("bias", axes=("channel",), spatial=None, optional=True),
             Output("y")],
    extract=_extract,
    spec="fc_to_conv(fc, in_channels, k, *, padding=0) -> Conv2d(in_channels, fc.out_features, k, padding) "
         "with weight (out_features, in_channels, k, k) and the FC's bias (none when it has none), "
         "in fc's dtype")


def _conv_with(fc, C, k, weight, padding=0, bias="copy"):
    """A Conv2d holding ``weight`` (F, C, k, k); ``bias="copy"`` copies fc's bias, ``"zero"`` leaves zeros."""
    conv = Conv2d(C, fc.out_features, k, padding=padding, bias=fc.bias is not None, dtype=fc.weight.dtype)
    conv.weight.data[...] = weight
    if fc.bias is not None and bias == "copy":
        conv.bias.data[...] = fc.bias.data
    return conv


@ex_fc_to_conv.mistake(
    "weights reshaped in the wrong axis order: (k, k, C) instead of Flatten's (C, k, k)",
    hint="Flatten turns (C, k, k) into C*k*k in C-order, channel slowest: input feature (c*k + i)*k + j "
         "is x[c, i, j], so weight.reshape(F, C, k, k) is the kernel (a channels-last (k, k, C) flatten "
         "is another framework's convention)")
def _channels_last(fc, in_channels, k, *, padding=0):
    F, C = fc.out_features, in_channels
    w = fc.weight.data.reshape(F, k, k, C).transpose(0, 3, 1, 2)   # (F, C, k, k), read as if flattened (k, k, C)
    return _conv_with(fc, C, k, w, padding)


@ex_fc_to_conv.mistake(
    "kernel spatially transposed (kh and kw swapped)",
    hint="within a channel the flattened index is i*k + j for row i and column j: the row varies slower")
def _spatially_transposed(fc, in_channels, k, *, padding=0):
    F, C = fc.out_features, in_channels
    w = fc.weight.data.reshape(F, C, k, k).transpose(0, 1, 3, 2)   # (F, C, kw, kh)
    return _conv_with(fc, C, k, w, padding)


@ex_fc_to_conv.mistake(
    "bias dropped",
    hint="the FC adds b[o] to output o; the convolution adds its bias to every pixel of channel o: copy fc.bias")
def _bias_dropped(fc, in_channels, k, *, padding=0):
    return _conv_with(fc, in_channels, k, fc.weight.data.reshape(fc.out_features, in_channels, k, k), padding,
                      bias="zero")


@ex_fc_to_conv.mistake(
    "in/out axes swapped: fc.weight read as (in_features, out_features)",
    hint="Linear stores its weight as (out_features, in_features), PyTorch's layout: y = x @ weight.T + b, "
         "so row o of fc.weight is output o's filter")
def _in_out_swapped(fc, in_channels, k, *, padding=0):
    F, C = fc.out_features, in_channels
    w = fc.weight.data.reshape(C, k, k, F).transpose(3, 0, 1, 2)   # (F, C, k, k) from a (D_in, F) reading
    return _conv_with(fc, C, k, w, padding)


@ex_fc_to_conv.mistake(
    "in/out axes swapped: fc.weight.T reshaped to (out_features, in_channels, k, k)",
    hint="fc.weight is already (out_features, in_features): reshape it without transposing")
def _transposed_weight(fc, in_channels, k, *, padding=0):
    F, C = fc.out_features, in_channels
    w = np.ascontiguousarray(fc.weight.data.T).reshape(F, C, k, k)  # the (D_in, F) matrix's entries, misread
    return _conv_with(fc, C, k, w, padding)


@ex_fc_to_conv.mistake(
    "padding ignored",
    hint="pass padding to Conv2d: the convolutionalized layer then also scores windows that hang over the border")
def _padding_ignored(fc, in_channels, k, *, padding=0):
    return _conv_with(fc, in_channels, k, fc.weight.data.reshape(fc.out_features, in_channels, k, k), 0)
