# Lesson 07: U-Net (exercise and solution notebooks are built from this file).

# %% [markdown]
# # 07 · U-Net
#
# Ronneberger et al. (2015) extended the FCN of lesson 05 into a network for biomedical microscopy
# images: **U-Net**. The notes describe it in three ways.
#
# * It has two parts. The **contracting path** (추출 / Contraction, also called downsampling) extracts
#   features with 3x3 convolutions, much like FCN's encoder, and **doubles the number of channels** after
#   every stage (한번의 과정이 끝날 때 마다 Channel 수를 2배로). The **expanding path** (확장 / Expansion,
#   upsampling) localises the patterns spatially: its up-convolutions (transposed convolutions, lesson 04)
#   **double the resolution and halve the channels** (해상도를 2배씩 늘리면서 ... Channel수는 절반으로).
# * The feature maps of the contracting path are **copied** across to the layer of the expanding path at
#   the same level and **concatenated** with it (Concatenating ... Fusion), so the fine pattern information
#   the pooling threw away is not lost. Laid out with the skips in parallel and the two halves mirror images
#   of each other, the network is a **U** (좌우가 대칭이 되도록 ... U자 형).
# * A last 1x1 convolution turns the features into a score per class and pixel. There is no
#   fully-connected layer, so the model has fewer parameters, and with data augmentation it trains on few
#   labelled images: the authors used only 30 training images.
#
# And one warning (주의할점): pooling halves the size and upsampling doubles it, so **an odd size does not
# come back**, the maps no longer line up and the concatenation cannot be computed.
#
# This lesson follows the paper's sizes (572x572 in, 388x388 out) with minseg's shape formulas, walks
# minseg's U-Net layer by layer, takes the concatenation and its backward apart, makes the odd-size
# failure happen and fixes it twice (crop and pad), and finally trains U-Net and FCN-8s on the same data.

# %%
import os
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, Rectangle

from minseg import exercises
from minseg.data import load_dataset, load_splits
from minseg.gradcheck import numerical_gradient
from minseg.metrics import SegmentationMetrics
from minseg.models import build_model
from minseg.nn.blocks import center_crop_offsets, concat, crop, crop_backward, pad_to, pad_to_backward, split
from minseg.shapes import conv_output_size, conv_transpose_output_size, pool_output_size, receptive_field
from minseg.train import TrainConfig, predict, train
from minseg.viz import show_grid

QUICK = os.environ.get("MINSEG_LESSONS_QUICK") == "1"
np.set_printoptions(precision=4, suppress=True, linewidth=120)

# %% [markdown]
# `QUICK` is the quick setting the test suite uses for the exercise notebooks: it only shortens the
# training in section 5; every size, shape and check before it is the same in both versions.
#
# ## 1. The paper's U-Net, size by size
#
# The original U-Net uses **unpadded ("valid") 3x3 convolutions**: each one takes 1 pixel off every side,
# `H_out = H - 2` (lesson 02's formula with `k = 3, p = 0`). Each level of the contracting path is two such
# convolutions and a 2x2 max-pooling with stride 2; each level of the expanding path is a 2x2
# up-convolution with stride 2 (`H_out = 2 H`), a concatenation with the copied map, and two convolutions.
# Because the convolutions shrink the maps, the copied map is **larger** than the upsampled one and is
# cropped to its centre first ("copy and crop"). The channels go 64, 128, 256, 512, 1024 down and back.
#
# The walk below computes every size with minseg's formulas (`conv_output_size`, `pool_output_size`,
# `conv_transpose_output_size`) and every crop with `center_crop_offsets`, for the paper's 572x572 tile.

