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
# # 04 Multi-head attention (step 7)
#
# Goals:
#
# 1. Split a `[B, T, D]` activation into `N` heads of width `H = D / N` and merge them back.
# 2. Use the package's `MultiHeadAttention` module (Flax NNX) and see that it is nothing but
#    four linear maps around the attention of notebook 03.
# 3. Get at the weights of every head (`sow_weights=True` + `nnx.capture`) and plot them with
#    `plot_heads`.
#
# The paper (section 3.2.2):
#
# $$\operatorname{MultiHead}(Q, K, V) = \operatorname{Concat}(\text{head}_1, \dots, \text{head}_h)\, W^O, \qquad \text{head}_i = \operatorname{Attention}(Q W_i^Q,\; K W_i^K,\; V W_i^V)$$
#
# with `W_i^Q, W_i^K` of shape `d_model x d_k`, `W_i^V` of shape `d_model x d_v` and
# `W^O` of shape `h d_v x d_model`; the paper uses `h = 8` and `d_k = d_v = d_model / h = 64`.
# One attention can only produce one weighted average per query; `h` heads can look at `h`
# different things (the previous word, the subject, the end of the sentence) at the cost of
# one, since each works in a `d_model / h` slice.

# %%
# %matplotlib inline
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from IPython.display import display

from attention import (
    MultiHeadAttention,
    count_params,
    dot_product_attention,
    merge_heads,
    plot_heads,
    sinusoidal_positions,
    split_heads,
)

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
D, N = (16, 4) if FAST else (64, 4)
print("fast setting:", FAST, " d_model =", D, " heads =", N)

# %% [markdown]
# ## 1. Heads are a reshape
#
# In practice the `h` projections `W_i^Q` are one `D x D` matrix whose output columns are cut
# into `h` slices: a reshape from `[B, T, D]` to `[B, T, N, H]`. Merging is the reverse
# reshape, which *is* the paper's `Concat`.

# %%
x_BTD = jnp.arange(2 * 3 * D, dtype=jnp.float32).reshape(2, 3, D)
heads_BTNH = split_heads(x_BTD, N)
print("split:", x_BTD.shape, "->", heads_BTNH.shape)
print("head 1 of token 0 holds features", np.asarray(heads_BTNH[0, 0, 1, :4]), "...")
assert jnp.array_equal(merge_heads(heads_BTNH), x_BTD)

# %% [markdown]
# ## 2. The module
#
# `MultiHeadAttention(num_heads, in_features)` holds four `nnx.Linear` layers: `query`,
# `key`, `value` (the `W^Q, W^K, W^V` of all heads at once) and `out` (`W^O`). We call it,
# then redo the same computation from its parts to see there is nothing else inside.

# %%
mha = MultiHeadAttention(num_heads=N, in_features=D, rngs=nnx.Rngs(0))
tokens = "the cat sat on the mat because it was warm".split()
T = len(tokens)
# Stand-in embeddings: random vectors per word (the two "the" share one) plus positions.
vocab = sorted(set(tokens))
table = jax.random.normal(jax.random.key(1), (len(vocab), D))
x = table[jnp.array([vocab.index(t) for t in tokens])][None] + sinusoidal_positions(T, D)[None]

y = mha(x)
by_hand = mha.out(merge_heads(dot_product_attention(
    split_heads(mha.query(x), N), split_heads(mha.key(x), N), split_heads(mha.value(x), N))))
print("output [B, T, D]:", y.shape, "  same as by hand:", bool(jnp.allclose(y, by_hand, atol=1e-5)))
print("parameters:", count_params(mha), "= 4 * (D*D + D) =", 4 * (D * D + D))

# %% [markdown]
# ## 3. Looking at the heads
#
# Called with `sow_weights=True`, the module records its weights `[B, N, T, S]` as an
# `nnx.Intermediate`; `nnx.capture` runs a function and hands back what was sown. This is
# how every attention picture in this course gets the real weights of the real model.

# %%
_, sown = nnx.capture(lambda m: m(x, sow_weights=True), nnx.Intermediate)(mha)
(weights_BNTS,) = sown["attention_weights"].get_value()
print("weights [B, N, T, S]:", weights_BNTS.shape)
fig = plot_heads(weights_BNTS[0], query_tokens=tokens, key_tokens=tokens,
                 title="self-attention of an untrained layer, one panel per head")
display(fig)

# %% [markdown]
# Untrained, the heads already differ (their projections are random), but none means
# anything yet; notebook 08 looks at heads after training, some of which learn to look one
# word back and some to find the source word being translated.
#
# A causal self-attention (as in the decoder) is the same module called with
# `is_causal=True`:

# %%
_, sown = nnx.capture(lambda m: m(x, is_causal=True, sow_weights=True), nnx.Intermediate)(mha)
(causal_BNTS,) = sown["attention_weights"].get_value()
fig = plot_heads(causal_BNTS[0], query_tokens=tokens, key_tokens=tokens,
                 mask=jnp.tril(jnp.ones((T, T), bool)), title="the same layer, causal")
display(fig)

# %% [markdown]
# ## Check your understanding
#
# **Question.** For `d_model = 512`, how many parameters does multi-head attention have with
# `h = 8` heads, and with `h = 1`? (Biases included, as in the module.)
#
# <details><summary>Answer</summary>
# The same for both: 4 * (512 * 512 + 512) = 1,050,624. Heads slice the projections; they do
# not add parameters.
# </details>

# %%
my_answer_h8 = 4 * (512 * 512 + 512)  # your answers
my_answer_h1 = 4 * (512 * 512 + 512)
assert count_params(MultiHeadAttention(num_heads=8, in_features=512, rngs=nnx.Rngs(0))) == my_answer_h8
assert count_params(MultiHeadAttention(num_heads=1, in_features=512, rngs=nnx.Rngs(0))) == my_answer_h1
print("correct")
