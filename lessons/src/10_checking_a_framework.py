# Lesson 10: checking a framework (exercise and solution notebooks are built from this file).

# %% [markdown]
# # 10 · Checking a framework
#
# minseg is exact to PyTorch in float64, and every op is written out where it can be read. That makes it
# a **reference**: given what another framework computed, minseg recomputes the same op from the same
# inputs and says whether, how and where the two differ. This lesson checks PyTorch's convolution,
# transposed convolution, max-unpooling and bilinear interpolation, a whole small PyTorch model layer
# by layer, and torchmetrics' IoU and panoptic quality, and explains every difference it finds:
#
# 1. `compare` and `check_op` on PyTorch's `conv2d`, in float64 and float32;
# 2. `conv_transpose2d` and a forgotten `output_padding`;
# 3. max-unpooling after overlapping pooling windows: which cells receive two writes, and which one stays;
# 4. bilinear interpolation: the two `align_corners` grids, and TensorFlow 1's asymmetric resize;
# 5. `check_torch_model`: a model with one deliberately wrong layer, found at that layer;
# 6. the framework-neutral `.npz` file and `minseg check FILE.npz`;
# 7. torchmetrics' `JaccardIndex` and `MulticlassAccuracy` against `minseg.metrics`;
# 8. torchmetrics' `PanopticQuality` against `minseg.panoptic` (which follows COCO's `panopticapi`):
#    a VOID prediction pixel, a thing with instance 0, a class absent from both.
#
# **Without PyTorch.** Unlike lessons 00-09 this lesson uses torch and torchmetrics where they are
# installed. Where `import torch` fails (or with the environment variable `MINSEG_LESSONS_NO_TORCH=1`,
# which the tests use to run this path), every torch result is read from
# `lessons/data/10_torch_outputs.npz`, stored by `data_scripts/make_lesson10_outputs.py` (which runs
# this lesson with torch and records them), and the lesson says so. The inputs are always made here
# with NumPy; only what torch computed from them is stored.

# %%
import os
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

import minseg
from minseg import exercises
from minseg.check import check_op, compare, save_npz
from minseg.metrics import SegmentationMetrics
from minseg.ops import bilinear_interpolate, conv2d, max_unpool2d, max_unpool2d_backward
from minseg.ops.interpolate import linear_taps
from minseg.panoptic import PanopticQuality, encode_panoptic

np.set_printoptions(precision=4, suppress=True, linewidth=120)
T_START = time.perf_counter()

STORED_PATH = Path(minseg.__file__).resolve().parents[1] / "lessons" / "data" / "10_torch_outputs.npz"
RECORD = os.environ.get("MINSEG_LESSONS_RECORD")       # set by data_scripts/make_lesson10_outputs.py
HAVE_TORCH = False
if os.environ.get("MINSEG_LESSONS_NO_TORCH") == "1":
    WHY = "MINSEG_LESSONS_NO_TORCH=1"
else:
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        import torchmetrics
        from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
        from torchmetrics.detection import PanopticQuality as TorchPanopticQuality

        HAVE_TORCH = True
        WHY = ""
    except ImportError as err:
        WHY = f"import failed: {err}"
if HAVE_TORCH:
    torch.set_default_dtype(torch.float64)
    FRAMEWORK = f"torch {torch.__version__}, torchmetrics {torchmetrics.__version__}"
    print("live:", FRAMEWORK)
else:
    STORED = np.load(STORED_PATH, allow_pickle=False)
    FRAMEWORK = str(STORED["meta.framework"])
    print(f"no torch here ({WHY}): every torch / torchmetrics result below is READ FROM {STORED_PATH.name},")
    print(f"stored with {FRAMEWORK}")
RECORDED = {"meta.framework": np.array(FRAMEWORK)}


def from_torch(key, compute):
    """``compute()`` (a dict name -> array) when torch is here, else the stored arrays under ``key``."""
    if HAVE_TORCH:
        out = {k: np.asarray(v) for k, v in compute().items()}
        if RECORD:
            RECORDED.update({f"{key}.{k}": v for k, v in out.items()})
            np.savez_compressed(RECORD, **RECORDED)
        return out
    out = {k[len(key) + 1:]: STORED[k] for k in STORED.files if k.startswith(key + ".")}
    if not out:
        raise KeyError(f"{STORED_PATH.name} has no arrays under {key!r}: run data_scripts/make_lesson10_outputs.py")
    return out


def t(a):
    """A NumPy array as a torch tensor (float64 stays float64)."""
    return torch.from_numpy(np.ascontiguousarray(a))


rng = np.random.default_rng(10)

# %% [markdown]
# `from_torch(key, compute)` is the one place the two paths meet: with torch it runs `compute`, a
# small function that calls PyTorch on NumPy inputs and returns NumPy arrays; without torch it returns
# what that function returned when the outputs were stored. Everything minseg does runs live in both
# cases.
#
# ## 1. Convolution: `compare` and `check_op`
#
# `check_op(name, inputs, params, outputs, grads, dy)` takes a framework's inputs and hyper-parameters
# under PyTorch's names, recomputes the op with minseg in float64 (forward, and with `dy` the
# backward), and compares every array with `compare`, whose report reads like
# `torch.testing.assert_close`'s message plus where the mismatches lie. A convolution with stride 2 and
# padding 1, forward and backward, in float64:

# %%
x_conv = rng.standard_normal((2, 3, 9, 8))                   # (N, C, H, W)
w_conv = rng.standard_normal((4, 3, 3, 3))                   # (C_out, C, KH, KW)
b_conv = rng.standard_normal(4)                              # (C_out,)
dy_conv = rng.standard_normal((2, 4, 5, 4))                  # (N, C_out, H_out, W_out)
CONV = {"stride": 2, "padding": 1}


def torch_conv(dtype):
    x, w, b = (t(a).to(dtype).requires_grad_() for a in (x_conv, w_conv, b_conv))
    y = F.conv2d(x, w, b, **CONV)
    y.backward(t(dy_conv).to(dtype))
    return {"output": y.detach().numpy(), "grad.input": x.grad.numpy(), "grad.weight": w.grad.numpy(),
            "grad.bias": b.grad.numpy()}


