# Lesson 08: measuring segmentation (exercise and solution notebooks are built from this file).

# %% [markdown]
# # 08 · Measuring segmentation
#
# How good is a label map? The notes answer with one formula for the performance measure (성능 지표),
# **IoU**, intersection over union:
#
# `IoU = 100 x TP / (TP + FP + FN) = overlapping region (겹치는 영역) / combined region (합친 영역)`
#
# read off a table of true positives, false positives, false negatives and true negatives (the slide's
# table: 실제 정답, the true answer, against 실험 결과, the prediction). The datasets the notes
# review (PASCAL VOC 2012, PASCAL-Context, Cityscapes) all rank models by the **mean IoU** (mIoU) over the
# classes; pixel accuracy (픽셀 정확도) is the other metric they name. For panoptic segmentation the notes
# give **panoptic quality**:
#
# `PQ = [sum of IoU(p, g) over matched pairs / |TP|] x [|TP| / (|TP| + |FP|/2 + |FN|/2)] = SQ x RQ`
#
# This lesson computes all of them by hand first, then with `minseg.metrics` and `minseg.panoptic`:
#
# 1. the slide's IoU on two overlapping regions, counted pixel by pixel;
# 2. the **confusion matrix** (혼동 행렬) of a multi-class label map, and every score read from it:
#    pixel accuracy, mean class accuracy, IoU per class, mIoU, frequency-weighted IoU;
# 3. why a class absent from both prediction and target has no IoU;
# 4. a briefly trained U-Net: the dataset-level scores against the mean of per-image scores;
# 5. panoptic quality by hand on a tiny example (matching at IoU > 0.5, VOID, crowd), then on the
#    U-Net's output, with the missed and the false segments drawn.

# %%
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")   # one BLAS thread; before NumPy loads (see below)

import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from minseg import exercises
from minseg.data import Compose, RandomCrop, RandomFlip, batches, load_dataset
from minseg.metrics import (SegmentationMetrics, class_accuracy, confusion_matrix, fw_iou, iou_per_class,
                            mean_class_accuracy, mean_iou, pixel_accuracy)
from minseg.models import build_model
from minseg.optim import Adam, PolyLR
from minseg.panoptic import (PanopticQuality, Segment, decode_panoptic, encode_panoptic, explain_panoptic,
                             instances_from_semantic, panoptic_quality)
from minseg.train import predict, train_step
from minseg.viz import colorize, colorize_instances, to_hwc

QUICK = os.environ.get("MINSEG_LESSONS_QUICK") == "1"
STEPS = 300 if QUICK else 400          # training steps (mini-batches of 16 crops) of the U-Net in section 5
np.set_printoptions(precision=4, suppress=True, linewidth=120)

# %% [markdown]
# The U-Net of section 5 is small: its matrix products are too small to gain from several BLAS threads,
# which then mostly wait for each other (on a busy machine many times slower than one thread), so the
# first line asks NumPy's BLAS for one thread, unless `OMP_NUM_THREADS` is already set.
#
# `QUICK` is the quick setting the test suite uses for the exercise notebooks: it only shortens the
# training of section 5 (`STEPS` above); every worked example and check is the same in both versions.
# The training is a fixed number of steps from fixed seeds, so each version prints the same numbers on
# every run; in the quick setting read the printed ones.
#
# ## 1. The slide's IoU: two overlapping regions
#
# One class against the rest (positive / negative). The true region is a rectangle; the model predicts
# another rectangle that overlaps it. Every pixel falls in one cell of the slide's table: **TP** (true
# positive, predicted and true), **FP** (predicted, not true), **FN** (true, missed), **TN** (neither).

# %%
H, W = 8, 10
truth = np.zeros((H, W), dtype=np.int64)
truth[1:6, 1:6] = 1                                        # the true region, 5 x 5
guess = np.zeros((H, W), dtype=np.int64)
guess[3:7, 3:9] = 1                                        # the predicted region, 4 x 6

TP = FP = FN = TN = 0
for i in range(H):
    for j in range(W):
        if guess[i, j] == 1 and truth[i, j] == 1:
            TP += 1
        elif guess[i, j] == 1:
            FP += 1
        elif truth[i, j] == 1:
            FN += 1
        else:
            TN += 1
print(f"TP {TP}, FP {FP}, FN {FN}, TN {TN}  (total {TP + FP + FN + TN} = {H} x {W})")
print(f"IoU = 100 x TP / (TP + FP + FN) = 100 x {TP} / {TP + FP + FN} = {100 * TP / (TP + FP + FN):.2f}")
overlap, combined = int(((truth == 1) & (guess == 1)).sum()), int(((truth == 1) | (guess == 1)).sum())
print(f"overlapping region / combined region = {overlap} / {combined} = {100 * overlap / combined:.2f} %")

# %%
cell = 2 * truth + guess                                    # 0 TN, 1 FP, 2 FN, 3 TP
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
axes[0].imshow(truth, cmap="Greys", vmin=0, vmax=1.5); axes[0].set_title("true region")
axes[1].imshow(guess, cmap="Greys", vmin=0, vmax=1.5); axes[1].set_title("predicted region")
cells = ListedColormap(["#f0f0f0", "#e4572e", "#4c78a8", "#54a24b"])
axes[2].imshow(cell, cmap=cells, vmin=-0.5, vmax=3.5)
axes[2].set_title(f"TP (green) {TP}, FP (red) {FP}, FN (blue) {FN}")
for ax in axes:
    ax.set_xticks([]); ax.set_yticks([])
