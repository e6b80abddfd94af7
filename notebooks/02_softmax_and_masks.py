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
# # 02 Softmax and masks (steps 2-3)
#
# Goals:
#
# 1. Turn scores into weights with a softmax that does not overflow.
# 2. Build the two masks a transformer needs: **padding** (do not look at filler tokens) and
#    **causal** (do not look at the future), and combine them.
# 3. Decide what a row with *nothing* to look at should give (NaN, uniform weights or
#    zeros: each is some library's convention), and see each happen.
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
from attention.comprehension import check, show_code

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
# The package's stable softmax, as it runs: subtract the row's maximum, exponentiate, zero the
# masked entries, divide by the sum:

# %%
show_code(masked_softmax)

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
# Both masks are one comparison of positions each:

# %%
show_code(causal_mask)

# %%
show_code(padding_mask)

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
# its weights be? There is no sensible distribution over zero keys. Three answers are in use:
#
# * `-inf` scores: `exp(-inf - (-inf)) = exp(nan)`: NaN weights that poison the whole batch
#   (and its gradient) through the next sum;
# * a **large finite negative** score for masked entries: what `jax.nn.dot_product_attention`
#   does with its `mask` (it fills with `-0.7 * finfo(dtype).max`), and what Hugging Face's
#   models do by adding `torch.finfo(dtype).min` to masked scores: no NaN, but see below
#   what the weights become;
# * the package's answer (documented in `masked_softmax`): **all-zero weights and zero
#   gradients**, so the output of that query is the zero vector. PyTorch's
#   `F.scaled_dot_product_attention` gave NaN there until version 2.5, and zeros since (its
#   `_safe_softmax`).
#
# **Predict, then run.** With the second convention, every entry of a fully masked row gets
# the same large negative score. Will its weights be (a) NaN, (b) all zero, or (c) uniform,
# 1/S each? Write your letter, then run the next two cells.

# %%
my_prediction = None  # "a", "b" or "c"

# %%
row = jnp.array([1.0, 2.0, 3.0])
nothing = jnp.array([False, False, False])
big_negative = jnp.finfo(jnp.float32).min  # Hugging Face's fill; jax.nn's is -0.7 * max
finite_weights = jax.nn.softmax(jnp.where(nothing, row, big_negative))
print("jax.nn.softmax of -inf scores:          ", jax.nn.softmax(jnp.where(nothing, row, -jnp.inf)))
print("jax.nn.softmax of large finite negatives:", finite_weights)
print("masked_softmax, fully masked:            ", masked_softmax(row, nothing))
grad = jax.grad(lambda r: masked_softmax(r, nothing).sum())(row)
print("its gradient:                            ", grad)
# The same through jax.nn's attention: a query whose every key is masked.
q1 = jax.random.normal(jax.random.key(1), (1, 1, 1, 4))
kv = jax.random.normal(jax.random.key(2), (1, 3, 1, 4))
through_jax_nn = jax.nn.dot_product_attention(q1, kv, kv, mask=jnp.zeros((1, 1, 1, 3), bool))
print("jax.nn.dot_product_attention, all keys masked:", np.asarray(through_jax_nn[0, 0, 0]),
      "\n  = the mean of the values:                  ", np.asarray(kv[0, :, 0].mean(axis=0)))
measured = ("a" if not bool(jnp.isfinite(finite_weights).all())
            else "b" if bool(jnp.all(finite_weights == 0))
            else "c" if bool(jnp.allclose(finite_weights, 1 / row.size)) else None)
check("02.finite_negative", my_prediction, lambda answer: answer == measured)

# %% [markdown]
# So the large finite negative of `jax.nn` and of Hugging Face's models gives uniform
# weights; zeros are PyTorch's convention since 2.5, and the package's. Uniform weights are
# a valid distribution, so nothing breaks, but the query silently reads the mean of values
# it was told not to look at (padding included). Zero weights make the "nothing to see"
# visible: the output is 0 and no gradient flows into the masked keys.
#
# ## Check your understanding
#
# **Question.** With the causal mask, how much weight does query 0 give to key 0, whatever
# the scores? And which query is the only one that can see the last key (`T = 5`)? Write
# your answers, then run the checks; each explains itself once you are right.

# %%
weight_of_query0_on_key0 = None  # a number
only_query_seeing_last_key = None  # an int

causal_weights = attention_weights(q, q, is_causal=True)[0, 0]  # [T, S]
assert jnp.all(jnp.triu(causal_weights, k=1) == 0), "the future must get exactly 0"
check("02.causal_first_query", weight_of_query0_on_key0,
      lambda answer: abs(float(causal_weights[0, 0]) - answer) < 1e-6)
check("02.last_key", only_query_seeing_last_key,
      lambda answer: [int(t) for t in jnp.nonzero(causal_weights[:, -1])[0]] == [answer])
