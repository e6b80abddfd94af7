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
# # Exercise 03: causal and padding masks, and a masked softmax
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`02_softmax_and_masks`](../02_softmax_and_masks.ipynb) | ★★☆ medium | about 35 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# A mask is a boolean array, **True = may attend** (the convention of
# `jax.nn.dot_product_attention`). Write three functions:
#
# 1. `causal_mask(T, S)`: `[T, S]`, query t may attend key s when `s <= t` (the decoder may
#    not look at the words it must predict).
# 2. `padding_mask(lengths, max_len)`: `[B, 1, 1, S]`, True for the real tokens
#    `s < lengths[b]`; the two axes of size 1 broadcast over heads N and queries T.
# 3. `masked_softmax(scores, mask)`: softmax over the last axis in which positions with
#    `mask == False` get weight exactly 0. A row where every key is masked must give **all
#    zeros** (the package's convention), never NaN. Avoid `-inf`: `-inf - (-inf)` is NaN.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_masking

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# A causal mask is a comparison of two `jnp.arange`s, one as a column ([:, None]) and one as a
# row ([None, :]).
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# The padding mask: compare `jnp.arange(max_len)` with `lengths[:, None]`, then add the two axes
# of size 1 with `[:, None, None, :]`.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Masked softmax: replace the masked scores by a large finite negative (`jnp.finfo(dtype).min`)
# before the max and the exp, zero the masked exponentials with `jnp.where`, and divide by the
# sum where it is positive (by 1 elsewhere).
#
# </details>


# %% tags=["exercise"]
def causal_mask(T, S):
    """Boolean [T, S], True where s <= t."""
    raise NotImplementedError("your code here")


def padding_mask(lengths, max_len):
    """lengths [B] -> boolean [B, 1, 1, max_len], True where s < lengths[b]."""
    raise NotImplementedError("your code here")


def masked_softmax(scores, mask):
    """scores [B, N, T, S], boolean mask broadcastable to it -> weights, 0 where masked."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_masking(causal_mask, padding_mask, masked_softmax)
