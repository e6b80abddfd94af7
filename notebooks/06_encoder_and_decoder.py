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
# # 06 Building a layer: the encoder and the decoder (steps 9-16)
#
# Notebooks 01-05 built attention. A transformer layer wraps it in four more parts; this
# notebook builds each, measures what it is for, assembles the encoder and decoder layers
# by hand, and checks them against the package's.
#
# Goals:
#
# 1. Assemble the full encoder-decoder `Transformer` from a `TransformerConfig` and follow the
#    shapes through it.
# 2. The position-wise **feed-forward network**.
# 3. **Layer norm** by hand, checked against `nnx.LayerNorm`.
# 4. The **residual stream**: gradient norms through depth with and without residual
#    connections, measured.
# 5. **Post-LN against pre-LN**: where the gradient is at initialisation, and why the paper's
#    post-LN needs a learning-rate warm-up.
# 6. The **embedding scale** `sqrt(d_model)` and **weight tying**.
# 7. An **encoder layer** and a **decoder layer** assembled from their parts, checked against
#    the package's.
# 8. **Prove causality with gradients** (`jax.jacobian` of the logits with respect to the
#    decoder's inputs is exactly zero above the diagonal), and that source padding has no
#    influence.
#
# Each sub-layer of the paper computes (section 3.1 gives `LayerNorm(x + Sublayer(x))`;
# the dropout on the sub-layer's output is section 5.4's residual dropout)
#
# $$x \leftarrow \operatorname{LayerNorm}\big(x + \operatorname{Dropout}(\operatorname{Sublayer}(x))\big).$$
#
# An **encoder layer** has two sub-layers: self-attention over the source, then the
# feed-forward network. A **decoder layer** has three: *masked* self-attention over the
# target so far, *cross-attention* whose queries come from the decoder and whose keys and
# values are the encoder output ("memory"), then the feed-forward network.

# %%
# %matplotlib inline
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

from attention import Transformer, TransformerConfig, count_params, sinusoidal_positions
from attention.comprehension import check, show_code
from attention.data import make_task, task_vocabulary
from attention.data.batching import encode_pairs, make_batches
from attention.model.decoder import target_mask
from attention.model.feed_forward import FeedForward, feed_forward
from attention.model.layer_norm import layer_norm
from attention.training.train import train_step

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
config = TransformerConfig.tiny(vocab_size=20, d_model=32 if FAST else 64, num_heads=4,
                                d_ff=64 if FAST else 128, num_layers=2, dropout_rate=0.0,
                                max_len=32)
model = Transformer(config, rngs=nnx.Rngs(0))
DEPTH = 12 if FAST else 24  # blocks in the residual-stream experiment
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
# ## 2. The feed-forward network
#
# Attention mixes information *between* positions; the feed-forward network then transforms
# each position on its own, with the same two layers everywhere (section 3.3):
#
# $$\operatorname{FFN}(x) = \max(0,\, x W_1 + b_1)\, W_2 + b_2, \qquad W_1: [D, F],\; W_2: [F, D].$$
#
# It never mixes positions, so it cannot break causality or padding. The inner width
# `d_ff = F` is four times `d_model` in the paper. Below, the model's own FFN (an
# `nnx.Module` of two `nnx.Linear`) against the pure function on its weights, and a check
# that it is position-wise: shuffling the positions shuffles the outputs, nothing else.

# %%
layer0 = model.encoder.layers[0]
ffn = layer0.feed_forward
x_BSD = memory
by_function = feed_forward(x_BSD, ffn.linear1.kernel[...], ffn.linear1.bias[...],
                           ffn.linear2.kernel[...], ffn.linear2.bias[...])
print("module == function:", bool(jnp.allclose(ffn(x_BSD), by_function, atol=1e-5)))
perm = jnp.array([3, 0, 6, 1, 5, 2, 4])
assert jnp.allclose(ffn(x_BSD[:, perm]), ffn(x_BSD)[:, perm], atol=1e-5), "position-wise"
print("position-wise: shuffling positions shuffles the outputs")

# %% [markdown]
# The package's position-wise network, as it runs:

# %%
show_code(feed_forward)

# %% [markdown]
# **Question.** How many parameters has the feed-forward network, as a formula in `d_model`
# and `d_ff`? Write it, then run the check against `count_params` of real modules.

# %%
def ffn_parameters(d_model, d_ff):
    return None  # your formula


check("06.ffn_params", ffn_parameters, lambda f: all(
    f(d, ff) == count_params(FeedForward(d, ff, rngs=nnx.Rngs(0)))
    for d, ff in [(config.d_model, config.d_ff), (8, 20), (512, 2048)]))

