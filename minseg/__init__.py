"""minseg: semantic segmentation from scratch in NumPy, with CuPy running the same code on a GPU."""
from . import backend, shapes

__version__ = "0.1.0"
