"""``Parameter`` and ``Module``: the base of every layer and model in minseg.

A layer is a thin object around a pure op pair from ``minseg.ops``: it holds
its parameters, their gradients and the cache of its last forward pass.

    y  = layer.forward(x)        # calls the op, keeps its cache
    dx = layer.backward(dy)      # calls the op's backward, stores the parameter gradients

Rules every layer follows
-------------------------
- ``backward`` *overwrites* each ``Parameter.grad`` with the gradient of the
  last forward pass; it never accumulates. (There is no autograd graph, so a
  layer called twice in one forward pass would lose the first cache: models
  use a separate layer for every use.)
- A parameter whose layer's backward does not run keeps whatever ``grad`` it
  had. Clear gradients (``zero_grad()``) before each backward, as
  ``minseg.train.train_step`` does: then such a parameter has ``grad = None``
  and the optimisers skip it instead of applying its previous gradient again.
- ``backward`` must follow the ``forward`` whose gradient it computes.
- Parameters are updated in place (``p.data -= ...``) by ``minseg.optim``, so
  references an optimiser holds stay valid; ``load_state_dict`` copies in place too.
- ``training`` (``train()`` / ``eval()``) switches BatchNorm and Dropout.

A model is a ``Module`` whose attributes are other modules: assigning a
``Module`` or a ``Parameter`` to an attribute registers it, so
``named_parameters()``, ``state_dict()`` and ``num_parameters()`` walk the
whole tree with dotted names like ``"enc.1.0.weight"``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module, is_cupy_array, to_device, to_numpy

__all__ = ["Parameter", "Module", "LoadResult", "make_rng", "kaiming_normal", "as_dtype"]


def make_rng(rng=None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed, a generator (returned as is) or None (seed 0).

    minseg initialises deterministically: the same seed gives the same weights.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    return np.random.default_rng(rng)


def as_dtype(dtype) -> np.dtype:
    """``np.dtype(dtype)``, checked to be float32 or float64."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"expected dtype float32 or float64, got {dt}")
    return dt


def kaiming_normal(shape, fan_in: int, rng, dtype=np.float32):
    """He initialisation: ``N(0, 2 / fan_in)``, the gain of ReLU (PyTorch's ``kaiming_normal_``, mode fan_in).

    He et al., "Delving Deep into Rectifiers", ICCV 2015: keeping ``Var(w) = 2 / fan_in``
    keeps the activations' scale constant through a stack of conv + ReLU layers.
    """
    std = np.sqrt(2.0 / fan_in)
    return (rng.standard_normal(shape) * std).astype(dtype)


class Parameter:
    """A trainable array and its gradient.

    Attributes
    ----------
    data : ndarray
        The value; updated in place by optimisers.
    grad : ndarray or None
        The gradient of the last backward pass (None before the first one and after ``zero_grad``).
    """

    __slots__ = ("data", "grad")

    def __init__(self, data):
        self.data = data
        self.grad = None

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def __repr__(self) -> str:
        return f"Parameter(shape={tuple(self.data.shape)}, dtype={self.data.dtype})"


class LoadResult(NamedTuple):
    """What ``load_state_dict(..., strict=False)`` skipped."""

    missing_keys: list
    unexpected_keys: list