def check_conv(got, **kw):
    grads = {k[5:]: v for k, v in got.items() if k.startswith("grad.")}
    return check_op("conv2d", {"input": x_conv, "weight": w_conv, "bias": b_conv}, CONV, {"output": got["output"]},
                    grads, dy_conv, framework=FRAMEWORK.split(",")[0], **kw)


conv64 = from_torch("conv64", lambda: torch_conv(torch.float64))
rep = check_conv(conv64)
print(rep)
print("\nworst scaled error max|torch - minseg| / max|torch| per array:",
      {r.name: f"{r.scaled_error:.1e}" for r in rep.reports})
assert rep.passed and max(r.scaled_error for r in rep.reports) < 1e-14

# %% [markdown]
# In float64 every array agrees to a few units of round-off (the cell prints the scaled errors, around
# `1e-16`): the sums are the same sums, added in a different order. The same convolution computed by
# PyTorch in **float32** differs from minseg's float64 by float32 round-off. `check_op` picks the
# tolerances from the framework array's dtype (float32: `rtol 1.3e-6, atol 1e-5`, as `assert_close`),
# so it passes; held to float64's tolerances it fails, and the report says the mismatches are spread
# over the image, which is what round-off looks like (a bug would usually sit in a row, a channel, a
# border):

# %%
conv32 = from_torch("conv32", lambda: torch_conv(torch.float32))
rep32 = check_conv(conv32)
print(rep32.lines()[0])
print("float32 vs float64 scaled errors:", {r.name: f"{r.scaled_error:.1e}" for r in rep32.reports})
print(f"float32 machine epsilon: {np.finfo(np.float32).eps:.1e}\n")
y_minseg, _ = conv2d(x_conv, w_conv, b_conv, **CONV)          # minseg's own float64 output
print(compare(conv32["output"], y_minseg, rtol=1e-7, atol=1e-7, name="float32 output at float64 tolerances",
              labels=("torch float32", "minseg")))
assert rep32.passed

# %% [markdown]
# ## 2. Transposed convolution and `output_padding`
#
# A stride-2 `ConvTranspose2d` with `padding=1` maps a 4x5 input to `(4 - 1) * 2 - 2 + 3 = 7` rows;
# `output_padding=1` adds the one row and column that make it exactly twice the input (8x10), the usual
# choice in a decoder. PyTorch computed it with `output_padding=1`; checked once with the right
# params, once as if the framework's call had been read without its `output_padding`:

# %%
x_tc = rng.standard_normal((1, 3, 4, 5))                     # (N, C_in, H, W)
w_tc = rng.standard_normal((3, 2, 3, 3))                     # (C_in, C_out, KH, KW)
TC = {"stride": 2, "padding": 1, "output_padding": 1}
tc = from_torch("conv_transpose", lambda: {"output": F.conv_transpose2d(t(x_tc), t(w_tc), **TC).numpy()})
print("torch output shape:", tc["output"].shape)
print(check_op("conv_transpose2d", {"input": x_tc, "weight": w_tc}, TC, tc, framework=FRAMEWORK.split(",")[0]))
print()
rep_tc = check_op("conv_transpose2d", {"input": x_tc, "weight": w_tc}, {"stride": 2, "padding": 1}, tc)
print(rep_tc)
assert check_op("conv_transpose2d", {"input": x_tc, "weight": w_tc}, TC, tc).passed
assert not rep_tc.passed and any("output_padding=(1, 1)" in d for d in rep_tc.diagnosis)

# %% [markdown]
# With the right params the outputs agree to round-off. Without `output_padding` minseg's output is
# 7x9, the framework's 8x10: the report says the shapes differ along the two spatial axes, and the
# diagnosis finds the `output_padding` that reproduces the framework's output exactly.
#
# ## 3. Max-unpooling after overlapping windows
#
# SegNet-style decoders put values back where the encoder's max-pooling found its maxima
# (`max_unpool2d` with `max_pool2d`'s indices, lesson 04). With a stride smaller than the kernel the
# windows overlap, and one input pixel can be the maximum of two windows: two pooled positions then
# carry the **same index**, and unpooling writes two values into one cell. Pooling a 7x7 input with a
# 3x3 kernel and stride 2 (9 windows), then unpooling *different* values with those indices (in a
# network they are the decoder's features, not the pooled maxima; here 1..9, so each write can be
# told apart):

# %%
x_up = np.random.default_rng(3).standard_normal((1, 1, 7, 7))     # (N, C, H, W)
feat_up = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)                 # (N, C, 3, 3): the values to unpool
dy_up = np.random.default_rng(4).standard_normal((1, 1, 7, 7))     # upstream gradient of the unpooled map


def torch_unpool():
    out = {}
    _, idx = F.max_pool2d(t(x_up), 3, 2, return_indices=True)
    out["indices"] = idx.numpy()
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        f = t(feat_up).clone().requires_grad_()
        u = F.max_unpool2d(f, idx, 3, 2, output_size=(7, 7))
        u.backward(t(dy_up))
        torch.set_num_threads(before)
        out[f"output_{threads}_threads"], out[f"grad_{threads}_threads"] = u.detach().numpy(), f.grad.numpy()
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)                 # does PyTorch promise one answer?
    try:
        F.max_unpool2d(t(feat_up), idx, 3, 2, output_size=(7, 7))
        out["deterministic_mode"] = np.array("ran")
    except RuntimeError as err:
        out["deterministic_mode"] = np.array(str(err).split(", but")[0])
    finally:
        torch.use_deterministic_algorithms(was)
    return out


up = from_torch("unpool", torch_unpool)
idx_up = up["indices"].astype(np.int64)
print("indices (flat h * 7 + w of each window's maximum):\n", idx_up[0, 0])
writes = np.bincount(idx_up.ravel(), minlength=49).reshape(7, 7)   # (7, 7): writes per output cell
print("cells written twice:", [divmod(int(i), 7) for i in np.flatnonzero(writes > 1)])
mine_up, cache_up = max_unpool2d(feat_up, idx_up, 3, 2, output_size=(7, 7))
for threads in (1, 2):
    r = compare(up[f"output_{threads}_threads"], mine_up, name=f"torch CPU, {threads} thread(s)",
                labels=("torch", "minseg"))
    print(r.lines()[0])