# %%
def paper_unet_sizes(size, depth=4, width=64, in_channels=1, num_classes=2):
    """The paper's U-Net (valid 3x3 convs) on a size x size input: one row (path, level, layer, size, channels)
    per layer, and the sizes the max-poolings receive."""
    rows, skips, pooled = [("in", 0, "input", size, in_channels)], [], []
    s = size
    for level in range(depth + 1):
        if level > 0:
            pooled.append(s)
            s = pool_output_size(s, 2, 2)
            rows.append(("down", level, "max-pool 2x2", s, c))
        c = width * 2 ** level                            # channels double at every level down
        for _ in range(2):
            s = conv_output_size(s, 3)                    # valid 3x3 convolution: padding 0
            rows.append(("down", level, "conv 3x3", s, c))
        skips.append(s)
    for level in range(depth - 1, -1, -1):
        c = width * 2 ** level                            # ... and halve at every level up
        s = conv_transpose_output_size(s, 2, 2)           # up-convolution 2x2, stride 2
        rows.append(("up", level, "up-conv 2x2", s, c))
        top, left = center_crop_offsets((skips[level], skips[level]), (s, s))
        rows.append(("up", level, f"crop copy {skips[level]} -> {s} at ({top}, {left}), concat", s, 2 * c))
        for _ in range(2):
            s = conv_output_size(s, 3)
            rows.append(("up", level, "conv 3x3", s, c))
    rows.append(("out", 0, "conv 1x1", s, num_classes))
    return rows, pooled


rows, pooled = paper_unet_sizes(572)
print(f"{'path':<5} {'level':>5}  {'layer':<44} {'size':>9}  {'channels':>8}")
for path, level, layer, s, c in rows:
    print(f"{path:<5} {level:>5}  {layer:<44} {f'{s}x{s}':>9}  {c:>8}")
print("\ninput", rows[0][3], "-> output", rows[-1][3], "; the poolings receive", pooled)

# %% [markdown]
# The cell above prints the paper's numbers: 572 in, 388 out, 1024 channels at the bottom (30x30 there)
# and a copy of 568x568 cropped to 392x392 at the top level. Drawn as the U (the box heights follow
# the map size, the widths the number of channels, on a log scale):

# %%
def draw_u(rows):
    """The U of the paper's network: one box per convolution output, the copies as dashed arrows."""
    fig, ax = plt.subplots(figsize=(12, 4.6))
    x, ends, drawn = 0.0, {}, set()
    colours = {"down": "tab:blue", "up": "tab:orange", "out": "tab:green"}
    for path, level, layer, s, c in rows:
        if not layer.startswith("conv"):
            continue
        y = -level * 1.6
        h, w = 0.3 + 1.1 * s / rows[0][3], 0.1 + 0.12 * np.log2(c)
        ax.add_patch(Rectangle((x, y - h / 2), w, h, facecolor=colours[path], alpha=0.6, edgecolor="k"))
        ax.text(x + w / 2, y - h / 2 - 0.12, f"{s}\n{c}", ha="center", va="top", fontsize=7)
        if path == "down":
            ends[level] = (x + w, y)                      # the last conv of a level is the map that is copied
        elif path == "up" and level not in drawn:
            ax.add_patch(FancyArrowPatch(ends[level], (x - 0.05, y), arrowstyle="->", color="grey",
                                         mutation_scale=10, linestyle="--"))
            drawn.add(level)
        x += w + 0.25
    ax.text(0, -8.0, "blue: contracting path (conv 3x3, max-pool 2x2 between levels)", color="tab:blue")
    ax.text(0, -8.5, "orange: expanding path (up-conv 2x2 between levels); green: the conv 1x1", color="tab:orange")
    ax.set_xlim(-0.3, x + 0.2); ax.set_ylim(-8.9, 1.2); ax.axis("off")
    ax.set_title("the paper's U-Net: size (top) and channels (bottom) after each convolution; "
                 "dashed: copy and crop, then concat")
    plt.show()


draw_u(rows)

# %% [markdown]
# The warning of the notes, in the paper's terms: each max-pooling must receive an **even** size, or it
# floors, and up-converting the result does not give the size back:

# %%
print("pool 69 ->", pool_output_size(69, 2, 2), "; up-conv that ->", conv_transpose_output_size(34, 2, 2),
      "; pool 68 ->", pool_output_size(68, 2, 2), "; up-conv that ->", conv_transpose_output_size(34, 2, 2))

