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
# # Exercise 06: multi-head attention
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`04_multi_head_attention`](../04_multi_head_attention.ipynb) | ★★☆ medium | about 35 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# (Vaswani et al. 2017, section 3.2.2)
#
#     MultiHead(X) = Concat(head_1, ..., head_h) W^O,   head_i = Attention(X W_i^Q, X W_i^K, X
# W_i^V)
#
# All heads' projections are stored as one `[D, D]` matrix each (`w_q`, `w_k`, `w_v`), so:
# project, split into `num_heads` heads of size `d_k = D / num_heads`, attend in each head
# with `1/sqrt(d_k)`, merge, and multiply by `w_o`. `x` is `[B, T, D]` (self-attention), the
# optional `mask` is boolean, broadcastable to `[B, N, T, S]`. No biases.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_multi_head_attention

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Project with the three matrices (x @ w_q ...), split each into heads (exercise 05), attend
# (exercise 04), merge, then project with w_o.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# Each head's scores are divided by sqrt(H) with H = D / num_heads, not by sqrt(D).
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Do not forget the final multiplication by w_o.
#
# </details>


# %% tags=["exercise"]
def multi_head_attention(x, w_q, w_k, w_v, w_o, num_heads, mask=None):
    """x [B, T, D], weights [D, D] -> [B, T, D]."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_multi_head_attention(multi_head_attention)
