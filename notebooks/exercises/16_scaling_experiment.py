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
# # Exercise 16 (open-ended): what does 1/sqrt(d_k) do to the attention weights?
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`01_scores_and_scaling`](../01_scores_and_scaling.ipynb) | ★★☆ medium | about 40 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# Notebook 01 showed that the variance of a dot product q . k of two random d_k-dimensional
# vectors grows like d_k. Here you measure what that does to the softmax, and decide for
# yourself how much the scale matters. The checker grades **your measurement, not your
# conclusion**: it re-runs the experiment on its own random draws and compares, and it
# recomputes every number you report from your function.
#
# **The experiment.** Draw 512 queries `q [512, d_k]` and 64 keys `k [64, d_k]`, all entries
# standard normal (from `seed`: `jax.random.key(seed)`); the scores are `q @ k.T`, divided by
# `sqrt(d_k)` when `scaled` is True. For each query take the softmax over the 64 keys and its
# entropy `-sum_s p_s log p_s` in **nats** (natural log); return the mean over the 512
# queries. Uniform weights give log(64) = 4.16 nats; one-hot weights give 0.
#
# 1. Write `attention_entropy(d_k, scaled, seed=0)` returning that mean, one number.
# 2. Run it for at least three head dims from 16 or less to 256 or more (say 4, 16, 64, 256,
#    1024), scaled and not, with `seed=0`, and write the numbers into `my_measurements()`:
#    a tuple of `(d_k, entropy_scaled, entropy_unscaled)` rows.
# 3. In the last cell, say in a few sentences what you conclude (not graded: bring it to
#    class). What happens to the gradient of a softmax that is nearly one-hot?
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. Until you fill the blank, the check says "not implemented yet" (it never stops
# the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_scaling_experiment

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Split one key into two with `jax.random.split(jax.random.key(seed))`, one for the queries and
# one for the keys, so that the same seed always gives the same numbers.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# `jax.nn.log_softmax(scores, axis=-1)` gives finite log p even where p underflows to 0; the
# entropy is `-jnp.sum(jnp.exp(log_p) * log_p, axis=-1)`.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Fill `my_measurements()` by running your function and copying what it prints (four decimals
# are enough); the checker recomputes each number.
#
# </details>


# %% tags=["exercise"]
def attention_entropy(d_k, scaled, seed=0):
    """Mean over 512 queries of the entropy (nats) of the softmax over 64 keys."""
    raise NotImplementedError("your code here")


def my_measurements():
    """Your numbers: ((d_k, entropy_scaled, entropy_unscaled), ...), measured with seed=0."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_scaling_experiment(attention_entropy, my_measurements)

# %% [markdown]
# **Your conclusion** (not graded): ...
