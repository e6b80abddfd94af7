# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 Softmax and masks (steps 2-3)
#
# Goals:
#
# 1. Turn scores into weights with a softmax that does not overflow.
# 2. Build the two masks a transformer needs: **padding** (do not look at filler tokens) and
#    **causal** (do not look at the future), and combine them.
# 3. Decide what a row with *nothing* to look at should give, and check that the package
#    gives zeros rather than NaN.
#
# The softmax of a row of scores `x_1 .. x_S`:
#
# $$\operatorname{softmax}(x)_s = \frac{e^{x_s}}{\sum_{s'} e^{x_{s'}}} = \frac{e^{x_s - m}}{\sum_{s'} e^{x_{s'} - m}}, \qquad m = \max_s x_s .$$
#
# The two forms are equal (multiply top and bottom by `e^{-m}`), but only the second is safe
# in floating point.

# %%
# %matplotlib inline
import os

import jax
import jax.numpy as jnp
import numpy as np
from IPython.display import display

from attention import (
    attention_weights,
    causal_mask,
    combine_masks,
    masked_softmax,
    padding_mask,
    plot_attention,
)

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
print("fast setting:", FAST)

# %% [markdown]
# ## 1. Stability
#
# `exp(1000)` does not fit in a float32 (the largest is about `3.4e38 = e^88.7`). Written
# naively, the softmax of `[1000, 1001, 1002]` is `inf / inf = nan`. Subtracting the row
# maximum first makes the largest exponent `e^0 = 1`, and the answer is exact.

# %%
x = jnp.array([1000.0, 1001.0, 1002.0])
naive = jnp.exp(x) / jnp.exp(x).sum()  # what NOT to write: shown only to see it fail
print("naive:         ", naive)
print("masked_softmax:", masked_softmax(x))
print("same as for [0, 1, 2]:", masked_softmax(jnp.array([0.0, 1.0, 2.0])))

# %% [markdown]
# ## 2. Masks: True means "may attend"
#
# A **padding mask** comes from the lengths of the sentences in a batch: sentence b has
# `lengths[b]` real tokens, then filler. It has shape `[B, 1, 1, S]` so that it broadcasts
# over heads and queries. A **causal mask** `[T, S]` is lower-triangular: query `t` may look
# at keys `s <= t`. The decoder needs both, combined with a logical and.

# %%
lengths = jnp.array([5, 3])
pad_BS = padding_mask(lengths, 5)
print("padding mask [B, 1, 1, S]:", pad_BS.shape)
print(pad_BS[:, 0, 0].astype(int))
causal_TS = causal_mask(5)
print("causal mask [T, S]:")
print(causal_TS.astype(int))
both = combine_masks(pad_BS, causal_TS)  # broadcasts to [B, 1, T, S]
print("combined for sentence 1 (3 real tokens):")
print(both[1, 0].astype(int))

# %% [markdown]
# `masked_softmax(scores, mask)` gives masked entries weight exactly 0 and spreads the whole
# weight over the allowed ones. Inside, it takes the row maximum over the allowed entries
# only, sets the exponentials of masked entries to zero with `jnp.where` (so no `-inf` ever
# enters the arithmetic, where `-inf - (-inf)` would make NaN), and divides by the sum of
# the rest.

# %%
key = jax.random.key(0)
q = jax.random.normal(key, (2, 5, 1, 8))  # B=2, T=5, N=1, H=8: self-attention
weights = attention_weights(q, q, both)
print("rows sum to:", np.round(np.asarray(weights[1, 0].sum(-1)), 4))
tokens = ["the", "cat", "sat", "<pad>", "<pad>"]
fig = plot_attention(weights[1, 0], query_tokens=tokens, key_tokens=tokens, mask=both[1, 0],
                     title="causal + padding mask")
display(fig)

# %% [markdown]
# ## 3. Rows with nothing to attend
#
# The padding *queries* of sentence 1 (rows 3 and 4) may still look at the real tokens, so
# they have weights; the training loss ignores their outputs. But a row can also be fully
# masked, for example a query whose every key is padding (an empty sentence). What should
# its weights be? There is no sensible distribution over zero keys. Two common answers:
#
# * `-inf` scores: `exp(-inf - (-inf)) = exp(nan)`: NaN weights that poison the whole batch
#   (and its gradient) through the next sum;
# * the package's answer (documented in `masked_softmax`): **all-zero weights and zero
#   gradients**, so the output of that query is the zero vector.

# %%
row = jnp.array([1.0, 2.0, 3.0])
nothing = jnp.array([False, False, False])
print("jax.nn.softmax of -inf scores:", jax.nn.softmax(jnp.where(nothing, row, -jnp.inf)))
print("masked_softmax, fully masked:  ", masked_softmax(row, nothing))
grad = jax.grad(lambda r: masked_softmax(r, nothing).sum())(row)
print("its gradient:                  ", grad)

# %% [markdown]
# ## Check your understanding
#
# **Question.** With the causal mask, how much weight does query 0 give to key 0, whatever
# the scores? And which query is the only one that can see the last key? Write your answers,
# then run the checks.
#
# <details><summary>Answer</summary>
# Query 0 may see only key 0, so its weight is exactly 1. Only the last query (t = T - 1)
# may see the last key.
# </details>

# %%
weight_of_query0_on_key0 = 1.0  # your answer
only_query_seeing_last_key = 4  # your answer (T = 5)

causal_weights = attention_weights(q, q, is_causal=True)[0, 0]  # [T, S]
assert jnp.allclose(causal_weights[0, 0], weight_of_query0_on_key0)
assert [int(t) for t in jnp.nonzero(causal_weights[:, -1])[0]] == [only_query_seeing_last_key]
assert jnp.all(jnp.triu(causal_weights, k=1) == 0), "the future must get exactly 0"
print("correct")