# %% [markdown]
# ## 3. Layer norm by hand
#
# Layer normalisation (Ba, Kiros & Hinton 2016) rescales each position's vector to mean 0
# and variance 1 over its `D` features, then applies a learned scale `gamma` and shift
# `beta`:
#
# $$\mu = \tfrac1D \textstyle\sum_d x_d, \quad \sigma^2 = \tfrac1D \sum_d (x_d - \mu)^2, \quad
# \operatorname{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta .$$
#
# The statistics are per position (unlike batch norm), so it too never mixes positions.
# Step by step on one vector, then the package's `layer_norm` against the model's own
# `nnx.LayerNorm` with its learned `gamma` and `beta` (random here, to make the check
# sharp: a check at `gamma = 1, beta = 0` would not see a swapped or missing parameter).
# Setting them changes the model's first encoder layer from here on; `memory` above was
# computed before, and section 7 uses the changed layer on both sides of its comparison.

# %%
v = jnp.array([2.0, 4.0, 6.0, 12.0])
mu, var = v.mean(), ((v - v.mean()) ** 2).mean()
print(f"x = {v.tolist()}: mean {float(mu)}, variance {float(var)}, "
      f"normalised {np.round(np.asarray((v - mu) / jnp.sqrt(var)), 3).tolist()}")

norm = layer0.self_attention_residual.norm  # an nnx.LayerNorm of the model
norm.scale[...] = 1.0 + 0.1 * jax.random.normal(jax.random.key(5), norm.scale.shape)
norm.bias[...] = 0.1 * jax.random.normal(jax.random.key(6), norm.bias.shape)
mine = layer_norm(x_BSD, norm.scale[...], norm.bias[...], epsilon=config.layer_norm_epsilon)
print("max |layer_norm - nnx.LayerNorm| =", float(jnp.abs(mine - norm(x_BSD)).max()))
assert jnp.allclose(mine, norm(x_BSD), atol=1e-5)

# %% [markdown]
# Layer normalisation in the package:

# %%
show_code(layer_norm)

# %% [markdown]
# ## 4. The residual stream
#
# Each sub-layer *adds* its output to its input, `x + f(x)`: the vector of a position is a
# stream that every sub-layer reads from and writes into. Its other purpose is the
# gradient. The Jacobian of `x + f(x)` is `I + df/dx`; without the residual it is `df/dx`,
# and through `L` blocks the gradient is a product of `L` such matrices.
#
# **Predict, then run.** Stack `DEPTH` feed-forward blocks (the package's `FeedForward`,
# random initialisation) with residual connections, `x + f(x)`, and without, `f(x)`, and
# measure the gradient that reaches the input from a loss at the top (one output feature,
# summed over positions). Where will it be larger after many blocks:
# (a) with residuals, (b) without, (c) about the same? Write your letter, then run the next
# two cells.

# %%
my_prediction = None  # "a", "b" or "c"

# %%
blocks = [FeedForward(config.d_model, config.d_ff, rngs=nnx.Rngs(100 + i)) for i in range(DEPTH)]
x0_SD = jax.random.normal(jax.random.key(7), (7, config.d_model))


def stack(x_SD, nudges_LSD, residual):
    """DEPTH blocks; nudges_LSD (zeros) are added to each block's input, so that the gradient
    with respect to them is the gradient with respect to every block's input at once."""
    for block, nudge_SD in zip(blocks, nudges_LSD, strict=True):
        x_SD = x_SD + nudge_SD
        x_SD = x_SD + block(x_SD) if residual else block(x_SD)
    return x_SD


@jax.jit
def block_input_gradients(nudges_LSD):
    def loss(nudges, residual):
        return jnp.sum(stack(x0_SD, nudges, residual)[:, 0])

    return {residual: jnp.linalg.norm(jax.grad(loss)(nudges_LSD, residual), axis=(1, 2))
            for residual in (True, False)}  # [L]: |d loss / d input of block l|


norms = block_input_gradients(jnp.zeros((DEPTH, *x0_SD.shape)))
depths = list(range(DEPTH, 0, -1))  # blocks between block l's input and the loss
gradients = {r: [float(g) for g in norms[r]] for r in (True, False)}
fig, ax = plt.subplots(figsize=(5, 3.3))
ax.semilogy(depths, gradients[True], "o-", label="x + f(x)  (residual)")
ax.semilogy(depths, gradients[False], "s-", label="f(x)  (no residual)")
ax.set_xlabel("blocks between the input and the loss")
ax.set_ylabel("|d loss / d input|")
ax.legend()
ax.set_title("gradient reaching each block's input")
plt.show()
print(f"at the input, {DEPTH} blocks below the loss: residual {gradients[True][0]:.3g}, "
      f"no residual {gradients[False][0]:.3g}")
