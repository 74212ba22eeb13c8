# Lesson 01: per-pixel classification (exercise and solution notebooks are built from this file).

# %% [markdown]
# # 01 · Per-pixel classification
#
# The notes start from the simplest idea there is: **classify every pixel on its own** (픽셀 하나하나마다
# classification). If it could be trained well it would be the most accurate, most powerful model; but it
# is very inefficient and hard to train: even for a 256x256 image, one image means as many predictions
# as there are pixels. Segmentation is a **dense prediction** task: the output is a class score map
# `(C, H, W)` (C classes), and the prediction map `(H, W)` gives each pixel the class with the highest
# score.
#
# The notes on FCN add two ways to get there:
#
# * **patchwise** learning: cut a patch of fixed size around a pixel, give it to a classifier, and give
#   the centre pixel the patch's class; repeat for every pixel, as a sliding window;
# * **pixelwise** learning: give the whole image to a fully convolutional network once and read the
#   `C x H x W` score map off its output.
#
# This lesson shows that a per-pixel linear classifier *is* a 1x1 convolution; counts and times what the
# patchwise and the pixelwise ways cost; writes the per-pixel softmax cross-entropy with an ignore label
# and its backward pass by hand; and trains minseg's per-pixel classifier, to see what a model without
# context cannot do.

# %%
import math
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from minseg import exercises
from minseg.data import batches, load_dataset, progress
from minseg.gradcheck import check_backward
from minseg.metrics import SegmentationMetrics
from minseg.models import build_model
from minseg.nn import Conv2d, ConvBNReLU, MaxPool2d, ReLU, Sequential, Upsample
from minseg.ops import conv2d, cross_entropy, cross_entropy_backward, linear
from minseg.optim import Adam
from minseg.shapes import receptive_field
from minseg.train import train_step
from minseg.viz import colorize, show_grid

QUICK = os.environ.get("MINSEG_LESSONS_QUICK") == "1"
STEPS = 50 if QUICK else 100           # training steps (mini-batches of 10 images) of both models, sections 5 and 6
np.set_printoptions(precision=4, suppress=True, linewidth=120)

# %% [markdown]
# `QUICK` is the quick setting the test suite uses for the exercise notebooks: it only shortens the two
# trainings of sections 5 and 6 (`STEPS` above); every worked example and check is the same in both
# versions.
#
# ## 1. One prediction per pixel
#
# The notes' count: an image of 256x256 pixels needs one classification per pixel.

# %%
H, W = 256, 256
print(f"{H} x {W} image: {H * W:,} per-pixel predictions")

ds = load_dataset("shapes", "train")
image, labels, _ = ds[3]
K = ds.num_classes
print(f"a shapes image {image.shape}: {image.shape[1] * image.shape[2]:,} predictions, each among K = {K} classes "
      f"{ds.class_names}")

# %% [markdown]
# A model's output for one image is a score map `(K, H, W)`: K scores per pixel. The prediction is the
# argmax over the class axis, a label map `(H, W)`. With made-up scores (random ones), for the image above:

# %%
scores = np.random.default_rng(0).standard_normal((K, *labels.shape))    # (K, H, W)
pred = scores.argmax(axis=0)                                              # (H, W)
print("score map", scores.shape, "-> argmax over classes -> prediction map", pred.shape)
print("scores of pixel (0, 0):", scores[:, 0, 0], "-> class", pred[0, 0])

fig, axes = plt.subplots(1, K + 2, figsize=(2.2 * (K + 2), 2.6))
axes[0].imshow(np.transpose(image, (1, 2, 0))); axes[0].set_title("image")    # (H, W, C)
for k in range(K):
    axes[k + 1].imshow(scores[k], cmap="viridis"); axes[k + 1].set_title(f"scores: {ds.class_names[k]}")
axes[K + 1].imshow(colorize(pred, ds.palette)); axes[K + 1].set_title("argmax")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. A per-pixel linear classifier is a 1x1 convolution
#
# The simplest per-pixel model is a linear classifier on the pixel's own colour: with weights `w` of
# shape `(K, C)` and a bias `b` of shape `(K,)`, the scores of pixel `(i, j)` are
#
# `s[:, i, j] = w @ x[:, i, j] + b`,
#
# the **same** `w` and `b` for every pixel. The slow way applies `minseg.ops.linear` (a fully connected
# layer, `y = x w^T + b`) pixel by pixel, in a loop:

# %%
rng = np.random.default_rng(1)
x = ds.images[:2].astype(np.float64)                      # (N, C, H, W), two images
N, C, Hs, Ws = x.shape
w = rng.standard_normal((K, C))                           # (K, C)
b = rng.standard_normal(K)                                # (K,)

