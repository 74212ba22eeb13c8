"""Optimisers (SGD with momentum and weight decay, Adam) and the poly learning-rate schedule.

Each optimiser takes the ``Parameter`` objects of a model (``model.parameters()``)
and, on ``step()``, updates ``p.data`` *in place* from ``p.grad``. A parameter
whose ``grad`` is None is skipped entirely, as in PyTorch: it does not move,
its momentum buffer and Adam moments and step count stay as they are, and no
weight decay is applied. (A zero gradient is not the same: momentum and
weight decay would still move the parameter.) Call ``zero_grad()`` before each
backward, as ``minseg.train.train_step`` does, so that a parameter the
backward does not reach (a frozen or skipped branch) is skipped rather than
updated again with its previous gradient. The update rules are PyTorch's
``torch.optim.SGD`` and ``torch.optim.Adam``, step for step:

SGD (``g = grad + weight_decay * p``)::

    buf = g                                  at the first step
    buf = momentum * buf + (1 - dampening) g later
    g   = g + momentum * buf   (nesterov)  or  buf
    p  -= lr * g

Adam (``g = grad + weight_decay * p``, step ``t`` from 1)::

    m  = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

Poly schedule (DeepLab): ``lr_t = base_lr * (1 - t / max_steps) ** power``, power 0.9.

A training loop::

    opt = SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    sched = PolyLR(opt, max_steps=1000)
    for x, y in batches:
        opt.zero_grad()                              # every p.grad = None: no stale gradient
        loss, cache = cross_entropy(model.forward(x), y, ignore_index=255)
        model.backward(cross_entropy_backward(1.0, cache))
        opt.step()
        sched.step()

References
----------
Sutskever et al., "On the importance of initialization and momentum in deep learning", ICML 2013.
Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous
Convolution, and Fully Connected CRFs", TPAMI 2017 (the poly policy).
"""
from __future__ import annotations

import math
import numbers

from .backend import get_array_module, to_numpy
from .nn.module import Module, Parameter

__all__ = ["Optimizer", "SGD", "Adam", "PolyLR", "poly_lr"]


def _check_nonneg(op, name, v):
    if not isinstance(v, numbers.Real) or v < 0:
        raise ValueError(f"{op}: expected {name} >= 0, got {v!r}")
    return float(v)


