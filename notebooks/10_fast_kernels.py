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
# # 10 Fast kernels: jit, blockwise and flash attention (steps 27-27e)
#
# Goals:
#
# 1. See what `jax.jit` buys on the reference attention.
# 2. Meet the ladder of kernels in `attention.kernels` (fused, blockwise, flash) and check
#    that each computes the same function as the reference, values *and* gradients.
# 3. Measure memory against sequence length with XLA's own accounting
#    (`jit(f).lower(...).compile().memory_analysis()`): the reference stores the `T x S`
#    weights, flash attention does not.
# 4. Switch a whole model to a kernel with one config field.
#
# The idea behind blockwise and flash attention: the softmax over keys can be computed
# **online**, one block of keys at a time (the online softmax of Milakov & Gimelshein 2018,
# "Online normalizer calculation for softmax"; Rabe & Staats 2021 applied it to attention to
# save memory, and Dao et al. 2022, FlashAttention, made it fast on GPUs). Keep for each
# query a running maximum `m`, a running denominator `l` and a running output `o`; for a new
# block with scores `x_j` and values `v_j`:
#
# $$m' = \max(m, \max_j x_j), \quad l' = e^{m - m'} l + \sum_j e^{x_j - m'}, \quad o' = e^{m - m'} o + \sum_j e^{x_j - m'} v_j,$$
#
# and at the end `output = o / l`. The `T x S` matrix of weights never exists at once. The
# arithmetic does not shrink: every query is still scored against every key it may attend,
# about `4 T S H` FLOPs per head for the forward pass (`2 T S H` for `Q K^T`, as many for the
# weighted sum), `O(T^2 H)` as in the reference. Flash attention skips the tiles a causal
# mask hides, which halves that without changing the growth, and its backward pass even
# recomputes the scores. What changes is memory, `O(T)` instead of `O(T^2)`, and the traffic
# to it.
#
# | layer (sequence of T tokens, width D) | FLOPs per layer | sequential steps | longest path between two tokens |
# |---|---|---|---|
# | self-attention | `O(T^2 D)` | `O(1)` | `O(1)` |
# | recurrent (RNN, LSTM) | `O(T D^2)` | `O(T)` | `O(T)` |
# | convolution, kernel k | `O(k T D^2)` | `O(1)` | `O(log_k T)` |
# | self-attention, window w | `O(w T D)` | `O(1)` | `O(T / w)` |
#
# (the paper's Table 1, section 4). Attention is cheaper than a recurrent layer while
# `T < D` (most sentences), connects every pair of tokens in one step, and runs all
# positions in parallel; for long texts its `T^2` dominates, which is what windows
# (notebook 11) and the memory savings of this notebook are about.

# %%
# %matplotlib inline
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
from flax import nnx

from attention import Transformer, TransformerConfig, dot_product_attention, get_attention_fn
from attention.comprehension import check, show_code
from attention.kernels import blockwise_attention, flash_attention, fused_attention

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
B, T, N, H = (1, 128, 2, 16) if FAST else (2, 1024, 4, 32)
LENGTHS = [128, 256] if FAST else [256, 512, 1024, 2048, 4096]
BLOCK = 64 if FAST else 128
print("fast setting:", FAST, "  B, T, N, H =", (B, T, N, H), " on", jax.default_backend())


