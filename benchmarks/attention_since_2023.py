"""Cache bytes and decode tokens/s of MHA, GQA, MLA and linear attention as the context grows.

Four decoder-only :class:`LanguageModel` s, the same but for their self-attention
(``TransformerConfig.attention`` and ``num_kv_heads``, step 13a):

* **MHA**: multi-head attention, K = N key/value heads, a cache of ``2 N H`` numbers a token
  and a layer;
* **GQA**: grouped-query attention, K = N/4 (Ainslie et al. 2023): ``2 K H``;
* **MLA**: multi-head latent attention (DeepSeek-V2, 2.1): a latent of C and a rotary key of
  R, ``C + R`` numbers (the config's defaults: C = 4 H, R = H / 2);
* **linear**: linear attention's recurrent state (Katharopoulos et al. 2020, 3.4): ``K (H^2 +
  H)`` numbers a layer, whatever the length.

For each context length L the cache is the model's own, ``model.init_decode_cache(B, L)``
(its arrays' bytes, divided by B L for "per token"), and the speed is that of ``--steps``
greedy decode steps at positions ``L - steps .. L - 1``, compiled as one ``lax.fori_loop``
(compilation excluded, median of ``--repeats``): the steps a model takes once its context is
about L tokens long. A decode step of standard attention reads its whole cache of L slots
(unused slots are masked), so its time grows with L; linear attention reads its state.

    python benchmarks/attention_since_2023.py                    # about 2 minutes on 2 cores
    python benchmarks/attention_since_2023.py --lengths 128 512 --no-write

The table is printed with the CPU's model and vector extensions and the ``XLA_FLAGS`` in force,
with each variant's tokens/s over MHA's at the same L in the same run, and written to
``benchmarks/results/attention_since_2023.txt`` (``--out`` for another file; the AVX2 path of
most laptops: ``XLA_FLAGS=--xla_cpu_max_isa=AVX2 ... --out results/attention_since_2023_avx2.txt``).

What it showed (2026-12-07, a quiet 2-core AMD EPYC with AVX-512, native and at AVX2): the bytes
per token are exact, 4,096 (MHA), 1,024 (GQA), 1,152 (MLA) and a linear state of 67,584 bytes a
sequence (528 per token at L = 128, 16 at L = 4096). At L = 4096, over MHA's decode speed: GQA
0.96-1.07x (its smaller cache buys little at this width), MLA 0.29x (the absorbed form attends
every latent with queries of width C + R = 144 in each of the 8 heads, 4.5x MHA's
multiply-adds per cached token, and on this CPU those, not the bytes read, set the time), and
linear attention 28-29x, its speed flat in L (about 10,000 tok/s from 128 to 4096) while every
softmax variant's falls with the cache it reads.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import pathlib
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from flax import nnx

# benchmarks/attention.py would shadow the `attention` package when this runs as a script.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

from attention._machine import cpu_description  # noqa: E402
from attention.model.config import TransformerConfig  # noqa: E402
from attention.model.language_model import LanguageModel  # noqa: E402
from attention.model.transformer import count_params  # noqa: E402

RESULTS = _HERE / "results" / "attention_since_2023.txt"


def variants(num_heads: int) -> dict[str, dict]:
    """The config fields of each attention; linear attention takes learned positions (a
    rotation would break its positive features)."""
    return {
        "MHA": dict(),
        "GQA": dict(num_kv_heads=max(num_heads // 4, 1)),
        "MLA": dict(attention="mla"),
        "linear": dict(attention="linear", positional="learned"),
    }


@functools.partial(nnx.jit, static_argnames="steps")
def decode_steps(model, cache, start, *, steps: int):
    """``steps`` greedy decode steps at positions ``start .. start + steps - 1``."""
    def step(i, carry):
        token_B, cache = carry
        logits_BV, cache = model.decode_step(token_B, cache, start + i)
        return logits_BV.argmax(-1).astype(jnp.int32), cache

    token_B = jnp.ones((jax.tree.leaves(cache)[0].shape[0],), jnp.int32)
    return jax.lax.fori_loop(0, steps, step, (token_B, cache))


def time_decode(model, batch: int, length: int, steps: int, repeats: int) -> tuple[float, int]:
    """(decode tokens/s at a context of about ``length``, bytes of the model's cache)."""
    cache = model.init_decode_cache(batch, length)
    cache_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(cache))
    start = jnp.asarray(length - steps, jnp.int32)
    jax.block_until_ready(decode_steps(model, cache, start, steps=steps))  # compile
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        jax.block_until_ready(decode_steps(model, cache, start, steps=steps))
        times.append(time.perf_counter() - began)
    return batch * steps / statistics.median(times), cache_bytes


