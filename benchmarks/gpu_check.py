"""The prepared device check: minseg on CuPy, verified and timed in one command (at most 5 minutes).

    python benchmarks/gpu_check.py [--out gpu_check.json] [--budget 300]

On a machine with a usable CUDA device and the ``gpu`` extra (``pip install -e ".[gpu]"``):

1. the CuPy test cases: ``python -m pytest -m gpu -q`` over the test files that
   use the ``xp`` fixture (each compares CuPy with NumPy in float64);
2. one U-Net and one FCN-8s training step in float64 on the GPU and on the CPU,
   from the same seed: the loss and every parameter gradient must agree to 1e-10
   (relative to the largest entry);
3. timings of conv2d forward + backward (N=8, 64->64 channels, 64x64), conv_transpose2d,
   max-pool + unpool, bilinear x2 and a U-Net training step, minseg on CuPy beside
   PyTorch CUDA when ``torch.cuda.is_available()``;
4. the training loop's device path (what ``minseg train --device gpu`` runs): two
   epochs of a tiny U-Net through ``minseg.train.train`` on the GPU and on the CPU
   from the same seed, in float32 (per-epoch loss to 1e-4 relative, validation mIoU
   to 1e-3), and the GPU's checkpoint loaded onto the CPU with the same weights.

It writes one JSON file and prints a table. Without a usable GPU
(``minseg.backend.has_gpu()`` is False) it says what was skipped and why, writes
the JSON with the reason, and exits 0.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from minseg import backend  # noqa: E402

XP_TEST_FILES = ["test_activations.py", "test_backend.py", "test_conv.py", "test_conv_matrix.py",
                 "test_conv_transpose.py", "test_interpolate.py", "test_losses.py", "test_metrics.py",
                 "test_nn.py", "test_pooling.py"]
STEPS = ["cupy test cases (pytest -m gpu)", "U-Net and FCN-8s training step GPU vs CPU (float64, 1e-10)",
         "timings minseg CuPy vs torch CUDA",
         "minseg.train on the GPU vs the CPU (float32, 2 epochs) and a GPU checkpoint loaded on the CPU"]
TOLERANCE = 1e-10


def no_gpu_reason() -> str | None:
    """Why the device check cannot run here, or None when a CUDA device is usable."""
    return backend.gpu_unavailable_reason()


def rel_diff(a, b) -> float:
    """max |a - b| / max(|b|, tiny): the agreement of two arrays relative to the reference's scale."""
    a, b = backend.to_numpy(a), backend.to_numpy(b)
    scale = max(float(np.abs(b).max(initial=0.0)), 1e-300)
    return float(np.abs(a - b).max(initial=0.0)) / scale


# ------------------------------------------------------------------ 1. the CuPy test cases

def run_gpu_tests(timeout_s: float) -> dict:
    """Run the xp-fixture tests with ``-m gpu`` in a subprocess; return counts, return code and the tail."""
    files = [str(ROOT / "tests" / f) for f in XP_TEST_FILES if (ROOT / "tests" / f).exists()]
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *files]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"ok": False, "returncode": None, "seconds": timeout_s, "summary": f"timed out after {timeout_s:.0f} s"}
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    return {"ok": proc.returncode == 0, "returncode": proc.returncode, "seconds": time.perf_counter() - t0,
            "summary": lines[-1] if lines else "", "tail": "\n".join(lines[-30:])}


# ------------------------------------------------------------------ 2. one training step, GPU vs CPU

def _step_grads(model, x, y):
    """Forward, loss, backward in float64; return (loss, {name: grad on the host})."""
    from minseg.ops import cross_entropy, cross_entropy_backward  # noqa: PLC0415

    model.zero_grad()
    loss, cache = cross_entropy(model.forward(x), y, ignore_index=255)
    model.backward(cross_entropy_backward(1.0, cache))
    return float(loss), {n: backend.to_numpy(p.grad) for n, p in model.named_parameters() if p.grad is not None}