ratio = gradients[True][0] / max(gradients[False][0], 1e-30)
measured = "a" if ratio > 3 else "b" if ratio < 1 / 3 else "c"
check("06.residual_gradient", my_prediction, lambda answer: answer == measured)

# %% [markdown]
# Read the plot on its log scale: without residuals the gradient shrinks by a roughly
# constant factor per block (a straight line going down); with them it survives, and can
# even grow, because nothing rescales the stream: the activations grow too. Keeping the stream's size in check is the job of the
# layer norm of section 3, placed either after the add or before the sub-layer: next.

# %% [markdown]
# ## 5. Post-LN against pre-LN, and why warm-up matters
#
# The paper normalises *after* the residual add, `LN(x + f(x))` (post-LN): every layer's
# output passes through a norm, so the residual path is not an identity. Xiong et al. (2020,
# "On Layer Normalization in the Transformer Architecture") showed that at initialisation
# the gradients of a post-LN model are largest in the layers near the output, so a large
# learning rate at the start makes those layers jump; the paper's **warm-up** (the
# learning rate grows linearly over the first `warmup_steps`, notebook 07) is what keeps it
# stable. Normalising the sub-layer's *input* instead, `x + f(LN(x))` (pre-LN,
# `TransformerConfig(norm_first=True)`, with a final LayerNorm on top of the encoder and of
# the decoder), keeps the residual path an identity, and the gradients are about the same size in every layer.
#
# We measure that: two 6-layer models that differ only in `norm_first`, one batch, the
# gradient norm of each decoder layer's parameters at initialisation.

# %%
deep = TransformerConfig.tiny(vocab_size=20, d_model=config.d_model, num_heads=4,
                              d_ff=config.d_ff, num_layers=6, dropout_rate=0.0, max_len=32)


def layer_gradient_norms(norm_first):
    m = Transformer(deep.replace(norm_first=norm_first), rngs=nnx.Rngs(0))

    def loss(m):
        logits_BTV = m(src, tgt, deterministic=True)
        return -jnp.mean(jax.nn.log_softmax(logits_BTV)[..., 3])  # any fixed target word

    grads = nnx.jit(nnx.grad(loss))(m)  # compiled: one program instead of an op at a time
    norms = [0.0] * deep.num_layers
    for path, g in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(grads)):
        keys = [getattr(p, "key", getattr(p, "idx", None)) for p in path]
        if keys[:2] == ["decoder", "layers"]:
            norms[int(keys[2])] += float(jnp.sum(g**2))
    return [float(np.sqrt(n)) for n in norms]


post_ln, pre_ln = layer_gradient_norms(False), layer_gradient_norms(True)
for name, norms in [("post-LN", post_ln), ("pre-LN", pre_ln)]:
    print(f"{name}: gradient norm of decoder layers 1..6 = "
          + ", ".join(f"{n:.3f}" for n in norms)
          + f"   (last / first = {norms[-1] / norms[0]:.2f})")
fig, ax = plt.subplots(figsize=(5, 3.3))
ax.plot(range(1, 7), post_ln, "o-", label="post-LN (paper)")
ax.plot(range(1, 7), pre_ln, "s-", label="pre-LN (norm_first=True)")
ax.set_xlabel("decoder layer")
ax.set_ylabel("|gradient| of the layer's parameters")
ax.set_title("at initialisation")
ax.legend()
plt.show()

# %% [markdown]
# Read the ratio of the last layer's gradient to the first's: for post-LN the layers near
# the output get the larger share (Xiong et al.'s finding), for pre-LN they are closer to
# even. That is why post-LN models are trained with a warm-up and pre-LN models tolerate a
# short one.
#
# **A short measured run.** A 3-layer post-LN model (`d_model = 32`) learns the `reverse`
# task (sequences of 8 letters, reversed) with Adam at a high learning rate, `1e-2`, twice
# from the same initialisation and the same batches: once at the full rate from the first
# step, once with a linear warm-up to it. The learning rate is a hyper-parameter *inside*
# the optimiser state (`optax.inject_hyperparams`), so both runs reuse the one compiled
# `train_step` of the package (notebook 07 takes it apart); only the number we write into
# the state changes. It is a small run (60 steps in the fast setting, 120 in the full one,
# 16 sentences a batch), so read it as one measurement, not a law: the cell prints what it
# measured.

