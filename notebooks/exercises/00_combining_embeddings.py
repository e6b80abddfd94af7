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
# # Exercise 00: combining two embeddings
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`00_multiplying_embeddings`](../00_multiplying_embeddings.ipynb) | ★☆☆ easy | about 15 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# Two embeddings `u` and `v` of the same width D can be combined element-wise: their **sum**
# `u + v`, their **difference** `u - v` and their **element-wise product** `u * v`. Summed
# over D, the product is the dot product `u . v` that attention uses as a score
# (notebook `00_multiplying_embeddings`).
#
# 1. Write `combine_embeddings(u, v)` returning the three combinations, in the order
#    (sum, difference, product). `u` and `v` are `[B, D]` (a batch of pairs).
# 2. Answer: fed to a linear model `w . c`, which combination `c` lets the model capture an
#    **interaction** between u and v, an effect of u that depends on v?
#    (a) the sum, (b) the difference, (c) the element-wise product.
#    Set `INTERACTION_ANSWER` to `"a"`, `"b"` or `"c"`.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_combine_embeddings

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Each of the three is one jax.numpy operation on the two [B, D] arrays; none needs a sum.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# The order of the returned tuple is (sum, difference, product), and the difference is u - v.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# For the question: write out coordinate d of each result. Which one contains a term that
# depends on u_d and v_d together (not a sum of a part from u and a part from v)?
#
# </details>


# %% tags=["exercise"]
def combine_embeddings(u, v):
    """u, v: [B, D] -> (u + v, u - v, u * v), each [B, D]."""
    raise NotImplementedError("your code here")


INTERACTION_ANSWER = ""  # "a", "b" or "c"


# %% tags=["check"]
check_combine_embeddings(combine_embeddings, INTERACTION_ANSWER)


# %% [markdown]
# <details><summary>Why (open it once your check passes)</summary>
#
# `w . (u + v) = w . u + w . v` and `w . (u - v) = w . u - w . v` are sums of one term
# for `u` and one for `v`: the effect of `u` never depends on `v`. `w . (u * v) =
# sum_d w_d u_d v_d` has a term in which both appear, large only when both are large, and
# with a sign that says whether they agree.
#
# </details>
