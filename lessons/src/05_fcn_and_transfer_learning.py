# Lesson 05: FCN and transfer learning (exercise and solution notebooks are built from this file).

# %% [markdown]
# # 05 · FCN and transfer learning
#
# Classification networks such as VGG16 end in fully-connected layers (fc-layer). The notes name two
# problems they bring to segmentation:
#
# * when the last feature map is flattened for the fc-layer, the **position information is lost**
#   (위치 정보의 소실): the fc-layer sees one long vector, not a map;
# * the fc-layer has a fixed number of inputs, so **the input image size is fixed**.
#
# The Fully Convolutional Network (FCN, Long et al., 2015) replaces every fc-layer by a convolution
# (**convolutionalization**): "the first fully connected layer becomes a (7x7x512) 4096-filter conv, with
# the same number of weights; the last fc-layer a 1x1 conv with as many channels as classes". The network
# then takes images of any size and outputs a map of class scores (a heat map) instead of one score
# vector. That map is coarse, so it is upsampled (transposed convolution, lesson 04), and the **skip
# architecture** adds the scores of shallower layers: semantic information (의미론적 정보) from the deep,
# coarse layer, appearance information (외관 정보) from the shallow, fine layers. FCN-32s upsamples pool5's
# scores 32x; FCN-16s first fuses them with pool4's; FCN-8s also with pool3's; the notes report the
# results improving in that order (with an ImageNet-pretrained VGG16, FCN-8s reached 62.2% mIoU on
# PASCAL VOC 2012).
#
# And FCN uses **transfer learning** (전이 학습): "set the initial weights to good weights": a network
# trained for classification already has features common to image tasks, so segmentation training
# starts from them instead of from random weights.
#
# This lesson does all three with minseg, on the `shapes` dataset:
#
# 1. convolutionalization, number by number: an fc-layer over a 7x7xC map is a 7x7 convolution;
# 2. a small VGG-style classifier, pretrained on crops, convolutionalized into a score-map network;
# 3. FCN-32s, FCN-16s and FCN-8s trained side by side on the same data and budget;
# 4. FCN-8s fine-tuned from the pretrained classifier against FCN-8s from scratch.

# %%
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")   # one BLAS thread; before NumPy loads (see below)

import dataclasses
import time

import matplotlib.pyplot as plt
import numpy as np

from minseg import exercises
from minseg.data import load_dataset
from minseg.models import FCN8s, FCN16s, FCN32s, VGGClassifier, convolutionalize, fc_to_conv
from minseg.nn.layers import Flatten, Linear
from minseg.ops import cross_entropy, cross_entropy_backward, relu
from minseg.optim import Adam, PolyLR
from minseg.train import TrainConfig, evaluate, predict, train
from minseg.viz import colorize, show_grid

QUICK = os.environ.get("MINSEG_LESSONS_QUICK") == "1"
SEED = 0                                 # weights, batch order and flips of every training below
EPOCHS = 3 if QUICK else 6               # segmentation epochs, the same for every FCN
PRE_EPOCHS = 1 if QUICK else 2           # classifier pretraining epochs
N_TRAIN, N_VAL = 200, 50                 # segmentation images: train, validation
N_PRETRAIN = 1000                        # training images N_TRAIN..N_PRETRAIN-1 give the pretraining crops
ARCH = dict(widths=[8, 16, 32, 32, 32], convs=1, fc_channels=32)   # one small VGG for everything
np.set_printoptions(precision=4, suppress=True, linewidth=120)
T_START = time.perf_counter()

