# Lesson 02: convolution by hand (exercise and solution notebooks are built from this file).

# %% [markdown]
# # 02 · Convolution by hand
#
# A CNN extracts features from the input image by convolution (합성곱): the feature extraction
# (특징 추출) step of every segmentation network in the later lessons. The notes describe what comes out:
# the early, shallow layers (얕은 층) of a CNN mostly extract **edge features**, fine appearance
# information (외관 정보); deeper, coarse layers carry semantic information (의미론적 정보). They also
# stress that in an end-to-end model the filters are **learnable** (학습 가능한), where a traditional
# pattern-recognition model used filters a person designed in advance.
#
# This lesson writes the convolution itself, three ways, and its backward pass:
#
# 1. the definition as six nested loops (`minseg.reference.conv2d_loops`);
# 2. **im2col**: copy every receptive field into one column of a matrix (`minseg.ops.im2col`);
# 3. the whole convolution as **one matrix product** with that matrix (`minseg.ops.conv2d`).
#
# Then stride (보폭), padding (패딩) and dilation (팽창) and the output-size formula; the backward pass
# derived from the matrix form and checked numerically; filters at work on an image: a hand-made
# edge filter, and the same filter learned by gradient descent; and Winograd's algorithm, which makes
# the same outputs with fewer multiplications.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from minseg import exercises
from minseg.data import load_dataset
from minseg.gradcheck import check_backward
from minseg.ops import col2im, conv2d, conv2d_backward, im2col
from minseg.ops.winograd import conv2d_winograd, conv2d_winograd_backward, winograd_matrices
from minseg.reference import conv2d_backward_loops, conv2d_loops
from minseg.shapes import conv_output_size

QUICK = os.environ.get("MINSEG_LESSONS_QUICK") == "1"
STEPS = 300 if QUICK else 1500         # gradient-descent steps when a filter is learned (section 5)
np.set_printoptions(precision=4, suppress=True, linewidth=120)

# %% [markdown]
# `QUICK` is the quick setting the test suite uses for the exercise notebooks: it only shortens the small
# training in section 5 (`STEPS` above); every worked example and check is the same in both versions.
#
# ## 1. The definition, as loops
#
# "Convolution" in deep learning is cross-correlation: the kernel is slid over the input, not flipped.
# For an input `x` of shape `(N, C, H, W)` and weights `w` of shape `(C_out, C, KH, KW)`,
#
# `y[n, o, i, j] = b[o] + sum over c, kh, kw of  w[o, c, kh, kw] * x[n, c, i + kh, j + kw]`
#
# (stride 1, no padding; section 3 adds the rest). Every output pixel is the dot product of the kernel
# with the patch of input under it, its **receptive field** (수용 영역). A tiny example: a 4x4 input holding
# 0..15 and a 3x3 kernel holding 1..9 give a 2x2 output. The top-left output, by hand:

# %%
x = np.arange(16.0).reshape(1, 1, 4, 4)                     # (N, C, H, W)
w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)                # (C_out, C, KH, KW)
print("x[0, 0] =\n", x[0, 0])
print("w[0, 0] =\n", w[0, 0])
patch = x[0, 0, 0:3, 0:3]
terms = " + ".join(f"{a:g}*{b:g}" for a, b in zip(w[0, 0].ravel(), patch.ravel()))
print(f"y[0, 0, 0, 0] = {terms} = {np.sum(w[0, 0] * patch):g}")

y_loops = conv2d_loops(x, w)
print("conv2d_loops(x, w)[0, 0] =\n", y_loops[0, 0])

# %% [markdown]
# The loop version is exact and easy to read, and hopelessly slow: six nested Python loops, one
# multiply-add at a time.
#
# ## 2. im2col: every receptive field becomes a column
#
# The trick that makes convolution fast is to copy each receptive field into one **column** of a matrix
# `cols`, once. With the rows ordered `(c, kh, kw)` exactly like the flattened kernel
# `w_mat = w.reshape(C_out, C*KH*KW)`, the convolution is a single matrix product:
#
# `y_mat = w_mat @ cols`,  `cols` of shape `(C*KH*KW, N*H_out*W_out)`,  `y_mat` of shape `(C_out, N*H_out*W_out)`.
#
# For the tiny example `cols` is 9 x 4: one column per output pixel, holding the 9 input pixels that
# output sees.

# %%
cols = im2col(x, kernel_size=3)                             # (C*KH*KW, N*H_out*W_out) = (9, 4)
print("cols (rows: kernel taps (kh, kw); columns: output pixels (i, j)) =\n", cols)
w_mat = w.reshape(1, -1)                                    # (C_out, C*KH*KW)
y_mat = w_mat @ cols                                        # (C_out, N*H_out*W_out)
print("w_mat @ cols            =", y_mat.ravel())
print("conv2d_loops, flattened =", y_loops.ravel())

