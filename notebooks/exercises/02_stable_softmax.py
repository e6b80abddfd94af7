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
# # Exercise 02: a numerically stable softmax
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`02_softmax_and_masks`](../02_softmax_and_masks.ipynb) | ★☆☆ easy | about 20 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# The softmax turns a row of scores into weights that are positive and sum to one:
#
#     softmax(x)_s = exp(x_s) / sum_s' exp(x_s')
#
# Computed as written, `exp` overflows for scores above about 88 in float32. Softmax does not
# change when the same constant is subtracted from a whole row, so subtract each row's
# **maximum** first. Write `stable_softmax(scores)` over the last axis (the keys S) of scores
# `[B, N, T, S]`.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_stable_softmax

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# softmax(x) = softmax(x - c) for any constant c per row: subtracting each row's maximum keeps
# exp from overflowing.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# Use `keepdims=True` in the max and in the sum, so that they broadcast back over the row.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# The softmax is over the keys: the last axis.
#
# </details>


# %% tags=["exercise"]
def stable_softmax(scores):
    """Softmax over the last axis; no NaN or inf for scores near +-1000."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_stable_softmax(stable_softmax)


# %% [markdown]
# The checker tries rows near +1000 (overflow), near -1000 (0 / 0) and rows at very different
# levels (one maximum for the whole array is not enough).
