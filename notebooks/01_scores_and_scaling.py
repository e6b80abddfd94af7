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
# # 01 Dot-product scores, and why we divide by sqrt(d_k) (step 1)
#
# Goals:
#
# 1. Compute attention scores, the dot product of every query with every key, with
#    `attention.dot_product_scores`, and read their shape `[B, N, T, S]`.
# 2. Measure the variance argument of the paper (section 3.2.1): the variance of `q . k`
#    grows like `d_k`, and dividing by `sqrt(d_k)` brings it back to 1.
# 3. See what unscaled scores do to the softmax (it saturates) and to its gradients (they
#    vanish).
#
# The paper's equation (1):
#
# $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d_k}}\Big) V$$
#
# This notebook is about the part inside the softmax.

# %%
# %matplotlib inline
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

from attention import default_scale, dot_product_scores, masked_softmax
from attention.comprehension import check, show_code

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
NUM_SAMPLES = 2_000 if FAST else 20_000  # random (q, k) pairs per width
WIDTHS = [4, 64, 256] if FAST else [4, 16, 64, 256, 1024]
print("fast setting:", FAST)

# %% [markdown]
# ## 1. Scores for every query-key pair
#
# Axes follow the package's glossary (BTNH, the order of `jax.nn.dot_product_attention`):
# `B` batch, `T` queries, `S` keys, `N` heads, `H` head width (the paper's `d_k`). Queries are
# `[B, T, N, H]`, keys `[B, S, N, H]` and the scores come out `[B, N, T, S]`: for each head,
# a T-by-S table with one number per (query, key) pair,
#
# $$\text{scores}[b, n, t, s] = \frac{1}{\sqrt{H}} \sum_h q[b, t, n, h]\, k[b, s, n, h].$$

# %%
kq, kk = jax.random.split(jax.random.key(0))
query = jax.random.normal(kq, (2, 3, 4, 8))   # B=2, T=3, N=4, H=8
key = jax.random.normal(kk, (2, 5, 4, 8))     # B=2, S=5, N=4, H=8
scores = dot_product_scores(query, key)
print("scores [B, N, T, S]:", scores.shape, "  scale 1/sqrt(8) =", round(default_scale(8), 4))
# One entry by hand: batch 1, head 2, query 0, key 4.
by_hand = query[1, 0, 2] @ key[1, 4, 2] / jnp.sqrt(8.0)
print(float(scores[1, 2, 0, 4]), "==", float(by_hand))

# %% [markdown]
# That is all step 1 computes. Here is the package's `dot_product_scores` as it runs, without
# its docstring and argument checks (`show_code` shows any function of the package this way; the
# einsum string names the axes):

# %%
show_code(dot_product_scores)

# %% [markdown]
# ## 2. The variance argument, measured
#
# Suppose the components of `q` and `k` are independent with mean 0 and variance 1. Each
# product `q_h k_h` then has mean 0 and variance 1, and the dot product is a sum of `d_k` of
# them, so
#
# $$\operatorname{Var}(q \cdot k) = d_k, \qquad \operatorname{Var}\Big(\frac{q \cdot k}{\sqrt{d_k}}\Big) = 1.$$
#
# The typical size of a raw score is `sqrt(d_k)`: 32 for `d_k = 1024`. We check this by
# sampling, with the package computing the scores both ways (`scale=1.0` turns scaling off).

# %%
raw_var, scaled_var = [], []
for d_k in WIDTHS:
    kq, kk = jax.random.split(jax.random.key(d_k))
    q = jax.random.normal(kq, (1, NUM_SAMPLES, 1, d_k))  # NUM_SAMPLES queries
    k = jax.random.normal(kk, (1, NUM_SAMPLES, 1, d_k))
    # The diagonal pairs query i with key i: NUM_SAMPLES independent dot products.
    raw = jnp.diagonal(dot_product_scores(q[:, :1000], k[:, :1000], scale=1.0)[0, 0])
    raw = jnp.concatenate([raw, jnp.sum(q[0, 1000:, 0] * k[0, 1000:, 0], axis=-1)])
    raw_var.append(float(jnp.var(raw)))
    scaled_var.append(float(jnp.var(raw * default_scale(d_k))))
    print(f"d_k={d_k:5d}   Var(q.k) = {raw_var[-1]:8.1f}   Var(q.k / sqrt(d_k)) = {scaled_var[-1]:.3f}")

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(WIDTHS, raw_var, "o-", label="q . k (unscaled)")
ax.loglog(WIDTHS, scaled_var, "s-", label="q . k / sqrt(d_k)")
ax.loglog(WIDTHS, WIDTHS, "k:", label="d_k (theory)")
ax.set_xlabel("d_k (head width)")
ax.set_ylabel("variance of the score")
ax.legend()
ax.set_title("Scores grow with d_k unless scaled")
plt.show()

