# Lesson 03: bilinear interpolation (exercise and solution notebooks are built from this file).

# %% [markdown]
# # 03 · Bilinear interpolation
#
# Interpolation (보간) estimates the values at points between known points from the known values. The
# notes use it to make segmentation cheaper: instead of learning every pixel, learn only some of them and
# estimate the pixels in between by interpolation; the accuracy may drop a little, but the computation and
# the training time drop a lot. The FCN notes meet the same need from the other side: a convolutional
# network's score map comes out **coarse** (굵은, a few pixels per object), and it has to be turned back into
# a **dense** map (조밀한 맵) of the input's size. Bilinear interpolation (쌍선형 보간) is the easy and
# intuitive way to do that.
#
# This lesson builds it up the way the slides do and then checks everything against minseg:
#
# 1. the 1-D formula `f(x) = d2/(d1+d2) f(x1) + d1/(d1+d2) f(x2)`;
# 2. the 2-D formula `P = q(βA + αB) + p(βD + αC)`;
# 3. where an output pixel lands in the input: `align_corners=False` (PyTorch's default) vs `True`;
# 4. a tiny example worked by hand, number by number against `minseg.ops.bilinear_interpolate`;
# 5. the slow loop version, 6. the separable matrix form `Y = A_h X A_w^T`;
# 7. the backward pass as a scatter, `dX = A_h^T dY A_w`, gradient-checked;
# 8. upsampling a coarse class-score map: bilinear vs nearest, as pictures and as mIoU.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from minseg import exercises
from minseg.data import load_dataset
from minseg.gradcheck import check_backward
from minseg.metrics import confusion_matrix, mean_iou, pixel_accuracy
from minseg.ops import bilinear_interpolate, bilinear_interpolate_backward, interpolation_matrix, upsample_nearest
from minseg.ops.interpolate import linear_taps
from minseg.reference import bilinear_interpolate_backward_loops, bilinear_interpolate_loops
from minseg.viz import colorize

QUICK = os.environ.get("MINSEG_LESSONS_QUICK") == "1"
np.set_printoptions(precision=4, suppress=True, linewidth=120)

# %% [markdown]
# This lesson trains nothing, so `QUICK` (the quick setting the test suite uses for the exercise notebooks)
# changes nothing here; it is defined for uniformity with the other lessons.
#
# ## 1. 1-D linear interpolation
#
# Between two points `x1` and `x2` with known values `f(x1)` and `f(x2)`, the value at `x` is decided
# linearly by the distances to the two points, `d1 = x - x1` and `d2 = x2 - x`:
#
# `f(x) = d2/(d1+d2) f(x1) + d1/(d1+d2) f(x2)`
#
# Each point is weighted by the distance to the **other** point: the nearer point gets the larger weight,
# and the two weights sum to 1. A small example, in plain Python:

# %%
x1, x2 = 2.0, 5.0
f_x1, f_x2 = 10.0, 40.0
x_at = 3.0
d1, d2 = x_at - x1, x2 - x_at
f_x = d2 / (d1 + d2) * f_x1 + d1 / (d1 + d2) * f_x2
print(f"d1 = {d1:g}, d2 = {d2:g}")
print(f"f({x_at:g}) = {d2:g}/{d1 + d2:g} * {f_x1:g} + {d1:g}/{d1 + d2:g} * {f_x2:g} = {f_x:g}")

xs = np.linspace(x1, x2, 50)
plt.figure(figsize=(5, 2.8))
plt.plot(xs, [(x2 - t) / (x2 - x1) * f_x1 + (t - x1) / (x2 - x1) * f_x2 for t in xs], color="0.6")
plt.plot([x1, x2], [f_x1, f_x2], "o", color="tab:blue", label="known: f(x1), f(x2)")
plt.plot([x_at], [f_x], "s", color="tab:red", label=f"interpolated: f({x_at:g}) = {f_x:g}")
plt.annotate("", (x1, 5), (x_at, 5), arrowprops=dict(arrowstyle="<->"))
plt.annotate("", (x_at, 5), (x2, 5), arrowprops=dict(arrowstyle="<->"))
plt.text((x1 + x_at) / 2, 6, "d1", ha="center"); plt.text((x_at + x2) / 2, 6, "d2", ha="center")
plt.xlabel("x"); plt.ylim(0, 45); plt.legend(loc="upper left"); plt.title("1-D linear interpolation")
plt.show()

# %% [markdown]
# On a pixel grid the two neighbours of a position `src` are the pixels `i0 = floor(src)` and
# `i1 = i0 + 1`, one apart, so `d1 + d2 = 1`: with `lambda = d1 = src - i0` the formula becomes
# `f(src) = (1 - lambda) f[i0] + lambda f[i1]`. Which `src` an output pixel reads is the subject of section 3.
#
# ## 2. 2-D: bilinear interpolation
#
# Bilinear interpolation is the 1-D one extended to two dimensions. The slides' picture: the four known
# pixels around `P` are `A` (top left), `B` (top right), `C` (bottom right) and `D` (bottom left);
# `h1`, `h2` are the horizontal distances from `P` to the left and right columns, `w1`, `w2` the vertical
# distances to the upper and lower rows. With
#
# `α = h1/(h1+h2)`, `β = h2/(h1+h2)`, `p = w1/(w1+w2)`, `q = w2/(w1+w2)`,
#
# `P = q(βA + αB) + p(βD + αC)`.
#
# It is three 1-D interpolations: along the top row `M = βA + αB`, along the bottom row `N = βD + αC`,
# then down the column between them, `P = qM + pN`. (minseg's code calls `α` and `β` `a` and `b`.)

