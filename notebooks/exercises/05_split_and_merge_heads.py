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
# # Exercise 05: splitting and merging heads
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`04_multi_head_attention`](../04_multi_head_attention.ipynb) | ★☆☆ easy | about 15 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# Multi-head attention computes all heads' projections as one `[B, T, D]` array and then
# splits the last axis into N heads of size H = D / N: head n is the **contiguous block** of
# features `n*H .. (n+1)*H - 1`. Write `split_heads(x, num_heads)`: `[B, T, D] -> [B, T, N, H]`
# and its inverse `merge_heads(x)`: `[B, T, N, H] -> [B, T, D]`.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_split_merge_heads

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Head n holds the contiguous features n*H .. (n+1)*H - 1: that is exactly what a reshape of the
# last axis gives.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# No transpose is needed in BTNH order: [B, T, D] -> [B, T, N, H] is one reshape.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# merge_heads is the inverse reshape; test that merge_heads(split_heads(x, N)) gives x back.
#
# </details>


# %% tags=["exercise"]
def split_heads(x, num_heads):
    """[B, T, D] -> [B, T, N, H] with H = D // num_heads."""
    raise NotImplementedError("your code here")


def merge_heads(x):
    """[B, T, N, H] -> [B, T, N * H], the inverse of split_heads."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_split_merge_heads(split_heads, merge_heads)
