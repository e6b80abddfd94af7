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
# # Exercise 14: layer normalisation by hand
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`06_encoder_and_decoder`](../06_encoder_and_decoder.ipynb) | ★☆☆ easy | about 20 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# Every sub-layer of the Transformer sits in a residual block with a layer norm (section 3.1;
# Ba, Kiros & Hinton 2016). Layer norm normalises **each position's vector over its own D
# features**, then scales and shifts it by two learned vectors, `scale` (gamma) and `bias`
# (beta):
#
#     mean = mean_d x[..., d]        var = mean_d (x[..., d] - mean)^2
#     LayerNorm(x) = scale * (x - mean) / sqrt(var + epsilon) + bias
#
# Write `layer_norm(x [..., D], scale [D], bias [D], epsilon=1e-6)`. The checker compares it
# with `attention.model.layer_norm`, which the package's tests hold equal to `nnx.LayerNorm`
# (what the model uses). It uses a large `epsilon` (0.01) and positions whose variance is
# close to it, so where you put epsilon shows.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_layer_norm

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Mean and variance over the last axis only (`axis=-1, keepdims=True`): each position is
# normalised on its own.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# The variance is the biased one, the mean of (x - mean)^2 (dividing by D, not D - 1; `jnp.var`
# with its default ddof=0).
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# epsilon goes inside the square root, sqrt(var + epsilon); then multiply by scale and add bias.
#
# </details>


# %% tags=["exercise"]
def layer_norm(x, scale, bias, epsilon=1e-6):
    """x [..., D] normalised over its last axis, scaled by scale [D], shifted by bias [D]."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_layer_norm(layer_norm)