# %% [markdown]
# Which tile sizes near 572 keep every pooling even? The same walk, tried size by size (the slow way: try
# every size):

# %%
good = []
for size in range(540, 621):
    _, pooled_sizes = paper_unet_sizes(size)
    if all(p % 2 == 0 for p in pooled_sizes):
        good.append((size, paper_unet_sizes(size)[0][-1][3]))
print("input sizes in 540..620 whose every pooling gets an even size (input -> output):")
print("  ", ", ".join(f"{a} -> {b}" for a, b in good))
print("gaps between them:", sorted({b[0] - a[0] for a, b in zip(good, good[1:])}),
      "; input - output:", sorted({a - b for a, b in good}))

# %% [markdown]
# One size in every 16 (= 2^4, four poolings) works, and the output is always smaller than the input by the
# same number of pixels (printed last): the paper predicts a large image tile by tile, and mirrors the image
# at its border to give the outermost tiles the context they lack.
#
# ## 2. minseg's U-Net, layer by layer
#
# minseg's `UNet` (`minseg/models/unet.py`) keeps the paper's plan and makes two changes, described in its
# docstring: the 3x3 convolutions are **padded** (`padding=1`, so every convolution keeps the size and the
# output has the input's size), and each convolution is followed by BatchNorm and ReLU. Its width and depth
# are parameters; a small one, `base_width=8, depth=3`, on a 64x64 RGB image:

# %%
K = 5
unet = build_model("unet", num_classes=K, in_channels=3, base_width=8, depth=3, rng=0)
print(unet.config, f"{unet.num_parameters():,} parameters")
paper_like = build_model("unet", num_classes=2, in_channels=1, base_width=64, depth=4, batchnorm=False, rng=0)
print(f"the paper's widths (base_width=64, depth=4, no BatchNorm): {paper_like.num_parameters():,} parameters")
del paper_like

# %% [markdown]
# (Padding changes no parameter count, so the second line is also the paper's network's count.)
# The forward pass, one module at a time, printing each output's shape: the encoder `model.enc[0..3]`
# with the poolings `model.pool[0..2]` between them, then for each level `i` up the transposed
# convolution `model.up[i]`, the concatenation with the copy `skip_i`, and `model.dec[i]` (the printed
# names `enc0`, `pool1`, `up0`, ... label those outputs):

# %%
def walk(model, x, fix=None, verbose=True):
    """minseg's U-Net forward, module by module (the same calls as UNet.forward), printing shapes.

    fix: how each transposed convolution meets its skip: None (it is asked for the skip's size, as in
    UNet.forward), "plain" (nothing asked: exactly twice its input), "crop" (plain, then the skip cropped
    to the centre), "pad" (plain, then the upsampled map zero-padded to the skip's size).
    Returns the logits and a dict of every intermediate map by name."""
    show = print if verbose else (lambda *args: None)
    D = model.config["depth"]
    h, outs = x, {"input": x}
    show(f"{'input':<26} {str(x.shape):<17}")
    for i in range(D + 1):
        if i > 0:
            h = outs[f"pool{i}"] = model.pool[i - 1].forward(h)
            show(f"{f'pool{i}':<26} {str(h.shape):<17} size / 2")
        c_in = h.shape[1]
        h = outs[f"enc{i}"] = model.enc[i].forward(h)
        show(f"{f'enc{i}':<26} {str(h.shape):<17} channels {c_in} -> {h.shape[1]}")
    for i in range(D - 1, -1, -1):
        skip, c_in = outs[f"enc{i}"], h.shape[1]
        if fix is None:
            up = model.up[i].forward(h, output_size=skip.shape[2:])   # the skip's exact size
        else:
            up = model.up[i].forward(h)                             # (H_in - 1) * 2 + 2 = 2 H_in
        outs[f"up{i}"] = up
        show(f"{f'up{i}':<26} {str(up.shape):<17} channels {c_in} -> {up.shape[1]}, size x 2")
        if fix == "crop":
            top, left = center_crop_offsets(skip.shape[2:], up.shape[2:])
            skip = outs[f"crop{i}"] = crop(skip, top, left, *up.shape[2:])
            show(f"{f'  crop enc{i} at ({top}, {left})':<26} {str(skip.shape):<17}")
        elif fix == "pad":
            up = outs[f"pad{i}"] = pad_to(up, *skip.shape[2:])
            show(f"{f'  pad up{i}':<26} {str(up.shape):<17}")
        h, sizes = concat([skip, up])
        outs[f"concat{i}"] = h
        show(f"{f'concat(enc{i}, up{i})':<26} {str(h.shape):<17} channels {sizes[0]} + {sizes[1]} = {h.shape[1]}")
        h = outs[f"dec{i}"] = model.dec[i].forward(h)
        show(f"{f'dec{i}':<26} {str(h.shape):<17} channels {sizes[0] + sizes[1]} -> {h.shape[1]}")
    h = model.head.forward(h)
    show(f"{'head (1x1 conv)':<26} {str(h.shape):<17} one score per class and pixel")
    return h, outs