print("with torch.use_deterministic_algorithms(True):", str(up["deterministic_mode"]))

# %% [markdown]
# The picture: the pooling windows, each window's maximum, and what each of the two frameworks left in
# the cells that received two writes (red). Pooled position `k` (row-major, `0..8`) writes value `k + 1`.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
ax = axes[0]
ax.imshow(x_up[0, 0], cmap="Greys")
for k, (i, j) in enumerate([(i, j) for i in range(3) for j in range(3)]):
    ax.add_patch(Rectangle((2 * j - 0.45 + 0.03 * k, 2 * i - 0.45 + 0.03 * k), 2.9, 2.9, fill=False,
                           edgecolor=plt.cm.tab10(k), linewidth=1.5))
    r_, c_ = divmod(int(idx_up[0, 0, i, j]), 7)
    ax.text(c_, r_, "x", color=plt.cm.tab10(k), ha="center", va="center", fontsize=14, fontweight="bold")
ax.set_title("input, 3x3 windows with stride 2, their maxima (x)")
for ax, (name, y) in zip(axes[1:], [("torch CPU", up["output_1_threads"]), ("minseg", mine_up)]):
    ax.imshow(writes, cmap="Reds", vmin=0, vmax=3)
    for (r_, c_), v in np.ndenumerate(y[0, 0]):
        if writes[r_, c_]:
            srcs = [k + 1 for k in range(9) if idx_up.ravel()[k] == r_ * 7 + c_]
            ax.text(c_, r_, f"{v:g}" + (f"\n({'+'.join(map(str, srcs))})" if len(srcs) > 1 else ""),
                    ha="center", va="center", fontsize=9)
    ax.set_title(f"{name}: unpooled values\n(dark red: 2 writes, in brackets the values written)")
for ax in axes:
    ax.set_xticks(range(7)); ax.set_yticks(range(7))
plt.tight_layout()
plt.show()

# %% [markdown]
# **What was measured** (the cells above print it): on this CPU, with one thread and with two, PyTorch
# kept the **last** write at every collision, the value of the later window in row-major order, which
# is minseg's documented rule (`max_unpool2d`: "the last write in row-major order of the input wins"),
# so the two agree exactly. That is a measurement of one kernel on one machine, not a promise:
# PyTorch's documentation says the op "may behave nondeterministically when the input indices has
# repeat values", in deterministic mode it refuses to run (the last line above), and on CUDA the
# writes race. A framework that
# keeps the *first* write (emulated below with NumPy) differs from minseg only in those cells, and
# `check_op` says so:

# %%
first_write = np.zeros((1, 1, 49))
for k in range(8, -1, -1):                                   # reversed order: the first write is the last done
    first_write[0, 0, idx_up.ravel()[k]] = feat_up.ravel()[k]
first_write = first_write.reshape(1, 1, 7, 7)                # (N, C, H, W)
rep_up = check_op("max_unpool2d", {"input": feat_up, "indices": idx_up}, {"kernel_size": 3, "stride": 2,
                  "output_size": [7, 7]}, {"output": first_write})
print(rep_up)
assert not rep_up.passed and "repeated positions" in rep_up.diagnosis[0]

# %% [markdown]
# The backward pass has a subtlety of its own. Unpooling's backward is a gather, `dfeat[k] = dy[idx[k]]`:
# *both* windows of a collision receive the gradient of their shared cell, PyTorch's and minseg's alike
# (they agree exactly). But the window whose write was overwritten has no effect on the output, so
# the true derivative of the forward with respect to it is 0; a finite-difference check sees that:

# %%
g_mine = max_unpool2d_backward(dy_up, cache_up)              # (1, 1, 3, 3)
print(compare(up["grad_1_threads"], g_mine, name="grad.input", labels=("torch", "minseg")).lines()[0])
eps, numeric = 1e-6, np.zeros(9)
for k in range(9):
    fp, fm = feat_up.copy().ravel(), feat_up.copy().ravel()
    fp[k] += eps
    fm[k] -= eps
    yp, _ = max_unpool2d(fp.reshape(1, 1, 3, 3), idx_up, 3, 2, output_size=(7, 7))
    ym, _ = max_unpool2d(fm.reshape(1, 1, 3, 3), idx_up, 3, 2, output_size=(7, 7))
    numeric[k] = np.sum(dy_up * (yp - ym)) / (2 * eps)
print("gather gradient (torch = minseg):", g_mine.ravel())
print("finite differences             :", numeric)
overwritten = [int(k) for k in np.flatnonzero(np.abs(numeric - g_mine.ravel()) > 1e-6)]
print("they differ at pooled positions  :", overwritten)

# %% [markdown]
# The positions printed last are the overwritten windows. Both frameworks define the backward as the
# adjoint of a plain scatter (which it is, as long as no index repeats); with overlapping windows it is
# not the derivative of what the forward kept. Overlapping max-unpooling is best avoided (SegNet pools
# 2x2 with stride 2, where no index can repeat).
#
# ## 4. Bilinear interpolation: `align_corners`
#
# Upsampling by bilinear interpolation (lesson 03) needs, for every output pixel, a position in the
# input. Two conventions are in use, and PyTorch has both behind one flag:
#
# * `align_corners=True`: the centres of the corner pixels coincide, `src = dst * (in - 1) / (out - 1)`;
# * `align_corners=False` (PyTorch's and minseg's default): pixels are areas and the grids' *edges*
#   coincide, `src = (dst + 0.5) * in / out - 0.5`, clamped at 0;
# * and TensorFlow 1's `resize_bilinear` (`align_corners=False, half_pixel_centers=False`) used
#   `src = dst * in / out`: the output grid is anchored at the top-left corner.
#
# A 3x3 input upsampled to 6x6, the output samples drawn in the input's pixel grid (input pixel `i`
# covers `[i - 0.5, i + 0.5]`, its centre at `i`):

# %%
def sources(n_in, n_out, how):
    o = np.arange(n_out, dtype=np.float64)
    if how == "align_corners=True":
        return o * (n_in - 1) / (n_out - 1)
    if how == "align_corners=False":
        return (o + 0.5) * n_in / n_out - 0.5
    return o * n_in / n_out                                   # TF1 asymmetric


