# Lesson 09: the same code on a GPU (exercise and solution notebooks are built from this file).

# %% [markdown]
# # 09 · The same code on a GPU
#
# Every op in minseg is written once, against an array module `xp`, and runs on NumPy arrays in host
# memory or on CuPy arrays in GPU memory. CuPy copies NumPy's interface (`cupy.zeros`, `cupy.matmul`,
# `a.reshape`, fancy indexing, ...), so the same source does both; what changes is *where the arrays
# live*, and that brings three rules:
#
# 1. **Ask the array which module to use**: `xp = get_array_module(x)` at the top of an op, then
#    `xp.zeros`, `xp.matmul`, never `np.` on an array that may be on the GPU.
# 2. **Move data explicitly, once**: `to_device(x, "gpu")`, `Module.to("gpu")`, `to_numpy(y)`. A hidden
#    copy between host and GPU inside a training step costs more than the step's arithmetic.
# 3. **Accumulate repeated indices with `scatter_add`**: `a[idx] += v` keeps only one of the values of
#    a repeated index, and on a GPU which one is not even defined.
#
# This lesson shows each rule on the CPU, and runs the same cells on a GPU when one is usable. Where
# there is none, the GPU cells print why they were skipped, and the rest of the lesson still runs.

# %%
import ast
import importlib.util
import inspect
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minseg.ops as ops_package
from minseg import backend, exercises
from minseg.backend import get_array_module, scatter_add, scatter_add_flat, to_device, to_numpy
from minseg.data import load_dataset
from minseg.metrics import SegmentationMetrics
from minseg.models import build_model
from minseg.ops import conv2d, conv2d_backward, cross_entropy, cross_entropy_backward, interpolation_matrix, relu
from minseg.ops.interpolate import linear_taps
from minseg.optim import Adam

QUICK = os.environ.get("MINSEG_LESSONS_QUICK") == "1"
REPEATS = 2 if QUICK else 5            # timing repeats (section 5); the median is reported
np.set_printoptions(precision=4, suppress=True, linewidth=120)

GPU = backend.has_gpu()
WHY_NOT = backend.gpu_unavailable_reason()
if GPU:
    import cupy as cp

    print("GPU:", cp.cuda.runtime.getDeviceProperties(0)["name"].decode(), "| CuPy", cp.__version__)
else:
    print("no GPU here:", WHY_NOT)
    print("the GPU cells below will say they were skipped; everything else runs on the CPU")

# %% [markdown]
# `backend.has_gpu()` is the test to use, never "does `import cupy` work": CuPy can be installed on a
# machine without a usable CUDA device, where it imports and then fails at the first allocation.
# `QUICK` (the quick setting the test suite uses for the exercise notebooks) only lowers the number of
# timing repeats in section 5.
#
# ## 1. NumPy arrays and CuPy arrays
#
# A NumPy array lives in host memory (RAM) and its operations run on the CPU. A CuPy array lives in the
# memory of a GPU and its operations launch GPU kernels; the result is again a CuPy array, on the same
# device. Nothing comes back to the host until asked for.

# %%
x = np.arange(12.0).reshape(3, 4)                            # (3, 4) in host memory
print(type(x).__module__ + "." + type(x).__name__, x.dtype, x.shape)
print("get_array_module(x) ->", get_array_module(x).__name__)

# %%
if GPU:
    x_gpu = cp.asarray(x)                                    # a copy, host -> device
    y_gpu = (x_gpu * 2).sum(axis=1)                          # computed on the GPU; still a device array
    print(type(y_gpu).__module__ + "." + type(y_gpu).__name__, "on device", y_gpu.device, ":", y_gpu)
    print("get_array_module(x_gpu) ->", get_array_module(x_gpu).__name__)
    print("y_gpu.get() copies it back to the host:", type(y_gpu.get()).__name__, y_gpu.get())
    try:
        np.asarray(x_gpu)
    except TypeError as err:
        print("np.asarray(x_gpu) refuses:", err)
    try:
        get_array_module(x, x_gpu)
    except TypeError as err:
        print("mixing a NumPy and a CuPy array:", err)
