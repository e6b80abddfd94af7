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
# # Exercise 07: sinusoidal positional encoding
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`05_positional_encodings`](../05_positional_encodings.ipynb) | ★☆☆ easy | about 20 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# Attention cannot see word order, so the transformer adds a position signal to each
# embedding (section 3.5):
#
#     PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
#     PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))
#
# Write `sinusoidal_positions(max_len, d_model)` returning the `[max_len, d_model]` table
# (positions from 0; even dimensions sine, odd dimensions cosine of the same angle).
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_sinusoidal_positions

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Build a column of positions [L, 1] and a row of exponents [1, D]; their ratio broadcasts to
# the [L, D] table of angles.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# Features 2i and 2i+1 share the angle pos / 10000^(2i/d): `jnp.arange(d) // 2 * 2` gives 2i for
# both.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Even features take the sine, odd ones the cosine: `jnp.where(jnp.arange(d) % 2 == 0, sin,
# cos)`.
#
# </details>


# %% tags=["exercise"]
def sinusoidal_positions(max_len, d_model):
    """[max_len, d_model] table of sines (even dims) and cosines (odd dims)."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_sinusoidal_positions(sinusoidal_positions)