# %% [markdown]
# Which pixels go in one column: output pixel `(i, j) = (1, 0)` is column `i*W_out + j = 2`; its 9
# entries are the 3x3 window of the input starting at row 1, column 0.

# %%
i, j, H_out, W_out = 1, 0, 2, 2
col = i * W_out + j
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), gridspec_kw={"width_ratios": [1, 1.1]})
axes[0].imshow(x[0, 0], cmap="Greys", vmin=-8, vmax=24)
for (r, c), v in np.ndenumerate(x[0, 0]):
    axes[0].text(c, r, f"{v:g}", ha="center", va="center")
axes[0].add_patch(Rectangle((j - 0.5, i - 0.5), 3, 3, fill=False, edgecolor="tab:red", linewidth=3))
axes[0].set_title(f"input x: receptive field of output ({i}, {j})")
axes[1].imshow(cols, cmap="Greys", vmin=-8, vmax=24, aspect="auto")
for (r, c), v in np.ndenumerate(cols):
    axes[1].text(c, r, f"{v:g}", ha="center", va="center")
axes[1].add_patch(Rectangle((col - 0.5, -0.5), 1, cols.shape[0], fill=False, edgecolor="tab:red", linewidth=3))
axes[1].set_yticks(range(9), [f"({kh},{kw})" for kh in range(3) for kw in range(3)])
axes[1].set_xticks(range(4), [f"({a},{b})" for a in range(2) for b in range(2)])
axes[1].set_xlabel("output pixel (i, j)"); axes[1].set_ylabel("kernel tap (kh, kw)")
axes[1].set_title(f"cols: column {col}")
axes[0].axis("off")
plt.tight_layout()
plt.show()
print(f"column {col} of cols      :", cols[:, col])
print(f"x[0, 0, {i}:{i + 3}, {j}:{j + 3}] flat:", x[0, 0, i:i + 3, j:j + 3].ravel())

# %% [markdown]
# With several channels and samples nothing changes but the sizes: the rows run over `(c, kh, kw)`,
# the columns over `(n, i, j)`. `minseg.ops.conv2d` is this product (plus the bias, and chunked over
# the batch to keep the column matrix small). On a random batch, loops, im2col + one product, and
# `conv2d` agree to round-off, and the product is far faster:

# %%
rng = np.random.default_rng(0)
xb = rng.standard_normal((2, 3, 24, 24))                    # (N, C, H, W)
wb = rng.standard_normal((8, 3, 3, 3))                      # (C_out, C, KH, KW)
bb = rng.standard_normal(8)                                 # (C_out,)
N, C, H, W = xb.shape
C_out, _, KH, KW = wb.shape
Ho, Wo = conv_output_size(H, KH), conv_output_size(W, KW)

t0 = time.perf_counter()
y_ref = conv2d_loops(xb, wb, bb)
t_loops = time.perf_counter() - t0

t0 = time.perf_counter()
cols_b = im2col(xb, (KH, KW))                               # (C*KH*KW, N*H_out*W_out)
y_b = wb.reshape(C_out, -1) @ cols_b + bb[:, None]          # (C_out, N*H_out*W_out)
y_b = y_b.reshape(C_out, N, Ho, Wo).transpose(1, 0, 2, 3)   # (N, C_out, H_out, W_out)
t_im2col = time.perf_counter() - t0

t0 = time.perf_counter()
y_fast, cache = conv2d(xb, wb, bb)
t_conv = time.perf_counter() - t0

print("cols shape              :", cols_b.shape, f"= (C*KH*KW, N*H_out*W_out) = ({C * KH * KW}, {N * Ho * Wo})")
print(f"im2col + product vs loops: max |difference| {np.abs(y_b - y_ref).max():.1e} (outputs up to {np.abs(y_ref).max():.1f})")
print(f"conv2d vs loops          : max |difference| {np.abs(y_fast - y_ref).max():.1e}")
print(f"time: loops {t_loops * 1e3:.0f} ms, im2col + product {t_im2col * 1e3:.2f} ms, conv2d {t_conv * 1e3:.2f} ms")
assert np.allclose(y_b, y_ref, rtol=1e-12, atol=1e-12) and np.allclose(y_fast, y_ref, rtol=1e-12, atol=1e-12)

# %% [markdown]
# ## 3. Stride, padding, dilation and the output size
#
# Three hyper-parameters move the receptive fields around (the same names and meanings as PyTorch):
#
# * **padding** `p`: `p` rows and columns of zeros around the input, so the kernel can be centred on
#   border pixels; `p = (k - 1) / 2` with stride 1 keeps the size ("same" padding);
# * **stride** `s`: the window jumps `s` pixels between outputs; stride 2 roughly halves the size;
# * **dilation** `d`: the kernel taps are `d` pixels apart (dilated or atrous convolution, lesson 06); a
#   `k x k` kernel then spans `d(k - 1) + 1` pixels. `d = 1` is the ordinary convolution.
#
# The window of output `i` starts at input row `i*s - p` and has taps at `i*s - p + kh*d`. The last one
# must stay inside the padded input, which gives the output size (per axis):
#
# `H_out = floor((H + 2p - d(k - 1) - 1) / s) + 1`
#
# `minseg.shapes.conv_output_size` computes it. A table of cases, each checked against the shape that
# `conv2d` really returns:

# %%
cases = [  # (H, k, s, p, d)
    (4, 3, 1, 0, 1), (5, 3, 1, 1, 1), (5, 3, 2, 1, 1), (6, 3, 2, 1, 1), (7, 3, 2, 0, 1),
    (224, 7, 2, 3, 1), (64, 3, 1, 2, 2), (64, 3, 1, 1, 2), (7, 2, 3, 0, 1), (8, 4, 2, 1, 1),
]
print(f"{'H':>4} {'k':>2} {'s':>2} {'p':>2} {'d':>2} | {'(H + 2p - d(k-1) - 1) / s':>26} | {'H_out':>5} | conv2d gives")
for H_, k, s, p, d in cases:
    h_out = conv_output_size(H_, k, s, p, d)
    y_, _ = conv2d(np.zeros((1, 1, H_, H_)), np.zeros((1, 1, k, k)), stride=s, padding=p, dilation=d)
    frac = f"{H_ + 2 * p - d * (k - 1) - 1}/{s} = {(H_ + 2 * p - d * (k - 1) - 1) / s:.2f}"
    print(f"{H_:>4} {k:>2} {s:>2} {p:>2} {d:>2} | {frac:>26} | {h_out:>5} | {y_.shape[2:]}")
    assert y_.shape[2:] == (h_out, h_out)

# %% [markdown]
# The floor matters: with `H = 6, k = 3, s = 2, p = 1` the last window would need one more row of
# padding, so it is dropped and 6 and 5 give the same output size. (`224, 7, 2, 3` is the first layer of
# the classic ImageNet networks.)
#
# Where the taps land, for output pixel `(1, 1)` of a 5x5 input with a 3x3 kernel: grey squares are the
# padding, red dots the 9 taps.

# %%
def taps(i, j, k, s, p, d):
    """Padded-grid coordinates (row, col) of the k*k taps of output pixel (i, j)."""
    return [(i * s + kh * d, j * s + kw * d) for kh in range(k) for kw in range(k)]

settings = [dict(s=1, p=0, d=1), dict(s=1, p=1, d=1), dict(s=2, p=1, d=1), dict(s=1, p=2, d=2)]
fig, axes = plt.subplots(1, len(settings), figsize=(12, 3.4))
for ax, st in zip(axes, settings):
    s, p, d = st["s"], st["p"], st["d"]
    size = 5 + 2 * p
    grid = np.zeros((size, size))
    grid[p:p + 5, p:p + 5] = 1                              # real pixels 1, padding 0
    ax.imshow(grid, cmap="Greys_r", vmin=-0.6, vmax=1.2)
    rr, cc = zip(*taps(1, 1, 3, s, p, d))
    ax.scatter(cc, rr, color="tab:red", s=60)
    h_out = conv_output_size(5, 3, s, p, d)
    ax.set_title(f"s={s}, p={p}, d={d}: H_out={h_out}")
    ax.set_xticks([]); ax.set_yticks([])
plt.tight_layout()
plt.show()

# %% [markdown]
# im2col handles all three the same way: each column still holds the `C*KH*KW` values at the taps,
# zeros where a tap falls in the padding. The 4x4 example with `padding=1, stride=2` (output 2x2):

# %%
print("im2col(x, 3, stride=2, padding=1) =\n", im2col(x, 3, stride=2, padding=1))
y_sp, _ = conv2d(x, w, stride=2, padding=1)
print("conv2d(x, w, stride=2, padding=1)[0, 0] =\n", y_sp[0, 0])
print("conv2d_loops, same settings       =\n", conv2d_loops(x, w, stride=2, padding=1)[0, 0])

# %% [markdown]
# ## 4. The backward pass
#
# Training needs the gradients of a loss `L` with respect to `x`, `w` and `b`, given the upstream
# gradient `dy = dL/dy`. The matrix form makes the derivation short. Write `dy_mat` for `dy` laid out
# like `y_mat`, shape `(C_out, N*H_out*W_out)`. The forward pass is
#
# `y_mat = w_mat @ cols + b`,   `cols = im2col(x)`.
#
# * It is a matrix product, so as for any linear layer `Y = W X`: **`dw_mat = dy_mat @ cols.T`**
#   (shape `(C_out, C*KH*KW)`, reshaped to `w`'s shape), and `dcols = w_mat.T @ dy_mat`.
# * `b` is added to every output pixel, so **`db[o] = sum over n, i, j of dy[n, o, i, j]`**.
# * `im2col` is linear too: it copies each pixel into every column whose window covers it. The gradient
#   of a copy is a sum, so **`dx = col2im(dcols) = col2im(w_mat.T @ dy_mat)`**, where `col2im` adds each
#   column back onto the pixels it came from. As matrices, `col2im` is the transpose of `im2col`.
#
# Step by step on the random batch of section 2, against minseg's `conv2d_backward` and the loop version
# `conv2d_backward_loops` (which sends `dy` back through every product of the forward sum):