# %%
def draw_square(ax, h1, h2, w1, w2, values):
    """The slides' picture: A, B, C, D at the corners, P inside, M and N on the rows, the four distances."""
    corners = {"A": (0, 0), "B": (h1 + h2, 0), "C": (h1 + h2, w1 + w2), "D": (0, w1 + w2)}
    ax.plot([0, h1 + h2, h1 + h2, 0, 0], [0, 0, w1 + w2, w1 + w2, 0], color="0.6")
    for name, (cx, cy) in corners.items():
        ax.plot(cx, cy, "o", color="tab:blue", ms=9)
        ax.text(cx + (-0.12 if cx == 0 else 0.12), cy + (-0.12 if cy == 0 else 0.12), f"{name} = {values[name]:g}",
                ha="right" if cx == 0 else "left", va="bottom" if cy == 0 else "top")
    for name, cy in (("M", 0), ("N", w1 + w2)):
        ax.plot(h1, cy, "D", color="tab:green"); ax.text(h1 + 0.08, cy + (-0.12 if cy == 0 else 0.3), name)
    ax.plot([h1, h1], [0, w1 + w2], ":", color="tab:green")
    ax.plot(h1, w1, "s", color="tab:red", ms=9); ax.text(h1 + 0.1, w1 - 0.1, "P")
    ax.annotate("", (0, -0.45), (h1, -0.45), arrowprops=dict(arrowstyle="<->")); ax.text(h1 / 2, -0.6, "h1")
    ax.annotate("", (h1, -0.45), (h1 + h2, -0.45), arrowprops=dict(arrowstyle="<->"))
    ax.text(h1 + h2 / 2, -0.6, "h2")
    ax.annotate("", (-0.45, 0), (-0.45, w1), arrowprops=dict(arrowstyle="<->")); ax.text(-0.85, w1 / 2, "w1")
    ax.annotate("", (-0.45, w1), (-0.45, w1 + w2), arrowprops=dict(arrowstyle="<->"))
    ax.text(-0.85, w1 + w2 / 2, "w2")
    ax.set_xlim(-1.8, h1 + h2 + 1.8); ax.set_ylim(w1 + w2 + 0.6, -0.9)
    ax.set_aspect("equal"); ax.axis("off")


h1, h2, w1, w2 = 1.0, 3.0, 2.0, 2.0
A, B, C, D = 10.0, 20.0, 40.0, 30.0
alpha, beta = h1 / (h1 + h2), h2 / (h1 + h2)
p, q = w1 / (w1 + w2), w2 / (w1 + w2)
M, N_ = beta * A + alpha * B, beta * D + alpha * C
P = q * (beta * A + alpha * B) + p * (beta * D + alpha * C)
print(f"alpha = {alpha:g}, beta = {beta:g}, p = {p:g}, q = {q:g}")
print(f"M = beta*A + alpha*B = {M:g},  N = beta*D + alpha*C = {N_:g}")
print(f"P = q(beta*A + alpha*B) + p(beta*D + alpha*C) = {q:g}*{M:g} + {p:g}*{N_:g} = {P:g}")
P_cols_first = alpha * (q * B + p * C) + beta * (q * A + p * D)     # down both columns first, then across
print(f"columns first, then across: {P_cols_first:g}")
assert abs(P - P_cols_first) < 1e-12

fig, ax = plt.subplots(figsize=(5.5, 3.6))
draw_square(ax, h1, h2, w1, w2, {"A": A, "B": B, "C": C, "D": D})
ax.set_title(f"P = q(βA + αB) + p(βD + αC) = {P:g}")
plt.show()

# %% [markdown]
# The order does not matter (rows first or columns first give the same number, the cell checks it): the
# weight of each corner is a product, `A` gets `qβ`, `B` gets `qα`, `C` gets `pα`, `D` gets `pβ`. That is
# what makes bilinear interpolation **separable** (section 6).
#
# ## 3. Where does an output pixel land? `align_corners`
#
# To resize an image from `in` to `out` pixels along an axis, every output pixel `dst` needs a source
# coordinate `src` in the input, and then the formula of section 2 with `i0 = floor(src)`,
# `i1 = min(i0 + 1, in - 1)`, `lambda = src - i0` (the fraction `α` along the columns, `p` along the rows).
# There are two conventions, and both are PyTorch's (`torch.nn.functional.interpolate`):
#
# * `align_corners=False` (the default): pixels are squares, and the outer **edges** of the two grids line
#   up. Output pixel `dst`'s centre sits at `src = (dst + 0.5) * in/out - 0.5`, **clamped at 0** (the first
#   centres fall before input pixel 0's centre; they copy the edge pixel);
# * `align_corners=True`: pixels are points, and the **centres of the corner pixels** line up:
#   `src = dst * (in - 1)/(out - 1)` (0 when `out == 1`).
#
# In plain Python, for an input 3 rows by 4 columns resized to 5 by 7:

# %%
def src_false(dst, n_in, n_out):
    """align_corners=False: (dst + 0.5) * in/out - 0.5, clamped at 0."""
    return max((dst + 0.5) * n_in / n_out - 0.5, 0.0)


def src_true(dst, n_in, n_out):
    """align_corners=True: dst * (in - 1)/(out - 1), 0 when out == 1."""
    return dst * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0


H_in, W_in, H_o, W_o = 3, 4, 5, 7
for axis, n_in, n_out in (("rows", H_in, H_o), ("columns", W_in, W_o)):
    print(f"{axis}: in = {n_in}, out = {n_out}")
    print(f"  {'dst':>3} | {'(dst+0.5)*in/out-0.5':>21} | {'False: clamped':>14} | {'True: dst*(in-1)/(out-1)':>24}")
    for dst in range(n_out):
        raw = (dst + 0.5) * n_in / n_out - 0.5
        print(f"  {dst:>3} | {raw:>21.4f} | {src_false(dst, n_in, n_out):>14.4f} | {src_true(dst, n_in, n_out):>24.4f}")

