# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 01: dot-product scores
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`01_scores_and_scaling`](../01_scores_and_scaling.ipynb) | ★☆☆ easy | about 20 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# Attention compares each query with every key by a dot product, scaled by `1/sqrt(d_k)`
# (Vaswani et al. 2017, section 3.2.1):
#
#     scores[b, n, t, s] = sum_h query[b, t, n, h] * key[b, s, n, h] / sqrt(H)
#
# Shapes (the package's BTNH order): `query` is `[B, T, N, H]`, `key` is `[B, S, N, H]`, and
# the scores are `[B, N, T, S]`. `jnp.einsum` with the axis letters is the easiest way.
# Make it work for any batch size, under `jax.jit` and under `jax.vmap` too.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_dot_product_scores

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Write the shapes with letters: query BTNH, key BSNH, scores BNTS. One `jnp.einsum` with those
# letters does it.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# The head dim H is the last axis of query (`query.shape[-1]`); divide by its square root.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Count axes from the right (`[-1]`) so that jax.vmap's extra leading axis does not break your
# code.
#
# </details>


# %% tags=["exercise"]
def dot_product_scores(query, key):
    """query [B, T, N, H], key [B, S, N, H] -> scores [B, N, T, S], divided by sqrt(H)."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_dot_product_scores(dot_product_scores)


# %% [markdown]
# Mistakes the checker recognises: axes in the wrong order (it names the swapped axes), a
# missing or doubled `1/sqrt(d_k)` (it measures the factor), code that breaks under
# `jax.jit` or `jax.vmap`.
