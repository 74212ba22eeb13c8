# Lesson 00: what segmentation is (exercise and solution notebooks are built from this file).

# %% [markdown]
# # 00 · What segmentation is
#
# Segmentation (분할) is understanding an image at the level of its pixels: every pixel gets a label,
# so that all pixels with the same label belong to the same object or class. The input is an RGB
# (or grey) image; the output is a **label map** (레이블 맵) of the same height and width, holding for each
# pixel the class it belongs to. That is much harder than image classification, which makes one
# prediction per image.
#
# The notes name the kinds:
#
# * **semantic segmentation** (시맨틱 분할): one class per pixel; two objects of the same class are not told apart;
# * **instance segmentation** (인스턴스 분할): objects of the same class ("instances", 개체) are told apart;
# * **panoptic segmentation** (파놉틱 분할): both at once, every pixel gets a class, and pixels of
#   countable "thing" classes also get an instance id; uncountable "stuff" (here: the background) gets none.
#
# This lesson looks at all three on minseg's own `shapes` dataset, and at how label maps are drawn:
# palettes (팔레트) and overlays.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from minseg.data import load_dataset
from minseg.panoptic import decode_panoptic, encode_panoptic, instances_from_semantic
from minseg.viz import colorize, colorize_instances, make_palette, overlay, show_grid

QUICK = os.environ.get("MINSEG_LESSONS_QUICK") == "1"
np.set_printoptions(linewidth=120)

# %% [markdown]
# This lesson trains nothing, so `QUICK` (the quick setting the test suite uses for the exercise
# notebooks) changes nothing here; it is defined for uniformity with the other lessons.
#
# ## 1. An image and its label map
#
# `load_dataset("shapes", "train")` makes (once, then caches) a small synthetic dataset: coloured
# circles, squares, triangles and crosses on a noisy background. Each sample is a triple
# `(image (C, H, W), labels (H, W), instances (H, W))`.

# %%
ds = load_dataset("shapes", "train")
image, labels, instances = ds[0]
print("samples           :", len(ds))
print("image             :", image.shape, image.dtype, "values in", (float(image.min()), float(image.max())))
print("labels            :", labels.shape, labels.dtype)
print("class names       :", ds.class_names)
THINGS = [c for c, is_thing in enumerate(ds.things) if is_thing]     # ds.things is one flag per class
print("thing flags       :", ds.things, "-> thing class ids", THINGS)
print("ignore index      :", ds.ignore_index)
print("classes in sample 0:", np.unique(labels))

# %% [markdown]
# The label map is just an integer array: one class index per pixel. Besides the classes there is an
# **ignore label** (`ds.ignore_index`, printed above): pixels whose class is uncertain, here a thin band
# on each object's border. Losses and metrics skip them. A corner of the label map, as numbers:

# %%
ys, xs = np.nonzero(labels != 0)
r0, c0 = max(ys.min() - 2, 0), max(xs.min() - 2, 0)
print(f"labels[{r0}:{r0 + 10}, {c0}:{c0 + 14}]:")
print(labels[r0:r0 + 10, c0:c0 + 14])
counts = {ds.class_names[c] if c < len(ds.class_names) else "ignore": int((labels == c).sum())
          for c in np.unique(labels)}
print("pixels per label:", counts, " total", labels.size)

# %% [markdown]
# ## 2. Palettes and overlays
#
# To look at a label map we give each class a colour: a **palette**, an array `(num_classes, 3)` of RGB
# colours indexed by class. `colorize` looks every pixel's class up in it (ignored pixels get a fixed
# colour of their own), and `overlay` blends the coloured map onto the image.

# %%
palette = ds.palette
print("palette (one RGB row per class):")
for name, colour in zip(ds.class_names, palette):
    print(f"  {name:10s} {colour}")
print("make_palette(5) gives the same kind of array:", make_palette(5).shape)

coloured = colorize(labels, palette, ignore_index=ds.ignore_index)       # (H, W, 3)
blended = overlay(image, labels, palette, alpha=0.5, ignore_index=ds.ignore_index)
print("colorize ->", coloured.shape, " overlay ->", blended.shape)

fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
axes[0].imshow(np.transpose(image, (1, 2, 0))); axes[0].set_title("image (input)")   # (H, W, C)
axes[1].imshow(coloured); axes[1].set_title("label map (output)")
axes[2].imshow(blended); axes[2].set_title("overlay")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# `show_grid` draws several samples with a legend in one call:

# %%
idx = list(range(4))
show_grid([ds[i][0] for i in idx], [ds[i][1] for i in idx], class_names=ds.class_names, palette=palette,
          titles=["image", "labels"], row_titles=[f"sample {i}" for i in idx], ignore_index=ds.ignore_index)
plt.show()

# %% [markdown]
# ## 3. Semantic vs instance vs panoptic
#
# Find a sample with two objects of the same class. In the semantic map they share one label; the
# instance map gives each its own id.

# %%
def same_class_twice(ds):
    """Index of the first sample holding two instances of one thing class."""
    for i in range(len(ds)):
        _, lab, inst = ds[i]
        for c in THINGS:
            if len(np.unique(inst[(lab == c) & (inst > 0)])) >= 2:
                return i, c
    raise RuntimeError("no sample with two instances of one class")

k, cls = same_class_twice(ds)
image, labels, instances = ds[k]
print(f"sample {k}: class {ds.class_names[cls]!r}")
print("  semantic labels of its pixels :", np.unique(labels[labels == cls]))
print("  instance ids of its pixels    :", np.unique(instances[(labels == cls) & (instances > 0)]))

# %% [markdown]
# A panoptic id packs both into one integer: `class * label_divisor + instance`. `encode_panoptic`
# builds it and `decode_panoptic` lists the segments it holds; stuff (the background) keeps instance 0, and ignored
# pixels become VOID (`-1`).

# %%
pan = encode_panoptic(labels, instances, THINGS, label_divisor=1000, ignore_index=ds.ignore_index)
print("panoptic ids in the sample:", np.unique(pan))
ids, segments = decode_panoptic(pan, label_divisor=1000, thing_ids=THINGS)
for seg in segments:
    print("  segment", seg)

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
axes[0].imshow(np.transpose(image, (1, 2, 0))); axes[0].set_title(f"image (sample {k})")
axes[1].imshow(colorize(labels, palette, ignore_index=ds.ignore_index)); axes[1].set_title("semantic")
axes[2].imshow(colorize_instances(instances)); axes[2].set_title("instance")
axes[3].imshow(colorize_instances(np.where(labels == ds.ignore_index, 0, pan))); axes[3].set_title("panoptic (one colour per id)")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# Instances can also be read off a semantic map without any instance labels: each connected region of
# a thing class is one instance. That baseline (`instances_from_semantic`) is exact when objects of one
# class never touch, and merges them when they do. On this dataset:

# %%
n_checked, n_equal = 0, 0
for i in range(50):
    _, lab, inst = ds[i]
    guess = instances_from_semantic(lab, THINGS)
    for c in THINGS:
        mask = (lab == c)
        if mask.any():
            n_checked += 1
            n_equal += len(np.unique(guess[mask & (guess > 0)])) == len(np.unique(inst[mask & (inst > 0)]))
print(f"connected components give the right number of instances for {n_equal} of {n_checked} (sample, class) pairs")

# %% [markdown]
# ## Summary
#
# * Segmentation maps an image `(C, H, W)` to a label map `(H, W)`: one prediction per pixel.
# * Semantic segmentation gives each pixel a class; instance segmentation also separates objects of one
#   class; panoptic segmentation does both, with ids `class * divisor + instance` for things and
#   instance 0 for stuff.
# * An ignore label marks pixels that losses and metrics skip.
# * A palette turns a label map into a picture; an overlay puts it over the image.
#
# ## Exercises
#
# 1. Count, over the first 100 training samples, how many pixels of each class there are. Which class
#    dominates, and what does that mean for a model that predicts "background" everywhere?
# 2. Build a sample where two squares touch and check what `instances_from_semantic` does with
#    `connectivity=4` and `connectivity=8`.
# 3. Make your own palette with `make_palette` and draw an overlay with `alpha=0.8`.