class Module:
    """Base class of layers and models: parameters, buffers, children, modes, state dicts.

    Subclasses call ``super().__init__()`` first, assign parameters
    (``self.weight = Parameter(...)``) and sub-modules (``self.conv = Conv2d(...)``)
    as attributes, register non-trainable state with ``register_buffer``, and
    implement ``forward(x)`` and ``backward(dy)``.
    """

    def __init__(self):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration

    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, Parameter):
            self._children.pop(name, None)
            self._params[name] = value
        elif isinstance(value, Module):
            self._params.pop(name, None)
            self._children[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        else:  # a plain attribute replacing a registered one unregisters it
            self._params.pop(name, None)
            self._children.pop(name, None)
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value) -> None:
        """Register non-trainable state (e.g. BatchNorm's running statistics): saved in ``state_dict``."""
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ the two passes

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, dy):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ parameters

    @property
    def params(self) -> dict:
        """This module's own parameters (not its children's): name -> array."""
        return {k: p.data for k, p in self._params.items()}

    @property
    def grads(self) -> dict:
        """This module's own gradients: name -> array (None before a backward pass)."""
        return {k: p.grad for k, p in self._params.items()}

    def named_children(self):
        return list(self._children.items())

    def children(self):
        return list(self._children.values())

    def named_modules(self, prefix: str = ""):
        """Every module in the tree, depth first, as ``(dotted_name, module)``; the root is ``""``."""
        out = [(prefix, self)]
        for name, child in self._children.items():
            out += child.named_modules(f"{prefix}.{name}" if prefix else name)
        return out

    def named_parameters(self, prefix: str = ""):
        """``[(dotted_name, Parameter), ...]`` over the whole tree, in registration order."""
        out = []
        for mod_name, mod in self.named_modules(prefix):
            for k, p in mod._params.items():
                out.append((f"{mod_name}.{k}" if mod_name else k, p))
        return out

    def parameters(self):
        """All ``Parameter`` objects of the tree: what an optimiser takes."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = ""):
        out = []
        for mod_name, mod in self.named_modules(prefix):
            for k, b in mod._buffers.items():
                out.append((f"{mod_name}.{k}" if mod_name else k, b))
        return out

    def zero_grad(self) -> None:
        """Set every gradient to None.

        A backward overwrites the gradients it reaches; one it does not reach
        (a frozen or skipped branch) stays None, and the optimisers skip it.
        Without this call it would keep, and be updated with, its previous gradient.
        """
        for p in self.parameters():
            p.grad = None

    def num_parameters(self) -> int:
        """Number of trainable scalars in the tree."""
        return sum(p.size for p in self.parameters())

    # ------------------------------------------------------------------ modes

    def train(self, mode: bool = True):
        """Training mode (batch statistics in BatchNorm, active Dropout) for the whole tree; returns self."""
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode (running statistics, no Dropout); returns self."""
        return self.train(False)

    # ------------------------------------------------------------------ state

    def _state_entries(self):
        """``{dotted_name: (owner_module, attribute, kind)}`` for every parameter and buffer."""
        entries = {}
        for mod_name, mod in self.named_modules():
            for k in mod._params:
                entries[f"{mod_name}.{k}" if mod_name else k] = (mod, k, "param")
            for k in mod._buffers:
                entries[f"{mod_name}.{k}" if mod_name else k] = (mod, k, "buffer")
        return entries

    def state_dict(self) -> dict:
        """Copies of every parameter and buffer, by dotted name (on the module's device)."""
        out = {}
        for key, (mod, k, kind) in self._state_entries().items():
            value = mod._params[k].data if kind == "param" else mod._buffers[k]
            out[key] = value.copy()
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> LoadResult:
        """Copy values into the parameters and buffers, in place.

        Everything is checked before anything is written, so on error the
        module is unchanged.

        Parameters
        ----------
        state : dict name -> array (NumPy or CuPy; cast to each target's dtype and device)
        strict : bool
            When True, missing or unexpected keys raise; when False they are
            skipped and returned.

        Raises
        ------
        KeyError
            ``strict`` and keys missing or unexpected (all are listed).
        ValueError
            A value whose shape differs from the target's (always).
        """
        entries = self._state_entries()
        missing = [k for k in entries if k not in state]
        unexpected = [k for k in state if k not in entries]
        if strict and (missing or unexpected):
            raise KeyError(f"{type(self).__name__}.load_state_dict: expected exactly the model's keys, "
                           f"got missing keys {missing} and unexpected keys {unexpected}")
        writes = []
        for key, (mod, k, kind) in entries.items():
            if key not in state:
                continue
            target = mod._params[k].data if kind == "param" else mod._buffers[k]
            value = state[key]
            shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
            if shape != tuple(target.shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: expected {key!r} of shape "
                                 f"{tuple(target.shape)}, got shape {shape}")
            writes.append((target, value))
        for target, value in writes:
            xp = get_array_module(target)
            target[...] = xp.asarray(value if xp is not np else to_numpy(value), dtype=target.dtype)
        return LoadResult(missing, unexpected)

    # ------------------------------------------------------------------ dtype and device

    def _map_arrays(self, fn):
        for _, mod in self.named_modules():
            for p in mod._params.values():
                p.data = fn(p.data)
                p.grad = None
            for k, b in list(mod._buffers.items()):
                mod.register_buffer(k, fn(b))
            mod._clear_cache()
        return self

    def _clear_cache(self) -> None:
        """Drop the cache of the last forward pass (layers that keep one override this)."""
        if "_cache" in self.__dict__:
            object.__setattr__(self, "_cache", None)

    def astype(self, dtype):
        """Cast every floating parameter and buffer to ``dtype`` (float32 or float64), in place; returns self."""
        dt = as_dtype(dtype)
        return self._map_arrays(lambda a: a.astype(dt) if a.dtype.kind == "f" else a)

    def to(self, device: str):
        """Move every parameter and buffer to ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy); returns self.

        Build the optimiser after moving the model: its state lives on the device of the parameters.
        """
        return self._map_arrays(lambda a: to_device(a, device))

    @property
    def dtype(self):
        """The dtype of the first parameter (None for a parameter-free module)."""
        ps = self.parameters()
        return ps[0].dtype if ps else None

    @property
    def device(self) -> str:
        """``"gpu"`` when the parameters are CuPy arrays, else ``"cpu"`` (also for a parameter-free module)."""
        ps = self.parameters()
        return "gpu" if ps and is_cupy_array(ps[0].data) else "cpu"

    # ------------------------------------------------------------------ printing

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = self.named_children()
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"