rng = np.random.default_rng(0)
x64 = rng.random((1, 3, 64, 64), dtype=np.float32)        # (N, C, H, W)
unet.eval()
logits, outs = walk(unet, x64)
print("\nthe walk gives exactly unet.forward(x):", np.array_equal(logits, unet.forward(x64)))

# %% [markdown]
# Down the left side the channels double (8, 16, 32, 64) while the size halves; up the right side each
# transposed convolution halves the channels and doubles the size, the concatenation doubles the channels
# again (copy + upsampled), and `dec_i` halves them back. The last line checks that this walk is exactly
# `unet.forward`.
#
# ## 3. Concatenation and its backward: split
#
# `concat([skip, up])` stacks the two maps along the channel axis: `(N, C1, H, W)` and `(N, C2, H, W)` give
# `(N, C1 + C2, H, W)`, with the copy's channels first. It has no parameters, so its backward only has to
# route the gradient: channels `0..C1-1` of `dy` belong to the copy, the rest to the upsampled map.
# `split(dy, sizes)` cuts them apart at the same offsets. In `UNet.backward` the first part is added to the
# gradient that reaches the encoder's output from below, the second goes into the transposed convolution.
# A tiny example, and the check against central differences (the gradient of `sum(concat(a, b) * dy)`):

# %%
a = np.arange(2 * 2 * 2, dtype=np.float64).reshape(1, 2, 2, 2)          # (N, 2, H, W): a "skip"
b = -np.arange(1, 3 * 2 * 2 + 1, dtype=np.float64).reshape(1, 3, 2, 2)  # (N, 3, H, W): an "upsampled" map
y, sizes = concat([a, b])
print("a", a.shape, "+ b", b.shape, "-> concat", y.shape, "sizes", sizes)
print("channel 1 of y is channel 1 of a:", np.array_equal(y[0, 1], a[0, 1]),
      "; channel 2 of y is channel 0 of b:", np.array_equal(y[0, 2], b[0, 0]))
dy = np.random.default_rng(1).standard_normal(y.shape)
da, db = split(dy, sizes)
num_a = numerical_gradient(lambda a_: concat([a_, b])[0], a, dy)
num_b = numerical_gradient(lambda b_: concat([a, b_])[0], b, dy)
print("split(dy) ->", da.shape, db.shape)
print("max |da - numerical|:", np.abs(da - num_a).max(), "  max |db - numerical|:", np.abs(db - num_b).max())

# %% [markdown]
# ## 4. The odd-size pitfall, and two fixes
#
# minseg's U-Net pools three times, so an input whose size is a multiple of 2^3 = 8 comes back exactly.
# Take 60x60 instead: the poolings give 30, 15 and then 7 (15 / 2, floored), and the transposed
# convolution doubles 7 to 14, not 15. The sizes, from the formulas:

# %%
for size in (64, 60):
    down = [size]
    for _ in range(3):
        down.append(pool_output_size(down[-1], 2, 2))
    ups = [conv_transpose_output_size(s, 2, 2) for s in down[1:]]
    print(f"input {size}: encoder sizes {down}; doubling each level's map below gives {ups}",
          "-> they match" if ups == down[:-1] else "-> one level does not match")

# %% [markdown]
# Running the plain version (each transposed convolution just doubles its input, `fix="plain"`) on a 60x60
# image: the concatenation at the level where 14 meets 15 fails, and minseg's `concat` says why.

# %%
ds_pictures = load_dataset("shapes", "test")
x60 = ds_pictures.images[:1, :, :60, :60]                   # (1, 3, 60, 60): one test image, cut to 60x60
try:
    walk(unet, x60, fix="plain")
except ValueError as err:
    print("\nValueError:", err)

# %% [markdown]
# Two ways out, both with minseg's skip glue (`minseg.nn.blocks`):
#
# * **crop** (the paper's "copy and crop"): cut the larger copy down to the upsampled map's size, centred:
#   `center_crop_offsets(size, target)` gives `top = floor((H - h) / 2)`, `left = floor((W - w) / 2)`, and
#   `crop(x, top, left, h, w)` takes that window. The output comes out smaller than the input (here 56x56),
#   so the labels must be cropped the same way.
# * **pad**: zero-pad the upsampled map at the bottom and right to the copy's size (`pad_to`). The output
#   has the input's size.
#
# (minseg's `UNet.forward` does a third thing: it asks each transposed convolution for the copy's exact
# size, `output_size=`, which means `output_padding = 1` when the size was odd, lesson 04.)

# %%
print("crop:")
logits_crop, outs_crop = walk(unet, x60, fix="crop")
print("\npad:")
logits_pad, outs_pad = walk(unet, x60, fix="pad")
print("\nUNet.forward on 60x60:", unet.forward(x60).shape)
try:
    unet.forward(x60[:, :, :6, :6])
except ValueError as err:
    print("and on 6x6 (smaller than 2^3):", err)

# %% [markdown]
# The crop windows (white) on the copied maps (the mean over channels), and the padded border (red) of the
# upsampled map. A 14-pixel window cannot sit exactly in the middle of 15 pixels: the floor puts it at
# offset 0, and the row and column left out are the bottom and right ones, the same side `pad_to` adds to.

# %%
def mean_map(a):
    return a[0].mean(axis=0)                                 # (H, W): the mean over channels


fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
axes[0].imshow(np.transpose(x60[0], (1, 2, 0))); axes[0].set_title("input 60x60")
for ax, i in zip(axes[1:3], (0, 2)):
    skip, target = outs_crop[f"enc{i}"], outs_crop[f"crop{i}"].shape[2:]
    top, left = center_crop_offsets(skip.shape[2:], target)
    ax.imshow(mean_map(skip), cmap="gray")
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), target[1], target[0], fill=False, edgecolor="white", lw=2))
    ax.set_title(f"crop enc{i}: {skip.shape[2]}x{skip.shape[3]} -> {target[0]}x{target[1]}\nat (top, left) = "
                 f"({top}, {left})")
up2, padded = outs_pad["up2"], outs_pad["pad2"]
axes[3].imshow(mean_map(padded), cmap="gray")
h2, w2 = up2.shape[2:]
axes[3].add_patch(Rectangle((-0.5, h2 - 0.5), padded.shape[3], padded.shape[2] - h2, color="red", alpha=0.6))
axes[3].add_patch(Rectangle((w2 - 0.5, -0.5), padded.shape[3] - w2, padded.shape[2], color="red", alpha=0.6))
axes[3].set_title(f"pad up2: {h2}x{w2} -> {padded.shape[2]}x{padded.shape[3]}\n(zeros added: red)")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# Both fixes have a backward pass, and each is the other's transpose: the backward of a crop puts the
# gradient back at its window in zeros of the original size (`crop_backward`), and the backward of the pad
# crops the padding off the gradient (`pad_to_backward`). The check `<crop(x), dy> = <x, crop_backward(dy)>`
# and the numerical gradient:

# %%
skip0 = outs_crop["enc0"].astype(np.float64)
top, left = center_crop_offsets(skip0.shape[2:], (56, 56))
dy = np.random.default_rng(2).standard_normal((1, skip0.shape[1], 56, 56))
dx = crop_backward(dy, skip0.shape, top, left)
print("<crop(x), dy> =", np.sum(crop(skip0, top, left, 56, 56) * dy), "  <x, crop_backward(dy)> =", np.sum(skip0 * dx))
small = skip0[:, :2, :8, :8].copy()                      # (1, 2, 8, 8): numerical_gradient perturbs it in place
dy_small = dy[:, :2, :5, :5]
num = numerical_gradient(lambda s: crop(s, 1, 1, 5, 5), small, dy_small)
print("max |crop_backward - numerical|:", np.abs(crop_backward(dy_small, small.shape, 1, 1) - num).max())
d_up = pad_to_backward(np.ones((1, 1, 15, 15)), 14, 14)
print("pad_to_backward keeps the top-left", d_up.shape[2:], "of the gradient; the padding's gradient is dropped")

# %% [markdown]
# ## 5. U-Net against FCN-8s, on the same data
#
# U-Net was made for microscope images in which thin structures matter: in the ISBI 2012 challenge the
# paper reports on, the labels are cell membranes a few pixels wide. minseg's `digits` dataset has thin
# structures too: handwritten digits scaled up onto a noisy grey canvas, strokes a few pixels wide. To
# measure *where* the strokes are (the localisation U-Net's expanding path is for) rather than *which* digit
# they form, the lesson merges the ten digit classes into one class "digit"; the ignore band around every
# stroke stays ignored.
#
# Both models train on the same training images, with the same optimiser (Adam, learning rate 3e-3, poly
# schedule), batch size, seed and the **same number of epochs**; the time each took is printed beside its
# score. FCN-8s is the one of lesson 05 on a small VGG backbone (the widths minseg's model comparison uses
# for 64x64 images): it predicts at 1/8 of the resolution and upsamples bilinearly, its skips *add* class
# scores. U-Net predicts at full resolution from concatenated features. Both are scored with minseg's
# `SegmentationMetrics` (the metrics `minseg.train.evaluate` reports) on the whole test split.

# %%
def digit_or_not(ds, n=None):
    """The split with the classes 0..9 merged into one class "digit" (ignore_index kept), first n images."""
    n = len(ds) if n is None else n
    labels = ds.labels[:n]                                                  # (n, H, W)
    merged = np.where(labels == ds.ignore_index, ds.ignore_index, (labels > 0).astype(np.int64))
    return replace(ds, images=ds.images[:n], labels=merged, instances=ds.instances[:n],
                   class_names=("background", "digit"), palette=ds.palette[:2], things=(False, True))


digits = load_splits("digits")
N_TRAIN = 160
train_set, test_set = digit_or_not(digits["train"], N_TRAIN), digit_or_not(digits["test"])
print(train_set)
print(test_set)
print("labelled pixels that are 'digit' in the training images:",
      f"{np.mean(train_set.labels[train_set.labels != 255] == 1):.3f}")

EPOCHS = 2 if QUICK else 3
MODELS = {
    "FCN-8s": ("fcn8s", {"widths": [16, 32, 64, 64, 64], "convs": [1, 1, 2, 2, 2], "fc_channels": 64}),
    "U-Net": ("unet", {"base_width": 8, "depth": 3}),
}
results = {}
for title, (name, config) in MODELS.items():
    model = build_model(name, num_classes=train_set.num_classes, in_channels=train_set.images.shape[1], rng=0,
                        **config)
    cfg = TrainConfig(epochs=EPOCHS, batch_size=16, lr=3e-3, seed=0, progress=True)
    print(f"{title}: {model.num_parameters():,} parameters, {EPOCHS} epochs of {N_TRAIN} images")
    history = train(model, train_set, None, cfg, log=lambda line, title=title: print(f"  {title}: {line}"))
    pred = predict(model, test_set.images)                                 # (N, H, W) class ids
    metrics = SegmentationMetrics(test_set.num_classes, ignore_index=test_set.ignore_index,
                                  class_names=list(test_set.class_names))
    metrics.update(pred, test_set.labels)                                  # one confusion matrix, all images
    results[title] = {"model": model, "seconds": history.seconds, "scores": metrics.compute(), "pred": pred}

