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
# # 09 Decoding: greedy, beam search and the key/value cache (steps 7a, 17, 17a)
#
# Goals:
#
# 1. Generate translations one token at a time: greedy decoding.
# 2. Keep several candidates alive: beam search with the length penalty the paper used.
# 3. Make each step cheap with a **key/value cache**, check that it gives exactly the same
#    tokens, and measure the speed-up.
#
# A trained model gives `P(y_t | y_<t, x)`. The probability of a whole translation is the
# product, so its log is a sum:
#
# $$\log P(y \mid x) = \sum_t \log P(y_t \mid y_{<t}, x).$$
#
# **Greedy** decoding picks the most likely token at each step. **Beam search** keeps the `K`
# best prefixes at each step, ranking them (finished or not) by `log P / lp(y)` with
# `lp(y) = ((5 + |y|) / 6)^alpha` (Wu et al. 2016; the paper used `K = 4`, `alpha = 0.6`),
# because a plain sum of log-probabilities favours short outputs.

# %%
# %matplotlib inline
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from attention import beam_search, greedy_decode
from attention.application.course import load_or_train_course_model
from attention.application.translation import exact_match, pad_sources
from attention.comprehension import check, show_code
from attention.data import make_task

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
TASK = "svo_to_sov"
print("fast setting:", FAST)

# %% [markdown]
# ## The trained model
#
# Notebook 07 trained a model on `svo_to_sov` and saved it under `runs/`. If you run this
# notebook on its own, the cell below trains the same model with the same recipe (about two
# minutes on a laptop CPU) and saves it there.

# %%
RUN_DIR = pathlib.Path("runs") / ("notebook07_fast" if FAST else "notebook07")
course, message = load_or_train_course_model(RUN_DIR, fast=FAST, task=TASK)
model, tokenizer, config = course.model, course.tokenizer, course.config
print(message)

# %% [markdown]
# ## 1. Greedy decoding
#
# `greedy_decode(model, src, max_len)` encodes the source once, then loops: feed the tokens
# so far, take the most probable next token, stop when every sentence has produced `</s>`.
# The whole loop is one compiled program (`lax.while_loop` inside `nnx.jit`).

# %%
test_pairs = make_task(TASK, num_examples=16 if FAST else 128, seed=321)
sources, references = [s for s, _ in test_pairs], [t for _, t in test_pairs]
src = jnp.asarray(pad_sources(sources, tokenizer, max_len=config.max_len))
MAX_LEN = 12 if FAST else 24  # target tokens to generate at most (the longest target has 16 with </s>)

tokens, log_probs = greedy_decode(model, src, max_len=MAX_LEN)
greedy = [tokenizer.decode(row) for row in np.asarray(tokens).tolist()]
print(f"src {src.shape} -> tokens {tokens.shape}")
for i in range(3):
    print(f"{sources[i]}\n  -> {greedy[i]}   (log P = {float(log_probs[i]):.3f})")
print(f"greedy exact match: {exact_match(greedy, references):.1%}")

# %% [markdown]
# Greedy decoding and sampling share one loop in the package, a `lax.while_loop` over positions
# that stops when every sequence has ended:

# %%
from attention.model.generation import decode_loop

show_code(decode_loop)

# %% [markdown]
# ## 2. Beam search
#
# With `beam_size=1` beam search *is* greedy decoding (a good first check). With more beams
# it can recover from a first choice that looked best locally but was not.

# %%
one_beam, _ = beam_search(model, src, beam_size=1, max_len=MAX_LEN)
assert np.array_equal(np.asarray(one_beam), np.asarray(tokens)), "beam 1 must equal greedy"

beam_tokens, beam_scores = beam_search(model, src, beam_size=4, max_len=MAX_LEN,
                                       length_penalty=0.6)
beam = [tokenizer.decode(row) for row in np.asarray(beam_tokens).tolist()]
changed = sum(g != b for g, b in zip(greedy, beam, strict=True))
print(f"beam 4 exact match: {exact_match(beam, references):.1%}; "
      f"{changed} of {len(beam)} outputs differ from greedy")

# %% [markdown]
# Beam search, as the package runs it (compiled once per shape):

# %%
from attention.model.decoding import _beam_search_jit

show_code(_beam_search_jit)