# %%
STEPS, PEAK_LR, WARMUP = (60, 1e-2, 25) if FAST else (120, 1e-2, 40)
vocab = task_vocabulary("reverse")
reverse_pairs = make_task("reverse", num_examples=16 * STEPS, seed=0, min_len=8, max_len=8)
run_batches = [{k: jnp.asarray(b[k]) for k in ("src", "tgt_in", "tgt_out")}
               for b in make_batches(encode_pairs(reverse_pairs, vocab), batch_size=16, seed=0)]
small = TransformerConfig.tiny(vocab_size=vocab.vocab_size, d_model=32, num_heads=4, d_ff=64,
                               num_layers=3, dropout_rate=0.0, max_len=16)  # post-LN
adam = optax.inject_hyperparams(optax.adam)(learning_rate=0.0, b1=0.9, b2=0.98, eps=1e-9)


def train_losses(warmup_steps):
    m = Transformer(small, rngs=nnx.Rngs(0))  # the same initialisation for both runs
    opt = nnx.Optimizer(m, adam, wrt=nnx.Param)
    step_fn = nnx.cached_partial(train_step, m, opt)  # train_step(m, opt, ...), m and opt walked once
    losses = []
    for step, batch in enumerate(run_batches[:STEPS]):
        opt.opt_state.hyperparams["learning_rate"][...] = PEAK_LR * min(1.0, (step + 1) / warmup_steps)
        losses.append(float(step_fn(batch, label_smoothing=0.0, pad_id=small.pad_id)["loss"]))
    return losses


curves = {"no warm-up": train_losses(1), f"warm-up over {WARMUP} steps": train_losses(WARMUP)}
fig, ax = plt.subplots(figsize=(5, 3.3))
for name, losses in curves.items():
    ax.plot(range(1, STEPS + 1), losses, label=name)
