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
# (Vaswani et al. 2017, section 3.2.2)
#
#     MultiHead(X) = Concat(head_1, ..., head_h) W^O,   head_i = Attention(X W_i^Q, X W_i^K, X W_i^V)
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


# %% tags=["exercise"]
def multi_head_attention(x, w_q, w_k, w_v, w_o, num_heads, mask=None):
    """x [B, T, D], weights [D, D] -> [B, T, D]."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_multi_head_attention(multi_head_attention)
