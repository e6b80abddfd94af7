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
# # 03 Weighted sums and scaled dot-product attention (steps 4-6)
#
# Goals:
#
# 1. Finish the formula: the output of each query is the weighted sum of the values.
# 2. Run the single-head, unbatched version, `single_head_attention(q [T, H], k [S, H],
#    v [S, Hv])`, the paper's matrix formula written as it is printed.
# 3. Lift it to heads and batches with `jax.vmap`, and check that it matches the package's
#    batched `dot_product_attention` and JAX's own `jax.nn.dot_product_attention`.
# 4. Prove by experiment that attention without positions ignores word order.
#
# $$\operatorname{Attention}(Q, K, V) = \underbrace{\operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d_k}}\Big)}_{\text{weights } [T, S]} \; V, \qquad \text{output}_t = \sum_s w_{ts}\, v_s .$$

# %%
# %matplotlib inline
import os

import jax
import jax.numpy as jnp

from attention import (
    causal_mask,
    dot_product_attention,
    single_head_attention,
    weighted_sum,
)
from attention.comprehension import check, show_code

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
B, T, S, N, H = (2, 3, 5, 2, 4) if FAST else (3, 7, 11, 4, 16)  # distinct sizes on purpose
print("fast setting:", FAST, " sizes B, T, S, N, H =", (B, T, S, N, H))

# %% [markdown]
# ## 1. The weighted sum
#
# Weights `[T, S]` (each row sums to one) times values `[S, Hv]`: each output row is a convex
# combination of value rows. With one-hot weights attention *copies* a value; with uniform
# weights it *averages* them.

# %%
values = jnp.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])  # S=3 values of width 2
w = jnp.array([[1.0, 0.0, 0.0],      # copy value 0
               [0.0, 0.5, 0.5],      # half of 1, half of 2
               [1 / 3, 1 / 3, 1 / 3]])  # the mean
# weighted_sum works on [B, N, T, S] weights and [B, S, N, H] values: add B=1 and N=1.
out = weighted_sum(w[None, None], values[None, :, None])[0, :, 0]
print(out)

# %% [markdown]
# Step 5 in the package, one einsum: for each query, the weights times the value rows, summed
# over the keys:

# %%
show_code(weighted_sum)

# %% [markdown]
# ## 2. One head, one sentence

# %%
kq, kk, kv = jax.random.split(jax.random.key(0), 3)
q_TH = jax.random.normal(kq, (T, H))
k_SH = jax.random.normal(kk, (S, H))
v_SH = jax.random.normal(kv, (S, H))
out_TH = single_head_attention(q_TH, k_SH, v_SH)
print("output [T, Hv]:", out_TH.shape)

# %% [markdown]
# The whole of single-head attention, as the package writes it:

# %%
show_code(single_head_attention)

# %% [markdown]
# ### Self-attention before any trainable weights
#
# Let the words of a sentence be their own queries, keys and values: `Q = K = V = X`, no
# projections at all. Each word's output is then a mix of the sentence's words, weighted by
# how similar they are to it. The three lines below are the whole computation; the package's
# `single_head_attention(x, x, x)` gives the same.

# %%
x_TD = jax.random.normal(jax.random.key(3), (T, 16))
x_TD = x_TD / jnp.linalg.norm(x_TD, axis=-1, keepdims=True)  # unit vectors: a cosine table
weights_TT = jax.nn.softmax(x_TD @ x_TD.T / jnp.sqrt(16.0), axis=-1)
mixed_TD = weights_TT @ x_TD
assert jnp.allclose(mixed_TD, single_head_attention(x_TD, x_TD, x_TD), atol=1e-6)
on_itself = bool((jnp.argmax(weights_TT, axis=-1) == jnp.arange(T)).all())
print("each word's largest weight is on itself:", on_itself)
assert on_itself