# %% [markdown]
# minseg's `linear_taps` (what `bilinear_interpolate` uses) returns `i0`, `i1` and the weights
# `1 - lambda`, `lambda` of every output pixel; `i0 + lambda` is the source coordinate, and it agrees with
# the plain-Python rule in both conventions:

# %%
for n_in, n_out in ((H_in, H_o), (W_in, W_o)):
    for ac, rule in ((False, src_false), (True, src_true)):
        i0, i1, lam0, lam1 = linear_taps(n_in, n_out, align_corners=ac)
        by_hand = np.array([rule(d, n_in, n_out) for d in range(n_out)])
        print(f"in={n_in}, out={n_out}, align_corners={ac!s:5}: i0 = {i0}, i1 = {i1}, lambda = {lam1}, "
              f"max |i0 + lambda - src| = {np.abs(i0 + lam1 - by_hand).max():.1e}")
        assert np.abs(i0 + lam1 - by_hand).max() < 1e-12

# %% [markdown]
# Both sampling grids on one picture: the input pixels as grey squares (their centres, grey plus signs, at
# integer coordinates), the output pixels' source positions for `align_corners=False` (blue; hollow where the
# unclamped position lies before the first centre, with a line to where clamping puts it) and `True` (red
# crosses). Dashed blue lines are the output pixels' edges for `False`: they tile exactly the input's
# extent. The red grid spans only from the first centre to the last.

# %%
fig, ax = plt.subplots(figsize=(8, 6))
for r in range(H_in):
    for c in range(W_in):
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="0.88", edgecolor="0.5"))
        ax.plot(c, r, "+", color="0.45", ms=12)
        ax.text(c - 0.46, r + 0.44, f"input ({r},{c})", color="0.4", fontsize=7)
raw_r = np.array([(d + 0.5) * H_in / H_o - 0.5 for d in range(H_o)])
raw_c = np.array([(d + 0.5) * W_in / W_o - 0.5 for d in range(W_o)])
cl_r, cl_c = np.maximum(raw_r, 0), np.maximum(raw_c, 0)
for e in np.arange(W_o + 1) * W_in / W_o - 0.5:
    ax.axvline(e, color="tab:blue", ls="--", lw=0.7)
for e in np.arange(H_o + 1) * H_in / H_o - 0.5:
    ax.axhline(e, color="tab:blue", ls="--", lw=0.7)
RR, CC = np.meshgrid(raw_r, raw_c, indexing="ij")
clamped = (RR < 0) | (CC < 0)
ax.scatter(np.maximum(CC, 0), np.maximum(RR, 0), color="tab:blue", s=40, label="align_corners=False", zorder=3)
ax.scatter(CC[clamped], RR[clamped], facecolor="none", edgecolor="tab:blue", s=40, zorder=3,
           label="False, before clamping at 0")
for rr, cc in zip(RR[clamped], CC[clamped]):
    ax.plot([cc, max(cc, 0)], [rr, max(rr, 0)], color="tab:blue", lw=0.8)
TR, TC = np.meshgrid([src_true(d, H_in, H_o) for d in range(H_o)], [src_true(d, W_in, W_o) for d in range(W_o)],
                     indexing="ij")
ax.scatter(TC, TR, marker="x", color="tab:red", s=50, label="align_corners=True", zorder=4)
ax.set_xlim(-0.7, W_in - 0.3); ax.set_ylim(H_in - 0.3, -0.7); ax.set_aspect("equal")
ax.set_xlabel("input column coordinate"); ax.set_ylabel("input row coordinate")
ax.set_title(f"sampling grids: {H_in}x{W_in} input -> {H_o}x{W_o} output")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
print("row sources   False:", np.round(cl_r, 4), " True:", np.round([src_true(d, H_in, H_o) for d in range(H_o)], 4))
print("column sources False:", np.round(cl_c, 4), " True:", np.round([src_true(d, W_in, W_o) for d in range(W_o)], 4))
plt.show()

# %% [markdown]
# With `align_corners=True` the corner outputs copy the corner inputs exactly and the rest is spread
# evenly in between; with `False` each output pixel covers the same area `in/out` of the input (PyTorch's
# default, and minseg's). The same image resized with the two
# conventions differs, so a comparison between two frameworks must use the same one (lesson 10).
#
# **Output size.** The output size is given as `size`, or as `scale_factor`: then `H_out = floor(H *
# scale_factor)`, and, with `align_corners=False`, PyTorch steps by `1/scale_factor`, not `in/out` (they
# differ when `H * scale_factor` is not an integer). For `H = 5` and `scale_factor = 1.75`:

# %%
H5, s = 5, 1.75
H5_out = int(np.floor(H5 * s))
print(f"H_out = floor({H5} * {s}) = floor({H5 * s}) = {H5_out}")
print(f"step 1/scale_factor = {1 / s:.4f}, in/out = {H5 / H5_out:.4f}")
src_scale = [max((d + 0.5) / s - 0.5, 0) for d in range(H5_out)]
src_size = [src_false(d, H5, H5_out) for d in range(H5_out)]
print("src with 1/scale_factor:", np.round(src_scale, 4))
print("src with in/out        :", np.round(src_size, 4))
col = np.arange(1.0, H5 + 1).reshape(1, 1, H5, 1)              # (N, C, H, W): a column 1..5
y_scale, _ = bilinear_interpolate(col, scale_factor=(s, 1))
y_size, _ = bilinear_interpolate(col, size=(H5_out, 1))
print("bilinear_interpolate(scale_factor=1.75):", y_scale.ravel())
print("bilinear_interpolate(size=8)           :", y_size.ravel())
print("1 + src (the input is 1..5, so y = 1 + src):", 1 + np.array(src_scale))
print("1 + min(src, 4) with in/out               :", 1 + np.minimum(src_size, H5 - 1))
assert np.allclose(y_scale.ravel(), 1 + np.array(src_scale), rtol=0, atol=1e-12)
assert np.allclose(y_size.ravel(), 1 + np.minimum(src_size, H5 - 1), rtol=0, atol=1e-12)

