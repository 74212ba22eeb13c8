"""minseg: semantic segmentation from scratch in NumPy, with CuPy running the same code on a GPU.

Every op is a pair of functions, ``y, cache = op(x, ...)`` and
``grads = op_backward(dy, cache)``, exact to PyTorch's semantics::

    import minseg
    y, cache = minseg.conv2d(x, w, b, stride=1, padding=2, dilation=2)
    dx, dw, db = minseg.conv2d_backward(dy, cache)
    print(minseg.check_backward(minseg.conv2d, minseg.conv2d_backward, {"x": x, "w": w, "b": b}, padding=1))

Sub-packages: ``ops`` (the math), ``nn`` (layers), ``models``, ``optim``,
``metrics`` and ``panoptic``, ``data``, ``train``, ``viz`` (matplotlib on use),
``reference`` (loop versions), ``gradcheck``, ``check`` (minseg as a reference for a framework),
``backend``, ``shapes``.
"""
from . import backend, data, gradcheck, metrics, models, nn, ops, optim, panoptic, reference, shapes, train, viz
from . import check  # minseg as a reference: compare, check_op, the .npz format (torch only on use)
from .backend import get_array_module, has_gpu, to_device, to_numpy
from .gradcheck import check_backward, numerical_gradient, rel_error
from .metrics import SegmentationMetrics, confusion_matrix, mean_iou
from .models import build_model, list_models
from .ops import *  # noqa: F403  (the op pairs are minseg's public surface)
from .ops import __all__ as _ops_all
from .panoptic import PanopticQuality, panoptic_quality
from .train import TrainConfig, evaluate, load_checkpoint, save_checkpoint

__version__ = "0.1.0"

__all__ = [
    "backend", "shapes", "ops", "nn", "models", "optim", "metrics", "panoptic", "data", "train", "viz",
    "reference", "gradcheck", "check",
    "get_array_module", "has_gpu", "to_device", "to_numpy",
    "check_backward", "numerical_gradient", "rel_error",
    "confusion_matrix", "mean_iou", "SegmentationMetrics", "PanopticQuality", "panoptic_quality",
    "build_model", "list_models", "TrainConfig", "evaluate", "load_checkpoint", "save_checkpoint",
    *_ops_all,
]
