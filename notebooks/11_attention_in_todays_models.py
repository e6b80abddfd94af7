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
# # 11 Attention in today's models: GQA, sliding windows, RoPE, ALiBi (steps 1, 2, 7, 7a, 8)
#
# The attention of 2017 is still the core of every large model, but a model you download
# today (Llama, Mistral, Gemma, Qwen...) changes four details of it. Each is a small step on
# top of what notebooks 01-05 built, and each is a keyword of the package:
#
# 1. **Multi-query and grouped-query heads** (Shazeer 2019; Ainslie et al. 2023): fewer key
#    and value heads than query heads, so that the key/value cache of decoding shrinks.
#    `dot_product_attention(query, key, value)` with key/value of K heads,
#    `MultiHeadAttention(num_kv_heads=K)`, `TransformerConfig(num_kv_heads=K)`.
# 2. **Sliding-window attention** (Beltagy et al. 2020, Longformer; Jiang et al. 2023,
#    Mistral 7B): each token attends only the last few tokens; depth carries information
#    further. `local_window_size=(w, 0)` of `dot_product_attention` and `MultiHeadAttention`.
# 3. **Rotary position embeddings** (Su et al. 2021, RoFormer): positions as rotations of
#    the queries and keys, so that scores depend on *relative* positions.
#    `TransformerConfig(positional="rope")`.
# 4. **ALiBi** (Press et al. 2022): positions as a bias on the scores, growing linearly with
#    the distance. `TransformerConfig(positional="alibi")`.
#
# Goals: see what each one computes, check it against `jax.nn.dot_product_attention` or a
# formula, and measure what it buys. Exercises 11-13 (`notebooks/exercises/`) let you write
# grouped-query attention, RoPE and the sliding-window mask yourself.

# %%
# %matplotlib inline
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax import nnx

from attention import Transformer, TransformerConfig, dot_product_attention
from attention.comprehension import check, show_code
from attention.kernels import flash_attention
from attention.mechanism.masks import causal_mask, local_window_mask
from attention.mechanism.scores import repeat_kv_heads
from attention.model.positional import alibi_bias, alibi_slopes, apply_rope

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
B, T, N, H = (2, 16, 8, 16) if FAST else (4, 64, 8, 32)
CACHE_LEN = 64 if FAST else 256  # decoding length of the caches we measure
print("fast setting:", FAST, "  B, T, N, H =", (B, T, N, H), " on", jax.default_backend())


def normal(seed, shape):
    return jax.random.normal(jax.random.key(seed), shape)


# %% [markdown]
# ## 1. Multi-query and grouped-query heads
#
# In multi-head attention each of the N heads has its own query, key and value projection.
# When a decoder generates text it keeps the keys and values of every earlier token in the
# **key/value cache** (notebook 09), one `[B, S, N, H]` array of keys and one of values per
# layer, and every new token reads the whole cache. For long texts that cache, not the
# weights, fills the accelerator's memory, and reading it sets the speed of decoding.
#
# Shazeer (2019, "Fast Transformer Decoding: One Write-Head is All You Need") kept the N
# query heads but gave all of them **one** key head and one value head: *multi-query
# attention*, K = 1. Ainslie et al. (2023, "GQA") found the middle ground that most open
# models now use: **grouped-query attention**, K key/value heads with K dividing N, each
# shared by a group of N / K query heads. Query head n uses key/value head
#
# $$k(n) = \lfloor n / (N/K) \rfloor ,$$
#
# the convention of `jax.nn.dot_product_attention`. Repeating each key head N / K times
# (`jnp.repeat`, not `jnp.tile`) turns it back into ordinary multi-head attention; that is
# the teaching view, `repeat_kv_heads`.

# %%
K = N // 4
head_ids = jnp.arange(K, dtype=jnp.float32).reshape(1, K, 1)  # [S=1, K, H=1]: each head's id
print(f"N={N} query heads, K={K} key/value heads")
print("key/value head used by query heads 0..N-1:",
      repeat_kv_heads(head_ids, N)[0, :, 0].astype(int).tolist())

