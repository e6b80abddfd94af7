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
# # Exercise 17: QK-norm and soft-capping
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`14_attention_since_2023`](../14_attention_since_2023.ipynb) | ★★☆ medium | about 25 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# Large models trained in low precision can see their attention scores grow without bound:
# the softmax then puts all its weight on one key and the loss spikes. Two fixes keep the
# scores in range, and today's models use them:
#
# * **QK-norm** (Dehghani et al. 2023, "Scaling Vision Transformers to 22 Billion Parameters",
#   section 2): normalise every query and every key vector before the dot product. Gemma 3
#   and Qwen3 use an **RMS norm over each head's H features** with a learned scale `[H]`
#   (OLMo 2 normalises the whole projection, all heads at once):
#
#       rms_norm(x) = scale * x / sqrt(mean_h x[..., h]^2 + epsilon)
#
# * **Soft-capping** (Gemma 2, Gemma Team 2024, section 2): bound the scores smoothly,
#
#       scores = q . k / sqrt(H)        capped = cap * tanh(scores / cap)
#
#   about the identity for small scores, never beyond `cap` (Gemma 2 uses cap = 50).
#
# Write `qk_norm_scores(query, key, q_scale, k_scale, cap, epsilon=1e-6)` with `query`
# `[T, N, H]`, `key` `[S, N, H]`, `q_scale` and `k_scale` `[H]`, returning the capped scores
# `[N, T, S]`: RMS-normalise the query with `q_scale` and the key with `k_scale`, take the
# scaled dot products of each head, then soft-cap them. The checker uses small caps (so that
# tanh bends the scores) and a large `epsilon` (so that where you put it shows), and changes
# both from one input to the next.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_qk_norm_scores

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# The mean square is over the last axis only (`axis=-1, keepdims=True`): each head of each
# position is normalised on its own. RMS norm does not subtract the mean.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# Normalise first, then multiply by the scale; epsilon goes inside the square root.
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# `jnp.einsum("tnh,snh->nts", q, k) / jnp.sqrt(H)`, then `cap * jnp.tanh(scores / cap)`.
#
# </details>


# %% tags=["exercise"]
def qk_norm_scores(query, key, q_scale, k_scale, cap, epsilon=1e-6):
    """Scores [N, T, S] of RMS-normalised query [T, N, H] and key [S, N, H], soft-capped."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_qk_norm_scores(qk_norm_scores)