ax.axhline(np.log(vocab.vocab_size), color="gray", ls=":", label="log V (uniform guess)")
ax.set_xlabel("step")
ax.set_ylabel("training loss (cross-entropy)")
ax.set_title(f"post-LN, 3 layers, peak learning rate {PEAK_LR:g}")
ax.legend()
plt.show()
tail = max(STEPS // 6, 5)  # average the last steps: one batch is noisy
final = {name: float(np.mean(losses[-tail:])) for name, losses in curves.items()}
for name, value in final.items():
    print(f"{name}: mean loss over the last {tail} steps {value:.3f}")
no_warmup, with_warmup = final.values()
print(f"log V = {np.log(vocab.vocab_size):.3f}; with warm-up the run ends "
      f"{no_warmup - with_warmup:+.3f} lower; without, it ends "
      f"{np.log(vocab.vocab_size) - no_warmup:.3f} below the uniform guess")

# %% [markdown]
# Read the printed numbers against `log V`, the loss of a uniform guess over the
# vocabulary. A run that stays close to that line has learnt which symbols occur, not
# where they go; the gap between the two runs is what the warm-up bought on this run. At
# this size the gap is modest and depends on the seed and the learning rate (a tiny model
# on a short run has wide stability margins), so treat it as one measurement, and try
# `norm_first=True` in `small` at the same rate without warm-up, or another seed in
# `nnx.Rngs`, to see how much of it holds.
#
# ## 6. The embedding scale and weight tying
#
# Token embeddings are initialised with entries of size about `1/sqrt(d_model)` and
# multiplied by `sqrt(d_model)` in the model (section 3.4), so that they are of the same
# order as the positional encodings they are added to (entries between -1 and 1): neither
# drowns the other. The cell prints the three sizes. And with a shared vocabulary the paper uses the **same matrix** `E [V, D]`
# three times, for source and target embeddings and, transposed, as the pre-softmax
# projection `logits = h E^T` (Press & Wolf 2017): `share_embeddings=True`.

# %%
E = model.src_embed.embedding[...]
tokens_BT = jnp.arange(3, 20)[None]
scaled = model.src_embed(tokens_BT)  # E[tokens] * sqrt(d_model)
pe = sinusoidal_positions(tokens_BT.shape[1], config.d_model)
print(f"std of E entries {float(E.std()):.3f} (1/sqrt(D) = {config.d_model ** -0.5:.3f}); "
      f"after * sqrt(D): {float(scaled.std()):.3f}; positional encodings: {float(pe.std()):.3f}")
assert jnp.allclose(scaled, E[tokens_BT] * jnp.sqrt(float(config.d_model)), atol=1e-6)

tied = Transformer(config.replace(share_embeddings=True), rngs=nnx.Rngs(0))
untied = Transformer(config.replace(share_embeddings=False), rngs=nnx.Rngs(0))
assert tied.src_embed is tied.tgt_embed and tied.output is None
h_D = jax.random.normal(jax.random.key(8), (config.d_model,))
assert jnp.allclose(tied.logits(h_D), tied.src_embed.embedding[...] @ h_D, atol=1e-5)
saved = count_params(untied) - count_params(tied)
print(f"untied: {count_params(untied):,} parameters; tied: {count_params(tied):,} "
      f"(saves {saved:,} = 2 V D: the target embedding and the output projection, "
      f"V = {config.tgt_vocab_size}, D = {config.d_model})")
assert saved == 2 * config.tgt_vocab_size * config.d_model
print("this notebook's model (TransformerConfig.tiny) is tied:", config.share_embeddings)

# %% [markdown]
# ## 7. An encoder layer and a decoder layer, assembled by hand
#
# Now the parts, in the paper's order, with the model's own sub-modules: post-LN residual
# blocks around self-attention and the FFN for the encoder layer; around masked
# self-attention, cross-attention over the memory, and the FFN for the decoder layer. If
# our assembly is right it gives exactly what the package's layers give.

# %%
src_mask = model.source_mask(src)          # [B, 1, 1, S], padding
tgt_mask = target_mask(tgt, config.pad_id)  # [B, 1, T, T], causal & padding
x_src = model.encoder.embed(src) + model.encoder.positions(src.shape[1])[None]


def encoder_layer_by_hand(layer, x):
    ln1, ln2 = layer.self_attention_residual.norm, layer.feed_forward_residual.norm
    x = ln1(x + layer.self_attention(x, mask=src_mask))   # self-attention sub-layer
    return ln2(x + feed_forward(x, layer.feed_forward.linear1.kernel[...],  # FFN sub-layer
                                layer.feed_forward.linear1.bias[...],
                                layer.feed_forward.linear2.kernel[...],
                                layer.feed_forward.linear2.bias[...]))


by_hand = encoder_layer_by_hand(layer0, x_src)
package = layer0(x_src, src_mask, deterministic=True)
print("encoder layer: max |by hand - package| =", float(jnp.abs(by_hand - package).max()))
assert jnp.allclose(by_hand, package, atol=1e-5)

dlayer = model.decoder.layers[0]
x_tgt = model.decoder.embed(tgt) + model.decoder.positions(tgt.shape[1])[None]


def decoder_layer_by_hand(layer, x, memory_BSD):
    x = layer.self_attention_residual.norm(x + layer.self_attention(x, mask=tgt_mask))
    x = layer.cross_attention_residual.norm(
        x + layer.cross_attention(x, memory_BSD, mask=src_mask))  # queries x, keys memory
    return layer.feed_forward_residual.norm(x + layer.feed_forward(x))


by_hand = decoder_layer_by_hand(dlayer, x_tgt, memory)
package = dlayer(x_tgt, memory, src_mask, tgt_mask, deterministic=True)
print("decoder layer: max |by hand - package| =", float(jnp.abs(by_hand - package).max()))
assert jnp.allclose(by_hand, package, atol=1e-5)

# %% [markdown]
# The residual block around every sub-layer, in the package (post-LN as in the paper, or pre-
# LN):

# %%
from attention.model.residual import Residual

show_code(Residual.__call__)

# %% [markdown]
# and the encoder layer, two residual blocks:

# %%
from attention.model.encoder import EncoderLayer

show_code(EncoderLayer.__call__)

# %% [markdown]
# The decoder layer in the package, three residual blocks:

# %%
from attention.model.decoder import DecoderLayer

show_code(DecoderLayer.__call__)

# %% [markdown]
# ## 8. Causality, through gradients
#
# During training the decoder sees the whole target at once; the causal mask is what stops
# position `t` from reading the answer at `t + 1`. A test that does not trust the mask: take
# the decoder input embeddings `x [T, D]` (token embedding + position), run the decoder
# layers of the model on them, and ask JAX for the full Jacobian
# `d logits[t, :] / d x[u, :]`. Its size for each pair `(t, u)` says how much target input
# `u` can influence output `t`.
#
# **Question.** Which target input positions can influence the logits at output position 2?
# List them before computing the Jacobian; the check below it compares your list with it.

# %%
my_answer = None  # a list of ints

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
# ## Check your understanding
#
# Row 2 of the map holds your answer: the influence of each target input position on output 2.

# %%
assert jnp.all(jnp.triu(influence_TT, k=1) == 0), "the future must have exactly no influence"
check("06.influence_positions", my_answer,
      lambda answer: [int(u) for u in jnp.nonzero(influence_TT[2])[0]] == list(answer))

# %% [markdown]
# ## 9. Padding, through gradients
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