else:
    print("skipped (no GPU):", WHY_NOT)

# %% [markdown]
# Two refusals matter. CuPy will not turn a device array into a NumPy array behind your back
# (`np.asarray` raises; `.get()` or `to_numpy` is the explicit copy), and minseg will not mix the two
# kinds in one call. Both turn a silent, slow copy into an error at the line that caused it.
#
# Moving is one function each way. Without a GPU, asking for one is a clear error:

# %%
host = to_numpy(x)                                           # a NumPy array stays as it is
print("to_numpy(x) is x:", host is x)
try:
    to_device(x, "gpu")
except RuntimeError as err:
    print("to_device(x, 'gpu'):", err)
else:
    print("to_device(x, 'gpu') made a", type(to_device(x, "gpu")).__name__)

# %% [markdown]
# ## 2. One source for both: `get_array_module`
#
# Here is a whole minseg op, `relu`. The only line that knows about devices is the `xp = ...` line;
# after it, `xp.maximum` is `numpy.maximum` for NumPy input and `cupy.maximum` for CuPy input.

# %%
source = inspect.getsource(relu)
print(source[source.index("    check_array"):])

# %% [markdown]
# A function of our own written the same way runs on either device unchanged. The softplus
# `log(1 + e^x)`, in the overflow-free form `max(x, 0) + log(1 + e^(-|x|))`:

# %%
def softplus(x):
    """``log(1 + exp(x))`` elementwise, on the device of ``x``."""
    xp = get_array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


z = np.linspace(-3.0, 3.0, 7)
print("z          :", z)
print("softplus(z):", softplus(z))

# %%
if GPU:
    on_gpu = softplus(cp.asarray(z))
    print(type(on_gpu).__module__, "| max |GPU - CPU| =", float(np.abs(on_gpu.get() - softplus(z)).max()))
else:
    print("skipped (no GPU):", WHY_NOT)

# %% [markdown]
# ## 3. A model on the device: `Module.to`, and what the training loop moves
#
# A model is initialised on the host from its seed and then moved: `model.to("gpu")` replaces every
# parameter and buffer by a device copy, so the same seed gives the same weights on both devices.
# `model.device` says where it is. The optimiser is built after the move; its state lives next to the
# parameters.
#
# `minseg.train` then keeps the data on the host and moves **each batch** to the model's device; the
# loss comes back as one number per step; validation accumulates the confusion matrix **on the device**
# (one bincount per batch) and copies only that `K x K` matrix to the host at the end; checkpoints are
# written from host copies, so a checkpoint saved on either device loads on either
# (`load_checkpoint(path, device="gpu")`). From the command line: `minseg train ... --device gpu`.

# %%
ds = load_dataset("shapes", "train")
images, labels = ds.images[:8].astype(np.float64), ds.labels[:8]        # (8, 3, 64, 64), (8, 64, 64)
cpu_model = build_model("unet", num_classes=len(ds.class_names), in_channels=3, base_width=8, depth=2,
                        rng=0, dtype=np.float64)
print("cpu_model.device:", cpu_model.device, "| parameters:", f"{cpu_model.num_parameters():,}")
logits_cpu = cpu_model.forward(images)                                  # (8, K, 64, 64)
pred_cpu = logits_cpu.argmax(axis=1)                                    # (8, 64, 64)
m_cpu = SegmentationMetrics(len(ds.class_names), class_names=ds.class_names)
m_cpu.update(pred_cpu, labels)
print("logits", logits_cpu.shape, "| untrained mIoU on these 8 images:", round(m_cpu.compute()["miou"], 4))

# %%
if GPU:
    gpu_model = build_model("unet", num_classes=len(ds.class_names), in_channels=3, base_width=8, depth=2,
                            rng=0, dtype=np.float64).to("gpu")
    same = all(np.array_equal(to_numpy(g.data), c.data)
               for g, c in zip(gpu_model.parameters(), cpu_model.parameters()))
    print("gpu_model.device:", gpu_model.device, "| same initial weights as on the CPU:", same)
    logits_gpu = gpu_model.forward(to_device(images, "gpu"))           # the batch moved once
    print("max |logits GPU - CPU| (float64):", float(np.abs(to_numpy(logits_gpu) - logits_cpu).max()))
    m_gpu = SegmentationMetrics(len(ds.class_names))
    m_gpu.update(logits_gpu.argmax(axis=1), to_device(labels, "gpu"))  # accumulated on the GPU
    print("confusion matrices equal:", np.array_equal(m_gpu.cm, m_cpu.cm), "(m_gpu.cm is the host copy)")
