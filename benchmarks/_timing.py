"""Side-by-side timing helpers shared by the benchmark scripts.

Timings on a shared machine are noisy, so every comparison is made in one run:
the two libraries are timed in alternating blocks (each block: warm-up, then
repeats), with a short pause between blocks because BLAS / OpenMP worker
threads keep spinning for ~0.1 s after a call and would slow whatever runs
next. The reported figure is the median over all repeats, and the ratio is
minseg's median over PyTorch's.
"""
from __future__ import annotations

import os
import time

import numpy as np

PAUSE_S = 0.25


def run_times(fn, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; return the times in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def side_by_side(fns: dict, blocks: int = 5, repeats: int = 3) -> dict:
    """Time each callable of ``fns`` in alternating blocks; return name -> median seconds."""
    return {name: float(np.median(ts)) for name, ts in side_by_side_samples(fns, blocks, repeats).items()}


def side_by_side_samples(fns: dict, blocks: int = 5, repeats: int = 3) -> dict:
    """As ``side_by_side``, but return name -> every timed sample in seconds (for medians and spreads)."""
    samples = {name: [] for name in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            samples[name] += run_times(fn, repeats=repeats)
            time.sleep(PAUSE_S)
    return samples


def spread(ts) -> str:
    """``median [min - max] ms`` of samples in seconds."""
    return f"{np.median(ts) * 1e3:7.1f} ms [{min(ts) * 1e3:.1f} - {max(ts) * 1e3:.1f}]"


def gemm_rate(n: int = 2048, dtype=np.float32) -> float:
    """The machine's float32 matrix-product rate in GFLOP/s (NumPy's BLAS): the ceiling for conv."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    t = float(np.median(run_times(lambda: a @ b, repeats=5)))
    time.sleep(PAUSE_S)
    return 2 * n**3 / t / 1e9


def environment() -> str:
    """One line describing what the timings ran under."""
    import torch  # noqa: PLC0415

    return (f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"{os.cpu_count()} CPUs, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")


def print_header() -> None:
    """Print what every comparison needs beside its ratios: the environment and the GEMM ceiling."""
    print(environment())
    print(f"float32 GEMM (2048^3, NumPy BLAS): {gemm_rate():.0f} GFLOP/s")