plt.show()

# %% [markdown]
# The slide's table puts the prediction in the rows and the truth in the columns. minseg (like
# torchmetrics and scikit-learn) does the opposite: `cm[i, j]` counts pixels whose **target** is `i` and
# whose **prediction** is `j`, rows = truth. For one class against the rest, class 1 = positive:

# %%
print("the slide's table (rows: prediction positive / negative; columns: truth positive / negative):")
print(np.array([[TP, FP], [FN, TN]]))
cm_bin = confusion_matrix(guess, truth, num_classes=2)
print("minseg's confusion_matrix(guess, truth, 2) (rows: truth 0 / 1; columns: prediction 0 / 1):")
print(cm_bin)
print("TP = cm[1, 1] =", cm_bin[1, 1], " FP = cm[0, 1] =", cm_bin[0, 1], " FN = cm[1, 0] =", cm_bin[1, 0],
      " TN = cm[0, 0] =", cm_bin[0, 0])
print("minseg's IoU of class 1 x 100:", 100 * iou_per_class(cm_bin)[1])

# %% [markdown]
# ## 2. The confusion matrix of a multi-class label map
#
# With `K` classes the table grows to `K x K`: `cm[i, j]` = number of pixels of true class `i` predicted as
# `j`. The diagonal holds the correct pixels; row `i` sums to the true pixels of class `i`, column `j` to
# the predicted pixels of class `j`. Pixels whose target is the ignore label (255 in minseg's datasets)
# are not counted at all, whatever was predicted there.
#
# A tiny example with the `shapes` classes background, circle, square: the slow loop, then minseg.

# %%
names3 = ["background", "circle", "square"]
target3 = np.array([[0, 0, 0, 0, 0, 0, 0, 0],
                    [0, 1, 1, 1, 0, 0, 0, 0],
                    [0, 1, 1, 1, 255, 2, 2, 0],
                    [0, 1, 1, 1, 255, 2, 2, 0],
                    [0, 0, 0, 0, 0, 2, 2, 0],
                    [0, 0, 0, 0, 0, 0, 0, 0]])
pred3 = np.array([[0, 0, 0, 0, 0, 0, 0, 0],
                  [0, 1, 1, 0, 0, 0, 0, 0],
                  [0, 1, 1, 1, 1, 2, 1, 0],
                  [0, 1, 2, 1, 1, 2, 2, 2],
                  [0, 0, 0, 0, 0, 2, 2, 2],
                  [0, 0, 0, 0, 1, 0, 0, 0]])

cm_loop = np.zeros((3, 3), dtype=np.int64)
for t, p in zip(target3.reshape(-1), pred3.reshape(-1)):    # every pixel once
    if t == 255:
        continue                                            # ignored: not counted
    cm_loop[t, p] += 1
cm3 = confusion_matrix(pred3, target3, num_classes=3, ignore_index=255)
print("by the loop:\n", cm_loop)
print("minseg confusion_matrix:\n", cm3)
print("equal:", np.array_equal(cm_loop, cm3), "  pixels counted:", cm3.sum(), "of", target3.size,
      f"({int((target3 == 255).sum())} ignored)")


# %%
def draw_cm(ax, cm, names, title):
    """The confusion matrix as a picture: rows = target, columns = prediction, counts written in."""
    shares = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)            # each row as fractions
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=30); ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("prediction"); ax.set_ylabel("target"); ax.set_title(title)


palette3 = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0]], dtype=np.uint8)
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
axes[0].imshow(colorize(target3, palette3)); axes[0].set_title("target (cream: ignored)")
axes[1].imshow(colorize(pred3, palette3)); axes[1].set_title("prediction")
for ax in axes[:2]:
    ax.set_xticks([]); ax.set_yticks([])