else:
    print("skipped (no GPU):", WHY_NOT)

# %% [markdown]
# ## 4. Repeated indices: why every accumulation goes through `scatter_add`
#
# Backward passes *scatter*: each output pixel sends its gradient back to the input pixels it read, and
# several outputs read the same input. Written with fancy indexing, `a[idx] += v` looks like a loop
# over `idx` but is not: NumPy reads all of `a[idx]` first, adds `v`, and writes each result back, so
# for a repeated index the later writes overwrite the earlier ones and only **one** value survives.
# `np.add.at` is the unbuffered version that really adds every value; `np.bincount` with weights does
# the same for flat indices, faster.

# %%
idx = np.array([0, 1, 1, 3, 3, 3])                          # index 1 twice, index 3 three times
fancy = np.zeros(5)
fancy[idx] += 1.0
add_at = np.zeros(5)
np.add.at(add_at, idx, 1.0)
counted = np.bincount(idx, weights=np.ones(len(idx)), minlength=5)
print("idx                         :", idx)
print("a[idx] += 1       (fancy)   :", fancy)
print("np.add.at(a, idx, 1)        :", add_at)
print("np.bincount(idx, minlength) :", counted)
print("scatter_add_flat(idx, 1, 5) :", scatter_add_flat(idx, np.ones(len(idx)), 5))

# %% [markdown]
# On a GPU the fancy version is worse than wrong: many threads write `a[idx]` at once, and
# which of the repeated writes lands is undefined, so the answer can change from run to run. CuPy's
# `cupyx.scatter_add` does atomic adds instead. `minseg.backend.scatter_add(target, indices, values)`
# picks `np.add.at` or `cupyx.scatter_add`, and `scatter_add_flat` picks `np.bincount` or an atomic
# scatter, so the op's source is the same for both.
#
# A real case: the backward of bilinear upsampling. Upsampling a row of 4 pixels to 8, output `o`
# reads `lam0[o] * x[i0[o]] + lam1[o] * x[i1[o]]` (the taps of lesson 03), which is `y = A x` with
# `A = interpolation_matrix(4, 8)`. Its backward is `dx = A^T dy`: each input pixel collects from every
# output that read it, and the indices `i0`, `i1` repeat.

# %%
i0, i1, lam0, lam1 = linear_taps(4, 8)                       # (8,) each
dy = np.arange(1.0, 9.0)                                     # (8,) an upstream gradient
dx_true = interpolation_matrix(4, 8).T @ dy                  # (4,) the adjoint, as a matrix product
dx_fancy = np.zeros(4)
dx_fancy[i0] += lam0 * dy                                    # repeated i0: contributions lost
dx_fancy[i1] += lam1 * dy
dx_scatter = np.zeros(4)
scatter_add(dx_scatter, i0, lam0 * dy)                       # every contribution added
scatter_add(dx_scatter, i1, lam1 * dy)
print("i0 =", i0, " i1 =", i1)
print("dx = A^T dy          :", dx_true)
print("dx with a[idx] += v  :", dx_fancy)
print("dx with scatter_add  :", dx_scatter)
print("scatter_add matches A^T dy:", np.allclose(dx_scatter, dx_true), "| fancy matches:", np.allclose(dx_fancy, dx_true))

# %%
fig, ax = plt.subplots(figsize=(7, 3))
pos = np.arange(4)
for k, (name, v) in enumerate([("A^T dy", dx_true), ("a[idx] += v", dx_fancy), ("scatter_add", dx_scatter)]):
    ax.bar(pos + (k - 1) * 0.27, v, width=0.27, label=name)