def compare_step(name: str, config: dict, size: int = 32, batch: int = 2) -> dict:
    """One training step of ``name`` on the CPU and on the GPU from the same seed; the largest relative difference."""
    from minseg.models import build_model  # noqa: PLC0415

    rng = np.random.default_rng(0)
    x = rng.random((batch, 3, size, size))                       # (N, 3, H, W) float64
    y = rng.integers(0, config["num_classes"], size=(batch, size, size))
    y[:, 0, :3] = 255                                            # a few ignored pixels
    cpu = build_model(name, rng=0, dtype=np.float64, **config)
    gpu = build_model(name, rng=0, dtype=np.float64, **config).to("gpu")
    loss_c, g_c = _step_grads(cpu, x, y)
    loss_g, g_g = _step_grads(gpu, backend.to_device(x, "gpu"), backend.to_device(y, "gpu"))
    missing = sorted(set(g_c) ^ set(g_g))
    grad_diff = max((rel_diff(g_g[k], g_c[k]) for k in g_c if k in g_g), default=0.0)
    loss_diff = abs(loss_g - loss_c) / max(abs(loss_c), 1e-300)
    ok = not missing and loss_diff <= TOLERANCE and grad_diff <= TOLERANCE
    return {"model": name, "ok": ok, "loss_cpu": loss_c, "loss_gpu": loss_g, "loss_rel_diff": loss_diff,
            "max_grad_rel_diff": grad_diff, "n_grads": len(g_c), "grads_missing_on_one_side": missing}


# ------------------------------------------------------------------ 3. timings