draw_cm(axes[2], cm3, names3, "confusion matrix (row-normalised colour)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Every score from one matrix
#
# With `n_ij = cm[i, j]`, `t_i = sum_j n_ij` (true pixels of class `i`, the row sum) and
# `p_j = sum_i n_ij` (predicted pixels of class `j`, the column sum), per class
# `TP_i = n_ii`, `FN_i = t_i - n_ii`, `FP_i = p_i - n_ii`, and (Long et al., FCN, Sec. 5):
#
# * **pixel accuracy** `sum_i n_ii / sum_i t_i`: the share of counted pixels that are right;
# * **class accuracy** `n_ii / t_i`, and its mean over the classes, **mean class accuracy**;
# * **IoU** `n_ii / (t_i + p_i - n_ii) = TP / (TP + FP + FN)`, and its mean over the classes, **mIoU**;
# * **frequency-weighted IoU** `sum_i t_i IoU_i / sum_i t_i`: the IoUs weighted by how common each class is.
#
# By hand from `cm3`, then through minseg:

# %%
n = cm3.astype(np.float64)
t_i, p_i, tp_i = n.sum(axis=1), n.sum(axis=0), np.diag(n)
fp_i, fn_i = p_i - tp_i, t_i - tp_i
for k, name in enumerate(names3):
    print(f"{name:10s}  TP {tp_i[k]:2.0f}  FP {fp_i[k]:2.0f}  FN {fn_i[k]:2.0f}   "
          f"IoU = {tp_i[k]:.0f} / ({tp_i[k]:.0f} + {fp_i[k]:.0f} + {fn_i[k]:.0f}) "
          f"= {tp_i[k] / (tp_i[k] + fp_i[k] + fn_i[k]):.4f}"
          f"   accuracy = {tp_i[k]:.0f} / {t_i[k]:.0f} = {tp_i[k] / t_i[k]:.4f}")
hand = {"pixel accuracy": tp_i.sum() / t_i.sum(),
        "mean class accuracy": np.mean(tp_i / t_i),
        "mIoU": np.mean(tp_i / (t_i + p_i - tp_i)),
        "fwIoU": np.sum(t_i * tp_i / (t_i + p_i - tp_i)) / t_i.sum()}
lib = {"pixel accuracy": pixel_accuracy(cm3), "mean class accuracy": mean_class_accuracy(cm3),
       "mIoU": mean_iou(cm3), "fwIoU": fw_iou(cm3)}
for key in hand:
    print(f"{key:20s} by hand {hand[key]:.6f}   minseg {lib[key]:.6f}   difference {abs(hand[key] - lib[key]):.1e}")
print("minseg iou_per_class   :", iou_per_class(cm3))
print("minseg class_accuracy  :", class_accuracy(cm3))

# %% [markdown]
# Pixel accuracy is dominated by the largest class: here the background, most of the pixels. A model that
# predicted background everywhere would still get the pixel accuracy the next cell prints, and an mIoU
# of only a third of the background's IoU. That is why the benchmarks rank by mIoU, where every class
# counts the same. `SegmentationMetrics` collects the same matrix batch after batch and prints the table.

# %%
all_bg = np.zeros_like(pred3)
cm_bg = confusion_matrix(all_bg, target3, 3, ignore_index=255)
print(f"'background everywhere': pixel accuracy {pixel_accuracy(cm_bg):.4f}, mIoU {mean_iou(cm_bg):.4f}, "
      f"IoU per class {iou_per_class(cm_bg)}")
m3 = SegmentationMetrics(3, ignore_index=255, class_names=names3)
m3.update(pred3, target3)
print(m3.table())

# %% [markdown]
# ## 4. A class that is nowhere has no IoU
#
# Add a fourth class, triangle, that neither the target nor the prediction holds. Its row and column of
# the matrix are zero, so its IoU is `0 / 0`: undefined. minseg returns NaN and leaves it out of the mean:
# the model can be neither right nor wrong about a class that is not there. Counting it as 0 would
# punish the model for nothing. A class that is **predicted** but absent from the target is different:
# every pixel of it is a false positive, `IoU = 0 / FP = 0`, and it does lower the mean.

# %%
cm4 = confusion_matrix(pred3, target3, num_classes=4, ignore_index=255)
iou4 = iou_per_class(cm4)
print("cm with a 4th class (triangle) nowhere:\n", cm4)
print("IoU per class:", iou4)
print(f"mIoU (NaN left out)          : {mean_iou(cm4):.4f}   (the same as with 3 classes: {mean_iou(cm3):.4f})")
print(f"mIoU if the NaN counted as 0 : {np.nan_to_num(iou4).mean():.4f}")
pred_tri = pred3.copy()
pred_tri[5, 4] = 3                                          # one pixel predicted as triangle
cm_tri = confusion_matrix(pred_tri, target3, num_classes=4, ignore_index=255)
print("one pixel predicted as triangle: IoU per class", iou_per_class(cm_tri), f" mIoU {mean_iou(cm_tri):.4f}")

# %% [markdown]
# ## 5. Dataset-level scores against the mean of per-image scores
#
# The notes describe mIoU as "the mean of all IoUs of the segmented objects over all images of the test
# set". There are two ways to read that, and they give different numbers:
#
# * **dataset level** (what PASCAL VOC, Cityscapes and minseg do): add up *one* confusion matrix over every
#   pixel of every test image, then compute the IoUs once;
# * **per image**: compute each image's mIoU from its own matrix, then average those numbers.
#
# Two images of one object class against the background show the difference by hand: a large object
# found almost whole, and a small one missed.

# %%
big_t = np.zeros((10, 10), dtype=np.int64)
big_t[1:9, 1:9] = 1                                           # a large object, 64 pixels
big_p = big_t.copy()
big_p[1:9, 8] = 0                                             # found but for one column
small_t = np.zeros((10, 10), dtype=np.int64)
small_t[4:6, 4:6] = 1                                         # a small object, 4 pixels
small_p = np.zeros_like(small_t)                              # missed
cms = [confusion_matrix(p, t, 2) for p, t in ((big_p, big_t), (small_p, small_t))]
for name, cm in zip(("large object", "small object"), cms):
    print(f"{name}: {cm[1].sum()} object pixels, object IoU {iou_per_class(cm)[1]:.4f}, mIoU {mean_iou(cm):.4f}")
print(f"object IoU, dataset level (one matrix): {iou_per_class(cms[0] + cms[1])[1]:.4f}   "
      f"mean of the per-image IoUs: {np.mean([iou_per_class(cm)[1] for cm in cms]):.4f}")
print(f"mIoU, dataset level: {mean_iou(cms[0] + cms[1]):.4f}   mean of the per-image mIoUs: "
      f"{np.mean([mean_iou(cm) for cm in cms]):.4f}")

# %% [markdown]
# At dataset level the missed object weighs its few pixels among all object pixels (the counts above);
# per image, it is one image of two, as heavy as the large one.
#
# A model is needed for real output. A small U-Net (lesson 07) trained for `STEPS` steps with
# `minseg.train.train_step` (forward, per-pixel cross-entropy, hand-written backward, Adam step) over
# shuffled batches of the `shapes` training set, the learning rate decaying to 0 on DeepLab's poly
# schedule, is enough for a useful segmentation that still makes mistakes to measure. To take more steps
# in the same time it trains on random 32 x 32 crops (a quarter of the pixels per step), flipped at
# random; being fully convolutional, it is then run on the whole 64 x 64 test images. The seeds fix the
# weights, the batch order, the crops and the flips.

# %%
train_set, test_set = load_dataset("shapes", "train"), load_dataset("shapes", "test")
K, IGNORE = len(train_set.class_names), train_set.ignore_index
THINGS = [c for c, is_thing in enumerate(train_set.things) if is_thing]
model = build_model("unet", num_classes=K, in_channels=3, rng=0, base_width=8, depth=3)
optimizer = Adam(model.parameters(), lr=3e-3)
schedule = PolyLR(optimizer, max_steps=STEPS)                 # lr x (1 - step / STEPS) ** 0.9
augment = Compose([RandomCrop(32), RandomFlip()])
losses, epoch = [], 0
cpu_start, start = time.process_time(), time.perf_counter()
while len(losses) < STEPS:
    epoch += 1
    model.train()
    loader = batches(train_set, 16, shuffle=True, seed=(0, epoch), transform=augment, drop_last=True)
    for batch in loader:
        losses.append(train_step(model, optimizer, batch.images, batch.labels, IGNORE))
        schedule.step()
        if len(losses) == STEPS:
            break
print(f"{len(losses)} steps of 16 crops ({len(losses) / len(loader):.2f} epochs of {len(loader)} steps) in "
      f"{time.perf_counter() - start:.1f} s ({time.process_time() - cpu_start:.1f} s of CPU time); "
      f"loss {np.mean(losses[:5]):.3f} (first 5 steps) -> {np.mean(losses[-5:]):.3f} (last 5)")

N_TEST = 100
images, labels, inst_true = test_set.images[:N_TEST], test_set.labels[:N_TEST], test_set.instances[:N_TEST]
pred = predict(model, images)                                 # (N, H, W) class ids
print("predictions:", pred.shape, "on the first", N_TEST, "test images")

# %%
metrics = SegmentationMetrics(K, ignore_index=IGNORE, class_names=train_set.class_names)
for i in range(0, N_TEST, 25):                                # batch by batch: one matrix accumulates
    metrics.update(pred[i:i + 25], labels[i:i + 25])
print("dataset level (one confusion matrix over all", N_TEST, "images):")
print(metrics.table())
per_image = np.array([iou_per_class(confusion_matrix(p, y, K, IGNORE)) for p, y in zip(pred, labels)])  # (N, K)
per_image_miou = np.array([mean_iou(confusion_matrix(p, y, K, IGNORE)) for p, y in zip(pred, labels)])   # (N,)
in_target = np.array([[np.any(y == k) for k in range(K)] for y in labels])                           # (N, K)
print()
print(f"{'class':10s} {'dataset IoU':>12s} {'mean of per-image IoU':>22s} {'images with an IoU':>19s} "
      f"{'of them not in target':>22s} {'mean where in target':>21s}")
for k, name in enumerate(train_set.class_names):
    col = per_image[:, k]
    only_predicted = ~np.isnan(col) & ~in_target[:, k]                # predicted, not there: IoU 0 / FP = 0
    print(f"{name:10s} {100 * metrics.compute()['iou'][k]:12.1f} {100 * np.nanmean(col):22.1f} "
          f"{int((~np.isnan(col)).sum()):19d} {int(only_predicted.sum()):22d} "
          f"{100 * np.mean(col[in_target[:, k]]):21.1f}")
per_image_miou_in = np.nanmean(np.where(in_target, per_image, np.nan), axis=1)                   # (N,)
print(f"\nmIoU, dataset level            : {100 * metrics.compute()['miou']:.1f}")
print(f"mIoU, mean of per-image mIoUs  : {100 * per_image_miou.mean():.1f}")
print(f"the same, each image's mIoU over the classes in its target only: {100 * per_image_miou_in.mean():.1f}")

# %% [markdown]
# The two columns differ (the cell above prints both). At dataset level a class's IoU is one ratio of
# pixel counts summed over all images, so a large object weighs more than a small one, and a few stray
# pixels weigh next to nothing; averaging per image gives every image the same weight. With this model
# most of the gap comes from stray pixels: in the images counted under "of them not in target" the model
# predicts a few pixels of a class the image does not hold, so that class's IoU there is `0 / FP = 0`
# (section 4), and each such image pulls the mean down as much as one where the class covers hundreds of
# pixels. Over only the images that hold the class (the last column), the per-image mean comes within a
# few points of the dataset-level IoU, and the last line does the same for mIoU. The same weighting makes
# one small object the model missed (IoU 0 in that image) count as much as a large one. A class absent
# from both an image and its prediction (NaN there) drops out of that image's mean, so each image's mIoU
# averages a different set of classes. Quote the dataset-level numbers, as the benchmarks do, and say so.
# The images the per-image mean treats worst:

# %%
worst = np.argsort(per_image_miou)[:4]
fig, axes = plt.subplots(3, 4, figsize=(10, 7.5))
for col, i in enumerate(worst):
    axes[0, col].imshow(to_hwc(images[i])); axes[0, col].set_title(f"test image {i}")
    axes[1, col].imshow(colorize(labels[i], train_set.palette, IGNORE)); axes[1, col].set_title("target")
    axes[2, col].imshow(colorize(pred[i], train_set.palette, IGNORE))
    axes[2, col].set_title(f"prediction, mIoU {100 * per_image_miou[i]:.1f}")
for ax in axes.ravel():
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Panoptic quality by hand
#
# Panoptic segmentation scores *segments*, not pixels: each segment is one thing instance (a circle, a
# square) or one stuff region (the background). The rules, as COCO's panoptic API computes them:
#
# 1. A predicted segment `p` and a true segment `g` **match** when they have the same category and
#    `IoU(p, g) > 0.5`, strictly. Above one half, no segment can match two partners, so the matching is
#    unique without any search.
# 2. **VOID** pixels (unlabelled ground truth, id 0 here) are taken out of the union:
#    `IoU = |p & g| / (|p| + |g| - |p & g| - |p & VOID|)`.
# 3. Matched pairs are **TP**; an unmatched true segment is a **FN**; an unmatched prediction is a **FP**,
#    except when more than half of it lies on VOID plus the **crowd** region of its category (a region
#    labelled "many circles" as one segment, that no prediction can match and no miss is counted for).
# 4. Per category: `SQ = sum of matched IoUs / TP`, `RQ = TP / (TP + FP/2 + FN/2)`, `PQ = SQ x RQ`; then
#    the mean over the categories (All, and separately things and stuff).
#
# A tiny example, 8 x 12 pixels, categories background (stuff), circle and square (things):

# %%
cats = {0: {"isthing": False, "name": "background"}, 1: {"isthing": True, "name": "circle"},
        2: {"isthing": True, "name": "square"}}
gt_ids = np.ones((8, 12), dtype=np.int64)                    # 1: the background segment
gt_ids[0:6, 0:6] = 0                                          # VOID: a ring around the circle ...
gt_ids[1:5, 1:5] = 2                                          # ... circle 2, 4 x 4
gt_ids[1:5, 7:11] = 3                                         # square 3, 4 x 4
gt_ids[6:8, 0:6] = 4                                          # a crowd of circles, labelled as one region
gt_ids[6:8, 7:11] = 5                                         # square 5, 2 x 4
gt_segments = [Segment(1, 0), Segment(2, 1), Segment(3, 2), Segment(4, 1, iscrowd=True), Segment(5, 2)]
pred_ids = np.full((8, 12), 10, dtype=np.int64)               # 10: the predicted background
pred_ids[0:5, 0:4] = 11                                       # a circle, partly on VOID
pred_ids[1:5, 7:9] = 13                                       # a square covering half of square 3
pred_ids[6:8, 1:5] = 14                                       # a circle inside the crowd
pred_ids[6:8, 7:10] = 15                                      # a square inside square 5
pred_segments = [Segment(10, 0), Segment(11, 1), Segment(13, 2), Segment(14, 1), Segment(15, 2)]
print("ground truth ids (0 = VOID):\n", gt_ids)
print("predicted ids:\n", pred_ids)


# %%
def draw_ids(ax, ids, segments, title, void_id=0, marks=None, max_labels=12):
    """A segment id map: one colour per segment, VOID black; the ids (and marks) of the largest segments
    (of those in ``marks``, when given) written on the segment pixel nearest to its centre."""
    rgb = colorize_instances(np.where(ids == void_id, 0, ids + 1), seed=3).astype(np.float64) / 255  # (H, W, 3)
    ax.imshow(rgb)
    labelled = [s for s in segments if marks is None or s.id in marks]
    largest = sorted(labelled, key=lambda s: -int((ids == s.id).sum()))[:max_labels]
    for s in largest:
        ys, xs = np.nonzero(ids == s.id)
        k = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)      # a pixel of the segment itself
        text = f"{s.id}" + (" crowd" if s.iscrowd else "") + (f"\n{marks[s.id]}" if marks and s.id in marks else "")
        ax.text(xs[k], ys[k], text, ha="center", va="center", fontsize=8,
                bbox=dict(facecolor="white", alpha=0.7, lw=0))
    ax.set_title(title); ax.set_xticks([]); ax.set_yticks([])


fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
draw_ids(axes[0], gt_ids, gt_segments, "ground truth (black: VOID)")
draw_ids(axes[1], pred_ids, pred_segments, "prediction")
plt.show()

# %% [markdown]
# Step 1 and 2: every (true, predicted) pair of the same category that shares a pixel, its IoU with VOID
# taken out of the union, and whether it matches.

# %%
void = gt_ids == 0
cat_of = {s.id: s.category_id for s in gt_segments + pred_segments}
matches = {}                                                  # true id -> (predicted id, IoU)
for g in gt_segments:
    for p in pred_segments:
        g_px, p_px = gt_ids == g.id, pred_ids == p.id
        inter = int((g_px & p_px).sum())
        if p.category_id != g.category_id or inter == 0:
            continue
        on_void = int((p_px & void).sum())
        union = int(g_px.sum() + p_px.sum()) - inter - on_void
        iou = inter / union
        match = iou > 0.5 and not g.iscrowd
        if match:
            matches[g.id] = (p.id, iou)
        print(f"true {g.id} / pred {p.id} ({cats[g.category_id]['name']:10s}): |g & p| = {inter:2d}, "
              f"union = {int(g_px.sum())} + {int(p_px.sum())} - {inter} - {on_void} (on VOID) = {union:2d}, "
              f"IoU = {iou:.4f} -> {'match' if match else 'crowd: never matched' if g.iscrowd else 'no match'}")

