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
# # Exercise 13: a sliding-window mask
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`11_attention_in_todays_models`](../11_attention_in_todays_models.ipynb) | ★☆☆ easy | about 15 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# With a causal mask, token t attends all t + 1 tokens up to itself: the cost of a layer grows
# as T^2 and the KV cache as T. **Sliding-window attention** (Beltagy et al. 2020,
# "Longformer"; Mistral 7B, Jiang et al. 2023) lets token t attend only a fixed window of
# recent tokens: **itself and the `window` tokens before it**, keys
#
#     t - window <= s <= t.
#
# Information from further back still arrives through depth: after L layers a token can be
# reached from L * window positions back. This is `jax.nn.dot_product_attention(...,
# is_causal=True, local_window_size=(window, 0))`, and Mistral's window of 4096 tokens.
#
# Write `sliding_window_mask(T, window)` returning a **boolean** `[T, T]` array, True = may
# attend (rows are queries t, columns keys s). For T = 5, window = 2:
#
#     t=0  1 0 0 0 0
#     t=1  1 1 0 0 0
#     t=2  1 1 1 0 0
#     t=3  0 1 1 1 0
#     t=4  0 0 1 1 1
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_sliding_window_mask

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Start from the causal mask s <= t and add a second condition on the distance t - s.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# Token t sees itself and the `window` tokens before it: window + 1 keys in all (fewer at the
# start).
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Combine the two boolean conditions with `&`.
#
# </details>


# %% tags=["exercise"]
def sliding_window_mask(T, window):
    """Boolean [T, T]: True where t - window <= s <= t."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_sliding_window_mask(sliding_window_mask)