# %%
print(f"{'model':<8} {'epochs':>6} {'train s':>8} {'test mIoU':>10} {'pixel acc':>10}   IoU per class")
for title, r in results.items():
    s = r["scores"]
    per_class = ", ".join(f"{n} {v:.4f}" for n, v in zip(test_set.class_names, s["iou"]))
    print(f"{title:<8} {EPOCHS:>6} {r['seconds']:>8.1f} {s['miou']:>10.4f} {s['pixel_accuracy']:>10.4f}   {per_class}")
m_fcn, m_unet = results["FCN-8s"]["scores"]["miou"], results["U-Net"]["scores"]["miou"]
print(f"\nU-Net mIoU - FCN-8s mIoU = {m_unet - m_fcn:+.4f} after {EPOCHS} epochs each:",
      "U-Net >= FCN-8s" if m_unet >= m_fcn else "FCN-8s ahead")

# %% tags=["solution"]
assert m_unet >= m_fcn, (m_unet, m_fcn)

# %% [markdown]
# Read the two mIoU columns, the last line (which model is ahead on the test images after the same number
# of epochs) and the two training times: per epoch FCN-8s is the cheaper model, since its first stage
# already halves the image, while U-Net runs two convolutions at full resolution on the way down and two
# on the way up. The "digit" IoU is where the two differ most: FCN-8s scores a stroke on a grid 8 pixels
# apart and interpolates between the points, which cannot follow a stroke a few pixels wide, nor keep the
# hole of a 0 open. The same test images, the truth, FCN-8s and U-Net side by side (the ignore band
# around the strokes has its own colour in the truth):