ax.set_xticks(pos, [f"x[{i}]" for i in pos])
ax.set_ylabel("gradient")
ax.set_title("bilinear 4 -> 8, backward: fancy += loses the repeated contributions")
ax.legend()
plt.show()

# %% [markdown]
# The same on the GPU, where the fancy version's answer is whichever writes happened to land:

# %%
if GPU:
    idx_gpu = cp.asarray(idx)
    fancy_gpu = cp.zeros(5)
    fancy_gpu[idx_gpu] += 1.0
    right_gpu = cp.zeros(5)
    scatter_add(right_gpu, idx_gpu, cp.ones(len(idx)))
    print("GPU a[idx] += 1      :", fancy_gpu.get())
    print("GPU scatter_add      :", right_gpu.get())
else:
    print("skipped (no GPU):", WHY_NOT)

# %% [markdown]
# Which minseg op modules accumulate through the backend's scatter functions, counted from their
# source (the calls, not the mentions in docstrings):

# %%
def scatter_calls(module):
    """``{"scatter_add": n, "scatter_add_flat": m}``: the calls of each in ``module``'s source."""
    calls = {"scatter_add": 0, "scatter_add_flat": 0}
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in calls:
                calls[name] += 1
    return calls


for name in sorted(n for n in dir(ops_package) if inspect.ismodule(getattr(ops_package, n))):
    calls = scatter_calls(getattr(ops_package, name))
    if any(calls.values()):
        print(f"minseg.ops.{name:<14} " + ", ".join(f"{k}: {v} call{'s' * (v != 1)}" for k, v in calls.items()))

# %% [markdown]
# The convolution's `col2im` is not among them: it adds whole strided slices, one kernel tap at a
# time, and a slice never names an element twice, so `+=` is safe there.
#
# ## 5. Timings side by side
#
# The same two workloads on each device: a convolution forward and backward (8 images, 32 -> 32
# channels, 32 x 32, 3 x 3) and one U-Net training step (forward, cross-entropy, backward, Adam) on the
# 8 `shapes` images above, in float32. GPU times synchronise the device before the clock stops;
# the first calls (CuPy compiles its kernels then) are a warm-up and not timed.

# %%
def median_seconds(fn, sync=lambda: None, repeats=REPEATS):
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def workloads(xp):
    """The two timed functions, with their data made on the host and moved to ``xp``'s device."""
    rng = np.random.default_rng(0)
    move = (lambda a: a) if xp is np else cp.asarray
    x = move(rng.standard_normal((8, 32, 32, 32), dtype=np.float32))        # (N, C, H, W)
    w = move(rng.standard_normal((32, 32, 3, 3), dtype=np.float32) * 0.1)   # (C_out, C, KH, KW)
    dy = move(np.ones((8, 32, 32, 32), dtype=np.float32))

    def conv_fwd_bwd():
        y, cache = conv2d(x, w, padding=1)
        conv2d_backward(dy, cache)

    model = build_model("unet", num_classes=len(ds.class_names), in_channels=3, base_width=8, depth=2, rng=0)
    model.to("cpu" if xp is np else "gpu")
    opt = Adam(model.parameters(), lr=1e-3)
    xs, ys = move(ds.images[:8]), move(ds.labels[:8])

    def unet_step():
        opt.zero_grad()
        loss, cache = cross_entropy(model.forward(xs), ys, ignore_index=ds.ignore_index)
        model.backward(cross_entropy_backward(1.0, cache))
        opt.step()

    return {"conv2d fwd+bwd (8x32->32, 32x32)": conv_fwd_bwd, "U-Net step (8x3x64x64, Adam)": unet_step}


cpu_ms = {name: 1e3 * median_seconds(fn) for name, fn in workloads(np).items()}
gpu_ms = {}
if GPU:
    gpu_ms = {name: 1e3 * median_seconds(fn, cp.cuda.Device().synchronize) for name, fn in workloads(cp).items()}
print(f"{'workload':<34} {'CPU ms':>9} {'GPU ms':>9} {'speed-up':>9}")
for name, ms in cpu_ms.items():
    g = gpu_ms.get(name)
    print(f"{name:<34} {ms:>9.1f} {'-' if g is None else f'{g:.2f}':>9} {'-' if g is None else f'{ms / g:.1f}x':>9}")