q = normal(0, (B, T, N, H))
k, v = normal(1, (B, T, K, H)), normal(2, (B, T, K, H))
ours = dot_product_attention(q, k, v, is_causal=True)
theirs = jax.nn.dot_product_attention(q, k, v, is_causal=True)
repeated = dot_product_attention(q, repeat_kv_heads(k, N), repeat_kv_heads(v, N), is_causal=True)
flash = flash_attention(q, k, v, is_causal=True, block_q=8, block_k=8)
print("output", ours.shape, "(N heads, from K =", k.shape[2], "key/value heads)")
for name, other in [("jax.nn", theirs), ("repeated heads", repeated), ("flash kernel", flash)]:
    print(f"max |package - {name:14s}| = {float(jnp.abs(ours - other).max()):.2e}")

# %% [markdown]
# In the package:

# %%
show_code(repeat_kv_heads)

# %% [markdown]
# The three agree. The flash kernel (notebook 10) never builds the repeated keys: it reads
# key head `n // (N/K)` for query head n, so it moves N / K times fewer keys and values.
#
# **What it saves, measured.** Below, three encoder-decoder models that differ only in
# `TransformerConfig.num_kv_heads` (K = N, N/4, 1). `model.init_decode_cache` builds the
# caches a decoding loop carries: for each layer the self-attention keys and values
# `[B, L, K, H]` of the target so far and the cross-attention keys and values `[B, S, K, H]`
# of the source. We add up the bytes of those real arrays.
#
# **Predict, then run.** Before we measure, write the size in bytes of the self-attention
# cache of a decoder with `layers` layers, batch `B` (`batch`), `L` cached positions
# (`length`), `K` key/value heads (`kv_heads`) of width `H` (`head_dim`), stored in a dtype
# of `itemsize` bytes. Run its cell, then the measurement: the check after it compares your
# formula with the bytes measured for each K.

# %%
def kv_cache_bytes(layers, batch, length, kv_heads, head_dim, itemsize):
    return None  # your formula


