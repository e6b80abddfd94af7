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
# # Exercise 12: rotary position embeddings (RoPE)
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`11_attention_in_todays_models`](../11_attention_in_todays_models.ipynb) | ★★★ hard | about 35 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# Sinusoidal positions are *added* to the embeddings. Rotary position embeddings (Su et al.
# 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding") instead *rotate* the
# queries and keys of every layer by an angle proportional to their position. Split a head
# vector of even size H into H/2 pairs; pair i is rotated by the angle `pos * theta_i` with
#
#     theta_i = base^(-2i / H),   i = 0, 1, ..., H/2 - 1,   base = 10000
#
# (the frequencies of the sinusoidal encoding). Because a rotation by a followed by the
# transpose of a rotation by b is a rotation by a - b, the score of a query at position m and a
# key at position n depends only on **m - n**: attention sees relative positions.
#
# **Which features form a pair.** This exercise, like the package
# (`attention.model.positional.apply_rope`) and the RoFormer paper, pairs **neighbouring
# features (x_2i, x_2i+1)**: `x[..., 0::2]` with `x[..., 1::2]`. (Some code, GPT-NeoX and
# Hugging Face's Llama, pairs x_i with x_{i+H/2} instead: a permutation of the features, fine
# inside one model but not interchangeable; the checker tells you if you used it.) Pair i
# becomes
#
#     (x_2i cos a - x_2i+1 sin a,  x_2i sin a + x_2i+1 cos a),   a = pos * theta_i.
#
# Write two functions:
#
# 1. `apply_rope(x, positions, base=10000.0)`: `x` is `[T, N, H]` or `[B, T, N, H]`,
#    `positions` an integer array `[T]` (not necessarily 0..T-1: with a cache, new tokens
#    sit later); returns the rotated `x`, same shape.
# 2. `rope_attention(query, key, value, positions)`: self-attention (`[B, T, N, H]` each) of
#    the rotated queries and keys. Here you may use `jax.nn.dot_product_attention` for the
#    attention itself; the question is *what* to rotate.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_rotary_positions

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Pair i is (x[..., 2i], x[..., 2i+1]): `x[..., 0::2]` and `x[..., 1::2]`.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# theta_i = base^(-2i/H) for i = 0 .. H/2 - 1; the angle is positions[t] * theta_i, shape [T,
# H/2], broadcast over the heads.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Rotate (a, b) to (a cos - b sin, a sin + b cos), then interleave back with `jnp.stack([...],
# axis=-1).reshape(x.shape)`. Rotate the queries and the keys, never the values.
#
# </details>


# %% tags=["exercise"]
def apply_rope(x, positions, base=10000.0):
    """Rotate pairs (x_2i, x_2i+1) of x [..., T, N, H] by positions[t] * base^(-2i/H)."""
    raise NotImplementedError("your code here")


def rope_attention(query, key, value, positions):
    """Attention [B, T, N, H] with rotary positions."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_rotary_positions(apply_rope, rope_attention)