HOWS = ["align_corners=True", "align_corners=False", "TF1 asymmetric"]
fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
for ax, how in zip(axes, HOWS):
    for i in range(3):
        for j in range(3):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="0.6"))
    ax.scatter(*np.meshgrid(range(3), range(3)), s=60, color="0.4", label="input pixel centres")
    s = sources(3, 6, how)
    gx, gy = np.meshgrid(s, s)
    ax.scatter(gx, gy, s=22, color="tab:red", label="output samples")
    ax.set_xlim(-0.7, 2.9); ax.set_ylim(2.9, -0.7); ax.set_aspect("equal")
    ax.set_title(f"{how}\nsrc = {np.round(s, 3).tolist()}", fontsize=9)
axes[0].legend(loc="lower left", fontsize=8)
plt.tight_layout()
plt.show()
for how in HOWS:
    print(f"{how:>20}: src = {np.round(sources(3, 6, how), 4)}")
i0_, _, _, lam1_ = linear_taps(3, 6)
print(f"{'minseg linear_taps':>20}: align_corners=False, clamped: i0 = {i0_}, lam1 = {lam1_}")

# %% [markdown]
# With `align_corners=True` the outer samples sit on the corner pixel centres and the samples spread
# `(in - 1) / (out - 1)` apart; with `False` they sit at the centres of the output pixels laid over the
# input area, `in / out` apart, the first ones before the first input centre (clamped: they copy
# `x[0]`); TF1's grid starts at the corner centre and runs half an output pixel past the other side,
# so its content shifts towards the top-left. PyTorch computed both of its conventions; the
# align_corners=True output is then checked as if the framework had used the default, and `check_op`
# names the cause:

# %%
x_bi = rng.standard_normal((1, 2, 5, 6))                     # (N, C, H, W)
SIZE = [9, 11]


def torch_bilinear():
    out = {}
    for ac in (False, True):
        out[f"align_corners_{ac}"] = F.interpolate(t(x_bi), size=SIZE, mode="bilinear", align_corners=ac).numpy()
    # TensorFlow 1's formula src = dst * in / out, through torch's grid_sample on those exact coordinates
    src_h, src_w = (np.arange(o) * (n / o) for n, o in zip(x_bi.shape[2:], SIZE))
    gy, gx = np.meshgrid(2 * src_h / (x_bi.shape[2] - 1) - 1, 2 * src_w / (x_bi.shape[3] - 1) - 1, indexing="ij")
    grid = t(np.stack([gx, gy], axis=-1)[None])              # (1, H_out, W_out, 2): (x, y) in [-1, 1]
    out["tf1"] = F.grid_sample(t(x_bi), grid, mode="bilinear", padding_mode="border", align_corners=True).numpy()
    return out


bi = from_torch("bilinear", torch_bilinear)
ok = check_op("bilinear_interpolate", {"input": x_bi}, {"size": SIZE}, {"output": bi["align_corners_False"]})
print(ok.lines()[0], "\n")
rep_ac = check_op("bilinear_interpolate", {"input": x_bi}, {"size": SIZE}, {"output": bi["align_corners_True"]},
                  framework=FRAMEWORK.split(",")[0])
print(rep_ac)
assert ok.passed and not rep_ac.passed and "align_corners=True" in rep_ac.diagnosis[0]
agree = ~rep_ac.report("output").mismatch_mask[0, 0]                # (9, 11): where the two conventions agree
print("\npixels of channel 0 where both conventions agree (row, column):",
      [tuple(map(int, p)) for p in np.argwhere(agree)])
for n_in, n_out, axis in ((5, 9, "rows"), (6, 11, "columns")):
    clamp = lambda v: np.clip(v, 0, n_in - 1)                # where the taps end up: both clamp to the input
    same = np.isclose(clamp(sources(n_in, n_out, "align_corners=True")),
                      clamp(sources(n_in, n_out, "align_corners=False")))
    print(f"{axis}: the two source positions coincide (after clamping) at {np.flatnonzero(same).tolist()}")

# %% [markdown]
# The report counts the mismatching elements and where they lie. The few that agree are where both
# conventions sample the same point, as the cell prints: the first, middle and last rows and columns
# (both grids are symmetric about the image centre, and the outermost samples of `align_corners=False`
# clamp onto the border pixels). The diagnosis recomputes with the other convention and finds that it
# matches exactly.
#
# TensorFlow is not installed here, so its TF1 resize is reproduced with `torch.nn.functional.grid_sample`
# sampling exactly TF1's coordinates `src = dst * in / out` (`padding_mode="border"` clamps the last
# neighbour, as TF1 did). Checked as a plain `align_corners=False` resize:

# %%
rep_tf1 = check_op("bilinear_interpolate", {"input": x_bi}, {"size": SIZE}, {"output": bi["tf1"]})
print(rep_tf1)
assert not rep_tf1.passed and any("TensorFlow 1" in d for d in rep_tf1.diagnosis)

# %% [markdown]
# What the shift does to an image: on random values it looks like noise, so here a smooth blob, 8x8
# upsampled 4 times, by minseg (`align_corners=False`) and by TF1's formula (written out with
# `np.interp` along each axis, which clamps at the ends as TF1 does). TF1 samples up to
# `0.5 * (1 - in / out)` input pixels further down and to the right, so its content moves up and left
# by `0.5 * (out / in - 1)` output pixels; the centroids measure it (nearly exactly: the blob is almost
# 0 at the border, where TF1 clamps its last samples onto the last pixel and gives back a little):