t0 = time.perf_counter()
s_loop = np.zeros((N, K, Hs, Ws))
for i in range(Hs):
    for j in range(Ws):
        s_loop[:, :, i, j], _ = linear(x[:, :, i, j], w, b)   # (N, C) -> (N, K)
t_loop = time.perf_counter() - t0
print(f"linear at every pixel, {Hs * Ws} calls: {t_loop * 1e3:.0f} ms")

# %% [markdown]
# The loop is the definition, but the pixels need not be visited one at a time: put them all in one
# matrix, one row per pixel, and call `linear` once. And a convolution with a **1x1 kernel** computes
# exactly this: its window is the single pixel `(i, j)`, its weights `w.reshape(K, C, 1, 1)`:
#
# `y[n, k, i, j] = b[k] + sum over c of w[k, c, 0, 0] x[n, c, i, j]`.

# %%
rows = x.transpose(0, 2, 3, 1).reshape(-1, C)             # (N*H*W, C): one row per pixel
t0 = time.perf_counter()
s_rows, _ = linear(rows, w, b)                            # (N*H*W, K)
t_rows = time.perf_counter() - t0
s_rows = s_rows.reshape(N, Hs, Ws, K).transpose(0, 3, 1, 2)   # (N, K, H, W)

t0 = time.perf_counter()
s_conv, _ = conv2d(x, w.reshape(K, C, 1, 1), b)           # (N, K, H, W)
t_conv = time.perf_counter() - t0

print(f"one linear on all {N * Hs * Ws} pixels vs the loop : max |difference| {np.abs(s_rows - s_loop).max():.1e}")
print(f"conv2d with a 1x1 kernel vs the loop       : max |difference| {np.abs(s_conv - s_loop).max():.1e}")
print(f"time: loop {t_loop * 1e3:.0f} ms, one linear {t_rows * 1e3:.2f} ms, 1x1 conv2d {t_conv * 1e3:.2f} ms")
assert np.allclose(s_conv, s_loop, rtol=1e-12, atol=1e-12) and np.allclose(s_rows, s_loop, rtol=1e-12, atol=1e-12)

# %% [markdown]
# minseg's per-pixel model, `build_model("pixel", hidden=())`, is that 1x1 convolution (with `hidden`
# widths it is a stack of 1x1 convolutions with ReLUs between them: a small MLP applied at every pixel).
# Its forward pass is the linear classifier above with its own weights:

# %%
pixel_linear = build_model("pixel", num_classes=K, hidden=(), rng=0, dtype=np.float64)
print(pixel_linear)
conv = pixel_linear.net[0]
w_model = conv.weight.data.reshape(K, C)                  # (K, C, 1, 1) -> (K, C)
s_model = pixel_linear.forward(x)                         # (N, K, H, W)
s_lin, _ = linear(rows, w_model, conv.bias.data)          # (N*H*W, K)
s_lin = s_lin.reshape(N, Hs, Ws, K).transpose(0, 3, 1, 2)     # (N, K, H, W)
print(f"PixelClassifier(hidden=()) vs linear on every pixel: max |difference| {np.abs(s_model - s_lin).max():.1e}")
assert np.allclose(s_model, s_lin, rtol=1e-12, atol=1e-12)

# %% [markdown]
# What it costs: `K * C` multiply-adds per pixel, the same for every pixel, so for the notes' 256x256
# image:

# %%
print(f"1x1 convolution C={C} -> K={K}: {K * C} multiply-adds per pixel, "
      f"{H * W * K * C:,} for the {H * W:,} pixels of a {H}x{W} image")

# %% [markdown]
# ## 3. Patchwise vs pixelwise
#
# A pixel's colour says little about its class, so a classifier should see the **patch** around the pixel.
# The patchwise way cuts out the `P x P` patch centred on each pixel and classifies it, one patch at a
# time. Take as patch classifier a tiny CNN for 5x5 patches: a 3x3 convolution (5x5 -> 3x3), ReLU,
# another 3x3 convolution (3x3 -> 1x1), ReLU, and a 1x1 convolution to the K class scores. (Lesson 02
# writes the convolution itself; here it is only used.) The image is padded with zeros by 2 so that
# border pixels have a full patch too. On a 32x32 crop of the image of section 1:

# %%
rng = np.random.default_rng(2)
net = Sequential(Conv2d(3, 8, 3, rng=rng, dtype=np.float64), ReLU(),
                 Conv2d(8, 8, 3, rng=rng, dtype=np.float64), ReLU(),
                 Conv2d(8, K, 1, rng=rng, dtype=np.float64))
