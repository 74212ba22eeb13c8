"""No host round-trips hidden in the code that runs on the device: checked on the CPU, two ways.

1. **A static check** (``ast``) over the modules whose code runs on device
   arrays (``minseg/ops``, ``minseg/nn``, ``minseg/models``, ``optim.py``,
   ``metrics.py``, ``shapes.py``, ``_checks.py``): no call of a ``np.``
   function, no ``to_numpy`` / ``.get()`` / ``.tolist()`` / ``.item()``, except
   in functions whitelisted below *by name, with the reason*: they work on
   sizes, seeds or dtypes rather than arrays (``linear_taps``,
   ``kaiming_normal``), run once on the host by design (layer constructors:
   weights are initialised on the host, then moved with ``Module.to``), or
   are the one explicit copy to the host (``SegmentationMetrics.cm``). A
   ``np.`` call inside an ``if xp is np:`` branch is NumPy-only by
   construction and allowed, and so are ``np.errstate`` / ``np.dtype`` (no
   arrays). A stale whitelist entry (a name that no longer exists) fails too.

2. **A strict fake GPU** (``tests/fake_cupy.py``): device arrays that raise on
   ``np.asarray``, on any NumPy function or ufunc, on mixing with a NumPy
   array, on a Python loop over their elements and on a write with repeated
   integer indices, and that count every explicit transfer. A whole training
   step (forward, loss, backward, SGD and Adam) of every segmentation model
   runs on it and must move no array to the host and give NumPy's numbers.

What this cannot catch:

- the static check sees only names: a ``np.`` call on an array reached through
  another alias (``import numpy``, a function stored in a variable), or a
  whitelisted function that starts taking arrays, pass it; it cannot tell a
  scalar index from an array index, so ``a[idx] += v`` with repeated ``idx``
  is left to the fake;
- the fake checks only the code paths the steps below take (the models'
  default layers, float64, train mode); an op no model uses is covered only
  by the static check;
- the fake accepts every NumPy function under ``xp``, including any CuPy
  lacks, and computes with NumPy's dtype rules, so a CuPy-only difference
  (a missing function, another result dtype, a different order of floating
  point sums) shows only on a real GPU: ``python benchmarks/gpu_check.py``;
- scalar synchronisations (``float(loss)``, ``bool(bad.any())`` in input
  checks) are allowed and only counted: each moves one number, not an array;
- host-to-device copies of small index tables made from sizes (bilinear taps)
  are allowed and counted.
"""
import ast
from pathlib import Path

import numpy as np
import pytest

import fake_cupy
from minseg import backend
from minseg.models import build_model
from minseg.ops import cross_entropy, cross_entropy_backward
from minseg.optim import SGD, Adam

ROOT = Path(__file__).resolve().parent.parent / "minseg"
DEVICE_CODE = ([p for d in ("ops", "nn", "models") for p in sorted((ROOT / d).glob("*.py"))]
               + [ROOT / f for f in ("optim.py", "metrics.py", "shapes.py", "_checks.py")])

HOST_ONLY = {   # "file:function" -> why its np. calls never see a device array
    "ops/interpolate.py:interpolation_matrix": "builds the (out, in) matrix from two sizes, on the host",
    "ops/interpolate.py:linear_taps": "taps from two sizes; the ops move them with xp.asarray",
    "ops/interpolate.py:nearest_indices": "source indices from two sizes; moved with xp.asarray",
    "ops/interpolate.py:bilinear_kernel": "FCN's initial weights from a size, made on the host like all weights",
    "ops/interpolate.py:_tent": "1-D tent filter from a size",
    "ops/winograd.py:_matrix": "the constant Winograd transform matrices, made once at import",
    "ops/winograd.py:_work": "np.prod of a shape tuple (a size, no array)",
    "nn/module.py:make_rng": "a NumPy Generator from a seed: weights are initialised on the host",
    "nn/module.py:kaiming_normal": "np.sqrt of a Python number; host initialisation",
    "nn/module.py:Module.load_state_dict": "np.shape only for a value without .shape (a list)",
    "nn/batchnorm.py:BatchNorm2d.__init__": "host initialisation, moved with Module.to",
    "nn/layers.py:Conv2d.__init__": "host initialisation, moved with Module.to",
    "nn/layers.py:ConvTranspose2d.__init__": "host initialisation, moved with Module.to",
    "nn/layers.py:Linear.__init__": "host initialisation, moved with Module.to",
    "metrics.py:SegmentationMetrics.cm": "the one explicit copy of the (K, K) matrix to the host",
    "_checks.py:show_values": "formats an error message from an explicit host copy",
    "optim.py:Optimizer.state_dict": "host copies for saving, by contract",
}
FREE_NP = {"errstate", "dtype", "iinfo", "finfo", "isscalar", "result_type"}   # no array in, no array out
TRANSFERS = {"to_numpy", "get", "tolist", "item", "asnumpy"}


