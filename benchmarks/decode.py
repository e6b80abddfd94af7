"""Tokens per second of greedy decoding with and without the key/value cache.

Without the cache, step t re-runs the decoder over the whole prefix buffer (work ~ L per step,
~ L^2 per sentence); with it, step t runs the decoder on one new position and reads the
earlier keys/values (work ~ 1 per step in the projections and FFN, ~ t in attention). The
speed-up should grow with the decoded length L.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--src-len", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    config = TransformerConfig.tiny(vocab_size=args.vocab, max_len=max(args.lengths))
    model = Transformer(config, rngs=nnx.Rngs(0))
    model.eval()
    src = jax.random.randint(jax.random.key(0), (args.batch, args.src_len), 3, args.vocab)

    lines = [
        "Greedy decoding, tokens per second: key/value cache vs recomputing the prefix",
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"{platform.processor() or platform.machine()}, jax {jax.__version__}",
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
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("\n".join(lines) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    jnp.zeros(())  # initialise the backend before timing anything
    main()