def main(argv=None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 1024, 2048, 4096])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=32, help="decode steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--out", default=str(RESULTS),
                        help="the table's file (for example one per instruction set)")
    args = parser.parse_args(argv)

    max_len, load_before = max(args.lengths), os.getloadavg()
    models = {}
    for name, fields in variants(args.heads).items():
        config = TransformerConfig.language_model(
            vocab_size=args.vocab, d_model=args.d_model, num_heads=args.heads,
            d_ff=4 * args.d_model, num_layers=args.layers, dropout_rate=0.0, max_len=max_len,
            **({"positional": "rope"} | fields))
        models[name] = LanguageModel(config, rngs=nnx.Rngs(0))
        models[name].eval()
    config = models["MHA"].config
    lines = [
        "Decode cost of MHA, GQA, MLA and linear attention as the context grows",
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"{platform.machine()}, jax {jax.__version__}",
        f"CPU {cpu_description()}",
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} (--xla_cpu_max_isa=AVX2: the path of "
        f"laptops without AVX-512)",
        f"models: TransformerConfig.language_model(d_model={config.d_model}, "
        f"num_heads={config.num_heads} (H={config.head_dim}), layers={config.num_layers}, "
        f"d_ff={config.d_ff}, vocab={args.vocab}), float32; parameters: "
        + ", ".join(f"{n} {count_params(m):,}" for n, m in models.items()),
        f"MLA: C={config.mla_latent_dim}, R={config.mla_rope_head_dim}; GQA: K="
        f"{models['GQA'].config.kv_heads}; batch {args.batch}; tok/s = batch * {args.steps} "
        f"greedy steps at positions L-{args.steps}..L-1 / time (one compiled loop, median of "
        f"{args.repeats}); cache = bytes of model.init_decode_cache(batch, L)",
        "",
        f"{'L':>5}  " + "  ".join(f"{n + ' B/token':>16}  {n + ' tok/s':>12}" for n in models)
        + "  " + "  ".join(f"{n + ' / MHA':>12}" for n in models if n != "MHA"),
    ]
    print("\n".join(lines), flush=True)
    for length in args.lengths:
        cells, speed = [], {}
        for name, model in models.items():
            speed[name], cache_bytes = time_decode(model, args.batch, length, args.steps,
                                                   args.repeats)
            cells.append(f"{cache_bytes / (args.batch * length):>16,.0f}  {speed[name]:>12,.0f}")
        ratios = [f"{speed[n] / speed['MHA']:>11.2f}x" for n in models if n != "MHA"]
        line = f"{length:>5}  " + "  ".join(cells) + "  " + "  ".join(ratios)
        print(line, flush=True)
        lines.append(line)
    lines += ["", "B/token: the cache's bytes over batch * L (linear: a constant state, so it "
              "falls as 1/L). X / MHA: decode tokens/s over MHA's, at the same L, in this run.",
              f"load average (1 min) before and after: {load_before[0]:.1f}, "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (tok/s is noisy under load; "
              f"the bytes are exact)"]
    if not args.no_write:
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")
    return lines


if __name__ == "__main__":
    jnp.zeros(())  # initialise the backend before timing anything
    main()