# %% [markdown]
# The input holds 1..5, so each output is `1 + src`: the cell shows that `scale_factor=1.75` steps by
# `1/1.75` and `size=8` by `5/8`. The last `in/out` position lies beyond the last pixel's centre; there
# `i0 = i1 = 4` (`i1 = min(i0 + 1, in - 1)`), so it copies the edge pixel, `1 + min(src, 4)`.
#
# ## 4. A tiny example by hand
#
# A 2x2 image holding the slides' four corners, `A` top left, `B` top right, `D` bottom left, `C` bottom
# right, upsampled to 4x4. Take output pixel `(1, 2)` with `align_corners=False`: its row lands at
# `src = (1 + 0.5) * 2/4 - 0.5` and its column at `(2 + 0.5) * 2/4 - 0.5`, so (on a grid of unit spacing,
# `h1 + h2 = w1 + w2 = 1`) `h1` is the column's fraction and `w1` the row's:

# %%
x_tiny = np.array([[A, B], [D, C]]).reshape(1, 1, 2, 2)         # (N, C, H, W)
print("x =\n", x_tiny[0, 0])
i, j = 1, 2
src_r, src_c = src_false(i, 2, 4), src_false(j, 2, 4)
h1_, h2_ = src_c - np.floor(src_c), 1 - (src_c - np.floor(src_c))
w1_, w2_ = src_r - np.floor(src_r), 1 - (src_r - np.floor(src_r))
alpha_, beta_, p_, q_ = h1_ / (h1_ + h2_), h2_ / (h1_ + h2_), w1_ / (w1_ + w2_), w2_ / (w1_ + w2_)
P_hand = q_ * (beta_ * A + alpha_ * B) + p_ * (beta_ * D + alpha_ * C)
print(f"output ({i}, {j}): src row = {src_r}, src column = {src_c}")
print(f"h1 = {h1_}, h2 = {h2_}, w1 = {w1_}, w2 = {w2_} -> alpha = {alpha_}, beta = {beta_}, p = {p_}, q = {q_}")
print(f"P = {q_}*({beta_}*{A:g} + {alpha_}*{B:g}) + {p_}*({beta_}*{D:g} + {alpha_}*{C:g}) = {P_hand}")
y_tiny, _ = bilinear_interpolate(x_tiny, size=4)
print(f"bilinear_interpolate(x, size=4)[0, 0, {i}, {j}] = {y_tiny[0, 0, i, j]}")

# %% [markdown]
# Now every output pixel, for both conventions, by hand (plain Python loops and the slides' formula)
# against minseg, number by number:

# %%
def bilinear_by_hand(img, n_out, rule):
    """img: list of rows; every output pixel from P = q(bA + aB) + p(bD + aC) with the given src rule."""
    n_in = len(img)
    out = []
    for i in range(n_out):
        row = []
        sr = rule(i, n_in, n_out)
        r0 = min(int(np.floor(sr)), n_in - 1); r1 = min(r0 + 1, n_in - 1); p_ = sr - r0
        for j in range(n_out):
            sc = rule(j, n_in, n_out)
            c0 = min(int(np.floor(sc)), n_in - 1); c1 = min(c0 + 1, n_in - 1); a_ = sc - c0
            A_, B_, C_, D_ = img[r0][c0], img[r0][c1], img[r1][c1], img[r1][c0]
            row.append((1 - p_) * ((1 - a_) * A_ + a_ * B_) + p_ * ((1 - a_) * D_ + a_ * C_))
        out.append(row)
    return np.array(out)


print("sources for 2 -> 4: False, before clamping", [(d + 0.5) * 2 / 4 - 0.5 for d in range(4)],
      "| False", [src_false(d, 2, 4) for d in range(4)], "| True", [round(src_true(d, 2, 4), 4) for d in range(4)])
for ac, rule in ((False, src_false), (True, src_true)):
    hand = bilinear_by_hand([[A, B], [D, C]], 4, rule)
    mine, _ = bilinear_interpolate(x_tiny, size=4, align_corners=ac)
    print(f"align_corners={ac}:  by hand                      minseg")
    for hr, mr in zip(hand, mine[0, 0]):
        print("   ", " ".join(f"{v:7.3f}" for v in hr), "   ", " ".join(f"{v:7.3f}" for v in mr))
    print(f"   largest difference: {np.abs(hand - mine[0, 0]).max():.1e}")
    assert np.abs(hand - mine[0, 0]).max() < 1e-12

# %% [markdown]
# With `align_corners=True` the four corners of the output are exactly `A`, `B`, `D`, `C` by design; with
# `False` they are too here, but only because of the edges (the first line of the cell prints the source
# coordinates): output 0 lands at `src = -0.25`, clamped to 0, and output 3 at `src = 1.25`, where
# `i0 = i1 = 1`; both copy an edge pixel.
#
# ## 5. The slow loop version
#
# `minseg.reference.bilinear_interpolate_loops` is the definition as a loop over output pixels (all
# samples and channels at once), written for reading: its source coordinate and its
# `P = q (b A + a B) + p (b D + a C)` are the lines above. It agrees with the fast op, and is much slower:

# %%
rng = np.random.default_rng(0)
xb = rng.standard_normal((2, 3, 40, 48))                        # (N, C, H, W)
for ac in (False, True):
    t0 = time.perf_counter()
    y_loop = bilinear_interpolate_loops(xb, (100, 120), align_corners=ac)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    y_fast, _ = bilinear_interpolate(xb, size=(100, 120), align_corners=ac)
    t_fast = time.perf_counter() - t0
    print(f"align_corners={ac!s:5}: loops {t_loop * 1e3:6.1f} ms, bilinear_interpolate {t_fast * 1e3:5.2f} ms, "
          f"max |difference| {np.abs(y_loop - y_fast).max():.1e}")
    assert np.allclose(y_loop, y_fast, rtol=1e-12, atol=1e-12)

