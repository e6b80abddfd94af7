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
# # Exercise 08: the decoder's causal self-attention
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`06_encoder_and_decoder`](../06_encoder_and_decoder.ipynb) | ★★☆ medium | about 30 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# The first sub-layer of a decoder layer (`attention.model.decoder.DecoderLayer`) is masked
# multi-head self-attention: position t may attend positions `s <= t` only, so that the
# prediction for position t+1 cannot peek at it (section 3.2.3). Write it for `x [B, T, D]`
# with the weights of exercise 06 (no biases): build the causal mask yourself. The checker
# verifies causality through gradients: `d out[t] / d x[s]` must be 0 for every `s > t`.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_causal_self_attention

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# It is exercise 06 with one change: the keys are the same positions as the queries, and query t
# may use keys s <= t only.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# The mask is [T, T] and broadcasts over batch and heads; apply it before the softmax.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# The checker tests causality through gradients: a later position must have no influence at all
# on an earlier output, whatever the weights.
#
# </details>


# %% tags=["exercise"]
def causal_self_attention(x, w_q, w_k, w_v, w_o, num_heads):
    """x [B, T, D] -> [B, T, D]; position t sees positions s <= t."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_causal_self_attention(causal_self_attention)