# %%
yy, xx = np.mgrid[0:8, 0:8]
blob = np.exp(-((yy - 3.5) ** 2 + (xx - 3.5) ** 2) / 1.5)[None, None]      # (1, 1, 8, 8), small at the border
y_half, _ = bilinear_interpolate(blob, size=(32, 32))                     # align_corners=False
src = sources(8, 32, "TF1 asymmetric")                                    # (32,), the same on both axes
rows_tf1 = np.stack([np.interp(src, np.arange(8), col) for col in blob[0, 0].T], axis=1)      # (32, 8)
y_tf1 = np.stack([np.interp(src, np.arange(8), row) for row in rows_tf1])                     # (32, 32)
centroid = lambda img: [float((img * g).sum() / img.sum()) for g in np.mgrid[0:32, 0:32]]
print("centroid (row, column), align_corners=False:", np.round(centroid(y_half[0, 0]), 3))
print("centroid (row, column), TF1 asymmetric     :", np.round(centroid(y_tf1), 3))
print(f"0.5 * (out / in - 1) = {0.5 * (32 / 8 - 1):.2f} output pixels")
diff = y_tf1 - y_half[0, 0]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for ax, img, title in zip(axes, [y_half[0, 0], y_tf1, diff],
                          ["align_corners=False (minseg)", "TF1 asymmetric", "TF1 - align_corners=False"]):
    lim = np.abs(img).max()
    im = ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim) if img is diff else ax.imshow(img, cmap="viridis")
    ax.axhline(15.5, color="w", lw=0.5); ax.axvline(15.5, color="w", lw=0.5)     # the image centre
    ax.set_title(title); ax.axis("off")
    plt.colorbar(im, ax=ax, fraction=0.046)
plt.tight_layout()
plt.show()

# %% [markdown]
# The difference is a dipole, positive on the upper-left side of the blob and negative on the
# lower-right: the same image, moved. In a segmentation network this is a systematic misalignment of
# the upsampled score map with the labels, worst at object boundaries.
#
# %% [markdown]
# ## 5. A whole model, layer by layer
#
# `check_torch_model(model, x)` runs a PyTorch model forward and backward once (a seeded upstream
# gradient), records each leaf layer's inputs, outputs and gradients with hooks, then replays every
# supported layer with minseg's op **on that layer's own captured inputs**. An error therefore does not
# propagate: the first row that fails is the layer that differs (like Polygraphy's "compare every
# layer"). The model below is a small encoder-decoder with one deliberately wrong layer: `mid_conv` is a
# `Conv2d` whose `forward` rotates its kernel by 180 degrees (a true convolution instead of
# cross-correlation, the kind of bug a hand-written kernel has).

# %%
x_model = rng.standard_normal((2, 3, 12, 12))                # (N, C, H, W)


def torch_model_report():
    class RotatedConv2d(nn.Conv2d):
        """A Conv2d with a bug: it convolves with the kernel rotated by 180 degrees."""

        def forward(self, x):
            return F.conv2d(x, self.weight.flip(-2, -1), self.bias, self.stride, self.padding, self.dilation,
                            self.groups)

    from minseg.check import check_torch_model

    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([
        ("enc_conv", nn.Conv2d(3, 8, 3, padding=1)), ("enc_bn", nn.BatchNorm2d(8)), ("enc_relu", nn.ReLU()),
        ("pool", nn.MaxPool2d(2)),
        ("mid_conv", RotatedConv2d(8, 8, 3, padding=1)), ("mid_relu", nn.ReLU()),
        ("up", nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)),
        ("head", nn.Conv2d(8, 4, 1)),
    ]))
    report = check_torch_model(model, t(x_model), dtype=torch.float64)
    first = report.first_divergence
    return {"text": str(report), "first": f"{first.name} ({first.type})",
            "failed": [r.name for r in report.replayed if not r.passed]}


model_rep = from_torch("model", torch_model_report)
print(str(model_rep["text"]))
print("\nlayers that fail:", [str(n) for n in model_rep["failed"]])
assert str(model_rep["first"]) == "mid_conv (RotatedConv2d)" and list(model_rep["failed"]) == ["mid_conv"]

# %% [markdown]
# Every layer but `mid_conv` agrees to round-off, forward and backward, including the batch norm in
# training mode with its running statistics and the bilinear upsampling. (The first convolution's bias
# gradient shows a larger scaled error than the rest: a bias right before a batch norm has gradient 0
# in exact arithmetic, so both sides hold pure round-off, measured against `atol`.) `mid_conv` fails in its
# output, its input gradient and its weight gradient (not its bias gradient: a rotation does not touch
# the bias), and the diagnosis under the table names the rotated kernel. In the weight gradient the
# mismatches lie in the kernel's border taps: the centre tap is the one a 180-degree rotation leaves
# in place. (The report names a weight's axes as if it were an image batch: its "samples" are the
# output channels; the one missing from the list has a zero gradient on both sides, its ReLU being off
# everywhere.) The layers after it pass, because each is judged on what it actually received.
#
# ## 6. A framework's output as a file: `minseg check FILE.npz`
#
# Any framework can write one op as a documented `.npz` (the `minseg.check` docstring and the README
# describe it, with writers for PyTorch, JAX and TensorFlow): `op`, `params` (JSON, PyTorch's names),
# `input.<name>`, `output.<name>`, optionally `dy` and `grad.<name>`, and `framework`. Two files from
# the results above, the float32 convolution (forward and backward) and the align_corners=True resize
# saved with the default params, then the command, run as a separate process:

# %%
with tempfile.TemporaryDirectory() as tmp:
    f_conv = save_npz(Path(tmp) / "torch_conv32.npz", "conv2d", CONV,
                      {"input": x_conv.astype(np.float32), "weight": w_conv.astype(np.float32),
                       "bias": b_conv.astype(np.float32)},
                      {"output": conv32["output"]}, dy=dy_conv.astype(np.float32),
                      grads={k[5:]: v for k, v in conv32.items() if k.startswith("grad.")},
                      framework=FRAMEWORK.split(",")[0] + " float32")
    f_bi = save_npz(Path(tmp) / "torch_resize.npz", "bilinear_interpolate", {"size": SIZE},
                    {"input": x_bi}, {"output": bi["align_corners_True"]}, framework=FRAMEWORK.split(",")[0])
    with np.load(f_bi) as z:
        print("keys of torch_resize.npz:", z.files, "| params:", str(z["params"]))
    for files in ([f_conv], [f_conv, f_bi]):
        run = subprocess.run([sys.executable, "-m", "minseg", "check", *map(str, files)], capture_output=True,
                             text=True, timeout=120)
        print(f"\n$ minseg check {' '.join(f.name for f in files)}")
        print(run.stdout.replace(tmp + os.sep, "") + run.stderr, end="")
        print(f"exit code: {run.returncode}")