# %%
idx = np.arange(0, len(test_set), len(test_set) // 4)[:4]
show_grid(test_set.images[idx], test_set.labels[idx], results["FCN-8s"]["pred"][idx], results["U-Net"]["pred"][idx],
          class_names=test_set.class_names, palette=test_set.palette, ignore_index=test_set.ignore_index,
          titles=["image", "truth", "FCN-8s", "U-Net"], row_titles=[f"test {i}" for i in idx], background=0)
plt.show()

# %% [markdown]
# Where each model is wrong, on the same images (white: a labelled pixel predicted wrongly; the ignore
# band is left out), and how many such pixels there are over the whole test split:

# %%
labelled = test_set.labels != test_set.ignore_index
fig, axes = plt.subplots(2, len(idx), figsize=(2.4 * len(idx), 5))
for row, title in enumerate(results):
    wrong = (results[title]["pred"] != test_set.labels) & labelled
    print(f"{title}: {int(wrong.sum())} wrong of {int(labelled.sum())} labelled test pixels")
    for ax, i in zip(axes[row], idx):
        ax.imshow(wrong[i], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{title}, test {i}")
        ax.axis("off")
plt.show()

# %% [markdown]
# And what the top concatenation of the trained U-Net joins, on one test image: channels of the copy
# `enc0`, computed at full resolution from a small neighbourhood (its receptive field is printed below):
# sharp strokes and edges, the *appearance* information of lesson 05; and channels of `up0`, computed from
# the coarse levels below: blurrier regions, with the checkerboard texture a stride-2 transposed
# convolution leaves (lesson 04), the context. `dec0` combines the two.

# %%
results["U-Net"]["model"].eval()                        # BatchNorm with its running statistics, as predict does
_, outs_trained = walk(results["U-Net"]["model"], test_set.images[idx[:1]], verbose=False)
print("receptive field of enc0 (two 3x3 convolutions):", receptive_field([(3, 1, 1), (3, 1, 1)]), "pixels across")
cat0 = outs_trained["concat0"]
c_skip = outs_trained["enc0"].shape[1]
fig, axes = plt.subplots(1, 7, figsize=(15, 2.5))
axes[0].imshow(test_set.images[idx[0], 0], cmap="gray"); axes[0].set_title("input")
for ax, ch in zip(axes[1:], [0, 1, 2, c_skip, c_skip + 1, c_skip + 2]):
    ax.imshow(cat0[0, ch], cmap="viridis")
    ax.set_title(f"concat ch {ch}\n= {'enc0' if ch < c_skip else 'up0'} ch {ch % c_skip}")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Summary
#
# * U-Net is an encoder-decoder in the shape of a U: the contracting path doubles the channels at each
#   level while pooling halves the size; the expanding path doubles the size with 2x2 up-convolutions and
#   halves the channels; a 1x1 convolution gives the class scores. No fully-connected layer.
# * Each level of the expanding path **concatenates** the copy from the contracting path with the
#   upsampled map: channels `C1 + C2`; the backward **splits** the gradient at the same channel offset,
#   part to the encoder, part to the up-convolution.
# * The paper's valid convolutions shrink every map (572 in, 388 out), so the copies are centre-cropped:
#   `top = floor((H - h) / 2)`. Only tile sizes that keep every pooling even work (one in 16 for four
#   poolings).
# * A size that does not divide by 2^depth leaves an upsampled map one pixel short of its copy, and the
#   concatenation fails. Fixes: crop the copy (the output shrinks), pad the upsampled map (the output keeps
#   the input's size), or, as minseg's `UNet` does, ask the transposed convolution for the exact size.
# * Trained for the same number of epochs on the same images of thin strokes, U-Net and FCN-8s are compared
#   in minseg's own mIoU in section 5, with both training times: FCN-8s's scores on a grid 8 pixels apart
#   cannot follow a stroke a few pixels wide, U-Net's full-resolution decoder can; FCN-8s is the cheaper
#   one per epoch.
#
# ## Exercises
#
# ### Exercise 1: `center_crop_offsets`
# Write `center_crop_offsets(size, target)`: `size = (H, W)` of the larger map, `target = (h, w)` of the
# window; return `(top, left)` of the window centred in the map (as ints). `exercises.check` tries it on odd
# and even differences, non-square maps and the paper's four crops.

# %% tags=["task"]
def center_crop_offsets_mine(size, target):
    raise NotImplementedError


# %% tags=["solution"]
def center_crop_offsets_mine(size, target):
    (H, W), (h, w) = size, target
    return (H - h) // 2, (W - w) // 2            # floor: an odd difference leaves the extra row below


# %%
r = exercises.check("center_crop_offsets", center_crop_offsets_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 2: `crop_backward`
# The backward of `crop(x, top, left, h, w)`: given `dy` of shape `(N, C, h, w)`, the input's shape
# `x_shape` and the offsets, return `dx` of shape `x_shape`, the gradient with respect to `x`.

# %% tags=["task"]
def crop_backward_mine(dy, x_shape, top, left):
    raise NotImplementedError


# %% tags=["solution"]
def crop_backward_mine(dy, x_shape, top, left):
    N, C, h, w = dy.shape
    dx = np.zeros(x_shape, dtype=dy.dtype)      # pixels outside the window did not reach the output
    dx[:, :, top:top + h, left:left + w] = dy
    return dx


# %%
r = exercises.check("crop_backward", crop_backward_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### More to try
#
# 1. Run `paper_unet_sizes` with `depth=3` and `depth=5`. How often does a tile size work now, and how many
#    pixels does the output lose?
# 2. Walk the U-Net on a 61x45 input with `fix="crop"` and with `fix="pad"`. Which levels need a crop, at
#    which offsets, and what size is the output each time?
# 3. Train both models again with `TrainConfig(time_budget=...)` (the same seconds instead of the same
#    epochs) and compare the two tables.
# 4. Replace `concat` at the top level by a sum (`skip + up`, as FCN does with class scores). What must
#    change in the backward pass?