# %% [markdown]
# ## 6. The separable matrix form
#
# Along one axis, interpolation is a matrix: row `dst` of `A` holds `1 - lambda` at column `i0` and
# `lambda` at `i1` (two non-zeros, summing to 1), and `y = A x`. Since the corner weights are products
# (section 2), the 2-D interpolation of one channel is the 1-D one along the columns, then along the rows:
#
# `Y = A_h X A_w^T`,  `A_h`: `(H_out, H)`,  `A_w`: `(W_out, W)`.
#
# `minseg.ops.interpolation_matrix(in, out, align_corners)` builds `A`. For 4 -> 8 pixels, both conventions:

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
for ax, ac in zip(axes, (False, True)):
    A8 = interpolation_matrix(4, 8, align_corners=ac)
    ax.imshow(A8, cmap="Blues", vmin=0, vmax=1.4)
    for (r, c), v in np.ndenumerate(A8):
        if v:
            ax.text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=9)
    ax.set_xlabel("input pixel"); ax.set_ylabel("output pixel")
    ax.set_title(f"align_corners={ac}")
    print(f"align_corners={ac}: rows sum to {np.unique(A8.sum(axis=1).round(12))}, "
          f"non-zeros per row {np.unique((A8 != 0).sum(axis=1))}")
fig.suptitle("interpolation_matrix(4, 8, align_corners)")
plt.tight_layout()
plt.show()

# %% [markdown]
# (A row with one non-zero is a clamped or exact position, where `lambda = 0` or `i0 = i1`.) The product of
# the two matrices with every channel equals `bilinear_interpolate`, for up- and downsampling, both
# conventions and a scale factor:

# %%
for shape, kw in (((2, 3, 5, 7), dict(size=(9, 12))), ((2, 3, 5, 7), dict(size=(9, 12), align_corners=True)),
                  ((1, 2, 9, 8), dict(size=(4, 3))), ((2, 2, 5, 6), dict(scale_factor=1.75))):
    x6 = rng.standard_normal(shape)                             # (N, C, H, W)
    y6, cache6 = bilinear_interpolate(x6, **kw)
    H_out, W_out = y6.shape[2:]
    sf = kw.get("scale_factor")
    A_h = interpolation_matrix(shape[2], H_out, kw.get("align_corners", False), sf)   # (H_out, H)
    A_w = interpolation_matrix(shape[3], W_out, kw.get("align_corners", False), sf)   # (W_out, W)
    y_mat = np.einsum("oh,nchw,pw->ncop", A_h, x6, A_w)         # A_h @ x[n, c] @ A_w.T for every (n, c)
    print(f"x {shape} {kw}: y {y6.shape}, max |A_h X A_w^T - bilinear_interpolate| = {np.abs(y_mat - y6).max():.1e}")
    assert np.allclose(y_mat, y6, rtol=1e-12, atol=1e-12)

# %% [markdown]
# Two small matrix products instead of a loop over pixels: that is how `bilinear_interpolate` computes
# (its cache holds `A_h` and `A_w`), and why it is fast.
#
# ## 7. The backward pass: a scatter
#
# The notes say bilinear interpolation "cannot be learned" in an end-to-end model, so it is used only at the
# end: it has no weights to learn. But it is differentiable, so gradients pass through it to the layers
# before it. For `L = sum(dY * Y)` with `Y = A_h X A_w^T`:
#
# `dX = A_h^T dY A_w`.
#
# Read pixel by pixel: output `(i, j)` was made from four input pixels with weights `qβ, qα, pα, pβ`; its
# gradient `dy[i, j]` is **sent back (scattered) to the same four pixels with the same weights**, and an
# input pixel adds up what all its outputs send it. A gradient that is 1 at output `(1, 2)` of the tiny
# example and 0 elsewhere comes back as exactly that pixel's four weights:

# %%
_, cache_tiny = bilinear_interpolate(x_tiny, size=4)
dy_one = np.zeros((1, 1, 4, 4))
dy_one[0, 0, 1, 2] = 1.0
dx_one = bilinear_interpolate_backward(dy_one, cache_tiny)
print("dx from dy = 1 at (1, 2):\n", dx_one[0, 0])
print(f"the weights: A: q*beta = {q_ * beta_}, B: q*alpha = {q_ * alpha_}, D: p*beta = {p_ * beta_}, "
      f"C: p*alpha = {p_ * alpha_}")
assert np.allclose(dx_one[0, 0], [[q_ * beta_, q_ * alpha_], [p_ * beta_, p_ * alpha_]], rtol=0, atol=1e-15)

fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), gridspec_kw={"width_ratios": [2, 1]})
axes[0].imshow(dy_one[0, 0], cmap="Reds", vmin=0, vmax=1.3)
axes[0].set_title("dy: 1 at output (1, 2)")
axes[1].imshow(dx_one[0, 0], cmap="Reds", vmin=0, vmax=1.3)
for (r, c), v in np.ndenumerate(dx_one[0, 0]):
    axes[1].text(c, r, f"{'AB'[c] if r == 0 else 'DC'[c]}: {v:.4g}", ha="center", va="center")
axes[1].set_title("dx: scattered to A, B, D, C")
for ax in axes:
    ax.set_xticks([]); ax.set_yticks([])
plt.tight_layout()
plt.show()

# %% [markdown]
# The whole scatter by hand in plain Python, for a `dy` holding 1..16, against the matrix form
# `A_h^T dY A_w`, minseg's `bilinear_interpolate_backward` and the loop version
# `minseg.reference.bilinear_interpolate_backward_loops`:

# %%
dy_t = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)                  # (N, C, H_out, W_out)
dx_hand = [[0.0, 0.0], [0.0, 0.0]]
for i in range(4):
    sr = src_false(i, 2, 4); r0 = min(int(np.floor(sr)), 1); r1 = min(r0 + 1, 1); p_i = sr - r0
    for j in range(4):
        sc = src_false(j, 2, 4); c0 = min(int(np.floor(sc)), 1); c1 = min(c0 + 1, 1); a_j = sc - c0
        g = dy_t[0, 0, i, j]
        dx_hand[r0][c0] += (1 - p_i) * (1 - a_j) * g              # A
        dx_hand[r0][c1] += (1 - p_i) * a_j * g                    # B
        dx_hand[r1][c1] += p_i * a_j * g                          # C
        dx_hand[r1][c0] += p_i * (1 - a_j) * g                    # D
dx_hand = np.array(dx_hand)
A_h4, A_w4 = interpolation_matrix(2, 4), interpolation_matrix(2, 4)
dx_matrix = A_h4.T @ dy_t[0, 0] @ A_w4
dx_minseg = bilinear_interpolate_backward(dy_t, cache_tiny)[0, 0]
dx_loops = bilinear_interpolate_backward_loops(dy_t, (1, 1, 2, 2))[0, 0]
print("dy =\n", dy_t[0, 0])
for name, v in (("by hand", dx_hand), ("A_h^T dy A_w", dx_matrix), ("bilinear_interpolate_backward", dx_minseg),
                ("loops", dx_loops)):
    print(f"{name:>30}: {v.ravel()}")
    assert np.allclose(v, dx_hand, rtol=1e-12, atol=1e-12)
print(f"sum of dy = {dy_t.sum():g}, sum of dx = {dx_hand.sum():g}: every row of A sums to 1, nothing is lost")

# %% [markdown]
# Why the transpose, in one line: `A^T` is the **adjoint** of `A`, `<A x, y> = <x, A^T y>` for every `x`
# and `y`; the forward gathers (each output reads four inputs), the backward scatters (each input collects
# from every output that read it). On a random batch:

# %%
x7 = rng.standard_normal((2, 3, 5, 7))
y7, cache7 = bilinear_interpolate(x7, size=(9, 12))
dy7 = rng.standard_normal(y7.shape)
lhs, rhs = np.sum(y7 * dy7), np.sum(x7 * bilinear_interpolate_backward(dy7, cache7))
print(f"<A x, dy> = {lhs:.12f}\n<x, A^T dy> = {rhs:.12f}")
assert abs(lhs - rhs) < 1e-10 * abs(lhs)

# %% [markdown]
# ### Gradient check
#
# `minseg.gradcheck.check_backward` compares the backward with central differences of `sum(dy * y)`, in
# float64, for upsampling, downsampling, both conventions, a non-integer scale factor and an axis of size 1:

# %%
gc_cases = [((2, 3, 5, 7), dict(size=(9, 12))), ((2, 3, 5, 7), dict(size=(9, 12), align_corners=True)),
            ((1, 2, 9, 8), dict(size=(4, 3))), ((2, 2, 5, 6), dict(scale_factor=1.75)),
            ((2, 1, 1, 5), dict(size=(3, 8))), ((1, 2, 6, 5), dict(size=(1, 7), align_corners=True))]
reports = []
for shape, kw in gc_cases:
    report = check_backward(bilinear_interpolate, bilinear_interpolate_backward, {"x": rng.standard_normal(shape)},
                            **kw)
    print(report, "\n")
    reports.append(report)
assert all(r.passed for r in reports)

# %% [markdown]
# Every check passes; the largest absolute errors printed above are finite-difference noise, a few times
# `1e-9` at most.
#
# ## 8. Upsampling a coarse score map
#
# A segmentation network ends with a class-score map `(K, H/f, W/f)`, a factor `f` smaller than the image;
# upsampling it to `(K, H, W)` and taking the argmax over the classes gives the label map. To see what the
# upsampling alone does, make an ideal coarse score map from the `shapes` labels: the score of
# class `k` in a coarse cell is the fraction of the cell's `f x f` pixels that are of class `k` (ignored
# pixels count for no class). Then upsample it to 64x64 with nearest-neighbour copying
# (`minseg.ops.upsample_nearest`) and with `bilinear_interpolate`, and take the argmax.

# %%
ds = load_dataset("shapes", "val")
labels = ds.labels                                              # (N, H, W), int64, 255 = ignore
K, N_img, H, W = ds.num_classes, len(ds), ds.labels.shape[1], ds.labels.shape[2]
onehot = (labels[:, None] == np.arange(K)[None, :, None, None]).astype(np.float64)   # (N, K, H, W)