class Optimizer:
    """Base class: holds the parameter list, the learning rate and per-parameter state.

    Parameters
    ----------
    params : Module, or iterable of Parameter, or of (name, Parameter) pairs
    lr : float
    """

    def __init__(self, params, lr: float):
        if isinstance(params, Module):
            params = params.parameters()
        plist = []
        for p in params:
            if isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], Parameter):
                p = p[1]
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: expected Parameter objects (model.parameters()), "
                                f"got {type(p).__name__}")
            plist.append(p)
        if not plist:
            raise ValueError(f"{type(self).__name__}: expected at least one parameter, got an empty list")
        self.params = plist
        self.lr = _check_nonneg(type(self).__name__, "lr", lr)
        self.steps = 0
        self.state = [dict() for _ in plist]  # per parameter: buffers, by name

    def zero_grad(self) -> None:
        """Set every gradient to None: until a backward writes it again, ``step`` skips that parameter."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place; one whose ``grad`` is None is skipped.

        Skipped means untouched: no update, no change to its momentum buffer
        or Adam moments or step count, no weight decay (PyTorch's rule).
        """
        self.steps += 1
        for p, st in zip(self.params, self.state):
            if p.grad is not None:
                if p.grad.shape != p.data.shape:
                    raise ValueError(f"{type(self).__name__}.step: expected a gradient of shape {p.data.shape}, "
                                     f"got shape {p.grad.shape}")
                self._update(p, st)

    def _update(self, p: Parameter, st: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def hyperparameters(self) -> dict:
        return {"lr": self.lr}

    def state_dict(self) -> dict:
        """``{"hyper": {...}, "steps": int, "state": [{name: numpy array}, ...]}`` (host copies)."""
        return {"hyper": self.hyperparameters(), "steps": self.steps,
                "state": [{k: to_numpy(v).copy() if hasattr(v, "shape") else v for k, v in st.items()}
                          for st in self.state]}

    def load_state_dict(self, sd: dict) -> None:
        """Restore hyper-parameters, step count and buffers (moved to each parameter's device)."""
        if len(sd["state"]) != len(self.params):
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected state for {len(self.params)} "
                             f"parameters, got {len(sd['state'])}")
        for p, st in zip(self.params, sd["state"]):
            for k, v in st.items():
                if hasattr(v, "shape") and tuple(v.shape) != tuple(p.shape):
                    raise ValueError(f"{type(self).__name__}.load_state_dict: expected buffer {k!r} of shape "
                                     f"{tuple(p.shape)}, got shape {tuple(v.shape)}")
        for name, v in sd["hyper"].items():
            setattr(self, name, tuple(v) if isinstance(v, list) else v)
        self.steps = int(sd["steps"])
        self.state = []
        for p, st in zip(self.params, sd["state"]):
            xp = get_array_module(p.data)
            self.state.append({k: xp.asarray(v, dtype=p.dtype) if hasattr(v, "shape") else v
                               for k, v in st.items()})


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, as ``torch.optim.SGD``."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
        self.momentum = _check_nonneg("SGD", "momentum", momentum)
        self.weight_decay = _check_nonneg("SGD", "weight_decay", weight_decay)
        self.dampening = float(dampening)
        self.nesterov = bool(nesterov)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: expected momentum > 0 and dampening == 0 for nesterov=True, "
                             f"got momentum={momentum}, dampening={dampening}")

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "dampening": self.dampening, "nesterov": self.nesterov}

    def _update(self, p, st):
        g = p.grad
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            if "momentum_buffer" not in st:
                st["momentum_buffer"] = g.astype(p.dtype, copy=True)
            else:
                buf = st["momentum_buffer"]
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            buf = st["momentum_buffer"]
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam with bias correction and optional L2 weight decay (added to the gradient), as ``torch.optim.Adam``."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"Adam: expected betas in [0, 1), got {tuple(betas)}")
        self.betas = (float(b1), float(b2))
        self.eps = _check_nonneg("Adam", "eps", eps)
        self.weight_decay = _check_nonneg("Adam", "weight_decay", weight_decay)

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    def _update(self, p, st):
        xp = get_array_module(p.data)
        b1, b2 = self.betas
        g = p.grad
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if "exp_avg" not in st:
            st["step"] = 0
            st["exp_avg"] = xp.zeros_like(p.data)
            st["exp_avg_sq"] = xp.zeros_like(p.data)
        st["step"] += 1
        t = st["step"]
        m, v = st["exp_avg"], st["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        step_size = self.lr / (1 - b1 ** t)
        denom = xp.sqrt(v)
        denom /= math.sqrt(1 - b2 ** t)
        denom += self.eps
        p.data -= step_size * (m / denom)


def poly_lr(base_lr: float, step: int, max_steps: int, power: float = 0.9) -> float:
    """DeepLab's poly policy: ``base_lr * (1 - min(step, max_steps) / max_steps) ** power``.

    Equal to ``torch.optim.lr_scheduler.PolynomialLR(total_iters=max_steps, power=power)`` after ``step`` steps.
    """
    if max_steps < 1:
        raise ValueError(f"poly_lr: expected max_steps >= 1, got {max_steps!r}")
    return base_lr * (1.0 - min(step, max_steps) / max_steps) ** power


class PolyLR:
    """Poly learning-rate schedule: call ``step()`` once per optimiser step; sets ``optimizer.lr``.

    Parameters
    ----------
    optimizer : Optimizer
    max_steps : int
        The learning rate reaches 0 after this many steps (and stays there).
    power : float
        0.9 in DeepLab.
    """

    def __init__(self, optimizer: Optimizer, max_steps: int, power: float = 0.9):
        if not isinstance(max_steps, numbers.Integral) or max_steps < 1:
            raise ValueError(f"PolyLR: expected max_steps to be an int >= 1, got {max_steps!r}")
        self.optimizer, self.max_steps, self.power = optimizer, int(max_steps), float(power)
        self.base_lr = optimizer.lr
        self.last_step = 0

    def step(self) -> float:
        """Advance one step and return the new learning rate."""
        self.last_step += 1
        self.optimizer.lr = poly_lr(self.base_lr, self.last_step, self.max_steps, self.power)
        return self.optimizer.lr

    def state_dict(self) -> dict:
        return {"base_lr": self.base_lr, "last_step": self.last_step, "max_steps": self.max_steps,
                "power": self.power}

    def load_state_dict(self, sd: dict) -> None:
        self.base_lr, self.last_step = float(sd["base_lr"]), int(sd["last_step"])
        self.max_steps, self.power = int(sd["max_steps"]), float(sd["power"])
        self.optimizer.lr = poly_lr(self.base_lr, self.last_step, self.max_steps, self.power)
