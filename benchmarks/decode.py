"""Tokens per second of greedy decoding with and without the key/value cache.

Without the cache, step t re-runs the decoder over the whole prefix buffer (work ~ L per step,
~ L^2 per sentence); with it, step t runs the decoder on one new position and reads the
earlier keys/values (work ~ 1 per step in the projections and FFN, ~ t in attention). The
speed-up should grow with the decoded length L.

A second table compares the cache of multi-head attention (K = N key/value heads) with that of
grouped-query attention (K = N/4; Ainslie et al. 2023) on a model with N = 8 heads: the bytes
of the real cache arrays (``model.init_decode_cache``: every layer's self-attention cache of
``[B, L, K, H]`` keys and values, and the cross-attention keys/values of the source) and the
tokens/s of cached decoding. The cache shrinks by N/K; each step reads N/K times less.

    python benchmarks/decode.py                 # lengths 32 64 128 256, writes results/decode.txt
    python benchmarks/decode.py --lengths 16 32 --batch 4 --no-write
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# benchmarks/attention.py would shadow the `attention` package when this runs as a script.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

from attention._machine import cpu_description  # noqa: E402
from attention.model.config import TransformerConfig  # noqa: E402
from attention.model.decoding import greedy_decode  # noqa: E402
from attention.model.transformer import Transformer, count_params  # noqa: E402

RESULTS = _HERE / "results" / "decode.txt"


def time_decode(model, src, max_len, use_cache, repeats):
    """Median wall time of one compiled decode (compilation excluded) and tokens produced."""
    tokens, _ = greedy_decode(model, src, max_len=max_len, use_cache=use_cache)  # compile
    jax.block_until_ready(tokens)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokens, log_probs = greedy_decode(model, src, max_len=max_len, use_cache=use_cache)
        jax.block_until_ready((tokens, log_probs))
        times.append(time.perf_counter() - start)
    # The loop runs until every row has produced eos (or max_len): count those steps.
    tokens = np.asarray(tokens)
    ended = (tokens == model.config.eos_id).any(1)
    lengths = np.where(ended, (tokens == model.config.eos_id).argmax(1) + 1, max_len)
    steps = int(lengths.max())
    return statistics.median(times), steps, tokens


def cache_bytes(cache) -> tuple[int, int]:
    """(self-attention bytes, cross-attention bytes) of the real arrays of a DecodeCache."""
    def total(tree):
        return sum(leaf.nbytes for leaf in jax.tree.leaves(tree))

    return total(cache.self_attention), total(cache.cross_attention)


def gqa_table(args) -> list[str]:
    """Cache memory and cached tokens/s for K = N and K = N/4 key/value heads."""
    N, length = args.gqa_heads, max(args.lengths)
    src = jax.random.randint(jax.random.key(0), (args.batch, args.src_len), 3, args.vocab)
    lines = [
        "",
        f"Grouped-query heads: TransformerConfig.tiny(num_heads={N}, num_kv_heads=K), "
        f"decoding length {length}; cache = bytes of model.init_decode_cache(memory, {length}) "
        f"(self-attention [B, L, K, H] keys + values per layer; cross-attention [B, S, K, H])",
        "",
        f"{'K':>3}  {'self-attn cache':>15}  {'cross-attn cache':>16}  {'ratio':>5}  "
        f"{'cached tok/s':>12}  same tokens as uncached",
    ]
    print("\n".join(lines), flush=True)
    reference_bytes = None
    for K in (N, N // 4):
        config = TransformerConfig.tiny(vocab_size=args.vocab,
                                        max_len=max(length, args.src_len), num_heads=N,
                                        num_kv_heads=K)
        model = Transformer(config, rngs=nnx.Rngs(0))
        model.eval()
        memory = model.encode(src, deterministic=True)
        self_bytes, cross_bytes = cache_bytes(model.init_decode_cache(memory, length))
        reference_bytes = reference_bytes or self_bytes + cross_bytes
        t_cached, steps, tokens_cached = time_decode(model, src, length, True, args.repeats)
        # Once, untimed: the cache with K heads must not change the decoded tokens.
        tokens_full, _ = greedy_decode(model, src, max_len=length, use_cache=False)
        same = bool(np.array_equal(tokens_cached, np.asarray(tokens_full)))
        ratio = reference_bytes / (self_bytes + cross_bytes)
        line = (f"{K:>3}  {self_bytes:>15,}  {cross_bytes:>16,}  {ratio:>4.1f}x  "
                f"{args.batch * steps / t_cached:>12,.0f}  {same}")
        print(line, flush=True)
        lines.append(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--src-len", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gqa-heads", type=int, default=8,
                        help="query heads N of the model of the grouped-query table")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    # The positions must cover the source as well as the decoded target.
    config = TransformerConfig.tiny(vocab_size=args.vocab,
                                    max_len=max(*args.lengths, args.src_len))
    model = Transformer(config, rngs=nnx.Rngs(0))
    model.eval()
    src = jax.random.randint(jax.random.key(0), (args.batch, args.src_len), 3, args.vocab)

    lines = [
        "Greedy decoding, tokens per second: key/value cache vs recomputing the prefix",
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"{platform.machine()}, jax {jax.__version__}",
        f"CPU {cpu_description()}",
        f"model: TransformerConfig.tiny(vocab_size={args.vocab}): d_model={config.d_model}, "
        f"h={config.num_heads}, d_ff={config.d_ff}, N={config.num_layers}+{config.num_layers}, "
        f"{count_params(model):,} parameters",
        f"batch {args.batch}, source length {args.src_len}, median of {args.repeats} runs "
        f"after a compile run; tokens/s = batch * steps / time",
        "",
        f"{'length':>6}  {'steps':>5}  {'cached tok/s':>12}  {'uncached tok/s':>14}  "
        f"{'speed-up':>8}  same tokens",
    ]
    print("\n".join(lines), flush=True)
    for length in args.lengths:
        t_cached, steps, tokens_cached = time_decode(model, src, length, True, args.repeats)
        t_full, steps_full, tokens_full = time_decode(model, src, length, False, args.repeats)
        assert steps == steps_full
        same = bool(np.array_equal(tokens_cached, tokens_full))
        cached, full = args.batch * steps / t_cached, args.batch * steps / t_full
        line = (f"{length:>6}  {steps:>5}  {cached:>12,.0f}  {full:>14,.0f}  "
                f"{t_full / t_cached:>7.1f}x  {same}")
        print(line, flush=True)
        lines.append(line)
    lines += gqa_table(args)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("\n".join(lines) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    jnp.zeros(())  # initialise the backend before timing anything
    main()
