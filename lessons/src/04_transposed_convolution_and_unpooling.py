# Lesson 04: transposed convolution and unpooling (exercise and solution notebooks are built from this file).

# %% [markdown]
# # 04 · Transposed convolution and unpooling
#
# An encoder (인코더) shrinks the image with convolutions and pooling; a decoder (디코더) has to grow the
# coarse map back to the input size. This lesson builds the learnable way to grow a map, the
# **transposed convolution** (전치 합성곱, also called "backwards convolution" or, loosely, "deconvolution"
# (역 합성곱)), and the fixed ways, **unpooling** (역 풀링): nearest neighbour, bed of nails, and
# max-unpooling with switches (DeconvNet, SegNet).
#
# The plan: write a convolution as a matrix `C`; see that `C.T` is the transposed convolution; work the
# slide's 3x3 stride-2 pad-1 example by hand; show that `C.T` is *not* the inverse of the convolution
# (a pseudo-inverse is); see the checkerboard artifacts; initialise a transposed convolution as bilinear
# upsampling and find where it is not quite bilinear interpolation; then unpool.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from minseg import exercises
from minseg.gradcheck import check_backward
from minseg.ops import (bed_of_nails_unpool, bilinear_interpolate, bilinear_kernel, conv2d,
                        conv_transpose2d, conv_transpose2d_backward, convolution_matrix, max_pool2d,
                        max_pool2d_backward, max_unpool2d, upsample_nearest)
from minseg.reference import conv_transpose2d_loops, max_pool2d_loops, max_unpool2d_loops

QUICK = os.environ.get("MINSEG_LESSONS_QUICK") == "1"
np.set_printoptions(precision=4, suppress=True, linewidth=120)

# %% [markdown]
# This lesson trains nothing, so `QUICK` (the quick setting the test suite uses for the exercise
# notebooks) changes nothing here; it is defined for uniformity with the other lessons.
#
# ## 1. A convolution is a matrix
#
# A convolution is linear in its input, so for one sample it is a matrix product
# `vec(y) = C @ vec(x)`: the convolution matrix (Convolution Matrix). Each row of `C` is one output pixel
# and holds the kernel's weights at the input pixels that output sees; everything else is zero.
# The notes' picture: a 3x3 kernel sliding over a 4x4 input (stride 1, no padding) gives a 2x2 output,
# so `C` is 4 x 16.

# %%
w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)               # (C_out, C_in, KH, KW): weights 1..9
x = np.arange(16.0).reshape(1, 1, 4, 4)                     # (N, C, H, W)
C = convolution_matrix(w, (4, 4))
print("C has shape", C.shape)
print(C)
y_matrix = C @ x.reshape(-1)                                # (4,) = vec of the (2, 2) output
y_conv, _ = conv2d(x, w)
print("C @ vec(x)      :", y_matrix)
print("conv2d(x, w)    :", y_conv.reshape(-1))
print("max difference  :", np.abs(y_matrix - y_conv.reshape(-1)).max())

# %%
fig, ax = plt.subplots(figsize=(8, 2.4))
ax.imshow(C[:, :], cmap="viridis")
ax.set_title("convolution matrix C (4 outputs x 16 inputs) of a 3x3 kernel on a 4x4 input")
ax.set_xlabel("input pixel (h*4 + w)"); ax.set_ylabel("output pixel")
plt.show()

# %% [markdown]
# ## 2. Its transpose goes the other way: the transposed convolution
#
# `C` maps 16 numbers to 4; `C.T` maps 4 numbers back to 16. That is all a transposed convolution is:
# the matrix `C.T` (the Convolution Transpose Matrix of the notes), applied without ever writing it down.
# Each input value *stamps* a copy of the kernel, scaled by that value, onto the output, and
# overlapping stamps add up. `C.T` is also exactly the backward pass of the convolution
# (`dx = C.T @ vec(dy)`), which is why the notes call it "backwards convolution".

