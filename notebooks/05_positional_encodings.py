# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 Positional encodings (step 8)
#
# Goals:
#
# 1. Draw the paper's table of sinusoids and read it as a set of clocks.
# 2. Look at the dot products between positions: what they depend on, and what the query
#    and key projections do to that.
# 3. Check that moving `k` positions is one fixed linear map, whatever the starting position.
#
# Notebook 03 showed that attention treats its keys as a set. To let it use order, the
# transformer adds to each token embedding a vector that depends only on the position
# (section 3.5):
#
# $$PE_{(pos, 2i)} = \sin\!\big(pos / 10000^{2i/d_{model}}\big), \qquad PE_{(pos, 2i+1)} = \cos\!\big(pos / 10000^{2i/d_{model}}\big).$$
#
# Dimension pair `(2i, 2i+1)` is a point going round a circle, with a wavelength from `2 pi`
# (i = 0, fast) to `10000 * 2 pi` (slow): like the hands of a clock, the fast ones tell
# neighbours apart and the slow ones tell far-apart positions apart.

# %%
# %matplotlib inline
import os

import matplotlib.pyplot as plt
import numpy as np

from attention import sinusoidal_positions
from attention.comprehension import check, show_code

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
L, D = (64, 32) if FAST else (128, 128)
print("fast setting:", FAST, " positions =", L, " d_model =", D)
pe = np.asarray(sinusoidal_positions(L, D))  # [L, D]

# %% [markdown]
# The package's table, as it runs:

# %%
show_code(sinusoidal_positions)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4), width_ratios=[3, 2])
image = axes[0].imshow(pe, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
axes[0].set_xlabel("dimension")
axes[0].set_ylabel("position")
axes[0].set_title("sinusoidal positional encodings")
fig.colorbar(image, ax=axes[0], label="value")
for dim in [0, 2, 10, D // 2]:
    axes[1].plot(pe[:, dim], label=f"dim {dim}")
axes[1].set_xlabel("position")
axes[1].set_title("a few columns: fast to slow clocks")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Dot products between positions
#
# Attention compares vectors by dot products, so a first look is at `PE_p . PE_q`. Using
# `sin a sin b + cos a cos b = cos(a - b)`, each dimension pair contributes
# `cos((p - q) w_i)`: the dot product of two encodings is a function of the **offset**
# `p - q` only. (Attention does not compare raw encodings, though; the next section says
# what changes.)
#
# **Predict, then run.** Is the product with the position 3 *after* p, `PE_p . PE_(p+3)`,
# (a) equal to or (b) different from the product with the position 3 *before* p,
# `PE_p . PE_(p-3)`? In other words: can this product tell after from before? Write your
# letter, then run the cells down to the check below the plot.

# %%
my_prediction = None  # "a" (equal) or "b" (different)

# %%
gram = pe @ pe.T  # [L, L]
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
image = axes[0].imshow(gram, cmap="viridis", interpolation="nearest")
axes[0].set_xlabel("position q")
axes[0].set_ylabel("position p")
axes[0].set_title("PE_p . PE_q")
fig.colorbar(image, ax=axes[0], label="dot product")
for p in [0, L // 4, L // 2]:
    axes[1].plot(np.arange(L) - p, gram[p], label=f"p = {p}")
axes[1].set_xlabel("offset q - p")
axes[1].set_ylabel("PE_p . PE_q")
axes[1].set_title("the same curve from every position")
axes[1].legend()
fig.tight_layout()
plt.show()

# %%
after = np.array([gram[p, p + 3] for p in range(3, L - 3)])   # PE_p . PE_(p+3)
before = np.array([gram[p, p - 3] for p in range(3, L - 3)])  # PE_p . PE_(p-3)
measured = "a" if np.allclose(after, before, atol=1e-4) else "b"
check("05.before_after", my_prediction, lambda answer: answer == measured)
print(f"max |PE_p . PE_(p+3) - PE_p . PE_(p-3)| = {np.abs(after - before).max():.1e}")

# %% [markdown]
# The peak at offset 0 (the squared length `PE_p . PE_p`, the last question of this notebook)
# falls off with distance, with ripples: nearby positions look alike, far ones less so, and
# the curves from different positions lie on top of each other. Each curve is also
# symmetric about offset 0: `cos` is even, so the product cannot tell "3 after" from
# "3 before".

# %% [markdown]
# ## What attention compares: projected positions
#
# A transformer adds `PE` to the word embeddings and then projects: the score of position p
# with position q contains the term `(PE_p W^Q) . (PE_q W^K) = PE_p W^Q (W^K)^T PE_q^T`.
# The matrix `A = W^Q (W^K)^T` mixes the sin and cos coordinates of different frequencies,
# and the clean `cos(p - q)` picture does not survive it: the product depends on where you
# are, not only on the offset, and it can now differ before and after. We measure both with
# random projections (an untrained layer; training picks `A`, but nothing forces it to keep
# the offset-only structure). This is the motivation of **rotary positions** (RoPE,
# notebook 11): rotate the queries and keys *after* the projections, so that the score
# depends on the offset by construction, and on its sign.

# %%
rng_proj = np.random.default_rng(0)
W_Q, W_K = rng_proj.normal(size=(2, D, D)) / np.sqrt(D)
projected = (pe @ W_Q) @ (pe @ W_K).T  # [L, L]


def diagonal_spread(matrix):
    # How far each diagonal (one offset) is from being constant, relative to the entries.
    offsets = range(-L // 2, L // 2)
    return max(np.ptp(np.diag(matrix, k=o)) for o in offsets) / np.abs(matrix).max()


print(f"raw PE_p . PE_q      : spread along a diagonal {diagonal_spread(gram):.1e}, "
      f"before/after asymmetry {np.abs(gram - gram.T).max():.1e}")
print(f"projected (random A) : spread along a diagonal {diagonal_spread(projected):.2f}, "
      f"before/after asymmetry {np.abs(projected - projected.T).max() / np.abs(projected).max():.2f}")
assert diagonal_spread(projected) > 100 * diagonal_spread(gram)

# %% [markdown]
# ## Moving k positions is a linear map
#
# The authors chose sinusoids because `PE_{pos + k}` is a rotation of `PE_pos` (each clock
# turns by `k w_i`). With `w_i = 1 / 10000^{2i / d_model}` and the angle-sum formulas, the
# row vector `[sin a, cos a]` times the 2 x 2 matrix `[[cos b, -sin b], [sin b, cos b]]` is
# `[sin(a + b), cos(a + b)]`. So the shift by `k` is one block-diagonal matrix `M_k` with
# `b = k w_i` in block `i`, the same for every position. We build it from the formula and
# check it against the package's table at every position.

# %%
k = 3
w = 1.0 / 10000 ** (np.arange(0, D, 2) / D)  # one frequency per (sin, cos) pair
M_k = np.zeros((D, D))
for i, b in enumerate(k * w):
    M_k[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[np.cos(b), -np.sin(b)], [np.sin(b), np.cos(b)]]
shift_error = np.abs(pe[:-k] @ M_k - pe[k:]).max()
print(f"max |PE_p M_k - PE_(p+{k})| over all {L - k} positions: {shift_error:.1e}")
assert shift_error < 1e-4

# %% [markdown]
# ## Check your understanding
#
# **Question.** What is `PE_p . PE_p` (the squared length of every positional vector) for an
# even `d_model`? Write a formula in `d_model`, then run the cell.

# %%
def squared_length(d_model):
    return None  # your formula


# The dot product depends only on the offset: every diagonal of the Gram matrix is constant.
assert all(np.allclose(np.diag(gram, k=o), np.diag(gram, k=o)[0], atol=1e-3) for o in range(L))
wider = np.asarray(sinusoidal_positions(L, 2 * D))  # a second width, to test the formula
lengths = {D: np.diag(gram), 2 * D: np.sum(wider * wider, axis=1)}
check("05.squared_length", squared_length,
      lambda formula: all(np.allclose(lengths[d], formula(d), atol=1e-3) for d in lengths))
