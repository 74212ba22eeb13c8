"""Shared fixtures: the ``xp`` fixture runs a test body on NumPy and, where a GPU is usable, on CuPy."""
import numpy as np
import pytest

from minseg import backend

_XP_PARAMS = [pytest.param("numpy", id="numpy"),
              pytest.param("cupy", id="cupy", marks=pytest.mark.gpu)]


@pytest.fixture(params=_XP_PARAMS)
def xp(request):
    """The array module under test: ``numpy`` always, ``cupy`` only when ``backend.has_gpu()``."""
    if request.param == "numpy":
        return np
    if not backend.has_gpu():
        pytest.skip("no usable CUDA device (cupy missing or cupy.cuda.is_available() is False)")
    import cupy  # noqa: PLC0415

    return cupy


@pytest.fixture
def torch():
    """PyTorch on one thread, for the conformance tests (skipped where torch is not installed).

    One thread makes tiny ops fast (no thread hand-offs), and it makes PyTorch's
    max_unpool2d deterministic where indices repeat (the last write wins).
    """
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def torch_or_skip():
    """Import torch for a conformance test, or skip it where torch is not installed."""
    return pytest.importorskip("torch")
