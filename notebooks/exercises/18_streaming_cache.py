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
# # Exercise 18: the StreamingLLM cache
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`14_attention_since_2023`](../14_attention_since_2023.ipynb) | ★★☆ medium | about 30 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# A model that streams text for ever cannot keep every token's keys and values. Keeping only
# the last `w` tokens (a sliding window) fails as soon as the first tokens leave it: trained
# models put a large attention weight on the first few tokens whatever they are, the
# **attention sinks** (Xiao et al. 2023, "Efficient Streaming Language Models with Attention
# Sinks", section 3.1). StreamingLLM keeps the first `n` tokens for ever, next to a rolling
# window of the last `w`, in one cache of `n + w` slots:
#
#     slots  [ 0 .. n-1 : the sinks | n .. n+w-1 : the window, a ring buffer ]
#
# Token p of the text (p = 0, 1, ...) goes to slot p while p < n; after that the window
# slots are used in turn, and when they are full the oldest window token is overwritten.
# With n = 2, w = 3 the tokens p = 0 .. 6 go to the slots 0, 1, 2, 3, 4, 2, 3.
#
# The positions the model sees (for RoPE) are those **in the cache**, not in the text
# (section 3.2): the sinks are at 0 .. n - 1, then the window's tokens, oldest first. After
# 7 tokens above, the slots hold tokens [0, 1, 5, 6, 4] and their positions are
# [0, 1, 3, 4, 2]: no position ever exceeds n + w - 1.
#
# Write
#
# * `streaming_slot(position, num_sinks, window)`: the slot token `position` is written to;
# * `streaming_positions(seen, num_sinks, window)`: an int array `[num_sinks + window]`, the
#   cache position of each slot after `seen` tokens, **-1** for a slot that holds no token
#   yet (after 3 tokens above: [0, 1, 2, -1, -1]).
#
# Both run inside a jitted decoding loop where the count of tokens is a traced array: no
# Python `if` on it (use `jnp.where`), and `num_sinks` may be 0 (a plain sliding window).
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_streaming_cache

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# The window's first token is p = n, and it goes to the window's first slot, n: count the ring
# from there, n + (p - n) mod w.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# The newest token, seen - 1, is in window slot (seen - 1 - n) mod w. A window slot j holds the
# token of age (newest slot - j) mod w (0 = newest).
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# With s = min(seen, n) sinks and k = clip(seen - n, 0, w) window tokens kept, the token of age
# a is at position s + k - 1 - a; a window slot is empty when its age is k or more, a sink slot
# when its index is seen or more.
#
# </details>


# %% tags=["exercise"]
def streaming_slot(position, num_sinks, window):
    """The slot of [sinks | window] that text token `position` is written to."""
    raise NotImplementedError("your code here")


def streaming_positions(seen, num_sinks, window):
    """Int [num_sinks + window]: each slot's cache position after `seen` tokens, -1 if empty."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_streaming_cache(streaming_slot, streaming_positions)
