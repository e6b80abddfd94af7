"""How fast does notebook 12's language model train and generate, and how good is it after a
fixed CPU time?

The model is :func:`attention.application.course.lm_course_run`'s (2 layers, 4
heads, d_model 64, rotary positions, context 64) on the synthetic ``svo`` stories. Measured:

* **training tokens/s**: target tokens per second of the package's train step
  (:func:`attention.application.runs.train_run`), after its compilation (the first logged
  interval is dropped);
* **generation tokens/s**: new tokens per second of :func:`attention.model.sampling.generate`
  for ``--batch`` prompts of ``<s>``, ``--new-tokens`` each, with the key/value cache and
  without it (recomputing the prefix at every step); the median of ``--repeats`` calls after
  a warm-up call (which compiles); the ratio cached / recomputed;
* **held-out perplexity after ``--seconds`` of training** (``train_run(max_seconds=...)``,
  compilation included) on the validation stories, next to the unigram reference (add-one
  token frequencies of the training stories, :func:`unigram_perplexity`), as a ratio.

The CPU (:func:`attention._machine.cpu_description`) and ``os.getloadavg()`` are printed: a
loaded machine gives lower throughput.

    python benchmarks/language_model.py                 # 60 s of training
    python benchmarks/language_model.py --seconds 20    # quicker

The table is printed and written to ``benchmarks/results/language_model.txt`` (``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp

# benchmarks/attention.py would shadow the `attention` package when this runs as a script.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

from attention._machine import cpu_description  # noqa: E402
from attention.application.course import lm_course_run  # noqa: E402
from attention.application.language_modeling import (  # noqa: E402
    perplexity,
    unigram_perplexity,
)
from attention.application.runs import new_run, train_run  # noqa: E402
from attention.model.sampling import generate  # noqa: E402


def time_generation(model, *, batch: int, new_tokens: int, use_cache: bool,
                    repeats: int) -> float:
    prompt = jnp.ones((batch, 1), jnp.int32)  # <s>
    knobs = dict(max_new_tokens=new_tokens, seed=0, stop_at_eos=False, use_cache=use_cache)
    jax.block_until_ready(generate(model, prompt, **knobs))  # compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(generate(model, prompt, **knobs))
        times.append(time.perf_counter() - start)
    return batch * new_tokens / statistics.median(times)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="training time for the perplexity row")
    parser.add_argument("--batch", type=int, default=8, help="prompts generated at once")
    parser.add_argument("--new-tokens", type=int, default=63, help="tokens per prompt")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/language_model.txt")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    run, corpus = lm_course_run(fast=False)
    # Long enough never to end before the time budget does.
    run = new_run(run.config, dataclasses.replace(run.train_config, steps=100_000,
                                                  log_every=20),
                  corpus.tokenizer, data="svo")
    result = train_run(run, corpus.train, progress=False, max_seconds=args.seconds)
    rates = [line["tokens_per_second"] for line in result.history[1:]
             if "tokens_per_second" in line]
    train_rate = statistics.median(rates) if rates else float("nan")
    held_out = perplexity(run.model, run.tokenizer, corpus.valid)["perplexity"]
    unigram = unigram_perplexity(run.tokenizer, corpus.train, corpus.valid)

    cached = time_generation(run.model, batch=args.batch, new_tokens=args.new_tokens,
                             use_cache=True, repeats=args.repeats)
    recomputed = time_generation(run.model, batch=args.batch, new_tokens=args.new_tokens,
                                 use_cache=False, repeats=args.repeats)
    load_after = os.getloadavg()

    cfg = run.config
    lines = [
        f"# language model benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}",
        f"# CPU: {cpu_description()}",
        f"# jax {jax.__version__}, devices {jax.devices()}",
        f"# os.getloadavg() before {tuple(round(x, 2) for x in load_before)}, after "
        f"{tuple(round(x, 2) for x in load_after)} (a loaded machine: lower throughput)",
        f"# model: {cfg.num_layers} layers, {cfg.num_heads} heads, d_model {cfg.d_model}, "
        f"d_ff {cfg.d_ff}, {cfg.positional} positions, context {cfg.max_len}, vocabulary "
        f"{cfg.tgt_vocab_size}; batch {run.train_config.batch_size} windows",
        "",
        f"{'measure':<44} {'value':>12}",
        f"{'training tokens/s (train step, median)':<44} {train_rate:>12.0f}",
        f"{'generation tokens/s, KV cache':<44} {cached:>12.0f}",
        f"{'generation tokens/s, no cache (recompute)':<44} {recomputed:>12.0f}",
        f"{'  ratio cache / no cache':<44} {cached / recomputed:>12.2f}",
        f"{f'steps trained in {args.seconds:.0f} s (compile included)':<44} "
        f"{result.step:>12d}",
        f"{'held-out perplexity after that':<44} {held_out:>12.2f}",
        f"{'unigram perplexity (reference)':<44} {unigram:>12.2f}",
        f"{'  ratio model / unigram':<44} {held_out / unigram:>12.2f}",
        f"# generation: {args.batch} prompts of <s>, {args.new_tokens} new tokens each, "
        f"median of {args.repeats} calls after a compiling one",
    ]
    table = "\n".join(lines)
    print(table)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    return table


if __name__ == "__main__":
    main()