# %%
y_small = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)   # (N, C, H, W)
up_matrix = (C.T @ y_small.reshape(-1)).reshape(4, 4)              # (4, 4)
up_minseg, _ = conv_transpose2d(y_small, w)
print("C.T @ vec(y):\n", up_matrix)
print("conv_transpose2d(y, w):\n", up_minseg[0, 0])
print("max difference:", np.abs(up_matrix - up_minseg[0, 0]).max())

# %% [markdown]
# ## 3. The slide's example: 3x3 transposed convolution, stride 2, pad 1
#
# The notes show the cs231n slide "3 x 3 transposed convolution, stride 2 pad 1": a 2x2 input becomes a
# 4x4 output. The input gives the weight for the filter; where two stamps overlap, their values are
# summed. With stride 2 the stamps are placed 2 output pixels apart; padding 1 crops one row and column
# from the top-left of the full result; PyTorch's `output_padding=1` keeps the extra row and column at
# the bottom-right, so the output is 4x4 (without it, 3x3).
#
# The notes give the setting and no numbers, so take input `[[1, 2], [3, 4]]` and the 3x3 filter
# `1..9`. By hand: put a stamp `x[i, j] * filter` at rows `2i .. 2i+2`, columns `2j .. 2j+2` of a 5x5
# canvas, then crop row and column 0 (the padding).

# %%
x_slide = np.array([[1.0, 2.0], [3.0, 4.0]])
f_slide = np.arange(1.0, 10.0).reshape(3, 3)
canvas = np.zeros((5, 5))
for i in range(2):
    for j in range(2):
        canvas[2 * i:2 * i + 3, 2 * j:2 * j + 3] += x_slide[i, j] * f_slide   # one stamp
        print(f"after the stamp of x[{i},{j}] = {x_slide[i, j]:.0f}:\n{canvas}")
by_hand = canvas[1:, 1:]                                    # pad 1 cropped at the top-left, 4x4 kept
print("by hand (4x4):\n", by_hand)

# %%
x4 = x_slide.reshape(1, 1, 2, 2)                            # (N, C, H, W)
w4 = f_slide.reshape(1, 1, 3, 3)                            # (C_in, C_out, KH, KW)
y_minseg, cache = conv_transpose2d(x4, w4, stride=2, padding=1, output_padding=1)
print("output size without output_padding:", conv_transpose2d(x4, w4, stride=2, padding=1)[0].shape[-2:])
y_loops = conv_transpose2d_loops(x4, w4, stride=2, padding=1, output_padding=1)
print("minseg:\n", y_minseg[0, 0])
print("max |minseg - by hand| :", np.abs(y_minseg[0, 0] - by_hand).max())
print("max |minseg - loops|   :", np.abs(y_minseg - y_loops).max())
C_s2 = convolution_matrix(w4, (4, 4), stride=2, padding=1)   # the stride-2 convolution it transposes
print("C of the stride-2 convolution:", C_s2.shape,
      " max |C.T @ vec(x) - minseg| :", np.abs(C_s2.T @ x4.reshape(-1) - y_minseg.reshape(-1)).max())

# %% [markdown]
# The centre value `by_hand[1, 1]` (canvas pixel `(2, 2)`) is where all four stamps overlap, the summed
# region of the slide: stamp `(i, j)` covers canvas rows `2i .. 2i+2`, so it adds `x[i, j]` times the
# filter tap `f[2 - 2i, 2 - 2j]` there.

# %%
parts = [x_slide[i, j] * f_slide[2 - 2 * i, 2 - 2 * j] for i in range(2) for j in range(2)]
print("the four stamps at the centre:", np.array(parts), " sum:", sum(parts), " by_hand[1, 1]:", by_hand[1, 1])

# %% [markdown]
# minseg's `conv_transpose2d` agrees with the hand result, with the slow loop `minseg.reference`, and
# with `C.T` of the stride-2 convolution (the cell before last prints the three differences). Its
# backward pass, checked against central differences:

# %%
rng = np.random.default_rng(0)
report = check_backward(conv_transpose2d, conv_transpose2d_backward,
                        {"x": rng.standard_normal((2, 3, 3, 4)), "w": rng.standard_normal((3, 2, 3, 3)),
                         "b": rng.standard_normal(2)},
                        stride=2, padding=1, output_padding=1)
print(report)

# %% [markdown]
# ## 4. Transposed convolution is not deconvolution
#
# The notes warn that the two names are used interchangeably but are different mathematics. A true
# deconvolution inverts the convolution: feed it the output and you get *exactly* the input back.
# A transposed convolution only restores the *shape*: `C.T @ C @ x` is not `x`.
#
# Take a 3x3 stride-1 pad-1 convolution of a 4x4 image. Its `C` is 16 x 16 and invertible, so the true
# inverse exists; `numpy.linalg.pinv(C)` computes it (the pseudo-inverse, the inverse when there is one).

# %%
w_inv = np.array([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]).reshape(1, 1, 3, 3)
x_img = rng.standard_normal((4, 4))
C_sq = convolution_matrix(w_inv, (4, 4), padding=1)
y_img = C_sq @ x_img.reshape(-1)
x_transposed = (C_sq.T @ y_img).reshape(4, 4)               # transposed convolution
x_deconv = (np.linalg.pinv(C_sq) @ y_img).reshape(4, 4)     # deconvolution (a true inverse)
print("C is", C_sq.shape, "with rank", np.linalg.matrix_rank(C_sq))
print("max |C.T y - x|      :", np.abs(x_transposed - x_img).max())
print("max |pinv(C) y - x|  :", np.abs(x_deconv - x_img).max())

# %%
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, img, title in zip(axes, [x_img, x_transposed, x_deconv],
                          ["input x", "transposed conv  C.T y", "deconvolution  pinv(C) y"]):
    ax.imshow(img, cmap="RdBu_r"); ax.set_title(title); ax.axis("off")
plt.show()

# %% [markdown]
# With stride 2 there is no inverse at all: `C_s2` maps 16 numbers to 4, so many inputs share one
# output. The pseudo-inverse then returns the smallest input with that output: it reproduces the
# output, not the input.

# %%
x16 = rng.standard_normal(16)
y4 = C_s2 @ x16
x_pinv = np.linalg.pinv(C_s2) @ y4
print("rank of C_s2:", np.linalg.matrix_rank(C_s2), "of", C_s2.shape[1], "inputs")
print("max |C_s2 pinv(C_s2) y - y| :", np.abs(C_s2 @ x_pinv - y4).max())
print("max |pinv(C_s2) y - x|      :", np.abs(x_pinv - x16).max())

# %% [markdown]
# ## 5. Checkerboard artifacts
#
# When the kernel size is not a multiple of the stride, the stamps overlap unevenly: some output pixels
# receive one stamp, some two, some four. Upsample a constant image with an all-ones kernel: `k=3, s=2`
# gives a checkerboard, `k=4, s=2` an even result away from the border.

# %%
ones = np.ones((1, 1, 8, 8))
out_k3, _ = conv_transpose2d(ones, np.ones((1, 1, 3, 3)), stride=2, padding=1, output_padding=1)
out_k4, _ = conv_transpose2d(ones, np.ones((1, 1, 4, 4)), stride=2, padding=1)
inner_k3, inner_k4 = out_k3[0, 0, 2:-2, 2:-2], out_k4[0, 0, 2:-2, 2:-2]
print("k=3, s=2: interior values", np.unique(inner_k3))
print("k=4, s=2: interior values", np.unique(inner_k4))
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, img, title in zip(axes, [out_k3, out_k4], ["k=3, s=2: checkerboard", "k=4, s=2: even"]):
    ax.imshow(img[0, 0], cmap="magma"); ax.set_title(title); ax.axis("off")
plt.show()

# %% [markdown]
# ## 6. Initialising as bilinear upsampling, and where it differs
#
# FCN initialises its upsampling layers to bilinear upsampling: `bilinear_kernel(2f - f % 2)` with
# stride `f`, padding `ceil((f - 1) / 2)`, a tent in each direction. For factor 2 the 1-D tent is
# `[0.25, 0.75, 0.75, 0.25]`, the weights of lesson 03's 1-D interpolation at the new pixel positions.

