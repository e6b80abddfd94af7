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
# # Exercise 04: scaled dot-product attention
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`03_scaled_dot_product_attention`](../03_scaled_dot_product_attention.ipynb) | ★★☆ medium | about 30 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# Put the steps together (Vaswani et al. 2017, eq. 1):
#
#     Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k), masked) V
#
# `query [B, T, N, H]`, `key [B, S, N, H]`, `value [B, S, N, H]`, an optional boolean `mask`
# broadcastable to the scores `[B, N, T, S]` (True = may attend). Return `[B, T, N, H]`. A
# query whose keys are all masked gets a zero vector. The checker also verifies, through
# gradients, that no output position depends on a position its mask hides.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_scaled_dot_product_attention

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Three steps: scores (exercise 01), a masked softmax over the keys (exercise 03), then a
# weighted sum of the values.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# The weighted sum is `jnp.einsum("bnts,bsnh->btnh", weights, value)`: the output is back in
# BTNH.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# With `mask=None` every key is allowed; a mask of shape [B, 1, 1, S] or [T, S] must broadcast
# to the scores [B, N, T, S].
#
# </details>


# %% tags=["exercise"]
def scaled_dot_product_attention(query, key, value, mask=None):
    """[B, T, N, H], [B, S, N, H], [B, S, N, H], mask -> [B, T, N, H]."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_scaled_dot_product_attention(scaled_dot_product_attention)