# %% [markdown]
# ## 3. Big scores saturate the softmax
#
# The softmax turns a row of scores into weights. What does it do with scores as spread out
# as the unscaled ones above? Below, each row holds `S = 10` scores drawn as above, and we
# measure the average largest weight and the entropy of the weights (log 10 = 2.30 nats for
# uniform weights, 0 for a one-hot row).
#
# **Predict, then run.** For `d_k = 256` and *unscaled* scores, the mean largest weight of a
# row of 10 will be (a) about 0.1 (uniform), (b) about 0.5, or (c) close to 1? Write your
# letter, then run the next two cells.

# %%
my_prediction = None  # "a", "b" or "c"

# %%
S = 10
rows = 100 if FAST else 2000
max_weight, entropy = {"unscaled": [], "scaled": []}, {"unscaled": [], "scaled": []}
for d_k in WIDTHS:
    kq, kk = jax.random.split(jax.random.key(100 + d_k))
    q = jax.random.normal(kq, (rows, 1, 1, d_k))      # B=rows, T=1, N=1
    k = jax.random.normal(kk, (rows, S, 1, d_k))      # B=rows, S=10 keys each
    for name, scale in [("unscaled", 1.0), ("scaled", None)]:
        w = masked_softmax(dot_product_scores(q, k, scale=scale))[:, 0, 0]  # [rows, S]
        max_weight[name].append(float(w.max(axis=-1).mean()))
        entropy[name].append(float(-(w * jnp.log(w + 1e-30)).sum(axis=-1).mean()))
for i, d_k in enumerate(WIDTHS):
    print(f"d_k={d_k:5d}  largest weight: unscaled {max_weight['unscaled'][i]:.3f}, "
          f"scaled {max_weight['scaled'][i]:.3f}   entropy: unscaled {entropy['unscaled'][i]:.2f}, "
          f"scaled {entropy['scaled'][i]:.2f} nats")
largest = max_weight["unscaled"][WIDTHS.index(256)]
measured = "c" if largest > 0.8 else "b" if largest > 0.3 else "a"
check("01.largest_weight", my_prediction, lambda answer: answer == measured)

# %% [markdown]
# Scores spread over a range of about 30 give the largest one nearly all the weight: the
# softmax becomes an argmax, and the query looks at one key and ignores the rest.
#
# ## 4. ... and saturated softmaxes pass back almost no gradient
#
# The Jacobian of the softmax is `dw_i / dx_j = w_i (delta_ij - w_j)`. For a one-hot `w`
# every entry is 0: whatever the loss says, the scores (and the queries and keys behind them)
# receive no gradient. We measure the size (Frobenius norm) of the Jacobian with `jax.jacobian`
# of the package's softmax.

# %%
def jacobian_norm(scores_S):
    return jnp.linalg.norm(jax.jacobian(masked_softmax)(scores_S))


jacobian_norms = {"unscaled": [], "scaled": []}
for d_k in WIDTHS:
    kq, kk = jax.random.split(jax.random.key(100 + d_k))
    q = jax.random.normal(kq, (rows, 1, 1, d_k))
    k = jax.random.normal(kk, (rows, S, 1, d_k))
    for name, scale in [("unscaled", 1.0), ("scaled", None)]:
        scores_rows_S = dot_product_scores(q, k, scale=scale)[:, 0, 0]
        jacobian_norms[name].append(float(jax.vmap(jacobian_norm)(scores_rows_S).mean()))

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for name, marker in [("unscaled", "o-"), ("scaled", "s-")]:
    axes[0].semilogx(WIDTHS, max_weight[name], marker, label=name)
    axes[1].loglog(WIDTHS, jacobian_norms[name], marker, label=name)
axes[0].set_ylabel("mean largest softmax weight")
axes[1].set_ylabel("mean |d softmax / d scores|")
for ax in axes:
    ax.set_xlabel("d_k (head width)")
    ax.legend()
fig.suptitle(f"Softmax over S={S} random scores")
fig.tight_layout()
plt.show()

# %% [markdown]
# With scaling, the softmax keeps the same spread and the same gradient size whatever the
# head width; without it, wide heads start training with attention that is already stuck.
#
# ## Check your understanding
#
# **Question.** If the components of `q` and `k` have variance `sigma^2` instead of 1, what is
# `Var(q . k)` for width `d_k`? Write the formula in the function and run its cell, then run
# the next one: it measures the variance, compares your formula with it, and explains once
# you are right.

# %%
def predicted_variance(d_k, sigma):
    return None  # your formula


# %%
def measured_variance(d_k, sigma, seed=7):
    kq, kk = jax.random.split(jax.random.key(seed))
    q = sigma * jax.random.normal(kq, (50_000, d_k))
    k = sigma * jax.random.normal(kk, (50_000, d_k))
    return float(jnp.var(jnp.sum(q * k, axis=-1)))


settings = [(64, 0.5), (16, 2.0), (7, 1.5)]  # (d_k, sigma)
measured = {setting: measured_variance(*setting) for setting in settings}
check("01.variance_sigma", predicted_variance,
      lambda formula: all(abs(formula(*setting) - value) < 0.1 * value
                          for setting, value in measured.items()))
print("measured Var(q . k):", {f"d_k={d}, sigma={s}": round(v, 2) for (d, s), v in measured.items()})