def _is_numpy_branch(test) -> bool:
    """``xp is np`` (either order)."""
    return (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Is)
            and {getattr(test.left, "id", None), getattr(test.comparators[0], "id", None)} == {"xp", "np"})


class _Finder(ast.NodeVisitor):
    """Collects ``(qualified function, line, call)`` for np. calls and explicit transfers outside NumPy branches."""

    def __init__(self):
        self.scope, self.found, self.defined = [], [], set()

    def _enter(self, node):
        self.scope.append(node.name)
        self.defined.add(".".join(self.scope))
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _enter

    def visit_If(self, node):
        if _is_numpy_branch(node.test):      # NumPy-only by construction; the else branch is still checked
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Call(self, node):
        chain, base = [], node.func
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        where = ".".join(self.scope)
        if isinstance(base, ast.Name) and base.id == "np" and chain and chain[-1] not in FREE_NP:
            self.found.append((where, node.lineno, "np." + ".".join(reversed(chain))))
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if name in TRANSFERS and not (name == "get" and node.args):          # dict.get(key) is not a transfer
            self.found.append((where, node.lineno, f"{name}()"))
        self.generic_visit(node)


def _scan():
    found, defined = [], set()
    for path in DEVICE_CODE:
        finder = _Finder()
        finder.visit(ast.parse(path.read_text(), filename=str(path)))
        rel = path.relative_to(ROOT).as_posix()
        found += [(f"{rel}:{fn}", line, call) for fn, line, call in finder.found]
        defined |= {f"{rel}:{fn}" for fn in finder.defined}
    return found, defined


def test_no_numpy_calls_or_transfers_in_device_code():
    found, _ = _scan()
    bad = [f"minseg/{where.split(':')[0]}:{line} in {where.split(':')[1]}: {call}"
           for where, line, call in found if where not in HOST_ONLY]
    assert not bad, ("np. calls or host transfers in code that runs on device arrays (use xp = "
                     "get_array_module(x) and xp.*, or whitelist a host-only function with its reason):\n"
                     + "\n".join(bad))


def test_the_whitelist_names_functions_that_exist_and_use_numpy():
    found, defined = _scan()
    stale = sorted(set(HOST_ONLY) - defined)
    assert not stale, f"HOST_ONLY names functions that no longer exist: {stale}"
    unused = sorted(set(HOST_ONLY) - {where for where, _, _ in found})
    assert not unused, f"HOST_ONLY entries with no np. call or transfer left (remove them): {unused}"


def test_the_static_check_finds_what_it_is_for():
    """The finder flags np. calls and transfers, skips `if xp is np:` bodies, and ignores dict.get(key)."""
    src = '''
def op(x):
    xp = get_array_module(x)
    if xp is np:
        y = np.add.at(x, 0, 1)
    else:
        y = np.exp(x)
    n = cfg.get("k")
    with np.errstate(invalid="ignore"):
        z = to_numpy(x).sum() + x.get() + x.item()
    return np.concatenate([y, z])
'''
    finder = _Finder()
    finder.visit(ast.parse(src))
    assert [call for _, _, call in finder.found] == ["np.exp", "to_numpy()", "get()", "item()", "np.concatenate"]


# --------------------------------------------------------------------------- the strict fake GPU