# %% [markdown]
# Square 3 and prediction 13 overlap in exactly half of their union: `IoU = 0.5` is **not** a match, so
# square 3 is missed and prediction 13 is a false positive. Circle 2 and prediction 11 match only because
# VOID leaves the union: with the prediction's VOID pixels left in, the next cell prints an IoU of one
# half, no match either.

# %%
g_px, p_px = gt_ids == 2, pred_ids == 11
inter = int((g_px & p_px).sum())
print(f"circle 2 / pred 11 with VOID left in the union: {inter} / {int((g_px | p_px).sum())} = "
      f"{inter / (g_px | p_px).sum():.4f}")

# %% [markdown]
# Step 3: the unmatched segments. A prediction that is not matched is a FP unless more than half of its
# pixels lie on VOID plus the crowd region of its own category.

# %%
matched_pred = {p for p, _ in matches.values()}
crowd_of = {s.category_id: s.id for s in gt_segments if s.iscrowd}
tp = {c: 0 for c in cats}
fp, fn, iou_sum = dict(tp), dict(tp), {c: 0.0 for c in cats}
for g_id, (p_id, iou) in matches.items():
    tp[cat_of[g_id]] += 1
    iou_sum[cat_of[g_id]] += iou
for g in gt_segments:
    if g.id not in matches and not g.iscrowd:
        fn[g.category_id] += 1
        print(f"true {g.id} ({cats[g.category_id]['name']}): missed -> FN")
