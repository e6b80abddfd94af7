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
# # 06 The encoder and the decoder (steps 9-16)
#
# Goals:
#
# 1. Assemble the full encoder-decoder `Transformer` from a `TransformerConfig` and follow the
#    shapes through it.
# 2. Read one layer: attention and feed-forward sub-layers, each wrapped in a residual
#    connection and layer norm.
# 3. **Prove causality with gradients**: the decoder's output at position `t` must not depend
#    on target positions after `t`. We compute `jax.jacobian` of the logits with respect to
#    the decoder's input embeddings and see that it is exactly zero above the diagonal.
# 4. Check the same way that source padding has no influence.
#
# Each sub-layer of the paper (section 3.1) computes
#
# $$x \leftarrow \operatorname{LayerNorm}\big(x + \operatorname{Dropout}(\operatorname{Sublayer}(x))\big).$$
#
# An **encoder layer** has two sub-layers: self-attention over the source, then a
# position-wise feed-forward network `FFN(x) = max(0, x W_1 + b_1) W_2 + b_2`. A **decoder
# layer** has three: *masked* self-attention over the target so far, *cross-attention* whose
# queries come from the decoder and whose keys and values are the encoder output ("memory"),
# then the feed-forward network.

# %%
# %matplotlib inline
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax import nnx

from attention import Transformer, TransformerConfig, count_params
from attention.model.decoder import target_mask

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
config = TransformerConfig.tiny(vocab_size=20, d_model=32 if FAST else 64, num_heads=4,
                                d_ff=64 if FAST else 128, num_layers=2, dropout_rate=0.0,
                                max_len=32)
model = Transformer(config, rngs=nnx.Rngs(0))
print("fast setting:", FAST)
print(config)
print(f"{count_params(model):,} parameters")

# %% [markdown]
# ## 1. Shapes through the model
#
# Token ids 0, 1, 2 are `<pad>`, `<s>` and `</s>`. The source ends with `</s>` and is padded;
# the decoder input starts with `<s>` (the target shifted right by one).

# %%
src = jnp.array([[5, 6, 7, 8, 2, 0, 0],
                 [9, 10, 11, 12, 13, 14, 2]])   # [B=2, S=7], sentence 0 has 2 pads
tgt = jnp.array([[1, 8, 7, 6, 5],
                 [1, 14, 13, 12, 11]])           # [B=2, T=5]
memory = model.encode(src, deterministic=True)
logits = model.decode(tgt, memory, src, deterministic=True)
print("source [B, S]:", src.shape, "-> memory [B, S, D]:", memory.shape)
print("target [B, T]:", tgt.shape, "-> logits [B, T, V]:", logits.shape)
assert jnp.allclose(logits, model(src, tgt, deterministic=True), atol=1e-5)

# %% [markdown]
# ## 2. Causality, through gradients
#
# During training the decoder sees the whole target at once; the causal mask is what stops
# position `t` from reading the answer at `t + 1`. A test that does not trust the mask: take
# the decoder input embeddings `x [T, D]` (token embedding + position), run the decoder
# layers of the model on them, and ask JAX for the full Jacobian
# `d logits[t, :] / d x[u, :]`. Its size for each pair `(t, u)` says how much target input
# `u` can influence output `t`.

# %%
decoder = model.decoder
src_mask = model.source_mask(src[:1])
tgt_mask = target_mask(tgt[:1], config.pad_id)  # causal & target padding, [1, 1, T, T]
x0_TD = (decoder.embed(tgt[:1]) + decoder.positions(tgt.shape[1])[None])[0]


def logits_from_embeddings(x_TD):
    h = x_TD[None]
    for layer in decoder.layers:
        h = layer(h, memory[:1], src_mask, tgt_mask, deterministic=True)
    return model.logits(h)[0]  # [T, V]


assert jnp.allclose(logits_from_embeddings(x0_TD), logits[0], atol=1e-5)
jac_TVTD = jax.jit(jax.jacobian(logits_from_embeddings))(x0_TD)  # [T, V, T, D]
influence_TT = jnp.sqrt((jac_TVTD**2).sum(axis=(1, 3)))  # [t, u]
print(np.array2string(np.asarray(influence_TT), precision=3, suppress_small=True))

fig, ax = plt.subplots(figsize=(5, 4))
image = ax.imshow(np.asarray(influence_TT), cmap="viridis", interpolation="nearest")
ax.set_xlabel("target input position u")
ax.set_ylabel("output position t")
ax.set_title("|d logits_t / d x_u|\nzero above the diagonal")
fig.colorbar(image, ax=ax, label="Frobenius norm")
plt.show()

# %% [markdown]
# ## 3. Padding, through gradients
#
# The same idea for the source: the logits must not depend on the encoder output at padding
# positions (sentence 0 has padding at positions 5 and 6), because cross-attention masks them.

# %%
def logits_from_memory(memory_SD):
    return model.decode(tgt[:1], memory_SD[None], src[:1], deterministic=True)[0]


jac_TVSD = jax.jit(jax.jacobian(logits_from_memory))(memory[0])  # [T, V, S, D]
per_source_position = jnp.sqrt((jac_TVSD**2).sum(axis=(0, 1, 3)))
print("influence of each memory position:", np.round(np.asarray(per_source_position), 3))
assert jnp.all(per_source_position[5:] == 0) and jnp.all(per_source_position[:5] > 0)

# %% [markdown]
# ## Check your understanding
#
# **Question.** Which target input positions can influence the logits at output position 2?
# List them, then run the check against the Jacobian.
#
# <details><summary>Answer</summary>
# Positions 0, 1 and 2: the causal mask lets position t see u <= t (including itself: the
# decoder input at t is the token *before* the one it predicts).
# </details>

# %%
my_answer = [0, 1, 2]
assert [int(u) for u in jnp.nonzero(influence_TT[2])[0]] == my_answer
assert jnp.all(jnp.triu(influence_TT, k=1) == 0), "the future must have exactly no influence"
print("correct")
