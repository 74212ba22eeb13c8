"""A float32 training step stays float32: no silent float64 upcast anywhere in minseg.

The check is a spy on Python execution (``sys.settrace``): while one training
step runs (``minseg.train.train_step``: forward, cross-entropy, backward, Adam
or SGD update), at every line executed inside a ``minseg`` module and at every
return from one, it looks at every array the frame can see -- its local
variables, the returned value, and one level into tuples, lists, dicts, caches
(NamedTuples), ``Parameter`` objects and the attributes of ``self`` -- and records
any floating array whose dtype is not float32. So an upcast is caught as soon
as its result is bound to a name, stored in a cache or a layer, kept in the
optimiser's state, or returned, in any op, layer, model, loss or optimiser.

The bound is stricter than "no float64 array larger than a parameter": no
float64 array of any size, except the per-axis bilinear tables of
``minseg.ops.interpolate`` (``linear_taps``: (out_size,) source positions
and weights; ``interpolation_matrix``: (out_size, in_size)), which are
computed in float64 on purpose and cast to the input's dtype by their callers.

What it cannot see: a temporary inside one expression that is never named
(``(x * np.float64(2)).astype(np.float32)``); those cost time but never reach
a result. The self-tests below prove the spy catches an upcast in a forward,
in a backward's cache, and in an optimiser's state.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from minseg.models import build_model, list_models
from minseg.nn.module import Module, Parameter
from minseg.optim import SGD, Adam
from minseg.train import train_step

TINY_VGG = dict(widths=(4, 6, 8), convs=(1, 1, 1))

# the registry's segmentation models, small; vgg_classifier (one score per image) is not one
CONFIGS = {
    "pixel": dict(num_classes=3, hidden=[4]),
    "unet": dict(num_classes=3, base_width=4, depth=2),
    "fcn32s": dict(num_classes=3, **TINY_VGG),
    "fcn16s": dict(num_classes=3, **TINY_VGG),
    "fcn8s": dict(num_classes=3, **TINY_VGG),
    "segnet": dict(num_classes=3, widths=(4, 6), convs=1),
    "deeplab": dict(num_classes=3, widths=(4, 6, 8), convs=1, aspp_channels=4, rates=(1, 2)),
    "fully_conv_classifier": dict(num_classes=3, in_channels=3, input_size=8, fc_channels=8, dropout=0.5,
                                  **TINY_VGG),
}
NOT_SEGMENTATION = {"vgg_classifier"}


class Float64Spy:
    """Record every floating array that is not float32 and has more than ``limit`` elements.

    Traces the frames of modules whose ``__name__`` starts with one of
    ``prefixes``; arrays of at most 2 axes in functions named in ``allow`` are
    exempt. ``found`` maps ``(where, what)`` to ``(shape, dtype)``, one entry
    per place and name.
    """

    def __init__(self, limit: int = 0, prefixes=("minseg",), allow=()):
        self.limit = limit
        self.prefixes = tuple(prefixes)
        self.allow = frozenset(allow)
        self.found = {}

    def __enter__(self):
        self._old = sys.gettrace()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc):
        sys.settrace(self._old)
        return False

    def _global(self, frame, event, arg):
        if frame.f_globals.get("__name__", "").startswith(self.prefixes):
            return self._local
        return None

    def _local(self, frame, event, arg):
        if event in ("line", "return"):
            limit_ndim = 2 if frame.f_code.co_name in self.allow else -1  # arrays of at most this many axes pass
            where = f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} in {frame.f_code.co_name}"
            for name, value in frame.f_locals.items():
                self._scan(value, name, where, 2, set(), limit_ndim)
            if event == "return":
                self._scan(arg, "return value", where, 2, set(), limit_ndim)
        return self._local

    def _scan(self, v, what, where, depth, seen, exempt_ndim=-1):
        if isinstance(v, np.ndarray):
            if v.dtype.kind in "fc" and v.dtype != np.float32 and v.size > self.limit and v.ndim > exempt_ndim:
                self.found.setdefault((where, what), (tuple(v.shape), str(v.dtype)))
            return
        if depth == 0 or id(v) in seen:
            return
        seen.add(id(v))
        if isinstance(v, (tuple, list)):
            items = enumerate(v)
        elif isinstance(v, dict):
            items = v.items()
        elif isinstance(v, Parameter):
            items = (("data", v.data), ("grad", v.grad))
        elif isinstance(v, Module):
            items = vars(v).items()
        else:
            return
        for k, item in items:
            if not isinstance(item, Module):  # submodules are scanned when their own code runs
                self._scan(item, f"{what}.{k}" if isinstance(k, str) else f"{what}[{k}]", where, depth - 1, seen,
                           exempt_ndim)

    def report(self) -> str:
        return "\n".join(f"  {where}: {what} {shape} {dtype}" for (where, what), (shape, dtype) in self.found.items())


INTERPOLATION_TABLES = ("linear_taps", "interpolation_matrix")


def _step_under_spy(model, opt, x, y, prefixes=("minseg",)):
    with Float64Spy(0, prefixes, allow=INTERPOLATION_TABLES) as spy:
        loss = train_step(model, opt, x, y)
    return spy, loss


def _data(name, rng):
    size = 8 if name == "fully_conv_classifier" else 16
    x = rng.random((2, 3, size, size), dtype=np.float32)
    y = rng.integers(0, 3, size=(2, size, size))
    if name == "fully_conv_classifier":
        y = y[:, :1, :1]  # one score per 8 x 8 window
    else:
        y[:, 0] = 255  # an ignored row
    return x, y


def test_every_segmentation_model_is_checked():
    assert set(list_models()) - NOT_SEGMENTATION == set(CONFIGS)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_float32_training_step_creates_no_float64_array(name, optimizer):
    rng = np.random.default_rng(0)
    model = build_model(name, rng=0, **CONFIGS[name])
    assert model.dtype == np.float32
    opt = (Adam(model.parameters(), lr=1e-3) if optimizer == "adam"
           else SGD(model.parameters(), lr=1e-2, momentum=0.9, weight_decay=1e-4))
    x, y = _data(name, rng)
    for _ in range(2):  # the second step sees the optimiser's state
        spy, loss = _step_under_spy(model, opt, x, y)
        assert np.isfinite(loss)
        assert not spy.found, f"{name}: float64 arrays in a float32 step:\n{spy.report()}"
    for p in model.parameters():
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32, p
    for st in opt.state:
        for k, v in st.items():
            assert not hasattr(v, "dtype") or v.dtype == np.float32, (k, v.dtype)


# --------------------------------------------------------------------------- the spy catches an upcast

class UpcastingReLU(Module):
    """A ReLU with a typical bug: a NumPy float64 scalar makes its output float64 (cast back at the end)."""

    def forward(self, x):
        y = np.maximum(x, np.float64(0.0))  # float64: NEP 50 keeps the scalar's precision
        self.mask = y > 0
        return y.astype(x.dtype)

    def backward(self, dy):
        return dy * self.mask


class UpcastingBackwardReLU(Module):
    """A ReLU whose cache is float64 (the forward's output is float32)."""

    def forward(self, x):
        self.scale = (x > 0).astype(np.float64)
        return np.maximum(x, 0)

    def backward(self, dy):
        return (dy * self.scale).astype(dy.dtype)


def _unet_with(layer_cls):
    """The small U-Net with its first ReLU (in enc[0]) replaced by ``layer_cls()``."""
    model = build_model("unet", rng=0, **CONFIGS["unet"])
    for name, mod in model.named_modules():
        for child_name, child in mod.named_children():
            if type(child).__name__ == "ReLU":
                setattr(mod, child_name, layer_cls())
                return model
    raise AssertionError("the U-Net has no ReLU")


@pytest.mark.parametrize("layer_cls, what", [(UpcastingReLU, "y"), (UpcastingBackwardReLU, "self.scale")])
def test_spy_catches_an_upcasting_layer(layer_cls, what):
    model = _unet_with(layer_cls)
    x, y = _data("unet", np.random.default_rng(0))
    spy, _ = _step_under_spy(model, Adam(model.parameters(), lr=1e-3), x, y, prefixes=("minseg", __name__))
    assert any(w == what for (_, w) in spy.found), spy.report()


class Float64Adam(Adam):
    """Adam whose second moment is kept in float64: the step is right, the state is twice the size."""

    def _update(self, p, st):
        if "v64" not in st:
            st["v64"] = np.zeros(p.data.shape, np.float64)
        st["v64"] += p.grad.astype(np.float64) ** 2
        super()._update(p, st)


def test_spy_catches_a_float64_optimiser_state():
    model = build_model("unet", rng=0, **CONFIGS["unet"])
    x, y = _data("unet", np.random.default_rng(0))
    opt = Float64Adam(model.parameters(), lr=1e-3)
    with Float64Spy(0, ("minseg", __name__), allow=INTERPOLATION_TABLES) as spy:
        train_step(model, opt, x, y)
    assert any("v64" in w for (_, w) in spy.found), spy.report()


def test_spy_limit_and_exemptions():
    def op(x):
        small = np.zeros(4, np.float64)  # noqa: F841  not above the limit
        big32 = x * 2  # noqa: F841  float32
        return x

    def linear_taps(x):  # an exempt name: up to 2 axes pass, 3 do not
        table = np.zeros((4, 3), np.float64)  # noqa: F841
        cube = np.zeros((2, 2, 2), np.float64)  # noqa: F841
        return x

    with Float64Spy(limit=4, prefixes=(__name__,), allow=["linear_taps"]) as spy:
        op(np.ones(100, np.float32))
        linear_taps(np.ones(100, np.float32))
    assert set(spy.found.values()) == {((2, 2, 2), "float64")}, spy.report()
    with Float64Spy(limit=0, prefixes=(__name__,)) as spy:
        op(np.ones(100, np.float32))
    assert set(spy.found.values()) == {((4,), "float64")}, spy.report()