# %% [markdown]
# On a task this regular a well-trained model is sure of every word, so greedy and beam
# search mostly agree. On real language the gain is not guaranteed either: the README's
# Multi30k run (`benchmarks/train_multi30k.py`, 20 minutes on 2 cores) measured test2016
# BLEU 26.2 greedy against 26.1 with beam 5. Published gains of a BLEU point or so are for
# larger, better-trained models. Beam search finds outputs that *the model* scores higher;
# for a small, undertrained model those need not be closer to the reference (one run does
# not tell which explanation holds, only that the gain did not appear).
#
# ## 3. The key/value cache
#
# Without a cache, step `t` runs the decoder on the whole prefix `y_0 .. y_t` again, although
# the keys and values of positions `0 .. t-1` have not changed (the causal mask guarantees
# they never look forward). With a cache, each decoder self-attention layer stores the keys
# and values it has computed, and step `t` runs the decoder on the **one** new position,
# appending its key and value. The cross-attention keys and values come from the encoder
# output and are computed once. The decoder stack now processes **one** position a step
# instead of `t` (the projections and feed-forward networks go from `O(t)` to `O(1)` work a
# step), but that position's attention still reads all `t` cached keys and values: attention
# stays `O(t)` a step, `O(L^2)` for a whole output of `L` tokens. The cache removes the
# recomputation, not the quadratic attention.
#
# The switch is `use_cache`; the uncached path is the reference the cache is tested against.
# Both run inside one compiled loop, whose arrays keep one shape from step to step: the
# uncached path feeds the whole buffer of `max_len` positions at every step (the causal mask
# makes the positions after `t` irrelevant), and the cached step attends over all `max_len`
# cache slots, masking those not yet written. So here the uncached loop costs `max_len`
# position-updates a step, not `t`.

# %%
def decode_time(use_cache, batch, repeats=1 if FAST else 3):
    run = lambda: greedy_decode(model, batch, max_len=MAX_LEN, use_cache=use_cache)
    jax.block_until_ready(run())  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run())
        best = min(best, time.perf_counter() - start)
    return best


cached, _ = greedy_decode(model, src, max_len=MAX_LEN, use_cache=True)
uncached, _ = greedy_decode(model, src, max_len=MAX_LEN, use_cache=False)
assert np.array_equal(np.asarray(cached), np.asarray(uncached)), "the cache changed the output"
print("greedy: same tokens with and without the cache")
beam_uncached, _ = beam_search(model, src, beam_size=4, max_len=MAX_LEN, use_cache=False)
assert np.array_equal(np.asarray(beam_tokens), np.asarray(beam_uncached))
print("beam search: same tokens with and without the cache")

t_cached, t_uncached = decode_time(True, src), decode_time(False, src)
print(f"{src.shape[0]} sentences, up to {MAX_LEN} tokens: without cache {1e3 * t_uncached:.0f} ms, "
      f"with cache {1e3 * t_cached:.0f} ms ({t_uncached / t_cached:.1f}x)")

# %% [markdown]
# The cache at work in one attention layer: project only the new tokens, write their keys and
# values at `index`, attend over the slots written so far:

# %%
from attention.mechanism.kv_cache import append_and_attend

show_code(append_and_attend)

# %% [markdown]
# The gain grows with the output length (how fast, the question at the end of this notebook
# asks you to count; this uncached loop, feeding its whole buffer, does `L * max_len`
# position updates for `L` tokens). A toy sentence is short; for long outputs the cache is
# what makes generation practical. The loop stops early once every sentence has produced
# `</s>`, so beyond the longest output (at most 16 tokens with `</s>` in this task) more
# `max_len` adds no steps; the uncached time still grows with it, because each of its steps
# runs the whole buffer.

# %%
lengths = [8] if FAST else [8, 16, 24, 32]
few = src[:8]
times = {use: [] for use in (True, False)}
for n in lengths:
    for use in (True, False):
        def run(n=n, use=use):
            return beam_search(model, few, beam_size=4, max_len=n, length_penalty=0.0,
                               use_cache=use)

        jax.block_until_ready(run())  # compile
        best = float("inf")
        for _ in range(1 if FAST else 3):
            start = time.perf_counter()
            jax.block_until_ready(run())
            best = min(best, time.perf_counter() - start)
        times[use].append(best)
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(lengths, [1e3 * t for t in times[False]], "o-", label="no cache")
ax.plot(lengths, [1e3 * t for t in times[True]], "s-", label="key/value cache")
ax.set_xlabel("max_len (decoding buffer, tokens)")
ax.set_ylabel("time (ms), 8 sentences, beam 4")
ax.set_title("decoding time")
ax.legend()
plt.show()

# %% [markdown]
# ## Check your understanding
#
# **Question.** Decoding `L` tokens, how many decoder position-updates (one position through
# the decoder stack) does an uncached loop that feeds the prefix `y_0 .. y_t` at step `t` run
# in total, and the cached one? Write both as functions of `L` and run their cell, then the
# next one: it counts the updates of both loops by simulating them.

# %%
def uncached_updates(L):
    return None  # your formula


def cached_updates(L):
    return None  # your formula


# %%
def simulate(L, use_cache):
    """Count the positions fed through the decoder, step by step, as the two loops do."""
    prefix, updates = 0, 0
    for _ in range(L):
        prefix += 1
        updates += 1 if use_cache else prefix
    return updates


check("09.uncached_updates", uncached_updates,
      lambda f: all(f(L) == simulate(L, use_cache=False) for L in (1, 7, 24)))
check("09.cached_updates", cached_updates,
      lambda f: all(f(L) == simulate(L, use_cache=True) for L in (1, 7, 24)))