def best_time(fn, *args, repeats=5):
    """Fastest of `repeats` calls in seconds, after one warm-up call (which compiles)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


kq, kk, kv = jax.random.split(jax.random.key(0), 3)
q = jax.random.normal(kq, (B, T, N, H))
k = jax.random.normal(kk, (B, T, N, H))
v = jax.random.normal(kv, (B, T, N, H))

# %% [markdown]
# ## 1. `jit`
#
# Without `jit`, JAX runs each operation of the reference (scores, mask, softmax, weighted
# sum, plus the argument checks) as a separate call from Python. `jax.jit` traces the
# function once and hands XLA the whole program, which fuses operations and drops the
# Python overhead.

# %%
def reference(q, k, v):
    return dot_product_attention(q, k, v, is_causal=True)


t_eager = best_time(reference, q, k, v, repeats=3)
t_jit = best_time(jax.jit(reference), q, k, v)
print(f"eager: {1e3 * t_eager:.1f} ms   jit: {1e3 * t_jit:.1f} ms   ({t_eager / t_jit:.1f}x)")

# %% [markdown]
# ## 2. The same function, four ways
#
# The reference and the three kernels of `attention.kernels`, with `jax.nn`'s own attention
# as a fifth, independent check. Every kernel takes the arguments of `dot_product_attention`
# (`[B, T, N, H]` inputs, `mask`, `is_causal`, ...) plus its block sizes. Flash attention
# also has a hand-written backward pass that recomputes the weights block by block instead
# of storing them.

# %%
kernels = {
    "reference": reference,
    "fused": lambda q, k, v: fused_attention(q, k, v, is_causal=True),
    "blockwise": lambda q, k, v: blockwise_attention(q, k, v, is_causal=True, block_k=BLOCK),
    "flash": lambda q, k, v: flash_attention(q, k, v, is_causal=True, block_q=BLOCK,
                                             block_k=BLOCK),
    "jax.nn": lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True),
}


def loss(f):
    return lambda q, k, v: jnp.sum(jnp.sin(f(q, k, v)))  # any scalar function of the output


expected = jax.jit(reference)(q, k, v)
expected_grads = jax.jit(jax.grad(loss(reference), argnums=(0, 1, 2)))(q, k, v)
for name, f in kernels.items():
    out = jax.jit(f)(q, k, v)
    grads = jax.jit(jax.grad(loss(f), argnums=(0, 1, 2)))(q, k, v)
    out_err = float(jnp.abs(out - expected).max())
    grad_err = max(float(jnp.abs(g - e).max()) for g, e in zip(grads, expected_grads, strict=True))
    t = best_time(jax.jit(f), q, k, v)
    print(f"{name:10s} max |out - ref| {out_err:.1e}   max |grad - ref| {grad_err:.1e}   "
          f"{1e3 * t:7.2f} ms")
    assert out_err < 1e-4 and grad_err < 1e-3, name

# %% [markdown]
# The heart of the flash kernel: for each block of queries, a loop over the key blocks it may
# see, keeping a running maximum, a running sum and a running output (the online softmax):

# %%
from attention.kernels.flash import _forward_tiles

show_code(_forward_tiles)

# %% [markdown]
# All five agree to float32 rounding. The times are for this machine and this size only.
# The tiled kernels (blockwise, flash) never write the `T x S` weights out to memory, which
# can pay off even on a CPU once `T` is long; on a GPU, whose fast on-chip memory is small,
# it is the whole point (`benchmarks/attention.py` compares them there). What every device
# gets is the memory saving, which we measure next.
#
# ## 3. Memory against sequence length
#
# XLA knows, before running anything, how much temporary memory a compiled program needs.
# We compile the forward pass and the forward+backward pass (what training runs) of each
# kernel for growing `T` and read `temp_size_in_bytes`.

# %%
def temp_megabytes(f, T, backward):
    x = jax.ShapeDtypeStruct((1, T, N, H), jnp.float32)
    g = jax.grad(loss(f), argnums=(0, 1, 2)) if backward else f
    analysis = jax.jit(g).lower(x, x, x).compile().memory_analysis()
    return None if analysis is None else analysis.temp_size_in_bytes / 2**20


memory = {(name, backward): [temp_megabytes(kernels[name], T_, backward) for T_ in LENGTHS]
          for name in ["reference", "blockwise", "flash"] for backward in [False, True]}
for (name, backward), megabytes in memory.items():
    label = "forward+backward" if backward else "forward"
    print(f"{name:10s} {label:17s}", "  ".join(f"{m:8.1f}" for m in megabytes), "MiB")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, backward in zip(axes, [False, True], strict=True):
    for name, marker in [("reference", "o-"), ("blockwise", "s--"), ("flash", "^-")]:
        ax.loglog(LENGTHS, memory[(name, backward)], marker, label=name)
    ax.set_xticks(LENGTHS, [str(t) for t in LENGTHS])
    ax.set_xticks([], minor=True)
    ax.set_xlabel("sequence length T (= S)")
    ax.set_title("forward + backward" if backward else "forward")
    ax.legend()
axes[0].set_ylabel("XLA temporary memory (MiB)")
fig.suptitle(f"Attention memory, N={N} heads of width {H}, blocks of {BLOCK}")
fig.tight_layout()
plt.show()

# %% [markdown]
# The reference grows like `T^2` (slope 2 on the log-log plot): it stores all the weights.
# Blockwise attention is linear in the forward pass, but automatic differentiation through
# its loop stores every block for the backward pass, so training is quadratic again. Flash
# attention's custom backward recomputes instead of storing: linear both ways.
#
# ## 4. A model with a fast kernel
#
# `TransformerConfig(attention_impl=...)` picks the kernel by name through
# `get_attention_fn`. The parameters do not change, so the same weights give the same
# outputs (the plots of the earlier notebooks need `"reference"`, the only path that returns
# the weights: the fused kernel forms them inside one expression, the tiled ones never do).

# %%
config = TransformerConfig.tiny(vocab_size=50, d_model=32, num_layers=1, dropout_rate=0.0)
model = Transformer(config, rngs=nnx.Rngs(0))
fast_model = Transformer(config.replace(attention_impl="flash"), rngs=nnx.Rngs(0))
src = jax.random.randint(jax.random.key(1), (2, 12), 3, 50)
tgt = jax.random.randint(jax.random.key(2), (2, 9), 3, 50)
difference = jnp.abs(model(src, tgt, deterministic=True) - fast_model(src, tgt, deterministic=True))
print("max |reference model - flash model| =", float(difference.max()))
print("get_attention_fn('flash', block_q=64, block_k=64) ->", get_attention_fn("flash", block_q=64, block_k=64))

# %% [markdown]
# ## Check your understanding
#
# **Question 1.** The reference stores the weights `[B, N, T, S]` in float32. How many MiB is
# that for one sequence (`B = 1`) with `N` heads at `T = S`? Write a formula and run its
# cell, then the next one: it compares your formula with the size of the weights array (its
# shape and dtype, from `jax.eval_shape`) and prints XLA's measurement of section 3 beside it.

# %%
def weights_mib(N_heads, T_):
    return None  # your formula


# %%
T_last = LENGTHS[-1]
weights_array = jax.eval_shape(  # the weights' shape and dtype, without computing them
    lambda q, k: jax.nn.softmax(jnp.einsum("BTNH,BSNH->BNTS", q, k)),
    jax.ShapeDtypeStruct((1, T_last, N, H), jnp.float32),
    jax.ShapeDtypeStruct((1, T_last, N, H), jnp.float32))
actual_mib = weights_array.size * weights_array.dtype.itemsize / 2**20
assert memory[("reference", False)][-1] >= actual_mib  # it holds at least the weights
assert memory[("flash", True)][-1] * 4 < memory[("reference", True)][-1]
check("10.weights_mib", weights_mib,
      lambda f: abs(f(N, T_last) - actual_mib) < 1e-6 and abs(f(2 * N, 2 * T_last) - 8 * actual_mib) < 1e-6)
print(f"weights at T={T_last}: {actual_mib:.0f} MiB; reference forward used "
      f"{memory[('reference', False)][-1]:.0f} MiB")

# %% [markdown]
# **Question 2.** Flash attention computes the same scores as the reference, block by block
# (the values above agree to rounding). How does its arithmetic grow with `T`: (a) like `T`
# (flash attention is linear in memory), (b) like `T log T`, or (c) like `T^2`? Answer and
# run the cell, then the check below it: it reads XLA's FLOP count of the reference for two
# lengths (why the reference's count stands for flash attention's, the note after the check
# says).

# %%
my_answer = None  # "a", "b" or "c"


# %%
def reference_flops(T_):
    x = jax.ShapeDtypeStruct((1, T_, N, H), jnp.float32)
    cost = jax.jit(lambda q, k, v: dot_product_attention(q, k, v)).lower(x, x, x).compile()
    analysis = cost.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"])


ratio = reference_flops(2 * LENGTHS[0]) / reference_flops(LENGTHS[0])
measured = "c" if 3.5 < ratio < 4.5 else "b" if 2.1 < ratio < 3.5 else "a"
check("10.flash_flops", my_answer, lambda answer: answer == measured)
print(f"doubling T from {LENGTHS[0]} multiplies the FLOPs by {ratio:.2f} "
      f"(4 T^2 H N = {4 * LENGTHS[0] ** 2 * H * N:,} at T={LENGTHS[0]}; XLA counts "
      f"{reference_flops(LENGTHS[0]):,.0f})")

# %% [markdown]
# XLA counts a loop's body once, so it cannot count the tiled kernels' FLOPs for us; without a
# mask their loops visit every pair of blocks, every score the reference computes, so their
# arithmetic grows as the reference's does.