# %%
k4 = bilinear_kernel(4)
print("bilinear_kernel(4):\n", k4)
print("its 1-D tent (square root of the diagonal):", np.sqrt(np.diag(k4)))
img = rng.uniform(size=(1, 1, 6, 6))
up_tconv, _ = conv_transpose2d(img, bilinear_kernel(4, 1), stride=2, padding=1)
up_true, _ = bilinear_interpolate(img, scale_factor=2, align_corners=False)
diff = up_tconv - up_true
border = np.ones((12, 12), dtype=bool); border[1:-1, 1:-1] = False
print("output shapes:", up_tconv.shape, up_true.shape)
print("max |difference| inside  :", np.abs(diff[0, 0][~border]).max())
print("max |difference| border  :", np.abs(diff[0, 0][border]).max())
print("border difference from", diff[0, 0][border].min(), "to", diff[0, 0][border].max(),
      "; any above zero:", bool((diff[0, 0][border] > 0).any()))

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
for ax, im, title in zip(axes, [up_tconv[0, 0], up_true[0, 0], diff[0, 0]],
                         ["transposed conv, bilinear kernel", "bilinear_interpolate", "difference"]):
    h = ax.imshow(im, cmap="RdBu_r" if title == "difference" else "viridis"); ax.set_title(title)
    ax.axis("off"); fig.colorbar(h, ax=ax, fraction=0.046)
plt.show()

# %% [markdown]
# Inside, the two agree to rounding. On the one-pixel border they differ: the transposed convolution
# sees zeros beyond the image (the missing neighbour contributes nothing, so border pixels come out
# darker), while `bilinear_interpolate` clamps to the edge pixel. Training can learn to fix this;
# as an initialisation it is bilinear upsampling everywhere but the border.
#
# ## 7. Unpooling (역 풀링)
#
# Unpooling grows a map without learned weights. The notes list the ways to fill the empty space:
# **nearest neighbour** (copy each value into its whole block) and **bed of nails** (put the value in
# the top-left corner, zeros elsewhere).

# %%
small = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)    # (N, C, H, W)
nearest, _ = upsample_nearest(small, scale_factor=2)
nails, _ = bed_of_nails_unpool(small, 2)
print("nearest neighbour:\n", nearest[0, 0])
print("bed of nails:\n", nails[0, 0])

# %% [markdown]
# **Max-unpooling with switches.** DeconvNet (Noh et al. 2015, in the notes) and SegNet remember, at
# each max-pooling, *where* the maximum was (the switch). The unpooling of the decoder writes each value
# back at that position ("pooling 된 위치의 값을 그대로 복원"), zeros elsewhere, so fine positions survive
# the trip through the coarse map. `max_pool2d` returns the switches in its cache.

# %%
feat = np.array([[1.0, 2.0, 6.0, 3.0],
                 [3.0, 5.0, 2.0, 1.0],
                 [1.0, 2.0, 2.0, 1.0],
                 [7.0, 3.0, 4.0, 8.0]]).reshape(1, 1, 4, 4)        # (N, C, H, W)
pooled, pcache = max_pool2d(feat, 2)
print("max-pooled:\n", pooled[0, 0])
print("switches (flat offsets h*4 + w):\n", pcache.indices[0, 0])
decoded = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)   # what the decoder has at 1/2
unpooled, _ = max_unpool2d(decoded, pcache.indices, 2)
print("max-unpooled:\n", unpooled[0, 0])
ref_pool, ref_idx = max_pool2d_loops(feat, 2)
print("agrees with the loops:", np.array_equal(ref_pool, pooled) and np.array_equal(ref_idx, pcache.indices),
      np.array_equal(max_unpool2d_loops(decoded, pcache.indices, (4, 4)), unpooled))