assert run.returncode == 1

# %% [markdown]
# The first run passes and exits 0; the second prints one report per file and exits 1 because the
# resize mismatches, with the diagnosis naming `align_corners`. A bad file (not an `.npz`, an unknown
# op, a gradient without `dy`) exits 2 with one line naming the file.
#
# ## 7. Metrics: torchmetrics' IoU and accuracy against `minseg.metrics`
#
# Both accumulate a confusion matrix; they differ in what they do with classes that are missing. A tiny
# hand-made example with 4 classes and one ignored pixel (255): class 2 is **predicted once but absent
# from the target**, class 3 is **absent from both**.

# %%
NAMES = ["background", "road", "car", "person"]
target_m = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 255]])
pred_m = np.array([[0, 0, 1, 1], [0, 2, 1, 1], [0, 0, 0, 1]])
print("target:\n", target_m, "\nprediction:\n", pred_m)


def torch_metrics():
    p, g = t(pred_m), t(target_m)
    out = {}
    for avg in ("macro", "none"):
        out[f"iou_{avg}"] = MulticlassJaccardIndex(4, average=avg, ignore_index=255)(p, g).numpy()
        out[f"acc_{avg}"] = MulticlassAccuracy(4, average=avg, ignore_index=255)(p, g).numpy()
    return out


tm = from_torch("metrics", torch_metrics)
sm = SegmentationMetrics(4, ignore_index=255, class_names=NAMES)
sm.update(pred_m, target_m)
ms = sm.compute()
print(f"\n{'class':<11} {'IoU torchmetrics':>16} {'IoU minseg':>10} {'acc torchmetrics':>16} {'acc minseg':>10}")
for c in range(4):
    print(f"{NAMES[c]:<11} {float(tm['iou_none'][c]):>16.4f} {ms['iou'][c]:>10.4f} {float(tm['acc_none'][c]):>16.4f} "
          f"{ms['class_accuracy'][c]:>10.4f}")
print(f"{'mean':<11} {float(tm['iou_macro']):>16.4f} {ms['miou']:>10.4f} {float(tm['acc_macro']):>16.4f} "
      f"{ms['mean_class_accuracy']:>10.4f}")
assert abs(float(tm["iou_macro"]) - ms["miou"]) < 1e-6
print(f"\ntorchmetrics' macro accuracy = mean over background, road, car = "
      f"{np.mean(ms['class_accuracy'][:2] + [0.0]):.4f}")

# %% [markdown]
# * **A class absent from both** (person): torchmetrics reports IoU 0 and accuracy 0 for it, minseg NaN
#   ("no IoU": 0 / 0). Neither puts it into the mean: torchmetrics drops classes with no target and no
#   predicted pixel from its macro averages, so mIoU agrees (the table's last row).
# * **A predicted-but-absent class** (car): its IoU is 0 in both (one false positive, no true pixel),
#   and it counts in both mIoUs. Its *accuracy* (recall, `TP / target pixels`) is 0 / 0. minseg leaves
#   it out of mean class accuracy, the classes present in the target only (FCN's definition; the
#   README's and `minseg.metrics`' convention); torchmetrics' macro accuracy averages every class that
#   appears in the target *or* the prediction and counts car as 0, so its mean class accuracy is lower
#   (the cell prints the mean it takes).
#
# ## 8. Panoptic quality: torchmetrics against the COCO reference
#
# minseg's `PanopticQuality` follows COCO's `panopticapi` (`pq_compute`) rule for rule (lesson 08,
# `minseg pq`). torchmetrics' `PanopticQuality` takes `(category, instance)` pairs per pixel. A tiny
# scene, 4x6 pixels: sky (stuff, category 3) over grass (stuff, 4), one ball (thing, 1) of 6 pixels;
# category 2 (person, a thing) appears nowhere. VOID is 255 in the category map (an unknown category
# for torchmetrics, `void_id` for minseg). Four predictions, each with one thing changed:

# %%
THINGS, STUFFS = [1, 2], [3, 4]
CATS = {1: {"isthing": 1, "name": "ball"}, 2: {"isthing": 1, "name": "person"}, 3: {"isthing": 0, "name": "sky"},
        4: {"isthing": 0, "name": "grass"}}
gt_sem = np.array([[3, 3, 3, 3, 3, 3], [3, 1, 1, 1, 3, 3], [4, 1, 1, 1, 4, 4], [4, 4, 4, 4, 4, 4]])
gt_inst = np.where(gt_sem == 1, 1, 0)


def variant(sem=None, inst=None, void=()):
    s, i = (gt_sem if sem is None else sem).copy(), (gt_inst if inst is None else inst).copy()
    for r_, c_ in void:
        s[r_, c_], i[r_, c_] = 255, 0
    return s, i


one_wrong = gt_sem.copy(); one_wrong[1, 1] = 3                       # one ball pixel predicted as sky
CASES = OrderedDict([
    ("one ball pixel called sky", (variant(one_wrong), (gt_sem, gt_inst))),
    ("2 ball pixels VOID in pred", (variant(void=[(1, 1), (2, 1)]), (gt_sem, gt_inst))),
    ("4 ball pixels VOID in pred", (variant(void=[(1, 1), (1, 2), (2, 1), (2, 2)]), (gt_sem, gt_inst))),
    ("gt ball has instance 0", (variant(inst=gt_inst * 5), (gt_sem, gt_inst * 0))),
])

fig, axes = plt.subplots(1, len(CASES) + 1, figsize=(15, 2.6))
cmap = plt.matplotlib.colors.ListedColormap(["white", "tab:orange", "tab:purple", "skyblue", "yellowgreen"])
show = lambda s: np.where(s == 255, 0, s)
axes[0].imshow(show(gt_sem), cmap=cmap, vmin=0, vmax=4); axes[0].set_title("ground truth (ball = orange)")
for ax, (name, ((ps, pi), (_, gi))) in zip(axes[1:], CASES.items()):
    note = "" if np.array_equal(gi, gt_inst) else "\n(its ground truth: ball with instance 0)"
    ax.imshow(show(ps), cmap=cmap, vmin=0, vmax=4); ax.set_title(f"pred: {name}{note}", fontsize=9)
    for (r_, c_), v in np.ndenumerate(ps):
        ax.text(c_, r_, "VOID" if v == 255 else f"{v},{pi[r_, c_]}", ha="center", va="center", fontsize=7)