# %%
src = jax.random.randint(jax.random.key(3), (B, 24), 3, 100)
cache_bytes, weights = {}, {}
for kv_heads in (N, N // 4, 1):
    config = TransformerConfig.tiny(vocab_size=100, d_model=N * H, num_heads=N,
                                    num_kv_heads=kv_heads, max_len=CACHE_LEN, dropout_rate=0.0)
    model = Transformer(config, rngs=nnx.Rngs(0))
    memory = model.encode(src, deterministic=True)
    cache = model.init_decode_cache(memory, CACHE_LEN)
    cache_bytes[kv_heads] = sum(a.nbytes for a in jax.tree.leaves(cache.self_attention))
    cross = sum(a.nbytes for a in jax.tree.leaves(cache.cross_attention))
    weights[kv_heads] = sum(p.nbytes for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    print(f"K={kv_heads}: self-attention cache {cache_bytes[kv_heads] / 2**10:7.0f} KiB "
          f"(key shape {tuple(cache.self_attention[0].key.shape)}), cross-attention "
          f"{cross / 2**10:5.0f} KiB, parameters {weights[kv_heads] / 2**20:.2f} MiB")

fig, ax = plt.subplots(figsize=(6, 3))
labels = [f"K={kv} ({'MHA' if kv == N else 'MQA' if kv == 1 else 'GQA'})" for kv in cache_bytes]
ax.bar(labels, [b / 2**10 for b in cache_bytes.values()], color=["C0", "C1", "C2"])
ax.set_ylabel("self-attention cache (KiB)")
ax.set_title(f"KV cache of {config.num_layers} decoder layers, B={B}, L={CACHE_LEN}, N={N}")
fig.tight_layout()
plt.show()

# %%
check("11.kv_cache_bytes", kv_cache_bytes, lambda f: all(
    f(config.num_layers, B, CACHE_LEN, kv_heads, H, 4) == measured
    for kv_heads, measured in cache_bytes.items()))

# %% [markdown]
# The cache is exactly N / K times smaller (4 times for K = N/4, N times for multi-query),
# while the parameters barely change: only the key and value projections shrink. For a real
# model the numbers are large. Llama 2 70B has 80 layers of N = 64 query heads of width
# H = 128 and K = 8 key/value heads; one sequence of 4096 tokens in bfloat16 (2 bytes) needs
# 1.25 GiB of cache with K = 8, and would need 10 GiB with K = 64 (the formula you wrote
# above gives them; the last cell of this notebook computes them from the bytes measured
# here). Ainslie et al. report quality close to
# multi-head attention at the speed of multi-query attention.
#
# ## 2. Sliding-window attention and its receptive field
#
# With a causal mask token t attends all t + 1 tokens up to itself: the cost of a layer grows
# as T^2, and the cache as T. A **sliding window** lets token t attend only itself and the w
# tokens before it, keys `t - w <= s <= t` (Longformer, Beltagy et al. 2020, for encoders;
# Mistral 7B, Jiang et al. 2023, for decoders, with w = 4096). This is
# `local_window_size=(w, 0)` with `is_causal=True`, in the package as in `jax.nn`; the mask
# itself is `local_window_mask(T, S, (w, 0))`.

# %%
W = 3
window_TT = local_window_mask(T, T, (W, 0)) & causal_mask(T)
ours = dot_product_attention(q, k, v, is_causal=True, local_window_size=(W, 0))
theirs = jax.nn.dot_product_attention(q, k, v, is_causal=True, local_window_size=(W, 0))
explicit = dot_product_attention(q, k, v, mask=window_TT)
print("keys per query (first rows):", window_TT.sum(axis=1)[: W + 3].tolist())
print(f"max |package - jax.nn|        = {float(jnp.abs(ours - theirs).max()):.2e}")
print(f"max |package - explicit mask| = {float(jnp.abs(ours - explicit).max()):.2e}")

# %% [markdown]
# The window in the package:

# %%
show_code(local_window_mask)

# %% [markdown]
# One layer sees w tokens back. But layer 2 attends the *outputs* of layer 1, each of which
# already mixed w tokens, so information travels further with depth. Whether token t can be
# reached from token s after L layers is a path question: with the mask as a 0/1 matrix `M`
# (`M[t, s] = 1` when t attends s), paths of L steps are the entries of the matrix power
# `M^L`. We compose the masks as boolean matrix products and measure how far back each
# token's field reaches.

# %%
LAYERS = 4
M = np.asarray(window_TT, np.int64)
reach = [M]
for _ in range(LAYERS - 1):
    reach.append(((reach[-1] @ M) > 0).astype(np.int64))  # one more layer: a boolean product

fig, axes = plt.subplots(1, LAYERS, figsize=(3 * LAYERS, 3), sharey=True)
for layer, (ax, R) in enumerate(zip(axes, reach, strict=True), start=1):
    ax.imshow(R, cmap="Blues", vmin=0, vmax=1)
    ax.set_title(f"after {layer} layer{'s' if layer > 1 else ''}")
    ax.set_xlabel("key position s")
axes[0].set_ylabel("query position t")
fig.suptitle(f"Which tokens can reach token t, sliding window w={W}")
fig.tight_layout()
plt.show()

t_last = T - 1
for layer, R in enumerate(reach, start=1):
    furthest = t_last - int(np.flatnonzero(R[t_last])[0])
    print(f"L={layer}: token {t_last} is reached from {furthest} positions back "
          f"(L * w = {layer * W})")
    assert furthest == min(layer * W, t_last)

# %% [markdown]
# The field grows as **L * w**: Mistral's 32 layers with w = 4096 reach about 131 000 tokens
# back, although each layer only ever looks 4096 tokens back, and the cache of a layer never
# needs more than w + 1 entries (Mistral keeps a rolling buffer). The flash kernel skips the
# tiles of keys outside the band, so for a fixed window its cost grows linearly in T
# (`benchmarks/attention.py` measures it).
#
# ## 3. Rotary position embeddings (RoPE)
#
# Notebook 05 *added* sinusoids to the embeddings. Su et al. (2021, "RoFormer") instead
# *rotate* every query and key, in every layer, by an angle proportional to its position.
# Split a head vector of even size H into H / 2 pairs; pair i, `(x_2i, x_2i+1)`, at position
# p is rotated by the angle `p * theta_i`, with the sinusoids' frequencies
#
# $$\theta_i = \text{base}^{-2i/H}, \qquad \begin{pmatrix} x'_{2i} \\ x'_{2i+1} \end{pmatrix} = \begin{pmatrix} \cos p\theta_i & -\sin p\theta_i \\ \sin p\theta_i & \cos p\theta_i \end{pmatrix} \begin{pmatrix} x_{2i} \\ x_{2i+1} \end{pmatrix}, \qquad \text{base} = 10000 .$$
#
# **Which features form a pair.** The package (`attention.model.positional.apply_rope`),
# like the RoFormer paper, pairs **neighbouring features (x_2i, x_2i+1)**. GPT-NeoX and
# Hugging Face's Llama pair x_i with x_{i + H/2} ("rotate half"): a fixed permutation of the
# features, equivalent for a model trained that way, but weights trained with one layout do
# not work with the other. Exercise 12 uses the paper's layout.
#
# A 2-d picture first: one pair (H = 2, so theta_0 = 1 radian per position) at positions 0 to
# 7. Its length never changes, only its direction.

# %%
pair = jnp.array([1.0, 0.4]).reshape(1, 1, 2)  # [T=1, N=1, H=2]
positions = jnp.arange(8)
rotated = apply_rope(jnp.broadcast_to(pair, (8, 1, 2)), positions)[:, 0]  # [8, 2]

angle_PI = np.arange(64)[:, None] * 10000.0 ** (-np.arange(0, 32, 2) / 32)  # H = 32
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
ax = axes[0]
for p, (x0, x1) in enumerate(np.asarray(rotated)):
    ax.arrow(0, 0, x0, x1, head_width=0.04, length_includes_head=True,
             color=plt.cm.viridis(p / 7))
    ax.annotate(f"p={p}", (1.12 * x0, 1.12 * x1), ha="center", va="center", fontsize=8)
ax.add_patch(plt.Circle((0, 0), float(jnp.linalg.norm(pair)), fill=False, ls=":"))
ax.set_xlim(-1.4, 1.4)
ax.set_ylim(-1.4, 1.4)
ax.set_aspect("equal")
ax.set_title("one pair (x_0, x_1) rotated by p * theta_0")
im = axes[1].imshow(np.cos(angle_PI).T, aspect="auto", cmap="RdBu", origin="lower")
axes[1].set_xlabel("position p")
axes[1].set_ylabel("pair i")
axes[1].set_title("cos(p * theta_i), H = 32: fast pairs at the bottom")
fig.colorbar(im, ax=axes[1])
fig.tight_layout()
plt.show()
print("lengths of the rotated pair:", [round(float(n), 4) for n in jnp.linalg.norm(rotated, axis=-1)])

# %% [markdown]
# Rotary positions in the package:

# %%
show_code(apply_rope)

# %% [markdown]
# **Why rotations give relative positions.** The score of a query at position m and a key at
# position n is `(R_m q) . (R_n k) = q^T R_m^T R_n k = q^T R_{n-m} k`: a rotation by n
# followed by the inverse of a rotation by m is a rotation by n - m. The score depends on the
# two positions only through their **distance**, whatever the absolute positions, which is
# what Su et al. were after. We check it numerically: one query vector and one key vector,
# placed at every pair of positions (m, n); the score matrix must be constant along each
# diagonal m - n = const (a Toeplitz matrix).

# %%
P = 24
q_vec, k_vec = normal(4, (1, 1, H)), normal(5, (1, 1, H))  # one query, one key: [1, 1, H]
all_positions = jnp.arange(P)
q_rot = apply_rope(jnp.broadcast_to(q_vec, (P, 1, H)), all_positions)[:, 0]  # [P, H]
k_rot = apply_rope(jnp.broadcast_to(k_vec, (P, 1, H)), all_positions)[:, 0]
scores_MN = np.asarray(q_rot @ k_rot.T)  # score of the query at m and the key at n
spread = max(np.ptp(np.diagonal(scores_MN, offset=d)) for d in range(-P + 1, P))
print(f"largest spread of the scores along a diagonal m - n = const: {spread:.2e}")
print("scores at distance m - n = 3:", [round(float(x), 4) for x in np.diagonal(scores_MN, -3)[:5]])
assert spread < 1e-4

fig, ax = plt.subplots(figsize=(4.5, 3.8))
im = ax.imshow(scores_MN, cmap="RdBu")
ax.set_xlabel("key position n")
ax.set_ylabel("query position m")
ax.set_title("RoPE scores q_m . k_n: constant diagonals")
fig.colorbar(im, ax=ax)
fig.tight_layout()
plt.show()

# %% [markdown]
# In the model, `TransformerConfig(positional="rope")` puts a `RotaryEmbedding` in every
# self-attention layer: queries and keys are rotated right after their projections, never
# the values (a rotated value would carry its absolute position into the output), and nothing
# is added to the embeddings. When decoding with a cache, each new key is rotated at its own
# position before it is stored.
#
# ## 4. ALiBi: a linear penalty on distance
#
# Press et al. (2022, "Train Short, Test Long: Attention with Linear Biases") drop position
# vectors altogether and subtract from each score a penalty proportional to the distance:
#
# $$\text{score}_h(t, s) = \frac{q_t \cdot k_s}{\sqrt{d_k}} - m_h \, |t - s| ,$$
#
# with a fixed slope m_h per head: for N heads the geometric sequence `2^(-8/N)`,
# `2^(-16/N)`, ..., `2^(-8)`. Steep heads look at the last few tokens, shallow ones far back.
# Because the penalty is defined at every distance, a model trained on short texts keeps
# working on longer ones, the paper's point.

# %%
slopes = alibi_slopes(N)
print("slopes m_h:", ", ".join(f"{float(m):.5g}" for m in slopes),
      " (= 2^(-8 (h + 1) / N) for heads h = 0 .. N-1)")
bias_NTT = alibi_bias(slopes, jnp.arange(T), jnp.arange(T))
causal_TT = np.asarray(causal_mask(T))

shown = [0, 1, N // 2, N - 1]
fig, axes = plt.subplots(1, len(shown) + 1, figsize=(3 * (len(shown) + 1), 3.2),
                         layout="constrained")
lowest = float(bias_NTT[jnp.array(shown)].min())  # one colour scale for all heads, to compare them
for ax, h in zip(axes, shown, strict=False):
    im = ax.imshow(np.where(causal_TT, np.asarray(bias_NTT[h]), np.nan), cmap="viridis",
                   vmin=lowest, vmax=0.0)
    ax.set_title(f"head {h}: m = {float(slopes[h]):.4f}")
    ax.set_xlabel("key s")
axes[0].set_ylabel("query t")
fig.colorbar(im, ax=axes[: len(shown)].tolist(), shrink=0.8, label="bias")
axes[-1].semilogy(np.arange(N), np.asarray(slopes), "o-")
axes[-1].set_xlabel("head h")
axes[-1].set_title("slopes (log scale)")
fig.suptitle("ALiBi biases -m_h (t - s) under the causal mask")
plt.show()

# %% [markdown]
# ALiBi's bias in the package:

# %%
show_code(alibi_bias)

# %% [markdown]
# Each head's bias is a ramp along the rows, the same on every row after shifting: like RoPE,
# ALiBi depends only on the distance t - s. Head 0 (steep) pushes everything but the last few
# tokens far down, head N - 1 barely penalises distance at all. On a log scale the slopes lie
# on a line, a geometric sequence.
#
# ## 5. All of it in one model
#
# Three of the four choices are fields of the one config (`num_kv_heads`, `positional`; the
# sliding window is an argument of `dot_product_attention` and of `MultiHeadAttention`,
# `local_window_size=`, not a `TransformerConfig` field), and they combine: here a model with
# RoPE and multi-query attention, and one with ALiBi and grouped-query attention (both
# encoder-decoder models, run on a batch of source and target tokens).

# %%
tgt = jax.random.randint(jax.random.key(6), (B, 10), 3, 100)
base_config = TransformerConfig.tiny(vocab_size=100, d_model=64, num_heads=4, num_layers=1,
                                     dropout_rate=0.0)
forward = nnx.jit(lambda model, src, tgt: model(src, tgt, deterministic=True))  # one compile
for fields in (dict(positional="rope", num_kv_heads=1), dict(positional="alibi", num_kv_heads=2)):
    model = Transformer(base_config.replace(**fields), rngs=nnx.Rngs(0))
    logits = forward(model, src, tgt)
    print(fields, "-> logits", logits.shape, "finite:", bool(jnp.isfinite(logits).all()))

# %% [markdown]
# ## The cache of a real model
#
# What the bytes measured in section 1 say about Llama 2 70B (80 layers, K = 8 or 64
# key/value heads of width 128, one sequence of 4096 tokens in bfloat16): the bytes per
# (layer, position, head, feature), scaled up.

# %%
per_entry = cache_bytes[N] / (config.num_layers * B * CACHE_LEN * N * H * 4)
for kv_heads in (8, 64):  # Llama 2 70B: 80 layers, 4096 tokens, H = 128, bfloat16
    print(f"Llama 2 70B with K={kv_heads}: {per_entry * 80 * 4096 * kv_heads * 128 * 2 / 2**30:.2f} "
          f"GiB for one sequence of 4096 tokens (per_entry = {per_entry:g}: keys and values)")
