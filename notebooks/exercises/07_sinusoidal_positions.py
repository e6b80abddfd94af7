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


# %% tags=["exercise"]
def sinusoidal_positions(max_len, d_model):
    """[max_len, d_model] table of sines (even dims) and cosines (odd dims)."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_sinusoidal_positions(sinusoidal_positions)