for p in pred_segments:
    if p.id in matched_pred:
        continue
    p_px = pred_ids == p.id
    absorbed = (p_px & void) | (p_px & (gt_ids == crowd_of.get(p.category_id, -1)))
    share = absorbed.sum() / p_px.sum()
    is_fp = not share > 0.5
    fp[p.category_id] += is_fp
    print(f"pred {p.id} ({cats[p.category_id]['name']}): unmatched, {share:.0%} on VOID + crowd "
          f"-> {'FP' if is_fp else 'ignored (not a FP)'}")

# %% [markdown]
# Step 4: SQ, RQ and PQ per category, and their means.

# %%
hand_pq = {}
for c in cats:
    den = tp[c] + fp[c] / 2 + fn[c] / 2
    sq = iou_sum[c] / tp[c] if tp[c] else 0.0
    rq = tp[c] / den
    hand_pq[c] = (sq * rq, sq, rq)
    print(f"{cats[c]['name']:10s} TP {tp[c]} FP {fp[c]} FN {fn[c]}   SQ = {iou_sum[c]:.4f} / {tp[c]} = {sq:.4f}   "
          f"RQ = {tp[c]} / ({tp[c]} + {fp[c]}/2 + {fn[c]}/2) = {rq:.4f}   PQ = SQ x RQ = {sq * rq:.4f}")
for group, members in (("All", [0, 1, 2]), ("Things", [1, 2]), ("Stuff", [0])):
    print(f"{group:7s} PQ {np.mean([hand_pq[c][0] for c in members]):.4f}  "
          f"SQ {np.mean([hand_pq[c][1] for c in members]):.4f}  RQ {np.mean([hand_pq[c][2] for c in members]):.4f}")

# %% [markdown]
# The same through minseg: `PanopticQuality` accumulates per category over a dataset (here one image),
# `panoptic_quality` does the same in one call on a list of images, and `explain_panoptic` says for every
# segment why it counts as what it counts.

# %%
pq_tiny = PanopticQuality(cats, void_id=0)
pq_tiny.update(pred_ids, pred_segments, gt_ids, gt_segments)
print(pq_tiny.table())
res = pq_tiny.compute()
for c in cats:
    mine, ref = hand_pq[c], res["per_class"][c]
    print(f"{cats[c]['name']:10s} |hand - minseg|: PQ {abs(mine[0] - ref['pq']):.1e}, "
          f"SQ {abs(mine[1] - ref['sq']):.1e}, "
          f"RQ {abs(mine[2] - ref['rq']):.1e}")
one_shot = panoptic_quality([(pred_ids, pred_segments, gt_ids, gt_segments)], cats)   # a list of images
print("panoptic_quality on a list of this one image, All:", {k: round(v, 4) for k, v in one_shot["All"].items()})
print()
print(explain_panoptic(pred_ids, pred_segments, gt_ids, gt_segments, cats, void_id=0))

# %% [markdown]
# The averaged PQ is the mean of the per-category PQ, so it is **not** the averaged SQ times the averaged
# RQ (the cell prints both). PQ = SQ x RQ holds per category.

# %%
print(f"All: PQ {res['All']['pq']:.4f},  SQ x RQ of the averages {res['All']['sq'] * res['All']['rq']:.4f}")

# %% [markdown]
# ## 7. Panoptic quality of the U-Net
#
# The U-Net predicts classes, not instances. The simplest way to make instances from it (as `minseg demo`
# does) is to call every connected region of a thing class one instance
# (`instances_from_semantic`), then pack class and instance into one id, `class x 1000 + instance`
# (`encode_panoptic`; the ground truth's ignored pixels become VOID, id -1). `PanopticQuality.update_encoded`
# takes those maps directly.

# %%
categories = {c: {"isthing": bool(t), "name": n} for c, (t, n) in enumerate(zip(train_set.things,
                                                                                    train_set.class_names))}