def _gpu_time(fn, sync, repeats: int = 10, warmup: int = 2) -> float:
    """Median seconds of ``fn`` with the device synchronised around each call."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def timings() -> list[dict]:
    """minseg on CuPy (and torch CUDA where present) for the hot ops and a U-Net step, float32."""
    import cupy as cp  # noqa: PLC0415  (only reached when backend.has_gpu())

    from minseg import ops  # noqa: PLC0415
    from minseg.models import build_model  # noqa: PLC0415
    from minseg.optim import Adam  # noqa: PLC0415

    try:
        import torch  # noqa: PLC0415
        has_torch = bool(torch.cuda.is_available())
    except Exception:
        has_torch = False
    sync_cp = cp.cuda.Device().synchronize
    rng = np.random.default_rng(0)
    x = cp.asarray(rng.standard_normal((8, 64, 64, 64), dtype=np.float32))      # (N, C, H, W)
    w = cp.asarray(rng.standard_normal((64, 64, 3, 3), dtype=np.float32) * 0.05)
    y, cc = ops.conv2d(x, w, padding=1)
    dy = cp.ones_like(y)
    wt = cp.asarray(rng.standard_normal((64, 32, 2, 2), dtype=np.float32) * 0.05)  # (C_in, C_out, KH, KW)

    def conv_fb():
        out, cache = ops.conv2d(x, w, padding=1)
        ops.conv2d_backward(dy, cache)

    def pool_unpool():
        p, pc = ops.max_pool2d(x, 2)
        ops.max_unpool2d(p, pc.indices, 2)

    minseg_fns = {
        "conv2d fwd+bwd (8x64->64, 64x64, 3x3)": conv_fb,
        "conv_transpose2d fwd (8x64->32, 2x2 s2)": lambda: ops.conv_transpose2d(x, wt, stride=2),
        "max_pool2d + max_unpool2d (2x2)": pool_unpool,
        "bilinear x2 fwd (8x64x64x64)": lambda: ops.bilinear_interpolate(x, scale_factor=2),
    }
    model = build_model("unet", num_classes=5, in_channels=3, base_width=16, depth=3, rng=0).to("gpu")
    opt = Adam(model.parameters(), lr=1e-3)
    xs = cp.asarray(rng.random((16, 3, 64, 64), dtype=np.float32))
    ys = cp.asarray(rng.integers(0, 5, size=(16, 64, 64)))

    def unet_step():
        loss, cache = ops.cross_entropy(model.forward(xs), ys, ignore_index=255)
        model.backward(ops.cross_entropy_backward(1.0, cache))
        opt.step()

    minseg_fns["U-Net step (16x3x64x64, Adam)"] = unet_step
    torch_fns = {}
    if has_torch:
        import torch.nn.functional as F  # noqa: PLC0415
        from bench_unet import torch_unet  # noqa: PLC0415

        dev = torch.device("cuda")
        tx = torch.as_tensor(cp.asnumpy(x), device=dev).requires_grad_(True)
        tw = torch.as_tensor(cp.asnumpy(w), device=dev).requires_grad_(True)
        twt = torch.as_tensor(cp.asnumpy(wt), device=dev)
        tdy = torch.ones((8, 64, 64, 64), device=dev)

        def t_conv_fb():
            torch.autograd.grad(F.conv2d(tx, tw, padding=1), (tx, tw), tdy)

        def t_pool_unpool():
            p, idx = F.max_pool2d(tx.detach(), 2, return_indices=True)
            F.max_unpool2d(p, idx, 2)

        net = torch_unet(build_model("unet", num_classes=5, in_channels=3, base_width=16, depth=3, rng=0)).to(dev)
        topt = torch.optim.Adam(net.parameters(), lr=1e-3)
        txs, tys = torch.as_tensor(cp.asnumpy(xs), device=dev), torch.as_tensor(cp.asnumpy(ys), device=dev)

        def t_unet_step():
            topt.zero_grad()
            F.cross_entropy(net(txs), tys, ignore_index=255).backward()
            topt.step()

        names = list(minseg_fns)
        torch_fns = {names[0]: t_conv_fb,
                     names[1]: lambda: F.conv_transpose2d(tx.detach(), twt, stride=2),
                     names[2]: t_pool_unpool,
                     names[3]: lambda: F.interpolate(tx.detach(), scale_factor=2, mode="bilinear"),
                     names[4]: t_unet_step}
    rows = []
    for name, fn in minseg_fns.items():
        row = {"op": name, "minseg_cupy_ms": _gpu_time(fn, sync_cp) * 1e3, "torch_cuda_ms": None, "ratio": None}
        if name in torch_fns:
            row["torch_cuda_ms"] = _gpu_time(torch_fns[name], torch.cuda.synchronize) * 1e3
            row["ratio"] = row["minseg_cupy_ms"] / row["torch_cuda_ms"]
        rows.append(row)
    return rows


# ------------------------------------------------------------------ 4. the training loop's device path

def _squares(n: int, seed: int, split: str, size: int = 16):
    """A tiny dataset: bright squares (class 1) on a dark background (class 0), the top row ignored."""
    from minseg import data  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.3, size=(n, 3, size, size)).astype(np.float32)
    labels = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        r, c = rng.integers(0, size - 6, size=2)
        images[i, :, r:r + 6, c:c + 6] += 0.6
        labels[i, r:r + 6, c:c + 6] = 1
    instances = labels.astype(np.int32)
    labels[:, 0, :] = 255
    return data.Dataset(images=images, labels=labels, instances=instances, class_names=("background", "square"),
                        palette=np.array([[0, 0, 0], [200, 50, 50]], dtype=np.uint8), things=(False, True),
                        ignore_index=255, name="squares", split=split)


def compare_training(loss_rtol: float = 1e-4, miou_atol: float = 1e-3) -> dict:
    """Two epochs of ``minseg.train.train`` on the GPU and on the CPU from one seed; a GPU checkpoint onto the CPU."""
    import tempfile  # noqa: PLC0415

    from minseg.models import build_model  # noqa: PLC0415
    from minseg.train import TrainConfig, load_checkpoint, train  # noqa: PLC0415

    train_set, val_set = _squares(32, 0, "train"), _squares(16, 1, "val")
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.01, progress=False)
    config = {"num_classes": 2, "in_channels": 3, "base_width": 4, "depth": 2}
    cpu = build_model("unet", rng=0, **config)
    gpu = build_model("unet", rng=0, **config).to("gpu")
    with tempfile.TemporaryDirectory() as tmp:
        h_cpu = train(cpu, train_set, val_set, cfg, out_dir=Path(tmp) / "cpu", log=lambda line: None)
        h_gpu = train(gpu, train_set, val_set, cfg, out_dir=Path(tmp) / "gpu", log=lambda line: None)
        back, _ = load_checkpoint(Path(tmp) / "gpu" / "last.npz")
    gpu_state = gpu.state_dict()
    weights_diff = max(rel_diff(v, gpu_state[k]) for k, v in back.state_dict().items())
    loss_diff = max(abs(g["loss"] - c["loss"]) / abs(c["loss"]) for g, c in zip(h_gpu.epochs, h_cpu.epochs))
    miou_diff = max(abs(g["val_miou"] - c["val_miou"]) for g, c in zip(h_gpu.epochs, h_cpu.epochs))
    ok = (gpu.device == "gpu" and back.device == "cpu" and loss_diff <= loss_rtol and miou_diff <= miou_atol
          and weights_diff == 0.0)
    return {"ok": ok, "loss_rel_diff": loss_diff, "val_miou_abs_diff": miou_diff,
            "checkpoint_weights_rel_diff": weights_diff,
            "losses_cpu": [e["loss"] for e in h_cpu.epochs], "losses_gpu": [e["loss"] for e in h_gpu.epochs],
            "val_miou_cpu": [e["val_miou"] for e in h_cpu.epochs], "val_miou_gpu": [e["val_miou"] for e in h_gpu.epochs]}


# ------------------------------------------------------------------ driver

def _print_table(result: dict) -> None:
    tests = result.get("tests")
    if tests:
        print(f"cupy test cases: {'PASS' if tests['ok'] else 'FAIL'}  ({tests['summary']})")
    for s in result.get("training_step", []):
        print(f"{s['model']:>6} step GPU vs CPU: {'PASS' if s['ok'] else 'FAIL'}  loss rel diff "
              f"{s['loss_rel_diff']:.1e}, max grad rel diff {s['max_grad_rel_diff']:.1e} over {s['n_grads']} grads")
    tr = result.get("training_loop")
    if tr:
        print(f"minseg.train GPU vs CPU: {'PASS' if tr['ok'] else 'FAIL'}  loss rel diff {tr['loss_rel_diff']:.1e}, "
              f"val mIoU diff {tr['val_miou_abs_diff']:.1e}, GPU checkpoint on the CPU: weights rel diff "
              f"{tr['checkpoint_weights_rel_diff']:.1e}")
    rows = result.get("timings", [])
    if rows:
        print(f"{'op':<42} {'minseg cupy ms':>15} {'torch cuda ms':>14} {'ratio':>7}")
        for r in rows:
            t = "-" if r["torch_cuda_ms"] is None else f"{r['torch_cuda_ms']:.3f}"
            q = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
            print(f"{r['op']:<42} {r['minseg_cupy_ms']:>15.3f} {t:>14} {q:>7}")
    for e in result.get("errors", []):
        print(f"ERROR in {e['step']}: {e['error']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json", help="where to write the JSON (default gpu_check.json)")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the whole check (default 300)")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    reason = no_gpu_reason()
    if reason is not None:
        result = {"status": "skipped", "reason": reason, "skipped": STEPS}
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"gpu_check: SKIPPED, no GPU check ran: {reason}.")
        print("  skipped: " + "; ".join(STEPS))
        print(f"  wrote {args.out}")
        return 0
    result = {"status": "ran", "errors": []}
    try:
        result["tests"] = run_gpu_tests(timeout_s=0.5 * args.budget)
    except Exception as exc:  # report and go on: the other parts are still worth having
        result["errors"].append({"step": STEPS[0], "error": repr(exc)})
    try:
        result["training_step"] = [
            compare_step("unet", {"num_classes": 4, "in_channels": 3, "base_width": 4, "depth": 2}),
            compare_step("fcn8s", {"num_classes": 4, "in_channels": 3, "widths": (4, 4, 8, 8, 8),
                                   "convs": (1, 1, 1, 1, 1), "fc_channels": 8}),
        ]
    except Exception as exc:
        result["errors"].append({"step": STEPS[1], "error": repr(exc)})
    try:
        result["timings"] = timings()
    except Exception as exc:
        result["errors"].append({"step": STEPS[2], "error": repr(exc)})
    try:
        result["training_loop"] = compare_training()
    except Exception as exc:
        result["errors"].append({"step": STEPS[3], "error": repr(exc)})
    result["seconds"] = time.perf_counter() - t_start
    result["ok"] = (not result["errors"] and result.get("tests", {}).get("ok", False)
                    and all(s["ok"] for s in result.get("training_step", []))
                    and result.get("training_loop", {}).get("ok", False))
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    _print_table(result)
    print(f"gpu_check: {'PASS' if result['ok'] else 'FAIL'} in {result['seconds']:.0f} s; wrote {args.out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