# %% [markdown]
# With unit vectors the score of a word with itself is 1, and with any other word at most 1
# (Cauchy-Schwarz): without weights, a word's best match is always itself. The trainable
# projections of notebook 04 (`Q = X W^Q`, `K = X W^K`) let a word look for something other
# than itself: a verb for its subject, a pronoun for its noun.

# %% [markdown]
# ## 3. `jax.vmap` up to heads and batches
#
# The heads are independent, and so are the sentences of a batch, so the batched function is
# the single-head one mapped twice: once over the head axis `N` of `[T, N, H]` (axis 1; the
# output gets its `N` at axis 1 as well), then over the batch axis `B` (axis 0). No loop,
# no new code: `vmap` writes the batched program for us.

# %%
over_heads = jax.vmap(single_head_attention, in_axes=(1, 1, 1), out_axes=1)  # [T, N, H]
over_batch = jax.vmap(over_heads, in_axes=(0, 0, 0), out_axes=0)            # [B, T, N, H]

kq, kk, kv = jax.random.split(jax.random.key(1), 3)
query = jax.random.normal(kq, (B, T, N, H))
key = jax.random.normal(kk, (B, S, N, H))
value = jax.random.normal(kv, (B, S, N, H))

mine = over_batch(query, key, value)
package = dot_product_attention(query, key, value)
jax_nn = jax.nn.dot_product_attention(query, key, value, implementation="xla")
print("shapes:", mine.shape, package.shape, jax_nn.shape)
print("max |vmap - package| =", float(jnp.abs(mine - package).max()))
print("max |package - jax.nn| =", float(jnp.abs(package - jax_nn).max()))
assert jnp.allclose(mine, package, atol=1e-5) and jnp.allclose(package, jax_nn, atol=1e-5)

# %% [markdown]
# The batched version is the same three steps with every option of today's models (masks,
# windows, lengths, a bias): first the weights,

# %%
from attention.mechanism.weights import attention_weights

show_code(attention_weights)

# %% [markdown]
# then the weighted sum of the values:

# %%
show_code(dot_product_attention)

# %% [markdown]
# The same holds with a causal mask (self-attention, so T keys):

# %%
self_q = query
mask_TT = causal_mask(T)
mine_causal = jax.vmap(jax.vmap(lambda q, k, v: single_head_attention(q, k, v, mask_TT),
                                in_axes=1, out_axes=1))(self_q, self_q, self_q)
package_causal = dot_product_attention(self_q, self_q, self_q, is_causal=True)
jax_causal = jax.nn.dot_product_attention(self_q, self_q, self_q, is_causal=True)
assert jnp.allclose(mine_causal, package_causal, atol=1e-5)
assert jnp.allclose(package_causal, jax_causal, atol=1e-5)
print("causal: all three agree")

# %% [markdown]
# ## 4. Attention does not know word order
#
# Shuffle the keys and values *together* and every output stays the same: the weighted sum
# runs over a set. (Shuffle the queries and the outputs shuffle with them.) That is why the
# transformer adds positional encodings (notebook 05).

# %%
perm = jax.random.permutation(jax.random.key(2), S)
shuffled = dot_product_attention(query, key[:, perm], value[:, perm])
print("max change after shuffling keys and values:", float(jnp.abs(shuffled - package).max()))

# %% [markdown]
# ## Check your understanding
#
# **Question.** If every key is the same vector, what is the output of a query? Write it as
# a function of the values `value_SH [S, H]` of one head (it must return `[H]`), then run
# the cell: it compares your function with the package's attention for every query.

# %%
def output_when_all_keys_equal(value_SH):
    return None  # your answer: an [H] array computed from value_SH


same_key = jnp.broadcast_to(key[:, :1], key.shape)  # every key = the first key
actual = dot_product_attention(query, same_key, value)  # [B, T, N, H]


def agrees(prediction):
    return all(jnp.allclose(actual[b, t, n], prediction(value[b, :, n]), atol=1e-5)
               for b in range(B) for t in range(T) for n in range(N))


check("03.same_keys", output_when_all_keys_equal, agrees)