for (r_, c_), v in np.ndenumerate(gt_sem):
    axes[0].text(c_, r_, f"{v},{gt_inst[r_, c_]}", ha="center", va="center", fontsize=7)
for ax in axes:
    ax.set_xticks([]); ax.set_yticks([])
plt.tight_layout()
plt.show()

# %% [markdown]
# Each case through torchmetrics (per class and averaged, PQ, SQ, RQ) and through minseg
# (`encode_panoptic` makes `category * 1000 + instance` ids, VOID -1; `update_encoded` reads a ground-
# truth thing with instance 0 as a crowd region, the Cityscapes / COCO `iscrowd` convention):

# %%
def torch_pq():
    out = {}
    for k, ((ps, pi), (gs, gi)) in enumerate(CASES.values()):
        P = t(np.stack([ps, pi], axis=-1)[None])             # (1, H, W, 2): (category, instance)
        G = t(np.stack([gs, gi], axis=-1)[None])
        for per_class in (False, True):
            m = TorchPanopticQuality(things=set(THINGS), stuffs=set(STUFFS), allow_unknown_preds_category=True,
                                     return_sq_and_rq=True, return_per_class=per_class)
            m.update(P, G)
            out[f"{k}_{'per_class' if per_class else 'all'}"] = m.compute().numpy()
    return out


tpq = from_torch("pq", torch_pq)
results = {}
for k, (name, ((ps, pi), (gs, gi))) in enumerate(CASES.items()):
    q = PanopticQuality(CATS)
    q.update_encoded(encode_panoptic(ps, pi, THINGS), encode_panoptic(gs, gi, THINGS))
    results[name] = (tpq[f"{k}_all"], tpq[f"{k}_per_class"].reshape(4, 3), q.compute())

fmt = lambda v: "  nan" if np.isnan(v) else f"{100 * v:5.1f}"
print(f"{'case':<28}| {'who':<12}| {'All PQ':>6} | {'ball PQ  SQ   RQ  TP FP FN':<28}| {'person PQ':>9}")
for name, (tm_all, tm_cls, r) in results.items():
    b, pr = r["per_class"][1], r["per_class"][2]
    print(f"{name:<28}| {'torchmetrics':<12}| {fmt(tm_all[0]):>6} | {fmt(tm_cls[0, 0])} {fmt(tm_cls[0, 1])} "
          f"{fmt(tm_cls[0, 2])}{'':>10}| {fmt(tm_cls[1, 0]):>9}")
    print(f"{'':<28}| {'minseg/COCO':<12}| {fmt(r['All']['pq']):>6} | {fmt(b['pq'])} {fmt(b['sq'])} {fmt(b['rq'])} "
          f"{b['tp']:>3d}{b['fp']:>3d}{b['fn']:>3d} | {fmt(pr['pq']):>9}")
base_tm, base_cls, base_ms = results["one ball pixel called sky"]
for row, cid in zip(base_cls, CATS):
    if base_ms["per_class"][cid]["tp"] + base_ms["per_class"][cid]["fp"] + base_ms["per_class"][cid]["fn"]:
        assert np.allclose(row, [base_ms["per_class"][cid][k] for k in ("pq", "sq", "rq")])
assert np.allclose(base_tm, [base_ms["All"][k] for k in ("pq", "sq", "rq")])
print()
for name in ("2 ball pixels VOID in pred", "4 ball pixels VOID in pred"):
    (ps, _), (gs, _) = CASES[name]
    p, g = ps == 1, gs == 1                                  # the ball: predicted, true
    pv, gv = ps == 255, gs == 255                            # VOID: in the prediction, in the ground truth
    inter = int((p & g).sum())
    coco = int(p.sum() + g.sum() - inter - (p & gv).sum())
    tmu = int(p.sum() - (p & gv).sum() + g.sum() - (pv & g).sum() - inter)
    print(f"{name}: |p| {p.sum()}, |g| {g.sum()}, |p & g| {inter}, |g & VOID_pred| {(pv & g).sum()}: "
          f"COCO IoU {inter}/{coco} = {inter / coco:.3f}, torchmetrics IoU {inter}/{tmu} = {inter / tmu:.3f}")

# %% [markdown]
# Reading the table (torchmetrics' per-class rows come in the order things then stuffs, sorted, which
# here is 1, 2, 3, 4; the first case checks it, since there every category agrees):
#
# * **One ball pixel called sky**: the two agree in every number (the first two rows; the cell asserts
#   it for every category and the averages).
# * **A VOID prediction pixel.** COCO's union leaves out only the prediction's pixels on *ground-truth*
#   VOID: `|p| + |g| - |p ∩ g| - |p ∩ VOID_gt|`. A ground-truth pixel the model left VOID stays in the
#   union and lowers the IoU (the last lines of the cell print both unions). torchmetrics also
#   subtracts the ground-truth segment's pixels on *predicted* VOID
#   (`union = |p| - |p ∩ VOID_gt| + |g| - |g ∩ VOID_pred| - |p ∩ g|`), so the same prediction scores
#   IoU 1. With 4 of the 6 ball pixels VOID, COCO's IoU is below 0.5: no match, a false negative and a
#   false positive, PQ 0 for the ball; torchmetrics again sees IoU 1 and a perfect match.
#   (torchmetrics also never counts a
#   ground-truth segment that is more than half VOID in the prediction as a false negative; COCO has
#   no such rule.) Under torchmetrics a model can raise its PQ by predicting VOID where it is unsure.
# * **A thing with instance 0.** torchmetrics treats `(ball, 0)` as one more instance, matched by the
#   prediction `(ball, 5)` with IoU 1. In minseg's encoded maps (and in Cityscapes' ids) a thing pixel
#   without an instance number is a **crowd** region, COCO's `iscrowd=1`: it is never a false
#   negative, a prediction lying on it is not a false positive, so the ball category has no TP, FP or
#   FN at all and leaves the average (NaN in the row, All over 2 categories instead of 3).
# * **A class absent from both** (person, every case): torchmetrics reports PQ 0 for it, minseg NaN
#   (panopticapi writes 0.0); all three leave it out of the averages, so it changes no average.
#
# The COCO rules are the ones published results use; a framework that computes PQ differently is not
# wrong, but its numbers are not comparable with COCO's. `minseg pq` scores a COCO-format folder by
# `pq_compute`'s rules.
#
# ## Summary
#
# Every difference this lesson found, and why:

# %%
found = [
    ("conv2d, float64", f"agree, scaled error {max(r.scaled_error for r in rep.reports):.0e}",
     "the same sums in another order"),
    ("conv2d, float32", f"within float32 tolerances ({max(r.scaled_error for r in rep32.reports):.0e})",
     f"float32 round-off (eps {np.finfo(np.float32).eps:.1e}), no pattern in where it lies"),
    ("conv_transpose2d", f"{rep_tc.reports[0].actual_shape} vs {rep_tc.reports[0].expected_shape}",
     "output_padding=1 left out; check_op finds the value"),
    ("max_unpool2d, overlaps", f"{int((writes > 1).sum())} cells written twice; torch CPU = minseg",
     "both keep the last write (measured, 1 and 2 threads); undefined in general"),
    ("max_unpool2d backward", f"torch = minseg; not the derivative at {overwritten}",
     "gather sends dy to overwritten windows too"),
    ("bilinear", f"{rep_ac.reports[0].n_mismatch} of {rep_ac.reports[0].size} elements", "align_corners=True vs False"),
    ("bilinear, TF1", f"{rep_tf1.reports[0].n_mismatch} of {rep_tf1.reports[0].size} elements",
     "src = dst * in / out, no half-pixel offset"),
    ("model", f"first divergence {model_rep['first']}", "the kernel rotated by 180 degrees"),
    ("IoU, absent class", "0 (torchmetrics) vs NaN (minseg)", "same mIoU: both leave it out"),
    ("mean class accuracy", f"{float(tm['acc_macro']):.4f} vs {ms['mean_class_accuracy']:.4f}",
     "torchmetrics counts a predicted-but-absent class as 0"),
    ("PQ, VOID prediction", "ball SQ {} (torchmetrics) vs {} (COCO)".format(
        *(fmt(v).strip() for v in (results["2 ball pixels VOID in pred"][1][0, 1],
                                   results["2 ball pixels VOID in pred"][2]["per_class"][1]["sq"]))),
     "torchmetrics removes predicted VOID from the union"),
    ("PQ, thing instance 0", "ball RQ {} (torchmetrics) vs {} TP+FP+FN (COCO)".format(
        fmt(results["gt ball has instance 0"][1][0, 2]).strip(),
        sum(results["gt ball has instance 0"][2]["per_class"][1][k] for k in ("tp", "fp", "fn"))),
     "COCO / Cityscapes: no instance id = crowd"),
    ("PQ, absent class", "0 vs NaN per class", "both leave it out of the averages"),
]
for what, seen, why in found:
    print(f"{what:<24} {seen:<44} {why}")
where = "live " + FRAMEWORK if HAVE_TORCH else "stored outputs"
print(f"\nlesson ran in {time.perf_counter() - T_START:.1f} s ({where})")

# %% [markdown]
# * `compare(actual, expected)`: counts, the worst elements with both values, where the mismatches lie,
#   NaN / inf patterns; tolerances by dtype as `assert_close`.
# * `check_op(name, inputs, params, outputs, grads, dy)`: minseg recomputes the op in float64 and names
#   the known culprits (the other `align_corners`, TF1's resize, `output_padding`, a rotated kernel,
#   overlapping unpool indices, ...). `minseg check FILE.npz` does the same from a file any framework
#   writes, exit 0 / 1 / 2.
# * `check_torch_model(model, x)`: each layer judged on its own captured inputs, the first divergence
#   marked.
# * Metrics differ by convention, not by arithmetic: absent classes (0 or NaN), which classes a mean
#   takes, VOID and crowd in PQ. minseg follows FCN's definitions and COCO's `pq_compute`.
#
# ## Exercise: the source taps of bilinear interpolation
#
# Write `linear_taps(in_size, out_size, align_corners=False, scale=None)`, minseg's function
# (`minseg.ops.interpolate.linear_taps`): return `(i0, i1, lam0, lam1)`, each of shape `(out_size,)`,
# so that output `o` is `lam0[o] * x[i0[o]] + lam1[o] * x[i1[o]]`, for both conventions of section 4:
# `src = o * (in - 1) / (out - 1)` (0 when `out = 1`) with `align_corners=True`; else
# `src = max((o + 0.5) * step - 0.5, 0)` with `step = 1 / scale` when a scale is given, `in / out`
# otherwise. Then `i0 = min(floor(src), in - 1)`, `i1 = min(i0 + 1, in - 1)`, `lam1 = src - i0`,
# `lam0 = 1 - lam1`. An unchanged size is copied: `i0 = i1 = o`, `lam0 = 1`, `lam1 = 0`. The checker
# names the framework differences of this lesson when your answer is one of them.

# %% tags=["task"]
def linear_taps_mine(in_size, out_size, align_corners=False, scale=None):
    # hint: o = np.arange(out_size); compute src for the convention, then i0, i1 and the two weights
    raise NotImplementedError


# %% tags=["solution"]
def linear_taps_mine(in_size, out_size, align_corners=False, scale=None):
    o = np.arange(out_size)
    if in_size == out_size:                                  # PyTorch copies an unchanged axis
        return o, o.copy(), np.ones(out_size), np.zeros(out_size)
    if align_corners:
        src = o * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(out_size)
    else:
        step = 1.0 / scale if scale is not None and scale > 0 else in_size / out_size
        src = np.maximum((o + 0.5) * step - 0.5, 0.0)        # clamped: the first samples copy x[0]
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam1 = np.clip(src - i0, 0.0, 1.0)
    return i0, i1, 1.0 - lam1, lam1


# %%
r = exercises.check("linear_taps", linear_taps_mine)
r

# %% tags=["solution"]
assert r.passed, r