if not GPU:
    print("GPU column skipped (no GPU):", WHY_NOT)

# %%
fig, ax = plt.subplots(figsize=(7, 3))
names = list(cpu_ms)
pos = np.arange(len(names))
ax.barh(pos + 0.2, [cpu_ms[n] for n in names], height=0.4, label="CPU (NumPy)")
if gpu_ms:
    ax.barh(pos - 0.2, [gpu_ms[n] for n in names], height=0.4, label="GPU (CuPy)")
ax.set_yticks(pos, names)
ax.set_xscale("log")
ax.set_xlabel("milliseconds (log scale)")
ax.set_title("the same minseg code on each device" + ("" if gpu_ms else " (no GPU here: CPU only)"))
ax.legend()
plt.show()

# %% [markdown]
# A small workload can be slower on a GPU than on the CPU: each op launches kernels, and for small
# arrays the launch overhead dominates the arithmetic. The gap opens with the batch and the image size
# (exercise 2 measures where).
#
# **Custom kernels.** minseg has no hand-written CUDA kernels: on a GPU every op runs its `xp` path,
# which is correct by construction. Kernels for im2col / col2im, the unpooling scatter and the bilinear
# scatter would be added only where the device check below shows the `xp` path too slow, and then
# compared with it:

# %%
print("minseg.kernels exists:", importlib.util.find_spec("minseg.kernels") is not None)

# %% [markdown]
# **The device check.** On a machine with a GPU, one command runs everything that needs it, in a few
# minutes: the CuPy test cases (every test that takes the `xp` fixture, compared with NumPy), a U-Net
# and an FCN-8s training step on GPU vs CPU (the same loss and gradients to 1e-10 in float64), and
# timings of the hot ops beside PyTorch CUDA; it writes `gpu_check.json`. Without a GPU it says what it
# skipped and why:
#
#     python benchmarks/gpu_check.py
#
# ## Summary
#
# * NumPy arrays live on the host, CuPy arrays on the GPU; CuPy has NumPy's interface, so minseg's ops
#   are written once against `xp = get_array_module(x)`.
# * Data move explicitly: `to_device(x, "gpu")`, `to_numpy(y)`, `model.to("gpu")`, `model.device`.
#   `minseg.train` moves each batch to the model's device, accumulates the confusion matrix there and
#   copies one `K x K` matrix back; checkpoints are host copies and load on either device;
#   `minseg train|eval|predict|demo --device gpu` does it from the command line.
# * `a[idx] += v` keeps one value per repeated index (on a GPU, an undefined one);
#   `backend.scatter_add` (`np.add.at` / `cupyx.scatter_add`) and `scatter_add_flat` (`np.bincount` /
#   an atomic scatter) add them all.
# * Small workloads may not gain from a GPU; `python benchmarks/gpu_check.py` measures minseg's ops
#   beside PyTorch CUDA and checks GPU against CPU.
#
# ## Exercises
#
# ### Exercise 1: `scatter_add_flat`
# Write `scatter_add_flat(indices, values, size)`: return `out` of shape `(size,)` with
# `out[i] = sum of values[indices == i]`, in the dtype of `values`. Indices repeat, and the last bins
# may be empty. `exercises.check` names the mistake when there is one.

# %% tags=["task"]
def scatter_add_flat_mine(indices, values, size):
    # hint: np.bincount(indices, weights=..., minlength=...) sums by index; mind the dtype it returns
    raise NotImplementedError


# %% tags=["solution"]
def scatter_add_flat_mine(indices, values, size):
    out = np.bincount(indices, weights=values, minlength=size)     # (size,) float64, repeats summed
    return out.astype(values.dtype)


# %%
r = exercises.check("scatter_add_flat", scatter_add_flat_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 2 (on a GPU)
# Time `conv2d` forward and backward for batch sizes 1, 4, 16 and 64 on both devices with
# `median_seconds` and plot the speed-up against the batch size. From which batch size on does the GPU
# win? Without a GPU, do the CPU half and note how the time grows with the batch.