# %% [markdown]
# The networks of this lesson are small: their matrix products are too small to gain from several BLAS
# threads, which then mostly wait for each other (on a busy machine many times slower than one thread),
# so the first line asks NumPy's BLAS for one thread, unless `OMP_NUM_THREADS` is already set.
#
# `QUICK` is the quick setting the test suite uses for the exercise notebooks: fewer epochs of
# pretraining and segmentation training (`PRE_EPOCHS`, `EPOCHS` above). The numbers the lesson discusses
# are those of the full run (the solution notebook); every cell prints its own numbers, so in the quick
# setting read the printed ones.
#
# ## 1. An fc-layer over a 7x7xC map is a 7x7 convolution
#
# An fc-layer over a feature map `x` of shape `(C, 7, 7)` first flattens it in C-order (channel slowest,
# then row, then column: feature `d = (c*7 + i)*7 + j` is `x[c, i, j]`) and then computes
#
# `y[o] = b[o] + sum over d of W[o, d] * x_flat[d]` = `b[o] + sum over c, i, j of W[o, (c*7 + i)*7 + j] * x[c, i, j]`.
#
# A 7x7 convolution with kernel `K` of shape `(F, C, 7, 7)` on the same 7x7 map has exactly one output
# pixel, `b[o] + sum over c, i, j of K[o, c, i, j] * x[c, i, j]`. The two are equal when
# `K[o, c, i, j] = W[o, (c*7 + i)*7 + j]`, i.e. `K = W.reshape(F, C, 7, 7)`: the same weights, only
# reshaped. The notes' VGG16 numbers: fc6 over 7x7x512 with 4096 outputs.

# %%
F16, C16, k16 = 4096, 512, 7
print(f"VGG16 fc6 weight: ({F16}, {C16 * k16 * k16}) = {F16 * C16 * k16 * k16:,} numbers")
print(f"as a conv       : ({F16}, {C16}, {k16}, {k16}) = {F16 * C16 * k16 * k16:,} numbers, the same")

# %% [markdown]
# The same at a size that runs in milliseconds: `C = 8` channels, a 7x7 map, `F = 16` outputs, in
# float64. The fc-layer, the sum written out with the reshaped weights, and minseg's `fc_to_conv`
# (which builds that convolution layer):

# %%
rng = np.random.default_rng(0)
C, k, F = 8, 7, 16
fc6 = Linear(C * k * k, F, rng=rng, dtype=np.float64)       # weight (F, C*k*k), bias (F,)
fc6.bias.data[...] = rng.standard_normal(F)
x = rng.standard_normal((3, C, k, k))                       # (N, C, 7, 7)

y_fc = fc6.forward(Flatten().forward(x))                    # (N, F)
K = fc6.weight.data.reshape(F, C, k, k)                     # (F, C, 7, 7): the same weights
y_sum = np.einsum("ocij,ncij->no", K, x) + fc6.bias.data    # the conv's one output pixel, as a sum
conv6 = fc_to_conv(fc6, C, k)                               # Conv2d(8, 16, 7)
y_conv = conv6.forward(x)                                   # (N, F, 1, 1)

d = 2 * 49 + 3 * 7 + 4                                      # flattened feature of channel 2, row 3, column 4
print(f"flattened feature {d} = ({d // 49}, {d % 49 // 7}, {d % 7}) = (c, i, j):",
      f"W[0, {d}] = {fc6.weight.data[0, d]:.6f}, K[0, 2, 3, 4] = {K[0, 2, 3, 4]:.6f}")
print("fc output             :", y_fc.shape, "  conv output:", y_conv.shape)
print(f"max |fc - sum|        : {np.abs(y_fc - y_sum).max():.1e}")
print(f"max |fc - conv|       : {np.abs(y_fc - y_conv[:, :, 0, 0]).max():.1e}  (outputs up to {np.abs(y_fc).max():.1f})")
assert np.allclose(y_fc, y_conv[:, :, 0, 0], rtol=1e-12, atol=1e-12)

# %% [markdown]
# The order of the reshape matters. A channels-last flatten `(7, 7, C)` is another framework's
# convention; reading minseg's weights that way gives a convolution that computes something else:

# %%
K_wrong = fc6.weight.data.reshape(F, k, k, C).transpose(0, 3, 1, 2)   # (F, C, 7, 7), read as (k, k, C)
y_wrong = np.einsum("ocij,ncij->no", K_wrong, x) + fc6.bias.data
print(f"max |fc - conv with the (k, k, C) reading|: {np.abs(y_fc - y_wrong).max():.2f}")

# %% [markdown]
# An fc-layer over a vector (fc7, fc8) is the case `k = 1`: a **1x1 convolution**, the weight reshaped
# from `(F_out, F_in)` to `(F_out, F_in, 1, 1)`. Here fc8 maps the 16 features to 5 class scores:

# %%
fc8 = Linear(F, 5, rng=rng, dtype=np.float64)
fc8.bias.data[...] = rng.standard_normal(5)
conv8 = fc_to_conv(fc8, F, 1)                               # Conv2d(16, 5, 1)
scores_fc = fc8.forward(relu(y_fc)[0])                      # (N, 5)
scores_conv = conv8.forward(relu(y_conv)[0])                # (N, 5, 1, 1)
print("conv8 weight:", conv8.weight.data.shape, f"  max |fc - conv|: {np.abs(scores_fc - scores_conv[:, :, 0, 0]).max():.1e}")

# %% [markdown]
# Now the point of it. The fc-layer only takes a 7x7 map. The convolution takes any size: on a 12x12
# map it slides the same 7x7 weights to every one of the 6x6 window positions, so the one score vector
# becomes a **6x6 map of score vectors**, each the fc-layer applied to its window. Checked window by
# window with the fc-layer itself:

# %%
x_big = rng.standard_normal((1, C, 12, 12))                 # (1, C, 12, 12)
y_map = conv6.forward(x_big)                                # (1, F, 6, 6)
worst = 0.0
for i in range(y_map.shape[2]):
    for j in range(y_map.shape[3]):
        window = x_big[:, :, i:i + k, j:j + k]              # (1, C, 7, 7)
        worst = max(worst, np.abs(fc6.forward(Flatten().forward(window)) - y_map[:, :, i, j]).max())
print("12x12 input ->", y_map.shape, f"; max |fc(window) - conv map| over all windows: {worst:.1e}")

# %% [markdown]
# ## 2. A whole classifier, convolutionalized
#
# `minseg.models.VGGClassifier` is VGG's recipe at a small scale: stages of 3x3 convolutions + BatchNorm
# + ReLU, each followed by 2x2 max-pooling, then fc6, fc7, fc8. `convolutionalize` turns it into a
# `FullyConvClassifier` with the same weights (fc6 becomes an `s x s` convolution, fc7 and fc8 1x1
# convolutions, each through `fc_to_conv`). With three stages a 56x56 input ends in a 7x7 map, as
# VGG16's 224x224 input does after five:

# %%
clf7 = VGGClassifier(5, in_channels=3, input_size=56, widths=[8, 16, 32], convs=1, fc_channels=32, rng=0).eval()
fcn7 = convolutionalize(clf7).eval()
print("fc6:", clf7.head[1], "->", fcn7.head[0])
print("fc8:", clf7.head[7], "->", fcn7.head[6])
print("parameters:", clf7.num_parameters(), "(classifier) and", fcn7.num_parameters(), "(convolutionalized)")
x56 = np.random.default_rng(1).random((2, 3, 56, 56)).astype(np.float32)
print(f"56x56 input: max |classifier - convolutionalized| = "
      f"{np.abs(clf7.forward(x56) - fcn7.forward(x56)[:, :, 0, 0]).max():.1e} (float32)")
for size in (64, 112):
    print(f"{size}x{size} input -> score map {fcn7.forward(np.zeros((1, 3, size, size), np.float32)).shape}")
try:
    clf7.forward(np.zeros((1, 3, 64, 64), np.float32))
except ValueError as err:
    print("the classifier itself:", err)

# %% [markdown]
# A score map of shape `(N, classes, h, w)`: one score vector per 56x56 window, every 8 pixels (the
# stride of three poolings). That is already a segmentation, only a coarse one.
#
# ## 3. Pretraining the classifier (the source task of transfer learning)
#
# FCN starts from a classifier trained on ImageNet. Our stand-in: a classifier trained on 32x32 crops
# cut from `shapes` images, each labelled with one class: the shape at its centre, or background for a
# crop whose centre holds no shape. The crops come from training images 200..999, which the segmentation
# training below never uses: as with ImageNet, the source task has only image-level labels, no masks.
# The classifier has the five stages of the FCN backbone below (widths `ARCH`), so a 32x32 crop ends
# in a 1x1 map and fc6 is a 1x1 layer.

# %%
train_full, val_full = load_dataset("shapes", "train"), load_dataset("shapes", "val")
CLASSES = train_full.class_names
print("classes:", CLASSES)


