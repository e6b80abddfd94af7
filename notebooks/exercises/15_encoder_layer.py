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
# # Exercise 15: an encoder layer
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`06_encoder_and_decoder`](../06_encoder_and_decoder.ipynb) | ★★☆ medium | about 30 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# An encoder layer is two **residual blocks**: self-attention, then the position-wise
# feed-forward network (section 3.1). Each block adds its sub-layer's output back to its
# input (the residual connection), applies residual dropout to the sub-layer's output before
# the add (section 5.4), and has its own layer norm, in one of two places:
#
#     post-LN (the paper):  x = norm(x + dropout(sublayer(x)))
#     pre-LN  (GPT-2 and most models since; analysed by Xiong et al. 2020):
#                           x = x + dropout(sublayer(norm(x)))
#
# Write `encoder_layer(x [B, S, D], src_mask [B, 1, 1, S], layer, norm_first=False,
# deterministic=True)`. You do not write the sub-layers: `layer` gives them to you, and you
# assemble them:
#
# * `layer.self_attention(h, mask)`: multi-head self-attention of `h` `[B, S, D]`;
# * `layer.feed_forward(h)`: the feed-forward network;
# * `layer.norm1(h)`, `layer.norm2(h)`: the LayerNorm of the attention block and of the
#   feed-forward block;
# * `layer.dropout(h, deterministic)`: residual dropout; the identity when `deterministic` is
#   True (evaluation), random zeros (and a 1/(1-p) rescale) when it is False (training).
#
# Pass the arguments positionally, as written above. The checker compares your layer with the
# package's `EncoderLayer` in evaluation (post-LN and pre-LN), and in training checks that
# dropout goes where section 5.4 puts it.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, compares it with the `attention`
# package and explains the first problem it finds. Until you fill the blank, the check says
# "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_encoder_layer

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Write one residual block first, then use it twice: with (attention, norm1), then with
# (feed-forward, norm2).
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# Post-LN: x = norm(x + dropout(sublayer(x))). Pre-LN: x = x + dropout(sublayer(norm(x))): the
# residual path carries x itself, not norm(x), and the output is not normalised again.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Call `layer.dropout(y, deterministic)` once per block, on the sub-layer's output y, before the
# add; never with deterministic=False in evaluation.
#
# </details>


# %% tags=["exercise"]
def encoder_layer(x, src_mask, layer, norm_first=False, deterministic=True):
    """Self-attention then feed-forward, each in a residual block; post-LN or pre-LN."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_encoder_layer(encoder_layer)
