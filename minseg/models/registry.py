"""The model registry and the base class every segmentation model shares.

A model is rebuilt from its name and its ``config``, and its weights from its
``state_dict``, so a checkpoint needs nothing else::

    ckpt = {"model": model.name, "config": model.config, "state": model.state_dict()}
    again = build_model(ckpt["model"], **ckpt["config"])
    again.load_state_dict(ckpt["state"])
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..nn.module import Module

__all__ = ["SegmentationModel", "register_model", "build_model", "list_models", "MODELS"]

MODELS: dict = {}


def register_model(name: str):
    """Class decorator: make ``build_model(name, ...)`` construct this class."""
    def deco(cls):
        if name in MODELS:
            raise ValueError(f"register_model: expected a new name, got {name!r} (already {MODELS[name].__name__})")
        MODELS[name] = cls
        cls.name = name
        return cls
    return deco


def list_models() -> list:
    """Registered model names, sorted."""
    return sorted(MODELS)


def build_model(name: str, *, rng=None, dtype=np.float32, **config):
    """Construct a registered model: ``build_model("unet", num_classes=5, base_width=16, depth=3)``.

    Parameters
    ----------
    name : str
        One of ``list_models()``.
    rng : int or numpy.random.Generator, optional
        Seed of the initial weights.
    dtype : float32 (default) or float64
    **config
        The model's constructor arguments, e.g. a checkpoint's ``model.config``.
    """
    if name not in MODELS:
        raise ValueError(f"build_model: expected a model name in {list_models()}, got {name!r}")
    return MODELS[name](**config, rng=rng, dtype=dtype)


class SegmentationModel(Module):
    """Base of minseg's models: ``forward(x) -> logits``, ``backward(dlogits) -> dx``, ``config``, ``predict``.

    Subclasses call ``super().__init__(**config)`` with exactly the constructor
    arguments that rebuild them (everything except ``rng`` and ``dtype``).

    Attributes
    ----------
    name : str
        The registry name (set by ``register_model``).
    config : dict
        ``build_model(model.name, **model.config)`` rebuilds the architecture.
    """

    name = None

    def __init__(self, **config):
        super().__init__()
        self.config = dict(config)

    def predict(self, x):
        """Class ids (N, H, W): the argmax of the logits in evaluation mode (the mode is restored after).

        Raises
        ------
        ValueError
            When ``x`` holds a NaN or inf pixel (the message counts them and names
            the first), or when the logits do (weights that are not finite):
            ``argmax`` would silently call such a pixel class 0 or the class of the NaN.
        """
        check_finite(f"{type(self).__name__}.predict", x)
        was_training = self.training
        self.eval()
        try:
            logits = self.forward(x)
        finally:
            self.train(was_training)
        check_finite(f"{type(self).__name__}.predict", logits, "logits", "(are the weights finite?)")
        return logits.argmax(axis=1)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())


def check_finite(name: str, x, what: str = "x", hint: str = ""):
    """Raise a clear ValueError when the floating array ``x`` holds a NaN or inf (non-arrays pass through)."""
    if not hasattr(x, "dtype") or x.dtype.kind not in "fc":
        return
    xp = get_array_module(x)
    bad = ~xp.isfinite(x)
    if bool(bad.any()):
        first = tuple(int(i) for i in xp.argwhere(bad)[0])
        raise ValueError(f"{name}: expected finite values in {what}, got {int(bad.sum())} NaN or inf in {what} "
                         f"of shape {tuple(x.shape)}, the first at index {first}{' ' + hint if hint else ''}")


def check_input(name: str, x, in_channels: int, min_size: int = 1):
    """Raise clear errors for a model input that is not (N, in_channels, H, W) float with H, W >= min_size."""
    if not hasattr(x, "ndim") or x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{name}: expected x of shape (N, {in_channels}, H, W), "
                         f"got shape {tuple(getattr(x, 'shape', ()))}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected x with a floating dtype, got dtype {x.dtype}")
    if min(x.shape[2:]) < min_size:
        raise ValueError(f"{name}: expected H and W >= {min_size}, got shape {tuple(x.shape)}")
    return get_array_module(x)
