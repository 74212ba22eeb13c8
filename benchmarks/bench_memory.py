"""Peak memory of a U-Net training step: minseg vs the same network in PyTorch, each in a fresh process.

    python benchmarks/bench_memory.py [--base-width 16] [--depth 3] [--batch 16] [--size 64] [--runs 3]

The step is ``bench_unet.py``'s (forward, cross-entropy, backward, Adam,
float32, batch 16 x 3 x 64 x 64, base width 16, depth 3). Measures, each in
a new Python process per run (so nothing is shared or cached across
libraries or runs):

- peak RSS (both libraries, the same measure): the kernel's high-water mark
  ``VmHWM`` (reset with ``/proc/self/clear_refs`` just before the step) over
  the third step, above the resident set after the imports and one tiny
  warm-up step (which pages in each library's code and lazily built runtime
  state), before the data, model and optimiser existed: everything training holds at its peak; and
  the growth above the resident set just before the step, for the first step
  (it also creates Adam's moments) and the third. The workers run with ``MALLOC_MMAP_THRESHOLD_=131072``, so every
  large array of either library is its own mmap, returned to the system when
  freed: without it glibc raises its threshold as blocks are freed and keeps
  freed memory in the heap, and the baseline of a later step would already
  hold the previous step's temporaries.
- minseg only, in its own processes: the ``tracemalloc`` peak of the third
  step (NumPy reports its array buffers to tracemalloc; tracing from before
  the data were made): exactly the bytes of arrays alive at once, without
  allocator or interpreter overheads, in all and above the step's start.

Prints the median and the range over the runs, and the ratio of the medians.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MIB = 2 ** 20


def _kib(field: str) -> int:
    """A ``/proc/self/status`` field in bytes (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_growth(step) -> int:
    """Bytes: the resident high-water mark during ``step()`` above the resident size just before it."""
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
    base = _kib("VmRSS")
    step()
    return _kib("VmHWM") - base


def worker(lib: str, mode: str, args) -> dict:
    """Build the step of ``lib`` and measure it (``mode``: "rss" or "tracemalloc"); returns the numbers."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    from minseg.models import build_model  # noqa: PLC0415
    from minseg.ops import cross_entropy, cross_entropy_backward  # noqa: PLC0415
    from minseg.optim import Adam  # noqa: PLC0415

    if lib == "torch":
        import torch  # noqa: PLC0415
        from bench_unet import torch_unet  # noqa: PLC0415

    def make_step(batch, size, base_width):
        rng = np.random.default_rng(0)
        x = rng.random((batch, 3, size, size), dtype=np.float32)
        y = rng.integers(0, 5, size=(batch, size, size))
        y[:, 0] = 255
        model = build_model("unet", num_classes=5, in_channels=3, base_width=base_width, depth=args.depth, rng=0)
        return model, make_lib_step(model, x, y)

    def make_lib_step(model, x, y):
        if lib == "minseg":
            opt = Adam(model.parameters(), lr=1e-3)

            def step():
                opt.zero_grad()
                loss, cache = cross_entropy(model.forward(x), y, ignore_index=255)
                model.backward(cross_entropy_backward(1.0, cache))
                opt.step()
        else:
            net = torch_unet(model).train()
            topt = torch.optim.Adam(net.parameters(), lr=1e-3)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)

            def step():
                topt.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(tx), ty, ignore_index=255)
                loss.backward()
                topt.step()
        return step

    # page in both libraries' code and lazily made runtime state (thread pools, kernels) with a tiny step
    tiny_model, tiny = make_step(1, 2 ** args.depth * 2, 2)
    for _ in range(2):
        tiny()
    del tiny, tiny_model
    gc.collect()
    if mode == "tracemalloc":
        tracemalloc.start()
    base = _kib("VmRSS")  # everything imported and run once, nothing of this step built
    model, step = make_step(args.batch, args.size, args.base_width)
    out = {"parameters": model.num_parameters()}
    if lib == "torch":
        del model
    if mode == "rss":
        out["rss_first"] = _peak_growth(step)
        step()
        Path("/proc/self/clear_refs").write_text("5")
        before = _kib("VmRSS")
        step()
        out["rss_steady"] = _kib("VmHWM") - before
        out["rss_total"] = _kib("VmHWM") - base
    else:
        step()
        step()
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        step()
        peak = tracemalloc.get_traced_memory()[1]
        out["tracemalloc_step"] = peak - start
        out["tracemalloc_total"] = peak
        tracemalloc.stop()
    return out


def run_worker(lib: str, mode: str, argv: list) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    res = subprocess.run([sys.executable, __file__, "--worker", lib, "--mode", mode, *argv], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _fmt(vals) -> str:
    return f"{np.median(vals) / MIB:7.1f} MiB [{min(vals) / MIB:.1f} - {max(vals) / MIB:.1f}]"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", choices=["minseg", "torch"])
    parser.add_argument("--mode", choices=["rss", "tracemalloc"], default="rss")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.mode, args)))
        return
    passed = [f"--base-width={args.base_width}", f"--depth={args.depth}", f"--batch={args.batch}",
              f"--size={args.size}"]
    res = {"minseg": [], "torch": []}
    for _ in range(args.runs):  # alternate, so both see the same machine load
        for lib in res:
            res[lib].append(run_worker(lib, "rss", passed))
    traced = [run_worker("minseg", "tracemalloc", passed) for _ in range(args.runs)]
    n_par = res["minseg"][0]["parameters"]
    act = args.batch * args.base_width * args.size * args.size * 4
    print(f"U-Net base_width={args.base_width} depth={args.depth} ({n_par:,} parameters, "
          f"{n_par * 4 / MIB:.1f} MiB each for weights, gradients, Adam's m and v), batch {args.batch} x 3 x "
          f"{args.size} x {args.size}, float32; one (N, {args.base_width}, H, W) activation is {act / MIB:.1f} MiB")
    print(f"peak memory of a training step, {args.runs} fresh processes per library, median [range]:")
    for key, what in (("rss_total", "RSS high-water mark of the 3rd step"),
                      ("rss_first", "RSS growth in the 1st step"),
                      ("rss_steady", "RSS growth in the 3rd step")):
        m, t = [r[key] for r in res["minseg"]], [r[key] for r in res["torch"]]
        print(f"  {what:36s} minseg {_fmt(m)}   torch {_fmt(t)}   ratio {np.median(m) / np.median(t):.2f}")
    print("    (high-water mark: above the RSS after the imports and a tiny warm-up step, before this step's data,")
    print("     model and optimiser existed;")
    print("     growth: above the RSS just before that step; minseg's layers keep their last caches between steps,")
    print("     PyTorch frees its graph after backward, so growth alone favours minseg)")
    print(f"  {'tracemalloc peak, all NumPy arrays':36s} minseg {_fmt([r['tracemalloc_total'] for r in traced])}")
    print(f"  {'tracemalloc peak above step start':36s} minseg {_fmt([r['tracemalloc_step'] for r in traced])}")


if __name__ == "__main__":
    main()