def coarse_scores(f):
    """Fraction of each f x f cell's pixels in each class: (N, K, H/f, W/f)."""
    cells = onehot.reshape(N_img, K, H // f, f, W // f, f)      # (N, K, H/f, f, W/f, f)
    return cells.mean(axis=(3, 5))                               # (N, K, H/f, W/f)


def scores_to_metrics(scores):
    pred = scores.argmax(axis=1)                                # (N, H, W)
    cm = confusion_matrix(pred, labels, K, ignore_index=ds.ignore_index)
    return pred, mean_iou(cm), pixel_accuracy(cm)


f = 8
coarse = coarse_scores(f)
print(f"labels {labels.shape} -> one-hot {onehot.shape} -> coarse scores {coarse.shape} (f = {f})")
up_near, _ = upsample_nearest(coarse, size=(H, W))
up_bil, _ = bilinear_interpolate(coarse, size=(H, W))
pred_near, miou_near, acc_near = scores_to_metrics(up_near)
pred_bil, miou_bil, acc_bil = scores_to_metrics(up_bil)
print(f"nearest : mIoU {miou_near:.4f}, pixel accuracy {acc_near:.4f}")
print(f"bilinear: mIoU {miou_bil:.4f}, pixel accuracy {acc_bil:.4f}")

# %%
show = [0, 1, 2]
fig, axes = plt.subplots(len(show), 5, figsize=(13, 2.8 * len(show)))
pal, ign = ds.palette, ds.ignore_index
for row, k in zip(axes, show):
    row[0].imshow(np.transpose(ds.images[k], (1, 2, 0))); row[0].set_title(f"image {k}")
    row[1].imshow(colorize(labels[k], pal, ign)); row[1].set_title("labels")
    row[2].imshow(colorize(coarse[k].argmax(axis=0), pal)); row[2].set_title(f"coarse argmax {H // f}x{W // f}")
    row[3].imshow(colorize(pred_near[k], pal)); row[3].set_title("nearest, then argmax")
    row[4].imshow(colorize(pred_bil[k], pal)); row[4].set_title("bilinear, then argmax")
    for ax in row:
        ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Nearest copying repeats every coarse cell as an `f x f` block, so every boundary is a staircase of
# blocks; bilinear interpolation blends the scores of neighbouring cells, and the argmax of the blend
# draws a boundary that runs smoothly between the cells' centres. One class's scores, before the argmax:

# %%
k, cls = show[0], 1 + int(np.argmax([(labels[show[0]] == c).sum() for c in range(1, K)]))
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
for ax, s_map, t in zip(axes, (coarse[k, cls], up_near[k, cls], up_bil[k, cls]),
                        (f"coarse {H // f}x{W // f}", "nearest 64x64", "bilinear 64x64")):
    im = ax.imshow(s_map, cmap="viridis", vmin=0, vmax=1); ax.set_title(f"score of '{ds.class_names[cls]}'\n{t}")
    ax.axis("off")
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()

# %% [markdown]
# Over the whole validation set and three factors, with both conventions for the bilinear upsampling:

# %%
def object_pixels(pred):
    """Pixels predicted as an object (not background, class 0)."""
    return int((pred > 0).sum())


n_obj = int(((labels > 0) & (labels != ds.ignore_index)).sum())
print(f"{'f':>3} {'coarse':>7} | {'mIoU nearest':>12} {'bilinear False':>14} {'bilinear True':>13} | "
      f"{'pixel acc. nearest':>18} {'bilinear False':>14} | object pixels: nearest, bilinear (labels {n_obj})")
table = {}
for f_ in (4, 8, 16):
    sc = coarse_scores(f_)
    p_n, m_n, a_n = scores_to_metrics(upsample_nearest(sc, size=(H, W))[0])
    p_b, m_b, a_b = scores_to_metrics(bilinear_interpolate(sc, size=(H, W))[0])
    _, m_t, _ = scores_to_metrics(bilinear_interpolate(sc, size=(H, W), align_corners=True)[0])
    table[f_] = (m_n, m_b, m_t, a_n, a_b, object_pixels(p_n), object_pixels(p_b))
    print(f"{f_:>3} {f'{H // f_}x{W // f_}':>7} | {m_n:>12.4f} {m_b:>14.4f} {m_t:>13.4f} | {a_n:>18.4f} {a_b:>14.4f} | "
          f"{table[f_][5]:>7} {table[f_][6]:>7}")
m_n, m_b, m_t, a_n, a_b, o_n, o_b = (np.array(v) for v in zip(*table.values()))   # one entry per factor f
checks = {
    "bilinear (False) has the highest mIoU at f = 4 and 8": np.all((m_b[:2] > m_n[:2]) & (m_b[:2] > m_t[:2])),
    "nearest has the higher mIoU at f = 16": m_n[2] > m_b[2],
    "bilinear (False) has the higher pixel accuracy at every f": np.all(a_b > a_n),
    "align_corners=True has a lower mIoU than False at every f": np.all(m_t < m_b),
    "every mIoU and accuracy column falls as f grows": all(np.all(np.diff(v) < 0) for v in (m_n, m_b, m_t, a_n, a_b)),
    "at f = 16 bilinear predicts fewer object pixels than the labels hold, nearest not": o_b[2] < n_obj <= o_n[2],
}
for text, ok in checks.items():
    print(f"{text}: {bool(ok)}")
assert all(checks.values())

# %% [markdown]
# The cell above prints the table and checks what it shows. With 16x16 and 8x8 coarse maps, bilinear
# upsampling (`align_corners=False`) gives the highest mIoU, and a higher pixel accuracy than nearest
# copying. With a 4x4 map every cell covers 16x16 of the 64x64 pixels: blending a cell's scores with its
# mostly-background neighbours pulls an object's score under the background's, and objects shrink or
# vanish (the last columns: bilinear predicts far fewer object pixels than the labels hold), so nearest
# copying keeps a slightly higher mIoU there, while bilinear still has the higher pixel accuracy. Every
# mIoU and accuracy falls as the map gets coarser: what interpolation cannot bring back is detail smaller
# than a cell; that needs the finer feature maps, FCN's skip connections (lesson 05).
#
# `align_corners=True` scores lower than `False` at every factor: the coarse cells' centres sit where
# `align_corners=False` puts them (a cell of `f` pixels has its centre at output pixel
# `f * (c + 0.5) - 0.5`), while `True` stretches the coarse grid corner to corner and shifts every cell
# away from the pixels it summarises. Which convention is right depends on how the coarse map was made; for
# this block-averaged map it is `False`.
#
# ## Summary
#
# * 1-D: `f(x) = d2/(d1+d2) f(x1) + d1/(d1+d2) f(x2)`, each point weighted by the distance to the other.
# * 2-D: `P = q(βA + αB) + p(βD + αC)` with `α = h1/(h1+h2)`, `β = h2/(h1+h2)`, `p = w1/(w1+w2)`,
#   `q = w2/(w1+w2)`: two 1-D interpolations along the rows, one between them.
# * Source coordinates: `align_corners=False` (default) `src = (dst + 0.5) * in/out - 0.5` clamped at 0,
#   with `1/scale_factor` for `in/out` when a scale factor is given and `H_out = floor(H * scale_factor)`;
#   `align_corners=True` `src = dst * (in - 1)/(out - 1)`. Then `i0 = floor(src)`,
#   `i1 = min(i0 + 1, in - 1)`, `lambda = src - i0`.
# * Separable: `Y = A_h X A_w^T` (`interpolation_matrix`), two non-zeros per row of `A`, rows summing to 1.
# * Backward: a scatter of every output's gradient to its four source pixels with the same weights,
#   `dX = A_h^T dY A_w`; gradient-checked.
# * Upsampling a coarse score map: bilinear then argmax draws smooth boundaries where nearest copying
#   draws blocks, and scores better while the cells are small against the objects; neither brings back
#   detail finer than a cell.
#
# ## Exercises
#
# Each exercise asks for a function with the same signature as minseg's function of that name
# (`help(minseg.ops.bilinear_interpolate)` is the spec). `exercises.check` runs yours on a grid of cases
# (up- and downsampling, odd and non-square sizes, non-integer scale factors, size 1, batches and channels,
# both conventions) and names the mistake when there is one.
#
# ### Exercise 1: `bilinear_interpolate`
# Return `y` of shape `(N, C, H_out, W_out)` (or `(y, cache)`): exactly one of `size` (an int or a pair)
# and `scale_factor` (a number or a pair) is given; `H_out = floor(H * scale_factor)`; the source
# coordinates of section 3 (with `1/scale_factor` as the step when a scale factor is given and
# `align_corners=False`), then `P = q(bA + aB) + p(bD + aC)` for every output pixel.

# %% tags=["task"]
def bilinear_interpolate_mine(x, size=None, scale_factor=None, align_corners=False):
    # hint: per axis, src for every output pixel -> i0, i1, lambda; gather A, B, C, D with fancy indexing
    raise NotImplementedError


# %% tags=["solution"]
def source_taps(n_in, n_out, align_corners, scale=None):
    """i0, i1 (int arrays) and lambda (float array) of every output pixel along one axis, shape (n_out,)."""
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        step = n_in / n_out if scale is None else 1.0 / scale
        src = np.maximum((dst + 0.5) * step - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def output_size(x, size, scale_factor):
    """(H_out, W_out) and the per-axis scale factors (None when a size is given)."""
    pair = lambda v: (v, v) if np.isscalar(v) else tuple(v)    # noqa: E731
    if size is not None:
        return pair(size), (None, None)
    sh, sw = map(float, pair(scale_factor))
    return (int(np.floor(x.shape[2] * sh)), int(np.floor(x.shape[3] * sw))), (sh, sw)


def bilinear_interpolate_mine(x, size=None, scale_factor=None, align_corners=False):
    N, C, H, W = x.shape
    (H_out, W_out), (sh, sw) = output_size(x, size, scale_factor)
    r0, r1, p = source_taps(H, H_out, align_corners, sh)
    c0, c1, a = source_taps(W, W_out, align_corners, sw)
    A_ = x[:, :, r0[:, None], c0[None, :]]                      # (N, C, H_out, W_out) each
    B_ = x[:, :, r0[:, None], c1[None, :]]
    C_ = x[:, :, r1[:, None], c1[None, :]]
    D_ = x[:, :, r1[:, None], c0[None, :]]
    p, a = p[:, None], a[None, :]                               # (H_out, 1) row fractions, (1, W_out) column fractions
    q, b = 1 - p, 1 - a
    return q * (b * A_ + a * B_) + p * (b * D_ + a * C_)


# %%
r = exercises.check("bilinear_interpolate", bilinear_interpolate_mine)
r

# %% tags=["solution"]
assert r.passed, r

# %% [markdown]
# ### Exercise 2: `bilinear_interpolate_backward`
# Given `dy` of shape `(N, C, H_out, W_out)` and the forward's cache (`cache.x_shape`,
# `cache.align_corners`, `cache.scales`: the user's scale factors per axis or `None`; `H_out` and `W_out`
# are `dy`'s last two sizes), return `dx` of shape `(N, C, H, W)` by scattering every `dy[i, j]` to its four
# source pixels with the forward's weights. (Not with `cache.A_h` and `cache.A_w`: write the scatter.)

# %% tags=["task"]
def bilinear_interpolate_backward_mine(dy, cache):
    # hint: the same taps as the forward; every output pixel's dy goes to 4 pixels, and many outputs share a pixel
    raise NotImplementedError


# %% tags=["solution"]
def bilinear_interpolate_backward_mine(dy, cache):
    N, C, H, W = cache.x_shape
    H_out, W_out = dy.shape[2:]
    sh, sw = cache.scales
    r0, r1, p = source_taps(H, H_out, cache.align_corners, sh)
    c0, c1, a = source_taps(W, W_out, cache.align_corners, sw)
    p, a = p[:, None], a[None, :]                               # (H_out, 1), (1, W_out)
    q, b = 1 - p, 1 - a
    dx = np.zeros((N, C, H, W), dtype=dy.dtype)
    for rows, cols, weight in ((r0, c0, q * b), (r0, c1, q * a), (r1, c1, p * a), (r1, c0, p * b)):
        # np.add.at adds every contribution, also where many outputs send to one pixel (dx[idx] += would not)
        np.add.at(dx, (slice(None), slice(None), rows[:, None], cols[None, :]), weight * dy)
    return dx


# %%
r = exercises.check("bilinear_interpolate_backward", bilinear_interpolate_backward_mine)
r

# %% tags=["solution"]
assert r.passed, r