# %%
fig, axes = plt.subplots(1, 5, figsize=(14, 3))
for ax, im, title in zip(axes, [feat, pooled, nearest, nails, unpooled],
                         ["encoder features", "max-pooled", "nearest", "bed of nails", "max-unpooled"]):
    ax.imshow(im[0, 0], cmap="viridis"); ax.set_title(title); ax.axis("off")
    for (r, c), v in np.ndenumerate(im[0, 0]):
        ax.text(c, r, f"{v:.0f}", ha="center", va="center", color="w")
plt.show()

# %% [markdown]
# The max-unpooled map is sparse: one value per pooling window, zeros elsewhere. In DeconvNet each
# unpooling is followed by "deconvolution" layers (transposed convolutions with stride 1) that connect
# every input value to a whole neighbourhood of outputs, filling the map in again. Take a larger
# feature map, pool, unpool, and apply one 3x3 transposed convolution (here the 3x3 bilinear kernel
# `bilinear_kernel(3)`, so the numbers stay easy to read); the cell prints the fraction of non-zero pixels.

# %%
enc = rng.uniform(0.5, 1.0, size=(1, 1, 12, 12))                   # positive encoder features (N, C, H, W)
enc_pooled, enc_cache = max_pool2d(enc, 2)
sparse, _ = max_unpool2d(enc_pooled, enc_cache.indices, 2)        # (1, 1, 12, 12), one value per 2x2 block
dense, _ = conv_transpose2d(sparse, bilinear_kernel(3, 1), padding=1)  # 3x3 stride 1: the size stays 12x12
print("non-zero fraction after max-unpooling     :", np.count_nonzero(sparse) / sparse.size)
print("non-zero fraction after the 3x3 transposed conv:", np.count_nonzero(dense) / dense.size)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
for ax, im, title in zip(axes, [enc, sparse, dense], ["encoder features", "max-unpooled (sparse)",
                                                      "after a 3x3 transposed conv (dense)"]):
    ax.imshow(im[0, 0], cmap="viridis"); ax.set_title(title); ax.axis("off")
plt.show()

# %% [markdown]
# Max-pooling's backward pass sends each gradient to its switch, which is max-unpooling of the gradient:

# %%
dy = rng.standard_normal(pooled.shape)
dx = max_pool2d_backward(dy, pcache)
print("max |max_pool2d_backward(dy) - max_unpool2d(dy, switches)| :",
      np.abs(dx - max_unpool2d(dy, pcache.indices, 2)[0]).max())

# %% [markdown]
# ## Summary
#
# - A convolution is a matrix `C`; the transposed convolution is `C.T`: each input value stamps the
#   kernel onto the output, overlaps summed. It is also the convolution's backward pass.
# - The slide's 3x3 stride-2 pad-1 example turns 2x2 into 4x4; minseg, the loops and `C.T` agree.
# - Transposed convolution restores the shape, not the values; a deconvolution (the inverse, here
#   `pinv(C)`) restores the values, and with stride > 1 none exists.
# - `k=3, s=2` overlaps unevenly (checkerboard); `k=4, s=2` evenly.
# - The bilinear kernel makes a transposed convolution bilinear upsampling except on the border.
# - Unpooling: nearest, bed of nails, and max-unpooling with switches (DeconvNet, SegNet).
# - Max-unpooling leaves a sparse map (one value per window); in DeconvNet the transposed convolutions
#   after it fill it in. Max-pooling's backward pass is max-unpooling of the gradient.
#
# ## Exercises
#
# Each exercise asks for a function with the same signature as minseg's function of that name: its
# docstring (`help(minseg.ops.convolution_matrix)` etc.) is the spec. `exercises.check` runs yours on a
# grid of cases and says what is wrong.
#
# The cases include odd and non-square sizes, stride, padding, dilation, groups, batches, integer-valued
# inputs (tied maxima) and overlapping pooling windows (stride < kernel).
#
# ### Exercise 1: `convolution_matrix`
# Build the dense matrix `C` with `C @ vec(x) == vec(conv2d(x, w, ...))` for one sample: row
# `(o*H_out + i)*W_out + j`, column `(c*H + h)*W + v`.