def center_crops(ds, first, last, size=32, seed=0):
    """Classification crops (M, C, size, size) and classes (M,) from images first..last-1 of ``ds``.

    One crop centred on every shape (class: the shape's), and one at a random point with no shape
    within 4 pixels (class 0, background); crops are shifted inside the image where needed.
    """
    rng = np.random.default_rng(seed)
    H = ds.images.shape[2]
    crops, classes = [], []

    def cut(image, cy, cx):
        top, left = min(max(cy - size // 2, 0), H - size), min(max(cx - size // 2, 0), H - size)
        return image[:, top:top + size, left:left + size]

    for n in range(first, last):
        image, labels, instances = ds[n]
        for inst in np.unique(instances[instances > 0]):
            ys, xs = np.nonzero(instances == inst)
            crops.append(cut(image, int(ys.mean()), int(xs.mean())))
            classes.append(int(np.bincount(labels[instances == inst]).argmax()))
        free = np.pad(labels == 0, 4, constant_values=False)            # background, 4 px margin
        free = np.logical_and.reduce([free[a:a + H, b:b + H] for a in range(9) for b in range(9)])
        ys, xs = np.nonzero(free)
        if ys.size:
            p = rng.integers(ys.size)
            crops.append(cut(image, ys[p], xs[p]))
            classes.append(0)
    return np.stack(crops), np.array(classes)


crops_train, cls_train = center_crops(train_full, N_TRAIN, N_PRETRAIN)
crops_val, cls_val = center_crops(val_full, N_VAL, len(val_full), seed=1)
print(f"pretraining crops from training images {N_TRAIN}..{N_PRETRAIN - 1}, validation crops from validation "
      f"images {N_VAL}..{len(val_full) - 1}")
print("pretraining crops:", crops_train.shape, " per class:", np.bincount(cls_train))
print("validation crops :", crops_val.shape)
show = [int(np.nonzero(cls_train == c)[0][0]) for c in range(len(CLASSES))]
fig, axes = plt.subplots(1, len(show), figsize=(2 * len(show), 2.3))
for ax, i in zip(axes, show):
    ax.imshow(np.transpose(crops_train[i], (1, 2, 0))); ax.set_title(CLASSES[cls_train[i]]); ax.axis("off")
plt.show()

# %% [markdown]
# The pretraining loop is the segmentation step of `minseg.train` with one score vector per image
# instead of one per pixel: forward, softmax cross-entropy on `(N, 5)` logits, the hand-written backward,
# an Adam step (with random horizontal flips and the poly learning-rate schedule).

# %%
def accuracy(model, images, classes, batch=128):
    model.eval()
    pred = np.concatenate([model.forward(images[i:i + batch]).argmax(axis=1) for i in range(0, len(images), batch)])
    return float(np.mean(pred == classes))


clf = VGGClassifier(len(CLASSES), in_channels=3, input_size=32, dropout=0.0, rng=SEED, **ARCH)
BATCH, LR = 32, 3e-3
opt = Adam(clf.parameters(), lr=LR)
schedule = PolyLR(opt, max_steps=PRE_EPOCHS * -(-len(crops_train) // BATCH))
rng_pre = np.random.default_rng(SEED)
t0 = time.perf_counter()
for epoch in range(1, PRE_EPOCHS + 1):
    clf.train()
    order, losses = rng_pre.permutation(len(crops_train)), []
    for b in range(0, len(order), BATCH):
        idx = order[b:b + BATCH]
        flip = rng_pre.random(idx.size) < 0.5
        xb = np.ascontiguousarray(np.where(flip[:, None, None, None], crops_train[idx][..., ::-1], crops_train[idx]))
        opt.zero_grad()
        loss, cache = cross_entropy(clf.forward(xb), cls_train[idx])   # logits (B, 5), classes (B,)
        clf.backward(cross_entropy_backward(1.0, cache))
        opt.step()
        schedule.step()
        losses.append(float(loss))
    print(f"pretraining epoch {epoch}: loss {np.mean(losses):.3f}, "
          f"validation accuracy {accuracy(clf, crops_val, cls_val):.3f}")
T_PRETRAIN = time.perf_counter() - t0
print(f"pretraining took {T_PRETRAIN:.0f} s")

# %% [markdown]
# Convolutionalized, the trained classifier computes the same scores on a 32x32 crop, and on a whole
# image a map of them. Four validation images side by side make a 64x256 input; its score map is 2x8,
# one class per 32x32 block (the stride of five poolings):

# %%
fully_conv = convolutionalize(clf).eval()
clf.eval()
diff = np.abs(clf.forward(crops_val[:64]) - fully_conv.forward(crops_val[:64])[:, :, 0, 0]).max()
print(f"on 64 validation crops: max |classifier - convolutionalized| = {diff:.1e} (float32)")
strip = np.concatenate(list(val_full.images[:4]), axis=2)[None]        # (1, 3, 64, 256)
strip_labels = np.concatenate(list(val_full.labels[:4]), axis=1)       # (64, 256)
score_map = fully_conv.forward(strip)                                  # (1, 5, 2, 8)
print("input", strip.shape, "-> score map", score_map.shape)
coarse = np.kron(score_map[0].argmax(axis=0), np.ones((32, 32), dtype=np.int64))   # each score: a 32x32 block
fig, axes = plt.subplots(3, 1, figsize=(10, 6.5))
axes[0].imshow(np.transpose(strip[0], (1, 2, 0))); axes[0].set_title("four validation images")
axes[1].imshow(colorize(strip_labels, val_full.palette)); axes[1].set_title("labels")
axes[2].imshow(colorize(coarse, val_full.palette)); axes[2].set_title("argmax of the convolutionalized classifier's score map")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# The classifier knows *what* is in each 32x32 block, but a block is as large as the shapes themselves:
# *where* the boundaries are is lost. Getting the label map back at full resolution is the rest of FCN.
#
# ## 4. FCN-32s, FCN-16s, FCN-8s
#
# `minseg.models.FCN32s / FCN16s / FCN8s` put the convolutionalized head on the same five-stage backbone
# (for a 64x64 input: pool3 8x8, pool4 4x4, pool5 2x2) and then
#
# * **FCN-32s**: class scores of pool5 (`score_fr`, 2x2), upsampled 32x by a bilinear transposed
#   convolution (kernel 64, stride 32);
# * **FCN-16s**: pool5's scores upsampled 2x (a learned transposed convolution, bilinear-initialised)
#   plus the scores of pool4 (a 1x1 convolution on pool4), 4x4, then upsampled 16x;
# * **FCN-8s**: that sum upsampled 2x plus the scores of pool3, 8x8, then upsampled 8x.
#
# The shapes on one image:

# %%
probe = val_full.images[:1]                                             # (1, 3, 64, 64)
for cls in (FCN32s, FCN16s, FCN8s):
    m = cls(len(CLASSES), in_channels=3, rng=SEED, **ARCH).eval()
    feats = m.backbone.forward_features(probe)
    print(f"{cls.__name__}: pool3 {feats[2].shape[2:]}, pool4 {feats[3].shape[2:]}, pool5 {feats[4].shape[2:]}; "
          f"fused score map at stride {m.final_stride}; output {m.forward(probe).shape}")
    print(f"    final upsampling: {m.upsample}")

# %% [markdown]
# All three trained the same way (the cell prints the setting): the same training and validation images,
# the same epochs, batch size, learning rate, seed and initial backbone weights; `minseg.train.train` logs
# the validation mIoU after every epoch.

# %%
seg_train = dataclasses.replace(train_full, images=train_full.images[:N_TRAIN], labels=train_full.labels[:N_TRAIN],
                                instances=train_full.instances[:N_TRAIN])
seg_val = dataclasses.replace(val_full, images=val_full.images[:N_VAL], labels=val_full.labels[:N_VAL],
                              instances=val_full.instances[:N_VAL])
CONFIG = TrainConfig(epochs=EPOCHS, batch_size=8, lr=3e-3, seed=SEED)
print(f"segmentation data: training images 0..{len(seg_train) - 1}, validation images 0..{len(seg_val) - 1}; "
      f"{CONFIG.epochs} epochs of batch {CONFIG.batch_size}, Adam, lr {CONFIG.lr}, poly schedule, seed {CONFIG.seed}")


def fit(model, name):
    """Train ``model`` on seg_train with CONFIG; return (history rows, seconds)."""
    t0 = time.perf_counter()
    hist = train(model, seg_train, seg_val, CONFIG, log=lambda line: print(f"{name}: {line}"))
    return hist.epochs, time.perf_counter() - t0


models, curves, seconds = {}, {}, {}
for cls in (FCN32s, FCN16s, FCN8s):
    name = "FCN-" + cls.variant
    models[name] = cls(len(CLASSES), in_channels=3, rng=SEED, **ARCH)
    curves[name], seconds[name] = fit(models[name], name)

# %%
final = {name: evaluate(m, seg_val, panoptic=False) for name, m in models.items()}
print(f"{'model':8s} {'val mIoU':>8s} {'pixel acc':>9s}  IoU per class ({', '.join(CLASSES)})   train time")
for name, r in final.items():
    print(f"{name:8s} {r['miou']:8.3f} {r['pixel_accuracy']:9.3f}  {np.round(r['iou'], 3)}   {seconds[name]:.0f} s")
m32, m16, m8 = (final[n]["miou"] for n in ("FCN-32s", "FCN-16s", "FCN-8s"))
print(f"FCN-32s < FCN-16s < FCN-8s: {m32 < m16 < m8}  ({m32:.3f}, {m16:.3f}, {m8:.3f})")

# %% [markdown]
# In the full run the order is the paper's, FCN-32s < FCN-16s < FCN-8s, by a wide margin, and FCN-32s's
# IoU of every shape class is near zero: it labels almost every pixel background (the cell prints this
# run's numbers and whether the order holds). Where does the difference come from? The predictions on four
# validation images:

# %%
idx = [0, 1, 2, 3]
preds = {name: predict(m, seg_val.images[idx]) for name, m in models.items()}
show_grid(seg_val.images[idx], seg_val.labels[idx], *preds.values(), class_names=CLASSES, palette=seg_val.palette,
          titles=["image", "labels", *preds], ignore_index=seg_val.ignore_index, background=0)
plt.show()

# %% [markdown]
# ### The coarse score map is the reason
#
# Every model predicts the argmax of its fused score map, upsampled by a fixed bilinear kernel. The score
# map is 2x2 for FCN-32s, 4x4 for FCN-16s, 8x8 for FCN-8s: one score vector per 32, 16 or 8 pixels. The
# cell below runs each model's layers in the order of `FCN.forward` and stops before the last upsampling,
# to show that map, and then upsamples it with the model's own layer (which gives exactly the model's
# prediction, as the printed check says).

# %%
def fused_scores(model, x):
    """The class scores before the final upsampling, (N, K, H/stride, W/stride); x (N, C, H, W), H and W multiples of 32."""
    model.eval()
    feats = model.backbone.forward_features(x)
    score = model.score_fr.forward(model.fc7.forward(model.fc6.forward(feats[-1])))   # pool5's scores
    for j, stage in enumerate(model.taps):                                            # the skips
        score = model.up2[j].forward(score) + model.score_pool[j].forward(feats[stage - 1])
    return score


n = 1
x1 = seg_val.images[n:n + 1]
fig, axes = plt.subplots(2, 4, figsize=(13, 6.6))
axes[0, 0].imshow(np.transpose(x1[0], (1, 2, 0))); axes[0, 0].set_title("image")
axes[1, 0].imshow(colorize(seg_val.labels[n], seg_val.palette)); axes[1, 0].set_title("labels")
for col, (name, m) in enumerate(models.items(), start=1):
    s = fused_scores(m, x1)                                   # (1, K, h, w)
    up = m.upsample.forward(s)                                # (1, K, 64, 64)
    same = np.array_equal(up.argmax(axis=1), m.predict(x1))
    print(f"{name}: fused score map {s.shape[2:]}, upsampled {up.shape[2:]}; "
          f"argmax of the upsampled map == the model's prediction: {same}")
    axes[0, col].imshow(colorize(s[0].argmax(axis=0), seg_val.palette))
    axes[0, col].set_title(f"{name}: {s.shape[2]}x{s.shape[3]} scores, argmax")
    shape_score = up[0, 1:].max(axis=0) - up[0, 0]            # best shape class minus background
    lim = np.abs(shape_score).max()
    axes[1, col].imshow(shape_score, cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[1, col].contour(shape_score, levels=[0], colors="k", linewidths=1)
    axes[1, col].contour(seg_val.labels[n] > 0, levels=[0.5], colors="lime", linewidths=1)
    axes[1, col].set_title(f"{name}: upsampled, shape - bg")
for ax in axes.ravel():
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Bottom row ("shape - bg"): the best shape score minus the background score, red where a shape wins; the
# black line is where the two are equal (the predicted boundary of the shapes), the green line the true
# boundary. An upsampled 2x2 map can only draw a few smooth blobs: where exactly an edge lies is not in
# pool5's coarse scores (semantic information), it is in the fine, shallow layers (appearance information)
# that the skips add. In numbers: the pixel accuracy near the true boundaries (within 3 pixels of the
# ignore band that marks them) and away from them, over the validation images:

# %%
def near_boundary(labels, ignore_index, radius=3):
    """(N, H, W) bool: labelled pixels within ``radius`` pixels (Chebyshev) of an ignored one."""
    band = labels == ignore_index
    N, H, W = labels.shape
    padded = np.pad(band, ((0, 0), (radius, radius), (radius, radius)))
    near = np.zeros_like(band)
    for a in range(2 * radius + 1):
        for b in range(2 * radius + 1):
            near |= padded[:, a:a + H, b:b + W]
    return near & ~band


near = near_boundary(seg_val.labels, seg_val.ignore_index)
far = (seg_val.labels != seg_val.ignore_index) & ~near
print(f"{len(seg_val)} validation images: {near.sum()} pixels near a boundary (within 3 pixels), "
      f"{far.sum()} away from boundaries")
for name, m in models.items():
    pred = predict(m, seg_val.images)
    ok = pred == seg_val.labels
    print(f"{name}: accuracy near boundaries {ok[near].mean():.3f}, away from them {ok[far].mean():.3f}")

# %% [markdown]
# The finer the fused score map, the better the pixels near the boundaries (and the shapes' interiors,
# whose extent the coarse maps also miss). That is the skip argument of the notes in minseg's numbers.
#
# ## 5. Transfer learning: fine-tuning the pretrained classifier
#
# `FCN.load_pretrained(classifier)` copies the classifier's backbone (with its BatchNorm statistics) and
# its fc6 and fc7, convolutionalized with `fc_to_conv`; the score layers and the learned upsamplers keep
# their initialisation. The classifier of section 3 has the same backbone as the FCN-8s of section 4,
# so FCN-8s fine-tuned from it and FCN-8s from scratch (the one trained above) differ only in their
# initial weights: same data, epochs, schedule, seed.

# %%
fcn8s_ft = FCN8s(len(CLASSES), in_channels=3, rng=SEED, **ARCH).load_pretrained(clf)
same = all(np.array_equal(a, b) for a, b in zip(fcn8s_ft.backbone.state_dict().values(), clf.backbone.state_dict().values()))
print("backbone copied from the classifier:", same)
curves["FCN-8s fine-tuned"], seconds["FCN-8s fine-tuned"] = fit(fcn8s_ft, "FCN-8s fine-tuned")

# %%
scratch, tuned = curves["FCN-8s"], curves["FCN-8s fine-tuned"]
print(f"{'epoch':>5s} {'scratch mIoU':>13s} {'fine-tuned mIoU':>16s} {'scratch loss':>13s} {'fine-tuned loss':>16s}")
for a, b in zip(scratch, tuned):
    print(f"{a['epoch']:5d} {a['val_miou']:13.3f} {b['val_miou']:16.3f} {a['loss']:13.3f} {b['loss']:16.3f}")
ahead = [b["val_miou"] > a["val_miou"] for a, b in zip(scratch, tuned)]
print(f"fine-tuned ahead of scratch after {sum(ahead)} of {len(ahead)} epochs")
reach = scratch[-1]["val_miou"]
first = next((r["epoch"] for r in tuned if r["val_miou"] >= reach), None)
print(f"scratch after {len(scratch)} epochs: mIoU {reach:.3f}; the fine-tuned model first reached it at epoch {first}")
print(f"(pretraining cost: {T_PRETRAIN:.0f} s; one segmentation training: {seconds['FCN-8s']:.0f} s)")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for name, style in (("FCN-8s", "o-"), ("FCN-8s fine-tuned", "s-")):
    rows = curves[name]
    label = "from scratch" if name == "FCN-8s" else "fine-tuned from the pretrained classifier"
    axes[0].plot([r["epoch"] for r in rows], [r["val_miou"] for r in rows], style, label=label)
    axes[1].plot([r["epoch"] for r in rows], [r["loss"] for r in rows], style, label=label)
axes[0].set_ylabel("validation mIoU"); axes[1].set_ylabel("training loss")
for ax in axes:
    ax.set_xlabel("epoch"); ax.grid(alpha=0.3)
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# In the full run the fine-tuned FCN-8s is ahead after every epoch and ends higher: the backbone already
# tells circles from squares from triangles from crosses, so the segmentation training only has to learn
# where (the cell prints the numbers of this run). The pretraining used crops of other images with
# image-level labels only, the situation of FCN and ImageNet: cheap labels for the source task, expensive
# masks for the target task.
#
# The predictions of the two FCN-8s on the same four images:

# %%
pred_ft = predict(fcn8s_ft, seg_val.images[idx])
show_grid(seg_val.images[idx], seg_val.labels[idx], preds["FCN-8s"], pred_ft, class_names=CLASSES,
          palette=seg_val.palette, titles=["image", "labels", "FCN-8s from scratch", "FCN-8s fine-tuned"],
          ignore_index=seg_val.ignore_index, background=0)
plt.show()
print(f"lesson run time so far: {time.perf_counter() - T_START:.0f} s")

# %% [markdown]
# ## Summary
#
# * An fc-layer over a flattened `(C, k, k)` map is a `k x k` convolution with the weight reshaped to
#   `(F, C, k, k)` in the flatten's order; an fc-layer over a vector is a 1x1 convolution. Same weights,
#   same numbers (to float64 round-off), but the convolution takes any input size and gives a map of
#   scores: the classifier applied to every window at once.
# * The score map of a convolutionalized classifier is coarse: one score per 32 pixels after five
#   poolings. Upsampled, it knows *what* but not exactly *where*.
# * FCN-16s and FCN-8s add the scores of pool4 and pool3 (shallow, fine: appearance) to the upsampled
#   scores of pool5 (deep, coarse: semantics). Trained on the same data with the same budget, the mIoU
#   grows FCN-32s -> FCN-16s -> FCN-8s, most of the gain near the boundaries.
# * Transfer learning: a backbone pretrained on a classification task with cheap labels, loaded into
#   the FCN, makes the segmentation training start from useful features and learn faster than from
#   random weights.
#
# ## Exercises
#
# ### Exercise 1: `fc_to_conv`
# Write `fc_to_conv(fc, in_channels, k, *, padding=0)`: return a `minseg.nn.layers.Conv2d` that computes
# what the `Linear` layer `fc` computes on a flattened `(in_channels, k, k)` map, in `fc`'s dtype, with
# `padding` zeros around the input, and with `fc`'s bias (no bias when `fc` has none). `exercises.check`
# compares the layer's weight and bias with minseg's, and its output on inputs larger than `k x k`.

# %% tags=["task"]
from minseg.nn.layers import Conv2d


def fc_to_conv_mine(fc, in_channels, k, *, padding=0):
    # hint: Conv2d(in_channels, fc.out_features, k, padding=padding, bias=..., dtype=...), then fill
    # conv.weight.data[...] and conv.bias.data[...]; feature (c*k + i)*k + j of the flattened map is x[c, i, j]
    raise NotImplementedError


# %% tags=["solution"]
from minseg.nn.layers import Conv2d


def fc_to_conv_mine(fc, in_channels, k, *, padding=0):
    F = fc.out_features
    conv = Conv2d(in_channels, F, k, padding=padding, bias=fc.bias is not None, dtype=fc.weight.data.dtype)
    conv.weight.data[...] = fc.weight.data.reshape(F, in_channels, k, k)   # (F, C*k*k) -> (F, C, k, k), C-order
    if fc.bias is not None:
        conv.bias.data[...] = fc.bias.data
    return conv


# %%
r = exercises.check("fc_to_conv", fc_to_conv_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 2: the 1x1 head by hand
# With your `fc_to_conv_mine`, convolutionalize the three fc-layers of the trained classifier `clf`
# (`clf.head[1]`, `clf.head[4]`, `clf.head[7]`) and check on `crops_val` that backbone + your three
# convolutions (with ReLU between them) give the classifier's scores.
#
# ### Exercise 3: where the skips help
# From the per-class IoU in `final`, find the class that gains the most from FCN-32s to FCN-8s. Look at
# its shape and at the accuracy near boundaries above: why would the skips help that class most?
#
# ### Exercise 4: more data or a better start?
# Train FCN-8s from scratch on twice the images (`N_TRAIN = 400`) for the same number of epochs, and
# compare its mIoU curve with the fine-tuned one above. How much segmentation data is the pretraining
# worth here?
