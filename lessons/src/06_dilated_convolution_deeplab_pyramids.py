# Lesson 06: dilated convolution, DeepLab, pyramids (exercise and solution notebooks are built from this file).

# %% [markdown]
# # 06 · Dilated convolution, DeepLab, pyramids
#
# FCN (lesson 05) pools five times and then has to upsample a coarse score map 32x. The notes name the
# problem: FCN's **receptive field has a fixed size** (Receptive Field의 크기가 일정하게 정해져 있어서), so
# small objects are missed and the results are not consistent, and **DeepLab** answers it with the
# **dilated convolution** (Deeplab이라는 모델에서 Dilated Convolution을 이용하였다). DeepLab (Google; versions
# 1, 2, 3 and 3+) is built from the ideas this lesson takes one at a time:
#
# 1. **Atrous (dilated) convolution** (Atrous Convolution, Dilated Convolution): the filter works with
#    **empty space inside it** (필터 내부에 빈 공간을 둔 채로). A rate `r` says how much; `r = 1` is the ordinary
#    convolution. It keeps the parameters and the computation of the ordinary convolution and widens the
#    **field of view** (한 픽셀이 볼 수 있는 영역): the receptive field grows **without more parameters**
#    and without pooling, so little spatial resolution is lost, which is why segmentation uses it.
# 2. **Spatial pyramid pooling** (SPPNet): the feature map is divided into 4x4, 2x2 and 1x1 **bins**
#    (each grid a "pyramid", each cell a bin), each bin max-pooled, the results concatenated: a 64x64x256
#    map gives 21 x 256 numbers, and **any input size gives the same length**.
# 3. **Atrous spatial pyramid pooling** (ASPP): several atrous convolutions at different rates side by
#    side, with a global image-pooling branch.
# 4. ParseNet's **global context**: a feature map is pooled to one global vector, L2-normalised,
#    **unpooled** back to the map's size and concatenated with the L2-normalised map (ParseNet: 69.8% mIoU on
#    PASCAL VOC 2012, 40.4% on PASCAL-Context, as the review in the notes reports).
# 5. **Depthwise-separable convolution**: the convolution split into a per-channel step and a 1x1 step,
#    `H x W x C x n` parameters becoming `H x W x C + C x n` (DeepLab v3+ uses it to cut parameters while
#    keeping the performance).
#
# Each comes with minseg's op, a check, and a picture; at the end DeepLab is trained with and without
# ASPP, and with a separable ASPP, on the same data.

# %%
import dataclasses
import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from minseg import exercises
from minseg.data import load_splits
from minseg.gradcheck import check_backward
from minseg.models import build_model
from minseg.models.deeplab import ASPP
from minseg.nn import Conv2d, MaxPool2d, SeparableConv2d, SpatialPyramidPool
from minseg.nn.blocks import concat
from minseg.ops import (adaptive_bins, adaptive_max_pool2d, adaptive_max_pool2d_backward, broadcast_to_size,
                        conv2d, conv2d_backward, global_avg_pool2d, l2_normalize, l2_normalize_backward,
                        spatial_pyramid_pool)
from minseg.reference import adaptive_max_pool2d_loops, conv2d_loops
from minseg.shapes import conv_output_size, receptive_field
from minseg.train import TrainConfig, evaluate, predict, train
from minseg.viz import show_grid

QUICK = os.environ.get("MINSEG_LESSONS_QUICK") == "1"
np.set_printoptions(precision=4, suppress=True, linewidth=120)

# %% [markdown]
# `QUICK` is the quick setting the test suite uses for the exercise notebooks: it only shortens the
# training in section 8 (`EPOCHS` there); every example and check before it is the same in both versions.
#
# ## 1. Atrous convolution with rate r
#
# A 3x3 kernel at rate `r` keeps its 9 weights but puts them `r` pixels apart: tap `(kh, kw)` reads the
# input at `(i + r kh, j + r kw)`,
#
# `y[n, o, i, j] = b[o] + sum over c, kh, kw of  w[o, c, kh, kw] * x_pad[n, c, i*s + r*kh, j*s + r*kw]`
#
# (lesson 02's formula, with `d = r`). Between the taps are the **holes** ("trous"); the kernel spans
# `r (k - 1) + 1` pixels. The taps of one output pixel at rates 1, 2 and 3:

# %%
def draw_taps(ax, rate, size=9, k=3):
    """The input grid, and the k x k taps of the centre output pixel at this rate (red) with the holes."""
    ax.imshow(np.zeros((size, size)), cmap="Greys", vmin=0, vmax=1)
    c = size // 2
    span = rate * (k - 1) + 1
    ax.add_patch(Rectangle((c - span // 2 - 0.5, c - span // 2 - 0.5), span, span, fill=False,
                           edgecolor="tab:blue", linestyle="--", linewidth=1.5))
    for kh in range(k):
        for kw in range(k):
            r, q = c + rate * (kh - k // 2), c + rate * (kw - k // 2)
            ax.add_patch(Rectangle((q - 0.5, r - 0.5), 1, 1, color="tab:red"))
            ax.text(q, r, f"{kh},{kw}", ha="center", va="center", color="white", fontsize=7)
    ax.set_xticks(np.arange(-0.5, size), minor=True); ax.set_yticks(np.arange(-0.5, size), minor=True)
    ax.grid(which="minor", color="lightgrey"); ax.tick_params(which="both", length=0)
    ax.set_xticklabels([]); ax.set_yticklabels([])
    ax.set_title(f"rate r = {rate}: 9 taps spanning {span}x{span}")


fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
for ax, rate in zip(axes, (1, 2, 3)):
    draw_taps(ax, rate)
plt.show()

# %% [markdown]
# The notes put it as **zeros inside the filter** (필터 내부에 zero padding을 추가): a 3x3 kernel at rate 2 is a
# 5x5 kernel whose every other row and column is zero. A tiny example, a 7x7 input holding 0..48 and the
# kernel 1..9 at rate 2, by hand for the top-left output, then by the loops of `minseg.reference`, by
# `minseg.ops.conv2d(..., dilation=2)` and by the ordinary convolution with the zero-filled 5x5 kernel:

# %%
x = np.arange(49.0).reshape(1, 1, 7, 7)                     # (N, C, H, W)
w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)                # (C_out, C, KH, KW)
r = 2
patch = x[0, 0, 0:5:r, 0:5:r]                               # the 9 pixels the taps read, r apart
terms = " + ".join(f"{a:g}*{b:g}" for a, b in zip(w[0, 0].ravel(), patch.ravel()))
print(f"y[0, 0, 0, 0] = {terms} = {np.sum(w[0, 0] * patch):g}")

w_holes = np.zeros((1, 1, 5, 5))
w_holes[:, :, ::r, ::r] = w                                 # the 3x3 weights r apart, zeros in the holes
print("the 3x3 kernel at rate 2 as a 5x5 kernel with zeros:\n", w_holes[0, 0])
y_loops = conv2d_loops(x, w, dilation=r)
y_fast, _ = conv2d(x, w, dilation=r)
y_holes, _ = conv2d(x, w_holes)
print("conv2d_loops(x, w, dilation=2)[0, 0] =\n", y_loops[0, 0])
print("max |conv2d - loops|:", np.abs(y_fast - y_loops).max(), "  max |5x5 with zeros - loops|:",
      np.abs(y_holes - y_loops).max())
print("output size: conv_output_size(7, 3, dilation=2) =", conv_output_size(7, 3, dilation=2),
      "; with padding = r it keeps the size:", conv_output_size(7, 3, padding=r, dilation=r))

# %% [markdown]
# On a random batch with several channels, stride and padding, the fast `conv2d` agrees with the loops at
# every rate, while the number of weights stays `C_out x C_in x 3 x 3` whatever the rate:

# %%
rng = np.random.default_rng(0)
xb = rng.standard_normal((2, 3, 12, 11))                    # (N, C, H, W)
wb = rng.standard_normal((4, 3, 3, 3))                      # (C_out, C, KH, KW)
for rate in (1, 2, 3, 4):
    for stride in (1, 2):
        y_f, _ = conv2d(xb, wb, stride=stride, padding=rate, dilation=rate)
        y_l = conv2d_loops(xb, wb, stride=stride, padding=rate, dilation=rate)
        layer = Conv2d(3, 4, 3, stride=stride, padding=rate, dilation=rate, bias=False)
        print(f"rate {rate}, stride {stride}: y {y_f.shape}, max |conv2d - loops| {np.abs(y_f - y_l).max():.1e}, "
              f"kernel spans {rate * 2 + 1}x{rate * 2 + 1}, {layer.num_parameters()} weights")

# %% [markdown]
# ## 2. The receptive field grows, the parameters do not
#
# The receptive field of a stack (lesson 02) is `r = 1 + sum_l d_l (k_l - 1) * prod_{m<l} s_m`
# (`minseg.shapes.receptive_field`, layers given as `(kernel, stride, dilation)`). Stacks of `L` 3x3
# convolutions, all at stride 1, 64 channels in and out:
#
# * ordinary (rate 1): each layer adds 2, `r = 2L + 1`;
# * dilated with rates 1, 2, 4, 8, ... (Yu & Koltun, "Multi-scale context aggregation by dilated
#   convolutions", cited in the notes): each layer doubles the field, `r = 2^(L+1) - 1`;
# * for comparison, the one ordinary convolution whose kernel is as large as the dilated stack's field,
#   and a stack that pools (3x3 conv + 2x2 max-pool, stride 2) which grows the field as fast but halves
#   the resolution every layer.

# %%
C = 64
depths = np.arange(1, 9)
rows = []
for L in depths:
    ordinary = [(3, 1, 1)] * L
    dilated = [(3, 1, 2 ** l) for l in range(L)]
    pooled = [layer for _ in range(L) for layer in ((3, 1, 1), (2, 2, 1))]
    rf_o, rf_d, rf_p = receptive_field(ordinary), receptive_field(dilated), receptive_field(pooled)
    params = L * C * C * 3 * 3                                   # the same for both 3x3 stacks
    rows.append((L, rf_o, rf_d, rf_p, params, C * C * rf_d * rf_d, 64 // 2 ** L))
print(f"{'L':>2} {'rf ordinary':>11} {'rf dilated':>10} {'rf pooled':>9} {'params (both 3x3 stacks)':>25} "
      f"{'params of one rf_d x rf_d conv':>31} {'pooled map of a 64 input':>25}")
for L, ro, rd, rp, p, p_big, res in rows:
    print(f"{L:>2} {ro:>11} {rd:>10} {rp:>9} {p:>25,} {p_big:>31,} {res:>25}")
layer_counts = [Conv2d(C, C, 3, padding=d, dilation=d, bias=False).num_parameters() for d in (1, 2, 4, 8)]
print("minseg Conv2d(64, 64, 3, dilation=d) weights for d = 1, 2, 4, 8:", layer_counts)

fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(depths, [r[1] for r in rows], "o-", label="3x3, rate 1")
ax.plot(depths, [r[2] for r in rows], "s-", label="3x3, rates 1, 2, 4, ...")
ax.plot(depths, [r[3] for r in rows], "^--", label="3x3 + 2x2 pool (resolution halves)")
ax.set_xlabel("layers L (the 3x3 stacks have the same parameters)"); ax.set_ylabel("receptive field (pixels)")
ax.set_yscale("log", base=2); ax.legend(); ax.grid(alpha=0.3)
ax.set_title("receptive_field of stacks of ordinary vs dilated convolutions")
plt.show()

# %% [markdown]
# The table above: the dilated stack's field grows exponentially with the same parameters as the ordinary
# stack, whose field grows linearly; a single convolution with a kernel as large as the dilated stack's
# field would need the parameters of the "one rf_d x rf_d conv" column. Pooling grows the field as fast,
# but the map it leaves shrinks (last column): that is the resolution FCN has to recover by upsampling.
#
# ## 3. The gridding artifact
#
# Dilation has a catch. Stack convolutions **all at the same rate** `r` and every tap of every layer lands
# on a multiple of `r`: the stack's output pixel only ever sees input pixels whose offsets are multiples of
# `r`, a grid with holes, however large its receptive field. Which input pixels does one output pixel depend
# on? Its gradient says: send `dy = 1` at the centre output pixel back through the stack with minseg's
# `conv2d_backward` (weights all ones, so the gradient counts the paths from each input pixel) and look
# where it is not zero.

# %%
def sensitivity(rates, size=33, k=3):
    """d y[centre] / d x for a stack of k x k convolutions (one channel, weights 1, padding = rate): (size, size)."""
    h = np.zeros((1, 1, size, size))                         # the input; its values do not matter (linear)
    caches = []
    for rate in rates:
        h, cache = conv2d(h, np.ones((1, 1, k, k)), padding=rate, dilation=rate)
        caches.append(cache)
    dy = np.zeros_like(h)
    dy[0, 0, size // 2, size // 2] = 1.0                     # one output pixel
    for cache in reversed(caches):
        dy, _, _ = conv2d_backward(dy, cache)
    return dy[0, 0]


stacks = [(1, 1, 1), (2, 2, 2), (3, 3, 3), (1, 2, 3)]
fig, axes = plt.subplots(1, len(stacks), figsize=(14, 3.8))
for ax, rates in zip(axes, stacks):
    g = sensitivity(rates)
    rf = receptive_field([(3, 1, d) for d in rates])
    c, half = g.shape[0] // 2, rf // 2
    box = g[c - half:c + half + 1, c - half:c + half + 1]    # the receptive field
    seen = int((box > 0).sum())
    ax.imshow(g > 0, cmap="Greys_r", vmin=0, vmax=1)
    ax.add_patch(Rectangle((c - half - 0.5, c - half - 0.5), rf, rf, fill=False, edgecolor="tab:red"))
    ax.set_title(f"rates {rates}: field {rf}x{rf}\nsees {seen} of {rf * rf} pixels")
    ax.axis("off")
    print(f"rates {rates}: receptive field {rf}x{rf} = {rf * rf} pixels, of which {seen} reach the output, "
          f"{rf * rf - seen} never do")
plt.show()

# %% [markdown]
# White: the input pixels the centre output pixel depends on; red box: its receptive field. At rate 2
# three times the field is 13x13, at rate 3 19x19, but each sees the same number of pixels as the ordinary
# stack (the cell prints the counts), spread over a grid of step 2 or 3. Neighbouring output pixels then
# look at disjoint grids and their predictions lose local consistency ("gridding").
# The fix of hybrid dilated convolution (Wang et al., 2018) is to choose rates without a common factor, such
# as 1, 2, 3 (last panel): the holes fill in and every pixel of the field is seen.
#
# ## 4. Spatial pyramid pooling: one length for every input size
#
# SPP needs bins that fit any map size. Adaptive pooling (lesson 04's max-pooling with the window
# computed from the sizes) gives them: to pool an `H`-long axis into `n` bins, bin `i` covers rows
# `floor(i H / n)` to `ceil((i + 1) H / n) - 1` (PyTorch's rule; `minseg.ops.adaptive_bins`). When `n`
# does not divide `H` neighbouring bins share a row.

# %%
for H, n in ((64, 4), (13, 4), (13, 2), (10, 4), (5, 3)):
    starts, ends = adaptive_bins(H, n)
    print(f"H = {H:>2}, n = {n}: bins", ", ".join(f"[{s}, {e})" for s, e in zip(starts, ends)))

# %% [markdown]
# The notes describe SPPNet's own recipe: each bin gets "a window and a stride of the right size". In the
# paper these are a window of `ceil(H / n)` and a stride of `floor(H / n)`; when `n` does not divide `H`
# the windows can stop short of the last rows, which the adaptive bins (always ending at `H`) never do:

# %%
for H, n in ((13, 4), (10, 4), (7, 4)):
    win, step = -(-H // n), H // n
    windows = [(i * step, i * step + win) for i in range(n)]
    missed = sorted(set(range(H)) - {h for a, b in windows for h in range(a, b)})
    print(f"H = {H:>2}, n = {n}: SPPNet windows", ", ".join(f"[{a}, {b})" for a, b in windows),
          f"-> rows never pooled: {missed}")

# %% [markdown]
# The pyramid of the notes, the 4x4, 2x2 and 1x1 bins, on two feature maps of different sizes:

# %%
fig, axes = plt.subplots(2, 3, figsize=(10, 6.5))
for row, (H, W) in zip(axes, ((16, 16), (13, 10))):
    for ax, level in zip(row, (4, 2, 1)):
        ax.imshow(np.zeros((H, W)), cmap="Greys", vmin=0, vmax=1)
        (sh, eh), (sw, ew) = adaptive_bins(H, level), adaptive_bins(W, level)
        colours = plt.cm.tab20(np.linspace(0, 1, level * level))
        for i in range(level):
            for j in range(level):
                ax.add_patch(Rectangle((sw[j] - 0.5, sh[i] - 0.5), ew[j] - sw[j], eh[i] - sh[i], alpha=0.35,
                                       facecolor=colours[i * level + j], edgecolor="k"))
        ax.set_title(f"{H}x{W} map, {level}x{level} bins")
        ax.set_xticks([]); ax.set_yticks([])
plt.show()

# %% [markdown]
# (Overlapping bins show as darker bands on the 13x10 map.) The slow version pools bin by bin
# (`minseg.reference.adaptive_max_pool2d_loops`); `minseg.ops.adaptive_max_pool2d` agrees with it, and its
# hand-written backward sends each bin's gradient to its maximum, *adding* where overlapping bins share one:

# %%
xs = rng.standard_normal((2, 3, 13, 10))                     # (N, C, H, W)
y_fast, cache = adaptive_max_pool2d(xs, 4)
y_slow, idx_slow = adaptive_max_pool2d_loops(xs, (4, 4))
print("y", y_fast.shape, " max |ops - loops|:", np.abs(y_fast - y_slow).max(),
      " indices equal:", np.array_equal(cache.indices, idx_slow))
print(check_backward(adaptive_max_pool2d, adaptive_max_pool2d_backward, {"x": xs}, output_size=4))

# %% [markdown]
# `spatial_pyramid_pool(x, levels=(4, 2, 1))` concatenates the flattened pools, `16 + 4 + 1 = 21` bins per
# channel. The notes' example, a 64x64x256 feature map, and a map of another size:

# %%
for H, W in ((64, 64), (40, 52)):
    feat = rng.standard_normal((1, 256, H, W)).astype(np.float32)       # (N, C, H, W)
    v, _ = spatial_pyramid_pool(feat, levels=(4, 2, 1))
    print(f"feature map {H}x{W}x256 -> SPP output {v.shape}: {v.shape[1]} = 21 x 256 = {21 * 256}")
spp = SpatialPyramidPool(levels=(4, 2, 1))
print("SpatialPyramidPool().output_features(256) =", spp.output_features(256),
      "(the input size of a fully connected layer after it)")

# %% [markdown]
# Both sizes give 5376 numbers (the cell above prints them), so a fully connected layer can follow the
# convolutions whatever the image size: this is how SPPNet freed R-CNN from fixed-size crops.
#
# ## 5. ASPP with image pooling
#
# DeepLab applies the pyramid idea *inside* the network, with atrous convolutions instead of bins: the
# **atrous spatial pyramid pooling** module runs, side by side on the same feature map, a 1x1 convolution,
# 3x3 convolutions at several rates, and an **image-pooling** branch (global average pooling, a 1x1
# convolution, and the result copied back to every pixel); it concatenates them and projects with a 1x1
# convolution. minseg's `ASPP` (`minseg/models/deeplab.py`), on a 128-channel 8x8 map as DeepLab's
# backbone gives for a 64x64 image (output stride 8), with rates 2, 4, 6, walked branch by branch:

# %%
aspp = ASPP(128, 64, rates=(2, 4, 6), image_pooling=True, rng=0, dtype=np.float64)
aspp.eval()
feat = rng.standard_normal((2, 128, 8, 8))                   # (N, C, H/8, W/8)
outs = []
for j, branch in enumerate(aspp.branches):
    o = branch.forward(feat)
    what = "1x1 conv" if j == 0 else f"3x3 conv, rate {aspp.rates[j - 1]}"
    print(f"b{j}: {what:<22} -> {o.shape}   {branch.num_parameters():>7,} parameters")
    outs.append(o)
g = aspp.gap.forward(feat)
p = aspp.pool_conv.forward(g)
u, _ = broadcast_to_size(p, feat.shape[2:])
print(f"image pooling: global average {g.shape} -> 1x1 conv {p.shape} -> broadcast {u.shape}   "
      f"{aspp.pool_conv.num_parameters():>7,} parameters")
outs.append(u)
cat, sizes = concat(outs)
y = aspp.project.forward(cat)
print(f"concat {cat.shape} (channels {sizes}) -> project 1x1 {y.shape}   {aspp.project.num_parameters():,} parameters")
print("the walk equals aspp.forward:", np.allclose(y, aspp.forward(feat), rtol=1e-12, atol=1e-12))

# %% [markdown]
# Why the image-pooling branch: on a small map a large rate sends most taps into the padding. For each
# rate, the share of the 3x3 taps of the 8x8 map's pixels that land inside the map (DeepLab v3 makes this
# point at rates close to the map size, where the 3x3 filter degenerates into a 1x1):

# %%
size = 8
for rate in (1, 2, 4, 6, 8):
    offsets = rate * np.arange(-1, 2)
    inside_1d = ((np.arange(size)[:, None] + offsets[None, :] >= 0)
                 & (np.arange(size)[:, None] + offsets[None, :] < size))        # (pixel, tap) along one axis
    share = inside_1d.sum() ** 2 / (size * size * 9)                            # separable: rows x columns
    print(f"rate {rate}: {share:.1%} of the taps land inside the {size}x{size} map")

# %% [markdown]
# ## 6. ParseNet's global context
#
# ParseNet adds the whole image's context to every pixel in four steps (the notes): pool the feature map
# to **one global vector**, **L2-normalise** it, **unpool** it to the map's size, L2-normalise the map
# itself, and **concatenate** the two. The normalisation is there because features concatenated from
# different places can have very different scales (the paper shows it for features of different layers),
# and the larger would dominate what follows; normalised, each pixel's local and global parts both have
# norm 1. minseg has each step:
# `global_avg_pool2d`, `l2_normalize` (per pixel over the channels, PyTorch's `F.normalize(x, dim=1)`),
# `broadcast_to_size` ("unpool") and `concat`. On the features of minseg's VGG backbone for two images of
# the `shapes` dataset:

# %%
shapes = load_splits("shapes")
backbone = build_model("deeplab", num_classes=5, widths=(16, 32, 64, 64, 64), convs=1, rng=0).backbone
backbone.eval()
local = backbone.forward(shapes["test"].images[:2]).astype(np.float64)       # (N, C, H/8, W/8)
glob, _ = global_avg_pool2d(local)                                             # (N, C, 1, 1)
glob_n, _ = l2_normalize(glob)
glob_u, _ = broadcast_to_size(glob_n, local.shape[2:])                         # (N, C, H/8, W/8)
local_n, _ = l2_normalize(local)
context, sizes = concat([local_n, glob_u])                                     # (N, 2C, H/8, W/8)
norm = lambda a: np.sqrt((a ** 2).sum(axis=1))                                 # noqa: E731  per-pixel L2 norm
print("local features", local.shape, "global vector", glob.shape, "-> concatenated", context.shape)
print(f"before: mean per-pixel norm of the local features {norm(local).mean():.3f}, "
      f"norm of the global vector {norm(glob).mean():.3f}")
print(f"after : local {norm(local_n).min():.6f}..{norm(local_n).max():.6f}, "
      f"global {norm(glob_u).min():.6f}..{norm(glob_u).max():.6f}")
print(check_backward(l2_normalize, l2_normalize_backward, {"x": local[:1, :, :3, :3]}))

# %% [markdown]
# The cell above prints the two scales before normalisation (here, on untrained non-negative features,
# they happen to be close; between the layers of a trained network they need not be) and after it: norm 1
# for both halves at every pixel, so neither swamps the other in the layers that follow (ParseNet then
# learns a scale per channel). The image-pooling branch of ASPP in section 5 is the same idea: the global
# average, broadcast to every pixel, concatenated.
#
# ## 7. Depthwise-separable convolution
#
# The notes (DeepLab v3+): an ordinary convolution mixes space and channels at once; the depthwise-separable
# one splits it into a **depthwise** `k x k` convolution of each channel on its own (`groups = C`) and a
# **pointwise** 1x1 convolution that mixes the channels. Parameters: `k x k x C x n` become
# `k x k x C + C x n`. With minseg's `Conv2d` and `SeparableConv2d` (no bias), `k = 3`, `C = 64`, `n = 128`:

# %%
C_in, C_out, k = 64, 128, 3
full = Conv2d(C_in, C_out, k, padding=1, bias=False, rng=0, dtype=np.float64)
sep = SeparableConv2d(C_in, C_out, k, padding=1, bias=False, rng=0, dtype=np.float64)
print(f"ordinary  3x3: {full.num_parameters():>6,} = 3 x 3 x {C_in} x {C_out}")
print(f"separable 3x3: {sep.num_parameters():>6,} = 3 x 3 x {C_in} + {C_in} x {C_out}"
      f"  ({sep.depthwise.num_parameters()} depthwise + {sep.pointwise.num_parameters()} pointwise),"
      f" {sep.num_parameters() / full.num_parameters():.1%} of the ordinary")
print("depthwise weight", sep.depthwise.weight.shape, "groups =", sep.depthwise.groups)

# %% [markdown]
# Two checks. The depthwise step is `conv2d` with `groups = C`: output channel `c` is channel `c` alone
# convolved with its own 3x3 filter. And the separable convolution is an ordinary one whose kernel is
# restricted to `W[o, c] = p[o, c] * d[c]` (a pointwise weight times a per-channel filter): building that
# full kernel gives the same output. So it can only express a subset of what the ordinary convolution can,
# with the fraction of the weights printed above:

# %%
xs = rng.standard_normal((2, C_in, 9, 9))                    # (N, C, H, W)
d = sep.depthwise.weight.data                                # (C, 1, 3, 3)
p_w = sep.pointwise.weight.data                              # (C_out, C, 1, 1)
y_dw = sep.depthwise.forward(xs)
c = 5
y_c, _ = conv2d(xs[:, c:c + 1], d[c:c + 1], padding=1)
print(f"depthwise channel {c} = conv2d of channel {c} alone: max |difference|", np.abs(y_dw[:, c:c + 1] - y_c).max())
w_equiv = p_w[:, :, 0, 0][:, :, None, None] * d[None, :, 0]  # (C_out, C, 3, 3): W[o, c] = p[o, c] * d[c]
y_equiv, _ = conv2d(xs, w_equiv, padding=1)
print("separable = ordinary conv with W[o, c] = p[o, c] d[c]: max |difference|",
      np.abs(sep.forward(xs) - y_equiv).max())

# %% [markdown]
# What the restriction costs in accuracy is measured below, with DeepLab's ASPP built from separable
# convolutions (`separable=True`).

# %% [markdown]
# ## 8. DeepLab with and without ASPP, on the same data
#
# minseg's `DeepLab` (`build_model("deeplab", ...)`) is DeepLab's surgery on the small VGG backbone of
# lesson 05: the last two poolings are removed and the convolutions after them dilated, so the features
# stay at 1/8 of the input (output stride 8) while the receptive field keeps growing; ASPP follows, then a
# 1x1 classifier and bilinear upsampling to the input size. Three versions, identical except for the head:
#
# * **ASPP**: a 1x1 branch, 3x3 branches at rates 2, 4, 6 and image pooling (section 5);
# * **no ASPP**: `rates=()` and `image_pooling=False`, so only the 1x1 branch (and the 1x1 projection)
#   is left between the backbone and the classifier;
# * **separable ASPP**: the same ASPP with depthwise-separable 3x3 convolutions (section 7).
#
# The data is the `shapes` dataset of lesson 00, whose classes (circle, square, triangle, cross) are told
# apart by shape, not colour: the first `N_TRAIN` training images, scored on the whole test split. The three
# models train with the same seed, initial backbone weights, optimiser (Adam, poly schedule), batch size
# and number of epochs; the time each took is printed beside its score.

# %%
SEED, N_TRAIN = 0, 400
EPOCHS = 2 if QUICK else 4
CONFIG = TrainConfig(epochs=EPOCHS, batch_size=16, lr=5e-3, seed=SEED)
splits = shapes
train_set = dataclasses.replace(splits["train"], images=splits["train"].images[:N_TRAIN],
                                labels=splits["train"].labels[:N_TRAIN], instances=splits["train"].instances[:N_TRAIN])
test_set = splits["test"]
print(train_set, "\n", test_set)
print(f"{EPOCHS} epochs of {len(train_set)} images, batch size {CONFIG.batch_size}, learning rate {CONFIG.lr}")
ARCH = dict(widths=(8, 16, 32, 32, 32), convs=1, aspp_channels=16)
VARIANTS = {
    "ASPP": dict(rates=(2, 4, 6), image_pooling=True),
    "no ASPP": dict(rates=(), image_pooling=False),
    "separable ASPP": dict(rates=(2, 4, 6), image_pooling=True, separable=True),
}


def layers_of(module):
    """(kernel, stride, dilation) along one axis of every Conv2d and MaxPool2d of a module, in order."""
    return [(m.kernel_size[0], m.stride[0], m.dilation[0]) for _, m in module.named_modules()
            if isinstance(m, (Conv2d, MaxPool2d))]


models = {title: build_model("deeplab", num_classes=train_set.num_classes, in_channels=3, rng=SEED, **ARCH, **head)
          for title, head in VARIANTS.items()}
first = models["ASPP"].backbone.state_dict()
print("the three backbones start from the same weights:",
      all(np.array_equal(first[k], m.backbone.state_dict()[k]) for m in models.values() for k in first))
backbone_layers = layers_of(models["ASPP"].backbone)
print("backbone (kernel, stride, dilation):", backbone_layers)
print("receptive field of the backbone:", receptive_field(backbone_layers),
      "pixels; with ASPP's rate-6 branch on top:", receptive_field(backbone_layers + [(3, 1, 6)]))

results = {}
for title, model in models.items():
    print(f"DeepLab, {title}: {model.num_parameters():,} parameters ({model.aspp.num_parameters():,} in the head)")
    history = train(model, train_set, None, CONFIG, log=lambda line, title=title: print(f"  {title}: {line}"))
    results[title] = {"model": model, "seconds": history.seconds, "scores": evaluate(model, test_set, panoptic=False)}

# %%
print(f"{'DeepLab':<15} {'parameters':>10} {'head':>7} {'train s':>8} {'test mIoU':>9} {'pixel acc':>9}   "
      f"IoU per class ({', '.join(test_set.class_names)})")
for title, r in results.items():
    s, m = r["scores"], r["model"]
    print(f"{title:<15} {m.num_parameters():>10,} {m.aspp.num_parameters():>7,} {r['seconds']:>8.1f} {s['miou']:>9.4f} "
          f"{s['pixel_accuracy']:>9.4f}   {np.round(s['iou'], 3)}")
m_aspp, m_none, m_sep = (results[t]["scores"]["miou"] for t in VARIANTS)
print(f"\nmIoU with ASPP - without: {m_aspp - m_none:+.4f}  ->", "ASPP ahead" if m_aspp > m_none else "ASPP not ahead")
print(f"mIoU separable ASPP - ordinary ASPP: {m_sep - m_aspp:+.4f} with "
      f"{results['separable ASPP']['model'].aspp.num_parameters() / results['ASPP']['model'].aspp.num_parameters():.0%}"
      f" of the head's parameters")

# %% [markdown]
# The table above is the result of this run: read the mIoU column and the two lines under it, which say by
# how much ASPP changed the score and what the separable ASPP cost (or gained) with a fraction of the
# head's parameters. One short run on a few hundred small images says little about the heads in general:
# its scores also depend on the seed (`SEED` above sets the initial weights and the batch order; try
# another, More to try 4). And ASPP was made for large images (DeepLab v3 uses rates 6, 12, 18 on
# 513-pixel crops); here the backbone's receptive field alone, printed before the training, is already
# larger than the 64x64 image, and section 5 showed how many of the rate-6 taps fall into the padding of
# the 8x8 feature map. The predictions of the three models on the same test images, beside the truth:

# %%
idx = np.arange(4)
preds = {title: predict(r["model"], test_set.images[idx]) for title, r in results.items()}
show_grid(test_set.images[idx], test_set.labels[idx], *preds.values(), class_names=test_set.class_names,
          palette=test_set.palette, ignore_index=test_set.ignore_index, background=0,
          titles=["image", "truth", *(f"DeepLab, {t}" for t in preds)], row_titles=[f"test {i}" for i in idx])
plt.show()

# %% [markdown]
# And where each model is wrong on those images (white: a labelled pixel predicted wrongly), with the count
# over the whole test split:

# %%
labelled = test_set.labels != test_set.ignore_index
fig, axes = plt.subplots(len(results), len(idx), figsize=(2.3 * len(idx), 2.4 * len(results)))
for row, (title, r) in enumerate(results.items()):
    wrong = (predict(r["model"], test_set.images) != test_set.labels) & labelled
    print(f"DeepLab, {title}: {int(wrong.sum()):,} of {int(labelled.sum()):,} labelled test pixels wrong")
    for ax, i in zip(axes[row], idx):
        ax.imshow(wrong[i], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{title}, test {i}", fontsize=9)
        ax.axis("off")
plt.show()

# %% [markdown]
# ## Summary
#
# * An **atrous (dilated) convolution** at rate `r` spreads the kernel's taps `r` apart: the same weights
#   (a 3x3 kernel at rate 2 is a 5x5 kernel with zeros in the holes), a span of `r (k - 1) + 1` pixels,
#   output size `floor((H + 2p - r(k - 1) - 1) / s) + 1`; `padding = r` keeps a 3x3's size.
# * The **receptive field** `1 + sum_l d_l (k_l - 1) prod_{m<l} s_m` of a stack grows linearly with
#   ordinary 3x3 convolutions and exponentially with rates 1, 2, 4, ..., with the same parameters and
#   without the loss of resolution of pooling.
# * **Gridding**: a stack at one rate `r` sees only every `r`-th input pixel (computed above from the
#   gradient of one output pixel); rates without a common factor (1, 2, 3) see all of them.
# * **Spatial pyramid pooling** pools 4x4, 2x2 and 1x1 adaptive bins (bin `i` from `floor(i H / n)` to
#   `ceil((i + 1) H / n)`) into a vector of `21 C` numbers whatever the input size.
# * **ASPP** runs a 1x1 branch, 3x3 branches at several rates and an image-pooling branch side by side and
#   projects their concatenation; at large rates on a small map most taps fall into the padding, which the
#   image-pooling branch makes up for.
# * **ParseNet's global context**: global average pooling, L2 normalisation, unpooling to the map's size,
#   L2 normalisation of the map, concatenation.
# * **Depthwise-separable convolution** (`groups = C`, then 1x1): `k^2 C + C n` parameters instead of
#   `k^2 C n`; it is an ordinary convolution with a restricted kernel `W[o, c] = p[o, c] d[c]`.
# * Trained on the same images for the same epochs, the three DeepLab heads' mIoUs, parameters and
#   times are printed in section 8.
#
# ## Exercises
#
# ### Exercise 1: `receptive_field`
# Write `receptive_field(layers)`: `layers` is a list of `(kernel, stride, dilation)` from the input upwards;
# return the receptive field along one axis, in input pixels, as an int.

# %% tags=["task"]
def receptive_field_mine(layers):
    raise NotImplementedError


# %% tags=["solution"]
def receptive_field_mine(layers):
    r, jump = 1, 1                     # jump: input pixels between neighbouring positions of this layer's input
    for k, s, d in layers:
        r += d * (k - 1) * jump        # a k-tap kernel at rate d spans d (k - 1) + 1 positions
        jump *= s
    return r


# %%
r = exercises.check("receptive_field", receptive_field_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 2: the output size of a dilated convolution
# Write `conv_output_size(size, kernel, stride=1, padding=0, dilation=1)`: the output length along one axis
# (an int), for any dilation.

# %% tags=["task"]
def conv_output_size_mine(size, kernel, stride=1, padding=0, dilation=1):
    raise NotImplementedError


# %% tags=["solution"]
def conv_output_size_mine(size, kernel, stride=1, padding=0, dilation=1):
    span = dilation * (kernel - 1) + 1                 # the pixels one window covers
    return (size + 2 * padding - span) // stride + 1   # window positions 0, s, 2s, ... that fit


# %%
r = exercises.check("conv_output_size", conv_output_size_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 3: `adaptive_max_pool2d`
# Write `adaptive_max_pool2d(x, output_size)`: `x` of shape `(N, C, H, W)`, `output_size` an int or a pair
# (an entry may be None: keep that axis). Return `(y, indices)`: the max of every bin (bin `i` covers rows
# `floor(i H / H_out)` to `ceil((i + 1) H / H_out) - 1`, columns likewise) and where it came from, as the
# flat index `h*W + w` into the `(H, W)` plane, the first maximum in row-major order when several are equal.

# %% tags=["task"]
def adaptive_max_pool2d_mine(x, output_size):
    raise NotImplementedError


# %% tags=["solution"]
def adaptive_max_pool2d_mine(x, output_size):
    N, C, H, W = x.shape
    H_out, W_out = (output_size, output_size) if isinstance(output_size, int) else output_size
    H_out, W_out = H if H_out is None else H_out, W if W_out is None else W_out
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    indices = np.empty((N, C, H_out, W_out), dtype=np.int64)
    for i in range(H_out):
        h0, h1 = (i * H) // H_out, -(-(i + 1) * H // H_out)           # floor start, ceil end
        for j in range(W_out):
            w0, w1 = (j * W) // W_out, -(-(j + 1) * W // W_out)
            window = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)           # (N, C, bin pixels), row-major
            k = window.argmax(axis=2)                                  # argmax keeps the first maximum
            y[:, :, i, j] = window.max(axis=2)
            indices[:, :, i, j] = (h0 + k // (w1 - w0)) * W + (w0 + k % (w1 - w0))
    return y, indices


# %%
r = exercises.check("adaptive_max_pool2d", adaptive_max_pool2d_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 4: `adaptive_max_pool2d_backward`
# Given `dy` of shape `(N, C, H_out, W_out)` and the forward's `cache` (`cache.x_shape`, `cache.indices`),
# return `dx` of shape `cache.x_shape`. Careful: where bins overlap, one pixel can be the maximum of two bins.

# %% tags=["task"]
def adaptive_max_pool2d_backward_mine(dy, cache):
    raise NotImplementedError


# %% tags=["solution"]
def adaptive_max_pool2d_backward_mine(dy, cache):
    N, C, H, W = cache.x_shape
    dx = np.zeros((N, C, H * W), dtype=dy.dtype)                     # (N, C, H*W): each plane flat
    idx = cache.indices.reshape(N, C, -1)                            # (N, C, H_out*W_out)
    g = dy.reshape(N, C, -1)                                         # (N, C, H_out*W_out)
    for n in range(N):
        for c in range(C):
            np.add.at(dx[n, c], idx[n, c], g[n, c])                  # add: a pixel may win two bins
    return dx.reshape(N, C, H, W)


# %%
r = exercises.check("adaptive_max_pool2d_backward", adaptive_max_pool2d_backward_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 5: `spatial_pyramid_pool`
# Write `spatial_pyramid_pool(x, levels=(4, 2, 1), mode="max")` with minseg's adaptive pools
# (`adaptive_max_pool2d`, `adaptive_avg_pool2d` for `mode="avg"`): return `y` of shape
# `(N, C * sum(l*l))`, the levels one after another in the order given, each `(N, C, l, l)` pool flattened
# channel first, then bin row, then bin column.

# %% tags=["task"]
def spatial_pyramid_pool_mine(x, levels=(4, 2, 1), mode="max"):
    raise NotImplementedError


# %% tags=["solution"]
from minseg.ops import adaptive_avg_pool2d  # noqa: E402


def spatial_pyramid_pool_mine(x, levels=(4, 2, 1), mode="max"):
    N = x.shape[0]
    pool = adaptive_max_pool2d if mode == "max" else adaptive_avg_pool2d
    parts = [pool(x, level)[0].reshape(N, -1) for level in levels]   # each (N, C*l*l): c, then i, then j
    return np.concatenate(parts, axis=1)                             # (N, C * sum(l*l))


# %%
r = exercises.check("spatial_pyramid_pool", spatial_pyramid_pool_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### More to try
#
# 1. Draw `sensitivity` for rates (2, 2, 2) with a 2x2 kernel, and for rates (1, 2, 5) (hybrid dilated
#    convolution's choice). Which pixels are missed now?
# 2. How large must the rates of a stack of four 3x3 convolutions be for the field to cover a 64x64 image,
#    and what is the smallest such stack without gridding?
# 3. Feed `spatial_pyramid_pool` feature maps of 3x3 and 2x2: what do the 4x4 bins hold then?
# 4. Train the three DeepLab heads again with another `SEED`, or for more epochs. Does the order of the
#    mIoUs stay the same?