def panoptic_maps(p, y, inst, min_area=0):
    """Predicted and true panoptic maps (H, W) of one image; predicted things under min_area pixels -> VOID."""
    pred_pan = encode_panoptic(p, instances_from_semantic(p, THINGS), THINGS, ignore_index=None)
    if min_area:
        ids, area = np.unique(pred_pan, return_counts=True)
        small = ids[(area < min_area) & np.isin(ids // 1000, THINGS)]
        pred_pan = np.where(np.isin(pred_pan, small), -1, pred_pan)        # unlabelled: in no segment
    gt_pan = encode_panoptic(y, inst, THINGS, ignore_index=IGNORE)            # ignored pixels -> VOID (-1)
    return pred_pan, gt_pan


pq_model = PanopticQuality(categories)
for p, y, inst in zip(pred, labels, inst_true):
    pq_model.update_encoded(*panoptic_maps(p, y, inst))
print(f"panoptic quality on the first {N_TEST} test images:")
print(pq_model.table())

# %% [markdown]
# PQ counts *segments*: every stray blob of a thing class the connected components turn into a segment
# of its own, and a speck of 1 pixel costs RQ as much as a missed object (the FP column above). Panoptic
# methods therefore drop tiny predicted segments before scoring (leaving their pixels unlabelled, in no
# segment). With predicted things under `MIN_AREA` pixels dropped:

# %%
MIN_AREA = 16
pq_clean = PanopticQuality(categories)
pans = []
for p, y, inst in zip(pred, labels, inst_true):
    pans.append(panoptic_maps(p, y, inst, min_area=MIN_AREA))
    pq_clean.update_encoded(*pans[-1])
print(pq_clean.table())
print(f"\nPQ (All) {100 * pq_model.compute()['All']['pq']:.1f} -> {100 * pq_clean.compute()['All']['pq']:.1f} "
      f"with predicted things under {MIN_AREA} px dropped")


# %%
def explain_image(i):
    pred_ids_i, pred_segs_i = decode_panoptic(pans[i][0], label_divisor=1000)
    gt_ids_i, gt_segs_i = decode_panoptic(pans[i][1], label_divisor=1000, thing_ids=THINGS)
    rows = explain_panoptic(pred_ids_i, pred_segs_i, gt_ids_i, gt_segs_i, categories, void_id=-1)
    return rows, (pred_ids_i, pred_segs_i, gt_ids_i, gt_segs_i)


def roles(rows):
    return {r: sum(row.role == r for row in rows if row.category_id in THINGS) for r in ("TP", "FP", "FN")}


counts = [roles(explain_image(i)[0]) for i in range(N_TEST)]
# an image with matched, missed and false things, if there is one; else the one with the most mistakes
mixed = [i for i, c in enumerate(counts) if c["TP"] > 0 and c["FP"] > 0 and c["FN"] > 0]
shown = mixed[0] if mixed else int(np.argmax([c["FP"] + c["FN"] for c in counts]))
rows, (pred_ids_i, pred_segs_i, gt_ids_i, gt_segs_i) = explain_image(shown)
print(f"test image {shown}, things: {roles(rows)} (a TP is listed on both sides)")
print(rows)

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
axes[0].imshow(to_hwc(images[shown])); axes[0].set_title(f"test image {shown}")
role_of = {(r.side, r.id): r.role for r in rows}
for ax, ids, segs, side, title in ((axes[1], gt_ids_i, gt_segs_i, "gt", "true segments (black: VOID)"),
                                   (axes[2], pred_ids_i, pred_segs_i, "pred", "predicted (black: dropped)")):
    marks = {s.id: role_of[(side, s.id)] for s in segs if role_of[(side, s.id)] != "ignored"}
    draw_ids(ax, ids, segs, title, void_id=-1, marks=marks, max_labels=8)
    for s in segs:
        if marks.get(s.id) in ("FN", "FP"):                       # missed (red) and false (yellow) segments outlined
            ax.contour(ids == s.id, levels=[0.5], colors="red" if marks[s.id] == "FN" else "yellow",
                       linewidths=2.5)
axes[0].axis("off")
plt.show()

# %% [markdown]
# Read the table of the cell before the figure: a red outline is a true segment no prediction matched
# (missed, FN: usually found with the wrong class, or split, or merged with a neighbour of the same
# class by the connected-components baseline); a yellow one is a prediction with no partner (FP: a
# wrong class, a fragment, a speck). Predictions ignored by the VOID rule carry no label in the figure.
# Each missed or false segment adds one half to the denominator of its category's RQ,
# whatever its size: PQ punishes fragments and specks that pixel IoU hardly notices.
#
# ## Summary
#
# * Every semantic score comes from one confusion matrix `cm[target, prediction]`, ignored pixels dropped:
#   pixel accuracy `trace / sum`, class accuracy `n_ii / t_i`, `IoU_i = n_ii / (t_i + p_i - n_ii)
#   = TP / (TP + FP + FN)`, mIoU, fwIoU. The slide's table has prediction rows; minseg has target rows.
# * A class absent from both prediction and target has IoU `0 / 0`: NaN, left out of the mean. A class
#   predicted but absent has IoU 0 and counts.
# * Accumulate the matrix over the whole dataset, then compute the scores: the mean of per-image scores is
#   a different number.
# * PQ matches segments of the same category at IoU > 0.5 (strictly; VOID out of the union), counts TP, FP
#   and FN (crowd regions never FN, unmatched predictions mostly on VOID or crowd never FP), and per
#   category `PQ = SQ x RQ = sum IoU / (TP + FP/2 + FN/2)`; the averages are means over the categories.
# * PQ counts segments, whatever their size: instances made from a semantic map need tiny segments dropped
#   before they are scored.
#
# ## Exercises
#
# Each exercise asks for a function with the same signature as minseg's function of that name: its
# docstring (`help(minseg.metrics.confusion_matrix)` etc.) is the spec. `exercises.check` runs yours on a
# grid of cases and names the mistake when there is one.
#
# ### Exercise 1: `confusion_matrix`
# Return the `(K, K)` int64 matrix `cm[i, j]` = pixels whose target is `i` and prediction `j`, for label
# arrays of any shape; pixels whose target equals `ignore_index` are not counted.

# %% tags=["task"]
def confusion_matrix_mine(pred, target, num_classes, ignore_index=None):
    # hint: keep = target != ignore_index; one np.bincount of target * K + pred (in int64) does it
    raise NotImplementedError


# %% tags=["solution"]
def confusion_matrix_mine(pred, target, num_classes, ignore_index=None):
    K = num_classes
    t = target.reshape(-1).astype(np.int64)                  # (M,)
    p = pred.reshape(-1).astype(np.int64)                    # (M,)
    if ignore_index is not None:
        keep = t != ignore_index
        t, p = t[keep], p[keep]
    return np.bincount(t * K + p, minlength=K * K).reshape(K, K)   # (K, K)


# %%
r = exercises.check("confusion_matrix", confusion_matrix_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 2: `iou_per_class`
# Return the `(K,)` float64 IoU of every class from a confusion matrix, NaN for a class with no target and
# no predicted pixel.

# %% tags=["task"]
def iou_per_class_mine(cm):
    # hint: TP = the diagonal, row sums = TP + FN, column sums = TP + FP
    raise NotImplementedError


# %% tags=["solution"]
def iou_per_class_mine(cm):
    tp = np.diagonal(cm).astype(np.float64)
    union = cm.sum(axis=1) + cm.sum(axis=0) - tp               # TP + FN + FP
    out = np.full(cm.shape[0], np.nan)
    out[union > 0] = tp[union > 0] / union[union > 0]
    return out


# %%
r = exercises.check("iou_per_class", iou_per_class_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 3: PQ of one image
# Write `panoptic_quality(images, categories, void_id=0)`, here always called with a list of one image
# `(pred_ids, pred_segments, gt_ids, gt_segments)`: id maps `(H, W)` and lists of `Segment(id,
# category_id, iscrowd)`; `categories` is `{category_id: isthing}`. Return
# `{"per_class": {c: {"tp", "fp", "fn", "sq", "rq", "pq"}}, "All": {"pq", "sq", "rq"}, "Things": ..., "Stuff": ...}`
# following the four rules of section 6 (every category of the cases has at least one TP, FP or FN).

# %% tags=["task"]
def panoptic_quality_mine(images, categories, void_id=0):
    # hint: follow section 6 step by step; IoU > 0.5 exactly in integers is 2 * inter > union
    raise NotImplementedError


# %% tags=["solution"]
def panoptic_quality_mine(images, categories, void_id=0):
    tp = {c: 0 for c in categories}
    fp, fn, iou_sum = dict(tp), dict(tp), {c: 0.0 for c in categories}
    for pred_ids, pred_segments, gt_ids, gt_segments in images:
        void = gt_ids == void_id
        crowd = {g.category_id: gt_ids == g.id for g in gt_segments if g.iscrowd}
        matched = set()
        for g in gt_segments:
            g_px = gt_ids == g.id
            found = False
            for p in pred_segments:
                if g.iscrowd or p.category_id != g.category_id:
                    continue
                p_px = pred_ids == p.id
                inter = int((g_px & p_px).sum())
                union = int(g_px.sum() + p_px.sum()) - inter - int((p_px & void).sum())
                if 2 * inter > union:
                    tp[g.category_id] += 1
                    iou_sum[g.category_id] += inter / union
                    matched.add(p.id)
                    found = True
            if not found and not g.iscrowd:
                fn[g.category_id] += 1
        for p in pred_segments:
            if p.id in matched:
                continue
            p_px = pred_ids == p.id
            absorbed = p_px & (void | crowd.get(p.category_id, np.zeros_like(void)))
            if not 2 * absorbed.sum() > p_px.sum():
                fp[p.category_id] += 1
    per_class = {}
    for c in categories:
        den = tp[c] + fp[c] / 2 + fn[c] / 2
        sq = iou_sum[c] / tp[c] if tp[c] else 0.0
        per_class[c] = {"tp": tp[c], "fp": fp[c], "fn": fn[c], "sq": sq, "rq": tp[c] / den, "pq": iou_sum[c] / den}
    out = {"per_class": per_class}
    for group, want in (("All", None), ("Things", True), ("Stuff", False)):
        rows = [per_class[c] for c in categories if want is None or bool(categories[c]) == want]
        out[group] = {k: float(np.mean([row[k] for row in rows])) for k in ("pq", "sq", "rq")}
    return out


# %%
r = exercises.check("panoptic_quality", panoptic_quality_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### More to try
#
# 1. Feed `exercises.check("iou_per_class", ...)` a version that returns `100 x` the IoU, as the slide
#    writes it, and read what the checker says.
# 2. In section 6, move prediction 13 one column to the right: what happens to its IoU with square 3, and
#    to the square's PQ?
# 3. Compute the per-image PQ of the U-Net (one `PanopticQuality` per image) and compare its mean with
#    the dataset-level PQ of section 7, as section 5 did for mIoU.
