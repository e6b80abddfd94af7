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