def test_the_fake_device_array_refuses_host_round_trips(monkeypatch):
    cp = fake_cupy.install(monkeypatch)
    d = backend.to_device(np.arange(6.0).reshape(2, 3), "gpu")
    assert backend.get_array_module(d) is cp and backend.is_cupy_array(d)
    for refused in (lambda: np.asarray(d), lambda: np.sum(d), lambda: np.concatenate([d, d]),
                    lambda: d + np.ones(3), lambda: np.ones(3) * d, lambda: [v for v in d],
                    lambda: cp.exp(np.ones(3))):
        with pytest.raises(fake_cupy.HostRoundTrip):
            refused()
    with pytest.raises(TypeError, match="does not support ufuncs"):
        np.exp(d)
    with pytest.raises(fake_cupy.RepeatedIndexWrite, match="scatter_add"):
        d.reshape(-1)[cp.asarray(np.array([0, 0, 1]))] += 1.0
    fake_cupy.log.clear()
    s = d.sum()                                            # a 0-d device array, as CuPy returns
    assert backend.is_cupy_array(s) and float(s) == 15.0
    assert backend.to_numpy(d * 2)[1, 2] == 10.0
    assert dict(fake_cupy.log.counts) == {"scalar_sync": 1, "to_host": 1}


CONFIGS = {
    "pixel": {"hidden": [6]},
    "unet": {"base_width": 4, "depth": 2},
    "fcn32s": {"widths": [4, 4, 8, 8, 8], "convs": [1, 1, 1, 1, 1], "fc_channels": 8},
    "fcn16s": {"widths": [4, 4, 8, 8, 8], "convs": [1, 1, 1, 1, 1], "fc_channels": 8},
    "fcn8s": {"widths": [4, 4, 8, 8, 8], "convs": [1, 1, 1, 1, 1], "fc_channels": 8},
    "segnet": {"widths": [4, 8], "convs": 1},
    "deeplab": {"widths": [4, 4, 8, 8, 8], "convs": [1, 1, 1, 1, 1], "aspp_channels": 8},
}


def _step(model, opt, x, y):
    """One training step; returns (loss, {name: grad}, {name: updated weight}) as host copies."""
    opt.zero_grad()
    loss, cache = cross_entropy(model.forward(x), y, ignore_index=255)
    model.backward(cross_entropy_backward(1.0, cache))
    opt.step()
    return loss, {n: p.grad for n, p in model.named_parameters()}, {n: p.data for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_training_step_on_the_strict_device_moves_no_array_to_the_host(name, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 32, 32))                                        # (N, C, H, W) float64
    y = rng.integers(0, 3, size=(2, 32, 32))
    y[:, 0, :5] = 255                                                     # some ignored pixels
    host = build_model(name, num_classes=3, in_channels=3, rng=0, dtype=np.float64, **CONFIGS[name])
    want = [_step(host, make(host.parameters()), x, y) for make in (lambda p: SGD(p, lr=0.1, momentum=0.9),)]
    fake_cupy.install(monkeypatch)
    for make, ref in ((lambda p: SGD(p, lr=0.1, momentum=0.9), want[0]), (lambda p: Adam(p, lr=1e-3), None)):
        dev = build_model(name, num_classes=3, in_channels=3, rng=0, dtype=np.float64, **CONFIGS[name]).to("gpu")
        opt = make(dev.parameters())
        xd, yd = backend.to_device(x, "gpu"), backend.to_device(y, "gpu")
        fake_cupy.log.clear()
        loss, grads, weights = _step(dev, opt, xd, yd)
        assert fake_cupy.log.counts["to_host"] == 0, fake_cupy.log.where("to_host")
        moved = set(fake_cupy.log.where("to_device"))                    # only tables made from sizes
        assert moved <= {"ops.interpolate.bilinear_interpolate", "ops.interpolate.bilinear_interpolate_backward"}, moved
        assert all(backend.is_cupy_array(g) for g in grads.values()) and backend.is_cupy_array(loss)
        if ref is not None:                                               # NumPy's numbers, to round-off
            assert float(loss) == pytest.approx(float(ref[0]), rel=1e-12)
            for part, ref_part in ((grads, ref[1]), (weights, ref[2])):
                for k, v in part.items():
                    np.testing.assert_allclose(backend.to_numpy(v), ref_part[k], rtol=1e-11, atol=1e-13, err_msg=k)


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