P = receptive_field([(3, 1, 1), (3, 1, 1), (1, 1, 1)])   # the patch one output sees: 5
crop = ds.images[3:4, :, 16:48, 16:48].astype(np.float64)  # (1, 3, 32, 32)
Hc, Wc = crop.shape[2:]
padded = np.pad(crop, ((0, 0), (0, 0), (P // 2, P // 2), (P // 2, P // 2)))   # (1, 3, 36, 36)

t0 = time.perf_counter()
s_patch = np.zeros((1, K, Hc, Wc))
for i in range(Hc):
    for j in range(Wc):
        s_patch[:, :, i, j] = net.forward(padded[:, :, i:i + P, j:j + P])[:, :, 0, 0]   # (1, K, 1, 1) -> (1, K)
t_patch = time.perf_counter() - t0
print(f"patch size {P}x{P}: {Hc * Wc} patches classified one by one in {t_patch * 1e3:.0f} ms")

# %% [markdown]
# The pixelwise way runs the same network once on the whole padded image. Because it has only
# convolutions, its output is not one score vector but a score map, one vector per position, and the
# vector at `(i, j)` is computed from exactly the patch centred on pixel `(i, j)`: the same numbers.

# %%
t0 = time.perf_counter()
s_full = net.forward(padded)                              # (1, K, 32, 32): one call
t_full = time.perf_counter() - t0
print("whole image at once:", padded.shape, "->", s_full.shape)
print(f"pixelwise vs patchwise: max |difference| {np.abs(s_full - s_patch).max():.1e}")
print(f"time: patchwise {t_patch * 1e3:.0f} ms, pixelwise {t_full * 1e3:.1f} ms ({t_patch / t_full:.0f}x faster)")
assert np.allclose(s_full, s_patch, rtol=1e-12, atol=1e-12)

# %% [markdown]
# Part of the speed is Python's per-call overhead, but not all of it. Neighbouring patches overlap, and
# the patchwise way computes the features of the overlap again for every patch: the first convolution
# computes a 3x3 map for every patch, 9 positions, although each position's value is shared by 9 patches.
# Count the multiply-adds of a stack of `L` unpadded 3x3 convolutions of width `F` (patch
# `P = 2L + 1`) and a 1x1 classifier, for a 256x256 image: patchwise, layer `l` computes
# `(2(L - l) + 1)^2` positions per patch; pixelwise, every layer computes each position once.

# %%
def macs_per_pixel(L, C_in=3, F=16, K=K):
    """Multiply-adds per output pixel of L 3x3 convs (C_in -> F -> ... -> F) and a 1x1 conv F -> K."""
    widths = [C_in] + [F] * L
    patchwise = sum((2 * (L - l) + 1) ** 2 * 9 * widths[l - 1] * widths[l] for l in range(1, L + 1)) + F * K
    pixelwise = sum(9 * widths[l - 1] * widths[l] for l in range(1, L + 1)) + F * K
    return patchwise, pixelwise

print(f"{'L':>2} {'patch':>6} | {'patchwise MACs':>16} {'pixelwise MACs':>16} | {'ratio':>6}   ({H}x{W} image, F=16)")
for L in (1, 2, 4, 8, 16):
    pw_, fc_ = macs_per_pixel(L)
    print(f"{L:>2} {f'{2 * L + 1}x{2 * L + 1}':>6} | {pw_ * H * W:>16,} {fc_ * H * W:>16,} | {pw_ / fc_:>6.1f}")
print(f"either way {H * W:,} predictions; patchwise takes {H * W:,} forward passes of the network, pixelwise 1")

# %% [markdown]
# The table shows the notes' dilemma. A bigger patch sees more context, but the patches overlap more, so
# more is computed again and again (the ratio column grows quickly with the patch size), and a big patch
# around a pixel near a boundary holds two classes at once, which makes "the class of the patch" ambiguous.
# A smaller patch is cheaper but sees too little to classify well. The pixelwise (fully convolutional)
# way removes the redundancy: every feature is computed once and shared by every output that needs it,
# and training on whole images gives every pixel's loss in one forward and one backward pass. FCN
# (lesson 05) is built on that.
#
# ## 4. Per-pixel softmax cross-entropy with an ignore label
#
# Training a per-pixel classifier needs a per-pixel loss. Each pixel `i` with scores (logits) `z_i` of
# length K is its own K-way classification: softmax turns the scores into probabilities and the loss is
# the negative log-probability of the true class `t_i`:
#
# `p_i = softmax(z_i)`, `p_i[c] = exp(z_i[c]) / sum_k exp(z_i[k])`, `loss_i = -log p_i[t_i]`.
#
# Some pixels have no trustworthy label: minseg's datasets mark them with the **ignore label** 255 (the
# band on object borders of lesson 00). They add nothing to the loss, and the mean is over the `M`
# pixels that are not ignored:
#
# `L = (1 / M) * sum over non-ignored i of loss_i`.
#
# A tiny example, 3 classes on a 2x3 image, one pixel ignored. By hand, with loops:

# %%
IGNORE = 255
z = np.array([[[2.0, 0.5, 1.0], [0.0, 1.5, -1.0]],          # scores of class 0 at the 2x3 pixels
              [[1.0, 2.5, 1.0], [3.0, 0.5, 0.0]],           # class 1
              [[0.1, 0.0, 1.0], [-1.0, 0.5, 2.0]]])[None]   # class 2  -> (N=1, K=3, H=2, W=3)
t = np.array([[[0, 2, IGNORE], [1, 1, 2]]])                 # (N=1, H=2, W=3)
Kt = z.shape[1]

total, M = 0.0, 0
for i in range(z.shape[2]):
    for j in range(z.shape[3]):
        if t[0, i, j] == IGNORE:
            print(f"pixel ({i}, {j}): ignored")
            continue
        e = [math.exp(z[0, k, i, j]) for k in range(Kt)]
        p = [v / sum(e) for v in e]
        loss_ij = -math.log(p[t[0, i, j]])
        total, M = total + loss_ij, M + 1
        print(f"pixel ({i}, {j}): scores {z[0, :, i, j]}, softmax {np.round(p, 4)}, "
              f"target {t[0, i, j]}, -log p = {loss_ij:.4f}")
loss_hand = total / M
print(f"mean over the M = {M} labelled pixels: {total:.4f} / {M} = {loss_hand:.4f}")

# %% [markdown]
# `minseg.ops.cross_entropy` computes the same (as PyTorch's `F.cross_entropy`), through `log p = z - max -
# log(sum exp(z - max))` so that large scores cannot overflow:

# %%
loss, cache = cross_entropy(z, t, ignore_index=IGNORE)
print(f"cross_entropy: {float(loss):.10f}\nby hand      : {loss_hand:.10f}")
assert abs(float(loss) - loss_hand) < 1e-12
print("what the cache keeps:", cache._fields)
print("pixel weights (0 = ignored):\n", cache.pixel_weight[0], "\ndenominator M =", cache.denominator)

# %% [markdown]
# Two more rules, both PyTorch's. **Class weights** `w` (e.g. more weight for rare classes) multiply each
# pixel's loss by `w[t_i]`, and the mean then divides by the sum of those weights, not by `M`:
# `L = sum_i w[t_i] loss_i / sum_i w[t_i]`. And when **every** pixel is ignored the mean is 0 / 0, NaN.

# %%
cw = np.array([1.0, 2.0, 0.5])
num = den = 0.0
for i in range(z.shape[2]):
    for j in range(z.shape[3]):
        c = t[0, i, j]
        if c != IGNORE:
            p_c = math.exp(z[0, c, i, j]) / sum(math.exp(z[0, k, i, j]) for k in range(Kt))
            num, den = num + cw[c] * -math.log(p_c), den + cw[c]
loss_w, _ = cross_entropy(z, t, weight=cw, ignore_index=IGNORE)
print(f"weighted, by hand: {num:.4f} / {den:.1f} = {num / den:.10f}\nweighted, minseg : {float(loss_w):.10f}")
assert abs(float(loss_w) - num / den) < 1e-12
all_ignored, _ = cross_entropy(z, np.full_like(t, IGNORE), ignore_index=IGNORE)
print("every pixel ignored:", all_ignored)

# %% [markdown]
# ### The backward pass
#
# For one pixel, `loss_i = log(sum_k exp(z_i[k])) - z_i[t_i]`, so
#
# `d loss_i / d z_i[c] = exp(z_i[c]) / sum_k exp(z_i[k]) - [c == t_i] = p_i[c] - onehot(t_i)[c]`:
#
# **softmax minus one-hot**. The mean divides every term by `M`, and an ignored pixel is not in the sum, so
# its gradient is exactly 0:
#
# `dL/dz_i = (p_i - onehot(t_i)) / M` for labelled pixels, `0` for ignored ones
#
# (with class weights: `w[t_i] (p_i - onehot(t_i)) / sum_j w[t_j]`; times the upstream gradient `dloss`
# when the loss is not the last step). By hand, with loops, against `cross_entropy_backward`:

# %%
grad_hand = np.zeros_like(z)
for i in range(z.shape[2]):
    for j in range(z.shape[3]):
        if t[0, i, j] == IGNORE:
            continue                                        # stays exactly 0
        e = np.exp(z[0, :, i, j] - z[0, :, i, j].max())
        p = e / e.sum()
        onehot = np.eye(Kt)[t[0, i, j]]
        grad_hand[0, :, i, j] = (p - onehot) / M
dz = cross_entropy_backward(1.0, cache)                     # (N, K, H, W)
print("dL/dz by hand, class axis first:\n", grad_hand[0])
print(f"cross_entropy_backward vs by hand: max |difference| {np.abs(dz - grad_hand).max():.1e}")
print("gradient at the ignored pixel (0, 2):", dz[0, :, 0, 2])
print("sum over the classes at each pixel:\n", dz.sum(axis=1)[0])
assert np.allclose(dz, grad_hand, rtol=1e-12, atol=1e-15) and np.all(dz[0, :, 0, 2] == 0)

# %% [markdown]
# At each labelled pixel the gradient sums to 0 over the classes (the probabilities sum to 1, the one-hot
# too; the cell above prints the sums): its entry for the true class, `p - 1`, is negative and the others
# are positive, so a gradient-descent step raises the true class's score and lowers the others. The derivation is
# checked numerically with `minseg.gradcheck.check_backward` (central differences in float64) on a random
# batch of 2 non-square images with about a quarter of the pixels ignored: plain, with class weights, and
# for the reductions "sum" and "none" (the per-pixel loss map, with an upstream gradient per pixel).

# %%
rng = np.random.default_rng(3)
z_gc = rng.standard_normal((2, 4, 5, 6)) * 2                # (N, K, H, W)
t_gc = rng.integers(0, 4, size=(2, 5, 6))                   # (N, H, W)
t_gc[rng.random(t_gc.shape) < 0.25] = IGNORE
w_gc = rng.uniform(0.5, 3.0, size=4)
print(f"{int((t_gc == IGNORE).sum())} of {t_gc.size} pixels ignored\n")
reports = []
for name, hyper in [("mean", {}), ("mean, class weights", {"weight": w_gc}), ("sum", {"reduction": "sum"}),
                    ("none", {"reduction": "none"})]:
    report = check_backward(cross_entropy, cross_entropy_backward, {"logits": z_gc, "target": t_gc},
                            ignore_index=IGNORE, name=f"cross_entropy ({name})", **hyper)
    print(report, "\n")
    reports.append(report)
assert all(r.passed for r in reports)

# %% [markdown]
# ## 5. Training the per-pixel classifier
#
# Now train minseg's per-pixel model on the `shapes` data: `build_model("pixel", hidden=(16,))`, a
# 1x1 convolution to 16 channels, ReLU, and a 1x1 convolution to the 5 classes. It can learn any
# (smooth) function of a pixel's colour, but it sees nothing else. One training step is what sections 2
# and 4 built: forward, `cross_entropy` (ignore label 255), `cross_entropy_backward`, the model's
# backward, an Adam step; `minseg.train.train_step` does exactly that. The loop below runs it over
# shuffled mini-batches of the training split and scores the validation split with a confusion matrix
# (lesson 08 explains mIoU: per class, the overlap of prediction and truth divided by their union,
# averaged over classes).

# %%
train_set, val_set = load_dataset("shapes", "train"), load_dataset("shapes", "val")
print("train", train_set.images.shape, " val", val_set.images.shape)


def fit(model, lr, steps=STEPS, batch_size=10, seed=0):
    """Train ``model`` with Adam on ``steps`` shuffled mini-batches of the training split; return the losses."""
    optimizer = Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    epoch = 0
    while len(losses) < steps:
        it = batches(train_set, batch_size, shuffle=True, seed=(seed, epoch))
        for bt in progress(it, min(len(it), steps - len(losses)), f"epoch {epoch + 1}"):
            losses.append(train_step(model, optimizer, bt.images, bt.labels, ignore_index=train_set.ignore_index))
            if len(losses) == steps:
                break
        epoch += 1
    return losses


def predict_classes(model, images, batch_size=50):
    """Class ids (N, H, W): the argmax of the model's scores, batch by batch, in evaluation mode.

    (``minseg.train.predict`` does the same for minseg's registered models; the context net of section 6
    is a plain ``Sequential``, so both models go through this one.)
    """
    model.eval()
    return np.concatenate([model.forward(images[i:i + batch_size]).argmax(axis=1)
                           for i in range(0, len(images), batch_size)])


def scores(pred, dataset):
    """Dataset-level confusion-matrix scores of ``pred`` (N, H, W) against the dataset's labels."""
    metrics = SegmentationMetrics(dataset.num_classes, ignore_index=dataset.ignore_index,
                                  class_names=list(dataset.class_names))
    metrics.update(pred, dataset.labels)
    return metrics


pixel_model = build_model("pixel", num_classes=K, hidden=(16,), rng=0)
t0 = time.perf_counter()
pixel_losses = fit(pixel_model, lr=0.03)
t_pixel = time.perf_counter() - t0
pixel_pred = predict_classes(pixel_model, val_set.images)
pixel_metrics = scores(pixel_pred, val_set)
pixel_miou = pixel_metrics.compute()["miou"]
print(f"per-pixel model: {pixel_model.num_parameters()} parameters, {STEPS} steps of 10 images in {t_pixel:.1f} s, "
      f"mean loss of the first / last 10 steps {np.mean(pixel_losses[:10]):.4f} / {np.mean(pixel_losses[-10:]):.4f}")
print(pixel_metrics.table())

# %% [markdown]
# The table above has the per-pixel model's scores on the validation images. Its predictions next to the
# truth:

# %%
idx = [0, 1, 2, 3]
show_grid(val_set.images[idx], val_set.labels[idx], pixel_pred[idx], class_names=val_set.class_names,
          palette=val_set.palette, titles=["image", "truth", "per-pixel model"],
          row_titles=[f"val {i}" for i in idx], ignore_index=val_set.ignore_index)
plt.show()

# %% [markdown]
# It finds *where* the shapes are (they are brighter than the ground), but not *which* shape each one is:
# the shape classes' IoUs in the table are far below the background's, and its choice among the shape
# classes follows the colour and brightness of each pixel, not the outline (in the pictures the stripe
# texture of a shape shows through its prediction). The confusion between the shape
# classes, as the fraction of each true class's pixels predicted as each class:

# %%
cm = pixel_metrics.cm
print("rows: true class, columns: predicted class (fractions of the row)")
print(" " * 11 + "".join(f"{n:>11}" for n in val_set.class_names))
for k, name in enumerate(val_set.class_names):
    print(f"{name:>11}" + "".join(f"{v:>11.2f}" for v in cm[k] / cm[k].sum()))

# %% [markdown]
# ### Colour alone cannot decide
#
# The reason is in the data, not in the training. `shapes` draws every shape's colour from one
# distribution whatever its class, so shapes of different classes can have the same colour. Find, among
# the validation images, the two shapes of different classes whose mean colours are closest:

# %%
shapes_found = []                                           # (image, class, mean colour, mask) per shape
for n in range(len(val_set)):
    img, lab, inst = val_set[n]
    for s in np.unique(inst[inst > 0]):
        mask = (inst == s) & (lab != val_set.ignore_index)
        if mask.any():
            shapes_found.append((n, int(np.bincount(lab[mask]).argmax()), img[:, mask].mean(axis=1), mask))
colours = np.array([f[2] for f in shapes_found])            # (S, 3)
classes = np.array([f[1] for f in shapes_found])            # (S,)
gap = np.abs(colours[:, None] - colours[None]).max(axis=2)  # (S, S) largest channel difference
gap[classes[:, None] == classes[None]] = np.inf             # only pairs of different classes
a, c = np.unravel_index(np.argmin(gap), gap.shape)
print(f"{len(shapes_found)} shapes in {len(val_set)} validation images")
for f in (shapes_found[a], shapes_found[c]):
    n, cls, col, mask = f
    got = np.bincount(pixel_pred[n][mask], minlength=K) / mask.sum()
    says = ", ".join(f"{name} {v:.2f}" for name, v in zip(val_set.class_names, got) if v > 0)
    print(f"  val image {n:>3}: a {val_set.class_names[cls]:<8} mean colour {col}, "
          f"per-pixel model predicts (fraction of its pixels): {says}")
print(f"largest channel difference of the two mean colours: {gap[a, c]:.4f}")

# %%
fig, axes = plt.subplots(2, 3, figsize=(7.5, 5))
for row, f in enumerate((shapes_found[a], shapes_found[c])):
    n, cls, _, mask = f
    ys, xs = np.nonzero(mask)
    r0, r1, c0, c1 = max(ys.min() - 4, 0), ys.max() + 5, max(xs.min() - 4, 0), xs.max() + 5
    axes[row, 0].imshow(np.transpose(val_set.images[n], (1, 2, 0))[r0:r1, c0:c1])    # (H, W, C)
    axes[row, 0].set_title(f"val {n}: a {val_set.class_names[cls]}")
    axes[row, 1].imshow(colorize(val_set.labels[n], val_set.palette)[r0:r1, c0:c1]); axes[row, 1].set_title("truth")
    axes[row, 2].imshow(colorize(pixel_pred[n], val_set.palette)[r0:r1, c0:c1]); axes[row, 2].set_title("per-pixel")
for ax in axes.ravel():
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Not only the means: many single pixels have *exactly* the same colour (the same 8-bit RGB values, as
# the images are stored) as a pixel of another shape class somewhere in the validation images. Counted
# over the labelled shape pixels:

# %%
rgb = np.rint(val_set.images * 255).astype(np.int64)        # (N, 3, H, W) the stored 8-bit values
code = (rgb[:, 0] * 256 + rgb[:, 1]) * 256 + rgb[:, 2]      # (N, H, W) one integer per colour
on_shape = (val_set.labels > 0) & (val_set.labels != val_set.ignore_index)
pairs = np.unique(np.stack([code[on_shape], val_set.labels[on_shape]], axis=1), axis=0)   # (colour, class)
colour_ids, n_classes = np.unique(pairs[:, 0], return_counts=True)
shared = colour_ids[n_classes > 1]                          # colours that occur in two or more shape classes
n_shared = int(np.isin(code[on_shape], shared).sum())
print(f"{int(on_shape.sum()):,} labelled shape pixels, {len(colour_ids):,} distinct colours")
print(f"{len(shared):,} colours occur in more than one shape class; {n_shared:,} pixels have one of them")
ex_colour = shared[0]
ex_classes = pairs[pairs[:, 0] == ex_colour, 1]
print(f"e.g. RGB {tuple(int(v) for v in np.unravel_index(ex_colour, (256, 256, 256)))} is labelled "
      f"{' and '.join(val_set.class_names[c] for c in ex_classes)}")

# %% [markdown]
# Pixels of the same colour get the same scores from any per-pixel model, so the two shapes above are
# bound to get (nearly) the same class, and at least one of them is wrong; so is one of every pair of
# same-coloured pixels counted above. Only the **shape**, which is spread over many pixels, tells a
# circle from a square: a model must look at a neighbourhood, its **receptive field** (수용 영역), not at
# one pixel.
#
# ## 6. A little context
#
# A tiny fully convolutional network with 3x3 kernels: a 3x3 convolution, a 2x2 max-pooling that halves
# the size, another 3x3 convolution and pooling, two more 3x3 convolutions (the last with dilation 2, its
# taps 2 pixels apart), a 1x1 convolution to the scores, and a bilinear upsampling by 4 back to the image
# size. Each 3x3 convolution is followed by batch normalisation and a ReLU (`ConvBNReLU`), which makes
# such a small network learn fast. (Lessons 02, 03, 04 and 06 take the convolution, the upsampling, the
# pooling and the dilation apart; here they are only used.) Each of its outputs sees a window of the size
# printed below (not counting the upsampling, which blends neighbouring outputs), about the size of a
# shape. Same training images, the same number of steps of the same batch size, the same optimizer (each
# model with its own learning rate) as the per-pixel model:

# %%
def context_net(rng=0):
    """3x3 convs with pooling: (N, 3, H, W) -> (N, 5, H, W), receptive field 34 pixels."""
    rng = np.random.default_rng(rng)
    return Sequential(ConvBNReLU(3, 8, 3, rng=rng), MaxPool2d(2),                  # (N, 8, H/2, W/2)
                      ConvBNReLU(8, 16, 3, rng=rng), MaxPool2d(2),                 # (N, 16, H/4, W/4)
                      ConvBNReLU(16, 16, 3, rng=rng),
                      ConvBNReLU(16, 16, 3, dilation=2, rng=rng),                  # padding 2: size kept
                      Conv2d(16, K, 1, rng=rng), Upsample(scale_factor=4))         # (N, K, H, W)


rf = receptive_field([(3, 1, 1), (2, 2, 1), (3, 1, 1), (2, 2, 1), (3, 1, 1), (3, 1, 2), (1, 1, 1)])
print(f"receptive field of the context net: {rf}x{rf} pixels (per-pixel model: 1x1)")
context_model = context_net()
t0 = time.perf_counter()
context_losses = fit(context_model, lr=0.01)
t_context = time.perf_counter() - t0
context_pred = predict_classes(context_model, val_set.images)
context_metrics = scores(context_pred, val_set)
context_miou = context_metrics.compute()["miou"]
print(f"context net: {context_model.num_parameters()} parameters, {STEPS} steps of 10 images in {t_context:.1f} s, "
      f"mean loss of the first / last 10 steps {np.mean(context_losses[:10]):.4f} / "
      f"{np.mean(context_losses[-10:]):.4f}")
print(context_metrics.table())

# %%
print(f"validation mIoU, per-pixel model (1x1) : {pixel_miou:.3f}")
print(f"validation mIoU, context net ({rf}x{rf}) : {context_miou:.3f}")
assert context_miou > pixel_miou

show_grid(val_set.images[idx], val_set.labels[idx], pixel_pred[idx], context_pred[idx],
          class_names=val_set.class_names, palette=val_set.palette,
          titles=["image", "truth", "per-pixel model", "context net"], row_titles=[f"val {i}" for i in idx],
          ignore_index=val_set.ignore_index)
plt.show()

# %% [markdown]
# The context net, trained no longer than the per-pixel model, scores higher (the two mIoUs are printed
# above), and its gain is in the shape classes. Its outlines are blurry: it works at a quarter of the
# resolution and scales its scores up. How to get context *and* sharp boundaries is the subject of the
# following lessons (FCN's skips, U-Net).
#
# ## Summary
#
# * Segmentation is dense prediction: a `(K, H, W)` score map, argmax to an `(H, W)` label map; a 256x256
#   image is 65,536 classifications.
# * A per-pixel linear classifier `s[:, i, j] = w x[:, i, j] + b` is a 1x1 convolution with weights
#   `w.reshape(K, C, 1, 1)`; minseg's `PixelClassifier` is a stack of them.
# * Patchwise: classify the patch around each pixel, one at a time; overlapping patches recompute the same
#   features, more so the bigger the patch. Pixelwise (fully convolutional): one pass over the whole image
#   gives every pixel's scores, each feature computed once; the numbers are the same.
# * Per-pixel softmax cross-entropy: `loss_i = -log softmax(z_i)[t_i]`, mean over the pixels that are not
#   the ignore label (with class weights: divided by the sum of the weights); all ignored gives NaN.
# * Its gradient is softmax minus one-hot, divided by the number (the weight sum) of labelled pixels, and
#   exactly 0 at ignored pixels.
# * A model that sees one pixel cannot tell classes that differ in shape, not in colour; a receptive
#   field as large as the objects can.
#
# ## Exercises
#
# 1. Give the per-pixel model more hidden units (`hidden=(64, 64)`) and more steps. How far does its
#    mIoU move? Why can it never reach the context net's?
# 2. Change `macs_per_pixel` for a stride-2 first layer. Which of the two ways gains more?
# 3. Write `cross_entropy_backward` yourself (below).
#
# ### Exercise: `cross_entropy_backward`
# Given `dloss` (a scalar for reduction "mean" and "sum", an `(N, H, W)` map for "none") and the forward's
# cache (`cache.probs` `(N, C, H, W)`, `cache.target` `(N, H, W)` with class 0 at ignored pixels,
# `cache.pixel_weight` `(N, H, W)`: `w[t_i]`, or 1, and 0 at ignored pixels, `cache.denominator`: the sum
# of the pixel weights for "mean", 1 otherwise, `cache.reduction`), return `dlogits` of shape
# `(N, C, H, W)`. `exercises.check` runs yours on batches with ignored pixels (a whole image ignored, too),
# class weights, every reduction and an upstream gradient that is not 1, and names the mistake when there
# is one.

# %% tags=["task"]
def cross_entropy_backward_mine(dloss, cache):
    # hint: (probs - onehot(target)) * pixel_weight / denominator * dloss, broadcast over the class axis
    raise NotImplementedError


# %% tags=["solution"]
def cross_entropy_backward_mine(dloss, cache):
    probs, target, pixel_weight, denominator, reduction = cache
    N, C, H, W = probs.shape
    onehot = target[:, None] == np.arange(C).reshape(1, C, 1, 1)   # (N, C, H, W) bool
    scale = pixel_weight * (np.asarray(dloss) if reduction == "none" else dloss) / denominator   # (N, H, W)
    return (probs - onehot) * scale[:, None]                      # (N, C, H, W); 0 where the weight is 0


# %%
r = exercises.check("cross_entropy_backward", cross_entropy_backward_mine)
r

# %% tags=["solution"]
assert r.passed, r