# %% tags=["task"]
def convolution_matrix_mine(w, input_size, *, stride=1, padding=0, dilation=1, groups=1):
    # hint: one row per output pixel (o, i, j); put w[o, c, kh, kw] at input pixel (c, i*s - p + kh*d, ...)
    raise NotImplementedError


# %% tags=["solution"]
def convolution_matrix_mine(w, input_size, *, stride=1, padding=0, dilation=1, groups=1):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    C_out, C_g, KH, KW = w.shape
    C_in, H, W = input_size if len(input_size) == 3 else (C_g * groups, *input_size)
    H_out = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    W_out = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    M = np.zeros((C_out * H_out * W_out, C_in * H * W), dtype=w.dtype)
    out_per_group = C_out // groups
    for o in range(C_out):
        g = o // out_per_group
        for i in range(H_out):
            for j in range(W_out):
                row = (o * H_out + i) * W_out + j
                for cg in range(C_g):
                    c = g * C_g + cg
                    for kh in range(KH):
                        for kw in range(KW):
                            h, v = i * sh - ph + kh * dh, j * sw - pw + kw * dw
                            if 0 <= h < H and 0 <= v < W:        # taps on the padding multiply zeros
                                M[row, (c * H + h) * W + v] = w[o, cg, kh, kw]
    return M