@pytest.mark.parametrize("case", __import__("minseg.gradcheck", fromlist=["builtin_cases"]).builtin_cases(),
                         ids=lambda c: c.name)
def test_every_op_forward_and_backward_on_the_strict_device(case, monkeypatch):
    """Every op of ``minseg gradcheck`` (all op families) on the fake GPU: no array to the host, NumPy's numbers."""
    rng = np.random.default_rng(0)
    inputs = case.make_inputs(rng)
    y, cache = case.forward(*inputs.values(), **case.hyper)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    want = _as_tuple(case.backward(dy, cache))
    fake_cupy.install(monkeypatch)
    on_device = [None if v is None else backend.to_device(v, "gpu") for v in inputs.values()]
    dy_d = backend.to_device(dy, "gpu")
    fake_cupy.log.clear()
    y_d, cache_d = case.forward(*on_device, **case.hyper)
    got = _as_tuple(case.backward(dy_d, cache_d))
    assert fake_cupy.log.counts["to_host"] == 0, fake_cupy.log.where("to_host")
    np.testing.assert_allclose(backend.to_numpy(y_d), y, rtol=1e-12, atol=1e-14)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            assert backend.is_cupy_array(g)
            np.testing.assert_allclose(backend.to_numpy(g), w, rtol=1e-12, atol=1e-14)


def test_prediction_and_metrics_on_the_strict_device_move_one_matrix(monkeypatch):
    """Eval-mode forward (BatchNorm running statistics), argmax and the confusion matrix stay on the device."""
    from minseg.metrics import SegmentationMetrics  # noqa: PLC0415

    rng = np.random.default_rng(0)
    x = rng.random((4, 3, 16, 16))
    y = rng.integers(0, 3, size=(4, 16, 16))
    y[:, 0] = 255
    host = build_model("unet", num_classes=3, in_channels=3, rng=0, dtype=np.float64, **CONFIGS["unet"])
    host.forward(x)                                                       # one train-mode pass updates the BN stats
    want = SegmentationMetrics(3)
    want.update(host.predict(x), y)
    fake_cupy.install(monkeypatch)
    dev = build_model("unet", num_classes=3, in_channels=3, rng=0, dtype=np.float64, **CONFIGS["unet"]).to("gpu")
    xd, yd = backend.to_device(x, "gpu"), backend.to_device(y, "gpu")
    dev.forward(xd)
    got = SegmentationMetrics(3)
    fake_cupy.log.clear()
    for i in (0, 2):
        got.update(dev.predict(xd[i:i + 2]), yd[i:i + 2])
    assert fake_cupy.log.counts["to_host"] == 0
    scores = got.compute()
    assert dict(fake_cupy.log.where("to_host")) == {"metrics.SegmentationMetrics.cm": 1}
    np.testing.assert_array_equal(got.cm, want.cm)
    assert scores == pytest.approx(want.compute(), nan_ok=True)


def test_dropout_draws_its_mask_on_the_device(monkeypatch):
    """Dropout's mask comes from the device's generator (``xp.random``), never from a host draw."""
    from minseg.ops import dropout, dropout_backward  # noqa: PLC0415

    fake_cupy.install(monkeypatch)
    x = backend.to_device(np.ones((2, 3, 8, 8)), "gpu")
    fake_cupy.log.clear()
    y, cache = dropout(x, 0.5, training=True)
    dx = dropout_backward(x, cache)
    assert sum(fake_cupy.log.counts.values()) == 0, dict(fake_cupy.log.counts)
    assert backend.is_cupy_array(y) and backend.is_cupy_array(cache.scale)
    values = set(np.unique(backend.to_numpy(y)).tolist())
    assert values == {0.0, 2.0}                                          # dropped, or kept and scaled by 1 / (1 - p)
    np.testing.assert_array_equal(backend.to_numpy(dx), backend.to_numpy(y))