# %%
dy = rng.standard_normal(y_fast.shape)                      # (N, C_out, H_out, W_out)
dy_mat = dy.transpose(1, 0, 2, 3).reshape(C_out, -1)        # (C_out, N*H_out*W_out)
w_mat = wb.reshape(C_out, -1)                               # (C_out, C*KH*KW)
dw_hand = (dy_mat @ cols_b.T).reshape(wb.shape)             # (C_out, C, KH, KW)
dcols = w_mat.T @ dy_mat                                    # (C*KH*KW, N*H_out*W_out)
dx_hand = col2im(dcols, xb.shape, (KH, KW))                 # (N, C, H, W)
db_hand = dy.sum(axis=(0, 2, 3))                            # (C_out,)

dx, dw, db = conv2d_backward(dy, cache)
dx_l, dw_l, db_l = conv2d_backward_loops(dy, xb, wb, has_bias=True)
for name, hand, fast, loop in [("dx", dx_hand, dx, dx_l), ("dw", dw_hand, dw, dw_l), ("db", db_hand, db, db_l)]:
    print(f"{name}: max |difference| by hand vs conv2d_backward {np.abs(hand - fast).max():.1e}, "
          f"conv2d_backward vs loops {np.abs(fast - loop).max():.1e}")
    assert np.allclose(hand, fast, rtol=1e-12, atol=1e-12) and np.allclose(fast, loop, rtol=1e-12, atol=1e-12)

# %% [markdown]
# Why `col2im` and not some other inverse: it is the **adjoint** of `im2col`,
# `<im2col(x), c> = <x, col2im(c)>` for every `x` and `c`. And `col2im` of a matrix of ones counts, for
# each pixel, how many windows cover it: that many copies of the pixel sit in `cols`, and that many
# terms add up in its gradient. The cell prints both for the 4x4 example: without padding the border
# pixels are in fewer columns than the centre ones.

# %%
c_rand = rng.standard_normal(cols_b.shape)
lhs = np.sum(im2col(xb, 3) * c_rand)
rhs = np.sum(xb * col2im(c_rand, xb.shape, 3))
print(f"<im2col(x), c> = {lhs:.10f}\n<x, col2im(c)> = {rhs:.10f}")
assert abs(lhs - rhs) < 1e-9 * abs(lhs)
print("col2im(ones) for the 4x4 input, 3x3 kernel: copies of each pixel in cols =\n",
      col2im(np.ones((9, 4)), (1, 1, 4, 4), 3)[0, 0])
print("same with padding=1 (output 4x4):\n", col2im(np.ones((9, 16)), (1, 1, 4, 4), 3, padding=1)[0, 0])

# %% [markdown]
# ### Gradient check
#
# The derivation is checked numerically: `minseg.gradcheck.check_backward` perturbs every input entry by
# `±eps`, measures the change of `sum(dy * y)` by central differences, and compares with what
# `conv2d_backward` returns, in float64. One check per setting of section 3, including groups:

# %%
gc_settings = [dict(), dict(stride=2, padding=1), dict(padding=2, dilation=2), dict(stride=(2, 1), padding=(0, 1)),
               dict(groups=2)]