# %%
r = exercises.check("convolution_matrix", convolution_matrix_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 2: `conv_transpose2d`
# Write the transposed convolution by stamping: each input value times the kernel `w[c, o]` (weights are
# `(C_in, C_out // groups, KH, KW)`), added into the output at stride `s`, then `padding` cropped from
# each side (`output_padding` extra rows / columns kept at the bottom / right). Return `(y, None)`
# (minseg's op returns `(y, cache)`; the checker looks at `y`).

# %% tags=["task"]
def conv_transpose2d_mine(x, w, b=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    # hint: full canvas of size (H-1)*s + d*(K-1) + 1 + output_padding, stamp, then crop `padding` on each side
    raise NotImplementedError


# %% tags=["solution"]
def conv_transpose2d_mine(x, w, b=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(pair, (stride, padding, output_padding, dilation))
    N, C_in, H, W = x.shape
    _, C_og, KH, KW = w.shape                                # (C_in, C_out // groups, KH, KW)
    C_ig = C_in // groups
    H_full = (H - 1) * sh + dh * (KH - 1) + 1 + oph
    W_full = (W - 1) * sw + dw * (KW - 1) + 1 + opw
    canvas = np.zeros((N, C_og * groups, H_full, W_full), dtype=x.dtype)
    for c in range(C_in):
        g = c // C_ig                                        # input channel c stamps onto its group's outputs
        for i in range(H):
            for j in range(W):
                for kh in range(KH):
                    for kw in range(KW):
                        canvas[:, g * C_og:(g + 1) * C_og, i * sh + kh * dh, j * sw + kw * dw] += (
                            x[:, c, i, j][:, None] * w[c, :, kh, kw][None, :])
    y = canvas[:, :, ph:H_full - ph, pw:W_full - pw]         # (N, C_out, H_out, W_out)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y, None


# %%
r = exercises.check("conv_transpose2d", conv_transpose2d_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 3: `max_pool2d` with switches
# Return `(y, indices)`: the maximum of every window and where it came from, as a flat offset `h*W + w`
# into the `H x W` input plane. As in PyTorch: `stride=None` means `kernel_size`; the padding is `-inf`
# (never a candidate); of tied maxima the *first* in row-major window order wins; a window whose pixels
# are all `-inf` points at its first pixel inside the input. The backward pass (next exercise) and
# `max_unpool2d` see only these indices, so they must be exact.

# %% tags=["task"]
def max_pool2d_mine(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    # hint: per window start at best = -inf and the first tap inside the input; a tap takes over only if strictly larger
    raise NotImplementedError


# %% tags=["solution"]
def max_pool2d_mine(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    (KH, KW) = pair(kernel_size)
    (sh, sw) = (KH, KW) if stride is None else pair(stride)
    (ph, pw), (dh, dw) = pair(padding), pair(dilation)
    N, C, H, W = x.shape

    def out_size(n, k, s, p, d):                             # PyTorch's rule, ceil_mode included
        span = n + 2 * p - d * (k - 1) - 1
        if not ceil_mode:
            return span // s + 1
        out = -(-span // s) + 1
        return out - 1 if (out - 1) * s >= n + p else out    # the last window must start inside
    H_out, W_out = out_size(H, KH, sh, ph, dh), out_size(W, KW, sw, pw, dw)
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    indices = np.empty((N, C, H_out, W_out), dtype=np.int64)
    for i in range(H_out):
        for j in range(W_out):
            rows = [h for h in range(i * sh - ph, i * sh - ph + (KH - 1) * dh + 1, dh) if 0 <= h < H]
            cols = [v for v in range(j * sw - pw, j * sw - pw + (KW - 1) * dw + 1, dw) if 0 <= v < W]
            for n in range(N):
                for c in range(C):
                    best, where = -np.inf, rows[0] * W + cols[0]
                    for h in rows:                           # row-major window order
                        for v in cols:
                            if x[n, c, h, v] > best:         # strictly larger: the first maximum stays
                                best, where = x[n, c, h, v], h * W + v
                    y[n, c, i, j], indices[n, c, i, j] = best, where
    return y, indices


# %%
r = exercises.check("max_pool2d", max_pool2d_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 4: `max_pool2d_backward`
# Send each upstream gradient to the input pixel its maximum came from (`cache.indices`, flat offsets
# into each input plane of shape `cache.x_shape`); where windows overlap and pick the same pixel, the
# gradients add.

# %% tags=["task"]
def max_pool2d_backward_mine(dy, cache):
    # hint: zeros of cache.x_shape, then add dy[n, c, i, j] at flat position cache.indices[n, c, i, j]
    raise NotImplementedError


# %% tags=["solution"]
def max_pool2d_backward_mine(dy, cache):
    N, C, H, W = cache.x_shape
    dx = np.zeros((N, C, H * W), dtype=dy.dtype)             # (N, C, H*W)
    idx = np.asarray(cache.indices).reshape(N, C, -1)        # (N, C, H_out*W_out)
    g = dy.reshape(N, C, -1)                                 # (N, C, H_out*W_out)
    for n in range(N):
        for c in range(C):
            np.add.at(dx[n, c], idx[n, c], g[n, c])          # repeated indices add up
    return dx.reshape(N, C, H, W)                            # (N, C, H, W)


# %%
r = exercises.check("max_pool2d_backward", max_pool2d_backward_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 5: `max_unpool2d`
# Zeros of the output size, then each value written at its switch, in row-major order of `x`: where two
# values share an index (overlapping windows), the later one stays. The default output size is
# `(H - 1)*s - 2p + k` per axis; a given `output_size` (its last two entries) overrides it.
# Return `(y, None)`.

# %% tags=["task"]
def max_unpool2d_mine(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    # hint: default output size (H-1)*s - 2p + k per axis; output_size may also carry N and C in front
    raise NotImplementedError


# %% tags=["solution"]
def max_unpool2d_mine(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    (kh, kw) = pair(kernel_size)
    (sh, sw) = pair(stride) if stride is not None else (kh, kw)
    (ph, pw) = pair(padding)
    N, C, H, W = x.shape
    if output_size is None:
        H_out, W_out = (H - 1) * sh - 2 * ph + kh, (W - 1) * sw - 2 * pw + kw
    else:
        H_out, W_out = tuple(output_size)[-2:]
    y = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H):                               # row-major order: a later write overwrites
                for j in range(W):
                    k = indices[n, c, i, j]
                    y[n, c, k // W_out, k % W_out] = x[n, c, i, j]
    return y, None


# %%
r = exercises.check("max_unpool2d", max_unpool2d_mine)
r

# %% tags=["solution"]
assert r.passed, r
