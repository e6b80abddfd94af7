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
# # Exercise 09: greedy decoding
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`09_decoding`](../09_decoding.ipynb) | ★★☆ medium | about 30 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# A trained `attention.Transformer` gives the probabilities of the next target token. To
# translate, start with `bos`, pick the most probable token, append it, and repeat.
# Write `greedy_decode(model, src_tokens, max_len)`:
#
# * `memory = model.encode(src_tokens, deterministic=True)` once;
# * at step t, `model.decode(inputs, memory, src_tokens, deterministic=True)` gives logits
#   `[B, L, V]`; position t predicts the token after input t. Keep `inputs` a fixed-size buffer
#   `[B, max_len]`: bos, the tokens so far, then `pad_id` (the causal mask makes the rest
#   irrelevant, and a fixed shape means JAX compiles once);
# * never choose `pad_id` or `bos_id` (set their logits to -1e9 before `argmax`);
# * once a row produced `eos_id`, every later token of that row is `pad_id`;
# * return the tokens `[B, max_len]` **without** the leading bos.
#
# The ids are in `model.config` (`bos_id`, `eos_id`, `pad_id`).
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_greedy_decoding

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Encode the source once (`model.encode(src_tokens, deterministic=True)`); decode inside a loop
# of max_len steps.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# At step t the prediction for the next token is at position t of the decoder's output (the
# position of the last input), not always the last position of a padded buffer.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Keep a `finished` flag per row: after eos a row emits pad_id; never choose pad or bos (set
# their logits to a large negative number before the argmax).
#
# </details>


# %% tags=["exercise"]
def greedy_decode(model, src_tokens, max_len):
    """src_tokens [B, S] -> generated tokens [B, max_len] (after bos, pad after eos)."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_greedy_decoding(greedy_decode)