reports = []
for hyper in gc_settings:
    x_gc = rng.standard_normal((2, 4, 7, 6))                # (N, C, H, W)
    w_gc = rng.standard_normal((6, 4 // hyper.get("groups", 1), 3, 3))  # (C_out, C // groups, KH, KW)
    b_gc = rng.standard_normal(6)                           # (C_out,)
    report = check_backward(conv2d, conv2d_backward, {"x": x_gc, "w": w_gc, "b": b_gc}, **hyper)
    print(report, "\n")
    reports.append(report)
assert all(r.passed for r in reports)

# %% [markdown]
# The relative errors printed above are at the level of the finite-difference noise: the backward pass is
# right for every setting.
#
# ## 5. Filters at work: edges
#
# The notes say shallow layers extract edges. A hand-made edge filter shows what that means. The Sobel
# filter (소벨 필터) `[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]` responds to a change from left to right (a
# vertical edge), its transpose to a horizontal edge, and the Laplacian to any change. Applied with
# `padding=1` to a grey version of a shapes image (one input channel, three output channels):

# %%
ds = load_dataset("shapes", "train")
image, labels, _ = ds[3]
grey = image.astype(np.float64).mean(axis=0)[None, None]    # (1, 1, H, W)
sobel_x = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
laplace = np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
filters = np.stack([sobel_x, sobel_x.T, laplace])[:, None]  # (C_out=3, C=1, 3, 3)
resp, _ = conv2d(grey, filters, padding=1)                  # (1, 3, H, W)
edge = np.sqrt(resp[0, 0] ** 2 + resp[0, 1] ** 2)           # gradient magnitude
print("image", image.shape, "-> grey", grey.shape, "-> responses", resp.shape)

fig, axes = plt.subplots(1, 5, figsize=(15, 3.3))
axes[0].imshow(np.transpose(image, (1, 2, 0))); axes[0].set_title("image")   # (H, W, C)
for ax, r, t in zip(axes[1:4], resp[0], ["Sobel x (vertical edges)", "Sobel y (horizontal edges)", "Laplacian"]):
    lim = np.abs(r).max()
    ax.imshow(r, cmap="RdBu_r", vmin=-lim, vmax=lim); ax.set_title(t)
axes[4].imshow(edge, cmap="magma"); axes[4].set_title("edge magnitude")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Are the strong responses really on the object boundaries? The label map says where the boundaries are:
# pixels whose 3x3 neighbourhood holds more than one label (the ignore band included). The mean edge
# magnitude there and elsewhere:

# %%
lab = np.pad(labels, 1, mode="edge")
nbhd = np.stack([lab[a:a + labels.shape[0], b:b + labels.shape[1]] for a in range(3) for b in range(3)])
boundary = (nbhd != labels[None]).any(axis=0)
on, off = edge[boundary].mean(), edge[~boundary].mean()
print(f"boundary pixels: {boundary.sum()} of {boundary.size}")
print(f"mean edge magnitude on boundaries {on:.3f}, elsewhere {off:.3f} (ratio {on / off:.1f})")

# %% [markdown]
# ### A learned filter
#
# In an end-to-end network nobody writes the Sobel filter down: the filters are parameters, learned by
# gradient descent with exactly the backward pass of section 4. A small demonstration: start from a
# random 3x3 filter and minimise the mean squared difference between its response and the Sobel-x
# response on a few shapes images (grey, each with its mean subtracted, which makes plain gradient
# descent converge much faster), using `conv2d` forward and `conv2d_backward`'s `dw`.

# %%
imgs = np.stack([ds[k][0] for k in range(8)]).astype(np.float64).mean(axis=1, keepdims=True)  # (8, 1, H, W)
imgs -= imgs.mean(axis=(2, 3), keepdims=True)               # centred grey images
target, _ = conv2d(imgs, sobel_x[None, None], padding=1)    # (8, 1, H, W)
w_learn = np.random.default_rng(1).standard_normal((1, 1, 3, 3)) * 0.1
lr, losses = 2.5, []
for step in range(STEPS):
    pred, cache_l = conv2d(imgs, w_learn, padding=1)
    diff = pred - target
    losses.append(float(np.mean(diff ** 2)))
    _, dw_l, _ = conv2d_backward(2 * diff / diff.size, cache_l)   # dL/dpred for L = mean(diff**2)
    w_learn -= lr * dw_l
print(f"{STEPS} steps: loss {losses[0]:.4f} -> {losses[-1]:.2e}")
print("learned filter =\n", w_learn[0, 0])
print("Sobel x        =\n", sobel_x)
print(f"largest difference learned vs Sobel: {np.abs(w_learn[0, 0] - sobel_x).max():.1e}")
assert losses[-1] < 1e-2 * losses[0]

fig, axes = plt.subplots(1, 3, figsize=(10, 3))
axes[0].semilogy(losses); axes[0].set_xlabel("step"); axes[0].set_title("loss")
for ax, f, t in [(axes[1], w_learn[0, 0], "learned filter"), (axes[2], sobel_x, "Sobel x")]:
    ax.imshow(f, cmap="RdBu_r", vmin=-2, vmax=2); ax.set_title(t); ax.axis("off")
    for (r, c), v in np.ndenumerate(f):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center")
plt.tight_layout()
plt.show()

# %% [markdown]
# The learned filter approaches the Sobel filter (how close depends on the number of steps, fewer in
# the quick setting; the cell prints the difference). A real network learns many such filters at once, for whatever its loss rewards,
# and in deeper layers filters of filters.
#
# ## 6. Fewer multiplications: Winograd's F(2x2, 3x3)
#
# im2col spends `KH*KW = 9` multiplications on every output pixel and input channel. Winograd's minimal
# filtering algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) needs
# fewer, by reusing sums of neighbouring inputs. In one dimension, two outputs of a 3-tap filter `g` on
# four inputs `d`, written F(2, 3):
#
# `m1 = (d0 - d2) g0`,   `m2 = (d1 + d2) (g0 + g1 + g2) / 2`,   `m3 = (d2 - d1) (g0 - g1 + g2) / 2`,   `m4 = (d1 - d3) g2`
#
# `y0 = m1 + m2 + m3 = d0 g0 + d1 g1 + d2 g2`,   `y1 = m2 - m3 - m4 = d1 g0 + d2 g1 + d3 g2`
#
# Four multiplications instead of six: the filter-side factors (`(g0 + g1 + g2) / 2`, ...) are computed
# once per filter, not once per pixel. On the first row of section 1's example, `d = 0, 1, 2, 3` and
# `g = 1, 2, 3`:

# %%
d, g = x[0, 0, 0], w[0, 0, 0]                                # first input row, first kernel row
m1, m4 = (d[0] - d[2]) * g[0], (d[1] - d[3]) * g[2]
m2, m3 = (d[1] + d[2]) * (g[0] + g[1] + g[2]) / 2, (d[2] - d[1]) * (g[0] - g[1] + g[2]) / 2
print(f"m1 = {m1:g}, m2 = {m2:g}, m3 = {m3:g}, m4 = {m4:g}")
print(f"Winograd: y0 = m1 + m2 + m3 = {m1 + m2 + m3:g},  y1 = m2 - m3 - m4 = {m2 - m3 - m4:g}")
print(f"direct:   y0 = {d[0:3] @ g:g},  y1 = {d[1:4] @ g:g}")
assert np.isclose(m1 + m2 + m3, d[0:3] @ g) and np.isclose(m2 - m3 - m4, d[1:4] @ g)

# %% [markdown]
# Nesting the 1-D algorithm in both axes gives F(2x2, 3x3): a 2x2 block of outputs from one 4x4 tile of
# input, as matrices (`minseg.ops.winograd.winograd_matrices(2)` returns `B^T`, `G`, `A^T`),
#
# `Y = A^T [ (G g G^T) * (B^T d B) ] A`,   `*` the element-wise product,
#
# with 16 multiplications where the definition needs 36. Section 1's example is exactly one tile: the 4x4
# input 0..15 and the 3x3 kernel 1..9, whose 2x2 output the loops computed.

# %%
BT, G, AT = winograd_matrices(2)                             # (4, 4), (4, 3), (2, 4)
U = G @ w[0, 0] @ G.T                                        # the kernel, transformed: (4, 4), once per filter
V = BT @ x[0, 0] @ BT.T                                      # the input tile, transformed: (4, 4), additions only
Y = AT @ (U * V) @ AT.T                                      # 16 products, then additions: (2, 2)
print("B^T =\n", BT, "\nG =\n", G, "\nA^T =\n", AT)
print("U = G g G^T =\n", U, "\nV = B^T d B =\n", V)
print("Y = A^T (U * V) A =\n", Y, "\nconv2d_loops =\n", y_loops[0, 0])
assert np.allclose(Y, y_loops[0, 0], rtol=1e-12, atol=1e-12)
direct, fast = 9 * Y.size, U.size
print(f"multiplications per tile: {direct} direct, {fast} Winograd ({direct / fast:.2f}x fewer)")

# %% [markdown]
# A whole image is cut into 4x4 tiles that start every 2 pixels, so neighbouring tiles overlap by 2
# (the kernel's reach), and each tile makes the 2x2 block of outputs in its top-left corner. The picture
# shows three tiles of an 8x8 input and the output blocks they fill:

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
colors = ["tab:blue", "tab:orange", "tab:green"]
for ax, size, title in [(axes[0], 8, "input 8x8: 4x4 tiles, every 2 pixels"), (axes[1], 6, "output 6x6: 2x2 blocks")]:
    ax.set_xlim(-0.5, size - 0.5); ax.set_ylim(size - 0.5, -0.5)
    ax.set_xticks(range(size)); ax.set_yticks(range(size)); ax.grid(True, color="0.85")
    ax.set_aspect("equal"); ax.set_title(title)
for (r, c), color in zip([(0, 0), (0, 2), (2, 2)], colors):
    axes[0].add_patch(Rectangle((c - 0.5, r - 0.5), 4, 4, alpha=0.2, color=color))
    axes[0].add_patch(Rectangle((c - 0.4, r - 0.4), 3.8, 3.8, fill=False, lw=2.5, ec=color))
    axes[1].add_patch(Rectangle((c - 0.5, r - 0.5), 2, 2, alpha=0.5, color=color))
plt.tight_layout()
plt.show()

# %% [markdown]
# With channels, the element-wise products of one tile position `(k, l)` become a sum over input channels:
# for each of the 16 positions one matrix product `U[k, l] @ V[k, l]`, shape `(C_out, C) @ (C, tiles)`.
# That is `minseg.ops.winograd.conv2d_winograd` (3x3 kernels, stride 1, any padding). Its backward pass runs the
# adjoints of the transforms in reverse. In float64 it agrees with `conv2d`, forward and every gradient:

# %%
x_w = rng.standard_normal((2, 4, 9, 7))                     # (N, C, H, W): odd sizes, partial last tiles
w_w = rng.standard_normal((6, 4, 3, 3))                     # (C_out, C, 3, 3)
b_w = rng.standard_normal(6)
y_win, cache_win = conv2d_winograd(x_w, w_w, b_w, padding=1)
y_ref, cache_ref = conv2d(x_w, w_w, b_w, padding=1)
dy_w = rng.standard_normal(y_ref.shape)
rel = lambda a, r: np.abs(a - r).max() / np.abs(r).max()   # noqa: E731  normwise relative error
print(f"y:  relative difference Winograd vs conv2d {rel(y_win, y_ref):.1e}")
for name, a, r in zip(["dx", "dw", "db"], conv2d_winograd_backward(dy_w, cache_win), conv2d_backward(dy_w, cache_ref)):
    print(f"{name}: relative difference Winograd vs conv2d {rel(a, r):.1e}")
    assert rel(a, r) < 1e-12
assert rel(y_win, y_ref) < 1e-12

# %% [markdown]
# In float32 the transforms add and subtract neighbouring values before multiplying, which could cost
# accuracy. Measured against the float64 result, next to im2col's own float32 error:

# %%
x32, w32 = x_w.astype(np.float32), w_w.astype(np.float32)
exact, _ = conv2d(x32.astype(np.float64), w32.astype(np.float64), padding=1)
err_im2col = rel(conv2d(x32, w32, padding=1)[0], exact)
err_win = rel(conv2d_winograd(x32, w32, padding=1)[0], exact)
print(f"float32 relative error: im2col {err_im2col:.1e}, Winograd F(2x2, 3x3) {err_win:.1e}")
assert err_win < 10 * max(err_im2col, np.finfo(np.float32).eps)

# %% [markdown]
# Fewer multiplications is not automatically faster. The 16 products shrink by the factor printed above,
# but the input and output transforms are element-wise passes over arrays 4 times the size of the input,
# and NumPy runs those on one core at memory speed. Timed on one batch here (float32, the median of a few
# runs):

# %%
x_t = rng.standard_normal((8, 32, 32, 32)).astype(np.float32)   # (N, C, H, W)
w_t = (rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32)


def median_ms(fn, repeats=5):
    fn()                                                     # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


t_im2col = median_ms(lambda: conv2d(x_t, w_t, padding=1))
t_win = median_ms(lambda: conv2d_winograd(x_t, w_t, padding=1))
print(f"conv2d (im2col) {t_im2col:.1f} ms, conv2d_winograd {t_win:.1f} ms: Winograd takes "
      f"{t_win / t_im2col:.2f}x the time of im2col on this machine")

# %% [markdown]
# Whether Winograd pays depends on what the transforms cost next to the products they shrink. Here they
# are separate memory-bound NumPy passes, so `minseg.ops.conv2d` keeps im2col, and `conv2d_winograd` is
# there to study and to measure (`benchmarks/bench_winograd.py` times more shapes, forward and backward).
# Libraries that fuse the transforms into the products (on GPUs, for instance) do get the saving.
#
# ## Summary
#
# * Convolution (cross-correlation): `y[n, o, i, j] = b[o] + sum w[o, c, kh, kw] x_pad[n, c, i*s + kh*d, j*s + kw*d]`.
# * im2col copies every receptive field into a column, `cols` of shape `(C*KH*KW, N*H_out*W_out)`, rows
#   ordered like `w.reshape(C_out, -1)`; then the convolution is one product `w_mat @ cols`.
# * Output size: `H_out = floor((H + 2p - d(k - 1) - 1) / s) + 1` (`minseg.shapes.conv_output_size`).
# * Backward: `dw = dy_mat @ cols.T`, `dx = col2im(w_mat.T @ dy_mat)`, `db = sum of dy` over `n, i, j`;
#   `col2im` is the adjoint (transpose) of `im2col`. Checked numerically with `check_backward`.
# * Shallow filters respond to edges; they need not be designed by hand, gradient descent finds them.
# * Winograd's F(2x2, 3x3), `Y = A^T [(G g G^T) * (B^T d B)] A`, makes a 2x2 output block with 16
#   multiplications instead of 36; `conv2d_winograd` is exact (float64 round-off), but its transforms are
#   memory-bound passes that can cost what the products save.
#
# ## Exercises
#
# Each exercise asks for a function with the same signature as minseg's function of that name: its
# docstring (`help(minseg.ops.im2col)` etc.) is the spec. `exercises.check` runs yours on a grid of cases
# (strides, paddings, dilations, odd sizes) and names the mistake when there is one.
#
# ### Exercise 1: `im2col`
# Return `cols` of shape `(C*KH*KW, N*H_out*W_out)` with
# `cols[(c*KH + kh)*KW + kw, (n*H_out + i)*W_out + j] = x_pad[n, c, i*s_h + kh*d_h, j*s_w + kw*d_w]`.

# %% tags=["task"]
def im2col_mine(x, kernel_size, stride=1, padding=0, dilation=1):
    # hint: zero-pad x, then for every (kh, kw) take the strided slice x_pad[:, :, kh*d : ... : s, kw*d : ... : s]
    raise NotImplementedError


# %% tags=["solution"]
def im2col_mine(x, kernel_size, stride=1, padding=0, dilation=1):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = map(pair, (kernel_size, stride, padding, dilation))
    N, C, H, W = x.shape
    H_out = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    W_out = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    x_pad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    cols = np.empty((C, KH, KW, N, H_out, W_out), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            h0, w0 = kh * dh, kw * dw
            tap = x_pad[:, :, h0:h0 + sh * (H_out - 1) + 1:sh, w0:w0 + sw * (W_out - 1) + 1:sw]  # (N, C, H_out, W_out)
            cols[:, kh, kw] = tap.transpose(1, 0, 2, 3)                                        # (C, N, H_out, W_out)
    return cols.reshape(C * KH * KW, N * H_out * W_out)     # (C*KH*KW, N*H_out*W_out)


# %%
r = exercises.check("im2col", im2col_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 2: `conv2d`, written with loops
# Write the convolution from its definition with explicit loops (stride, padding, dilation and groups:
# output channel `o` reads input channels `g*C_g ... (g+1)*C_g - 1` of its group `g`). Return `(y, None)`
# (minseg's op returns `(y, cache)`; the checker looks at `y`).

# %% tags=["task"]
def conv2d_mine(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
    # hint: zero-pad x; y[n, o, i, j] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] * x_pad[n, g*C_g + c, i*s + kh*d, j*s + kw*d]
    raise NotImplementedError


# %% tags=["solution"]
def conv2d_mine(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    (sh, sw), (ph, pw), (dh, dw) = map(pair, (stride, padding, dilation))
    N, C, H, W = x.shape
    C_out, C_g, KH, KW = w.shape
    H_out = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    W_out = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    x_pad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    y = np.zeros((N, C_out, H_out, W_out), dtype=x.dtype)
    out_per_group = C_out // groups
    for o in range(C_out):
        g = o // out_per_group
        for i in range(H_out):
            for j in range(W_out):
                for c in range(C_g):
                    for kh in range(KH):
                        for kw in range(KW):
                            # all N samples at once: the loops over the definition's sum stay explicit
                            y[:, o, i, j] += w[o, c, kh, kw] * x_pad[:, g * C_g + c, i * sh + kh * dh, j * sw + kw * dw]
        if b is not None:
            y[:, o] += b[o]
    return y, None


# %%
r = exercises.check("conv2d", conv2d_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 3: `conv2d_backward`
# Given `dy` and the forward's cache (`cache.x, cache.w, cache.has_bias, cache.stride, cache.padding,
# cache.dilation, cache.groups`, the last three as pairs), return `(dx, dw, db)` with `db = None` when the
# forward had no bias. Use the matrix form of section 4 (your `im2col_mine` is allowed), one group at a time.

# %% tags=["task"]
def conv2d_backward_mine(dy, cache):
    # hint: dw = dy_mat @ cols.T, dcols = w_mat.T @ dy_mat, then add each column of dcols back onto its pixels
    raise NotImplementedError


# %% tags=["solution"]
def conv2d_backward_mine(dy, cache):
    x, w, has_bias, (sh, sw), (ph, pw), (dh, dw_), G = cache
    N, C, H, W = x.shape
    C_out, C_g, KH, KW = w.shape
    _, _, H_out, W_out = dy.shape
    Co_g = C_out // G
    cols = im2col_mine(x, (KH, KW), (sh, sw), (ph, pw), (dh, dw_))   # (C*KH*KW, N*H_out*W_out)
    cols = cols.reshape(G, C_g * KH * KW, -1)                       # (G, C_g*KH*KW, N*H_out*W_out)
    dy_mat = dy.transpose(1, 0, 2, 3).reshape(G, Co_g, -1)          # (G, C_out/G, N*H_out*W_out)
    w_mat = w.reshape(G, Co_g, C_g * KH * KW)                       # (G, C_out/G, C_g*KH*KW)
    dw = np.stack([dy_mat[g] @ cols[g].T for g in range(G)]).reshape(w.shape)   # (C_out, C_g, KH, KW)
    dcols = np.stack([w_mat[g].T @ dy_mat[g] for g in range(G)])    # (G, C_g*KH*KW, N*H_out*W_out)
    dcols = dcols.reshape(C, KH, KW, N, H_out, W_out)               # rows (c, kh, kw), columns (n, i, j)
    dx_pad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dy.dtype)
    for kh in range(KH):                                            # col2im: each tap adds its values back
        for kw in range(KW):
            h0, w0 = kh * dh, kw * dw_
            dx_pad[:, :, h0:h0 + sh * (H_out - 1) + 1:sh, w0:w0 + sw * (W_out - 1) + 1:sw] += \
                dcols[:, kh, kw].transpose(1, 0, 2, 3)              # (N, C, H_out, W_out)
    dx = dx_pad[:, :, ph:ph + H, pw:pw + W]                         # gradient on the padding is dropped
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db


# %%
r = exercises.check("conv2d_backward", conv2d_backward_mine)
r

# %% tags=["solution"]
assert r.passed, r
