"""How fast, and how memory-hungry, is each rung of the attention ladder next to jax.nn?

For each sequence length T (B=1, 8 heads, head dim 64, float32, self-attention T = S), causal
and not, forward and forward+backward, we time:

* ``jax.nn``: ``jax.nn.dot_product_attention`` (XLA's implementation on this backend);
* ``reference``: rung 1, :func:`attention.dot_product_attention`;
* ``fused``, ``blockwise``, ``flash``: rungs 2-4 of :mod:`attention.kernels`;
* ``pallas``: rung 5, only where Pallas compiles natively (GPU, TPU); its CPU interpreter is
  for testing, not timing.

What is measured:

* **time**: the median of ``--repeats`` runs of the AOT-compiled function, after one warm-up
  run, with ``block_until_ready``; arrays are passed as arguments, never closed over. Each
  implementation runs back to back after its own warm-up, which absorbs the page faults the
  one before it left behind (see :func:`time_each`). A case whose warm-up takes longer than
  ``--long`` seconds is timed by that one run (it has no compilation in it: programs are
  compiled ahead of time).
* **memory**: XLA's own account of the compiled program, ``temp_size_in_bytes +
  output_size_in_bytes`` from ``compiled.memory_analysis()``: the memory the call needs beyond
  its inputs. (Not process RSS: that also counts the allocator's caching.)
* **GFLOP/s**: useful flops / time, with 4 B N T S H flops forward (two matrix products),
  halved when causal, and 3.5 times that for forward+backward (five more products of the same
  size in the backward, whatever recomputation a kernel adds); compared with the machine's
  matrix-multiply peak, measured in the same run (a jitted float32 ``--peak-n`` cubed product).

A case whose compiled memory would exceed ``--memory-fraction`` of the available memory is not
run and shows ``OOM (est. X GB)``; a case predicted (from the same rung at T/2, times 4) to
take longer than ``--max-seconds`` shows ``skip (est. X s)``.

Two more parts (``--parts``), in the same table and figure:

* ``gqa``: grouped-query attention, causal, at ``--gqa-len`` (T = S): the flash kernel
  against ``jax.nn.dot_product_attention`` with the same number K of key/value heads, for
  K = N, N/4 and 1 (rows ``flash K=2``, ``jax.nn K=2``); neither repeats the keys in memory.
* ``window``: causal sliding-window attention, window ``--window`` (``local_window_size=(w,
  0)``), time against T at ``--window-lengths``: the flash kernel (``flash w=256``), which
  skips the tiles outside the band, against the causal flash kernel without a window
  (``flash causal``) and ``jax.nn`` with the same window (``jax.nn w=256``, which masks a
  quadratic computation; only up to ``--window-jax-max``). The report prints the ratio of
  the times at the two longest lengths, ``T=16384 / T=4096`` by default: about 4 for a cost
  linear in T, 16 for a quadratic one.

    python benchmarks/attention.py                      # T = 512 .. 65536, and both parts
    python benchmarks/attention.py --min-len 128        # and the short lengths
    python benchmarks/attention.py --quick              # T = 128 .. 4096, few repeats
    python benchmarks/attention.py --parts window       # the window sweep alone
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/attention.py

The table is printed and written to ``benchmarks/results/attention.txt`` (``--out``), the
plot to ``figures/attention_benchmark.png`` (``--figure``); with the hugetlb setting, to
``attention_hugetlb.txt`` and ``attention_benchmark_hugetlb.png``; ``--quick`` writes
``attention_quick*``, a run of only some ``--parts`` ``attention_<parts>*``.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import pathlib
import platform
import sys
import time
from functools import partial

# This script is named attention.py: take its own folder off the import path, so that
# `import attention` below finds the package and not this file.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from attention import dot_product_attention  # noqa: E402
from attention._machine import cpu_description  # noqa: E402
from attention.kernels import (  # noqa: E402
    blockwise_attention,
    flash_attention,
    fused_attention,
    pallas_flash_attention,
    pallas_supported,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
B, N, H = 1, 8, 64
# The allocator setting changes jax.nn's times (page faults on large fresh buffers): every
# ratio is stated with it, and each setting writes its own table.
TUNABLES = f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}"
SUFFIX = "_hugetlb" if "hugetlb" in os.environ.get("GLIBC_TUNABLES", "") else ""
RESULTS = ROOT / "benchmarks" / "results" / f"attention{SUFFIX}.txt"
FIGURE = ROOT / "figures" / f"attention_benchmark{SUFFIX}.png"


def implementations() -> dict:
    impls = {
        "jax.nn": jax.nn.dot_product_attention,
        "reference": dot_product_attention,
        "fused": fused_attention,
        "blockwise": blockwise_attention,
        "flash": flash_attention,
    }
    if pallas_supported():
        impls["pallas"] = pallas_flash_attention
    return impls


def make_program(attention_fn, is_causal: bool, backward: bool, **options):
    """A function of arrays only: forward, or forward and the vector-Jacobian product."""
    attend = partial(attention_fn, is_causal=is_causal, **options)
    if not backward:
        return lambda q, k, v: attend(q, k, v)

    def forward_backward(q, k, v, d_out):
        out, vjp = jax.vjp(attend, q, k, v)
        return out, vjp(d_out)

    return forward_backward


def flops(T: int, is_causal: bool, backward: bool) -> float:
    forward = 4.0 * B * N * T * T * H / (2 if is_causal else 1)
    return forward * (3.5 if backward else 1.0)


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 8 << 30


def time_each(calls: dict, repeats: int, long: float, max_runs: int = 30) -> dict:
    """Median seconds (and number of runs) per zero-argument call.

    Each call gets one untimed warm-up and then its timed runs back to back. Taking turns
    (one run of each per round) would spread load from other processes evenly, but it is
    unfair in a way that does not average out: after ``jax.nn`` frees gigabytes, the next
    kernel's run pays for the page faults and cache misses it left behind (measured: the
    flash kernel at T=8192 took 1.2-1.9 s in turns against 0.9 s back to back). The warm-up
    absorbs that. Short calls get more runs (up to about one second, at most ``max_runs``):
    a millisecond run is at the mercy of one scheduler hiccup, and only the median of many
    tells 1.2x from 1.0x. A call whose warm-up took longer than ``long`` seconds is not run
    again: its warm-up (with no compilation in it, the programs are compiled ahead of time)
    is its one timing.
    """
    results = {}
    for name, call in calls.items():
        start = time.perf_counter()
        jax.block_until_ready(call())
        warmup = time.perf_counter() - start
        if warmup > long:
            results[name] = (warmup, 1)
            continue
        runs = max(repeats, min(max_runs, int(1.0 / max(warmup, 1e-6))))
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            jax.block_until_ready(call())
            times.append(time.perf_counter() - start)
        results[name] = (float(np.median(times)), runs)
    return results


def matmul_peak(n: int, repeats: int) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul).lower(a, a).compile()
    seconds, _ = time_each({"matmul": partial(matmul, a, a)}, max(repeats, 3), 1e9)[
        "matmul"
    ]
    return 2.0 * n**3 / seconds / 1e9


def measure(entries, args, budget, last_time, peak, growth=4.0) -> None:
    """Compile, account and time ``entries``: ``(row, program, arrays, work)`` each.

    ``row`` (a dict, already in the table) gets ``memory``, ``seconds``, ``runs``, ``gflops``
    (``work`` flops / time), or a ``note`` (OOM, or skipped because the same case at the
    previous length, times ``growth`` (or the row's own ``growth``), predicts more than
    ``--max-seconds``).
    """
    runnable = {}
    for row, program, arrays, work in entries:
        case = (row["impl"], row["mode"], row["causal"], row.get("part"))
        row_growth = row.pop("growth", growth)
        if case in last_time:
            estimate = last_time[case] * row_growth
            if estimate > args.max_seconds:
                row["note"] = f"skip (est. {estimate:.0f} s)"
                continue
        compiled = jax.jit(program).lower(*arrays).compile()
        analysis = compiled.memory_analysis()
        row["memory"] = analysis.temp_size_in_bytes + analysis.output_size_in_bytes
        if row["memory"] > budget:
            row["note"] = f"OOM (est. {row['memory'] / 1e9:.1f} GB)"
            continue
        runnable[row["impl"]] = (row, partial(compiled, *arrays), work, case)
    timings = time_each(
        {name: call for name, (_, call, _, _) in runnable.items()}, args.repeats, args.long
    )
    for name, (seconds, runs) in timings.items():
        row, _, work, case = runnable[name]
        row.update(seconds=seconds, runs=runs, gflops=work / seconds / 1e9)
        last_time[case] = seconds
    for row, *_ in entries:
        print(_format_row(row, peak), flush=True)


def _arrays(T: int, S: int, K: int, backward: bool):
    keys = jax.random.split(jax.random.key(T * 1000 + K), 4)
    q = jax.random.normal(keys[0], (B, T, N, H), jnp.float32)
    k, v = (jax.random.normal(key, (B, S, K, H), jnp.float32) for key in keys[1:3])
    d_out = jax.random.normal(keys[3], (B, T, N, H), jnp.float32)
    return (q, k, v, d_out) if backward else (q, k, v)


def run(args, on_length=None) -> tuple[list[dict], dict]:
    """All cases, length by length; ``on_length(rows, info)`` after each length."""
    impls = {k: v for k, v in implementations().items() if k in args.impls}
    lengths = [2**p for p in range(int(math.log2(args.min_len)), int(math.log2(args.max_len)) + 1)]
    info = {"peak": matmul_peak(args.peak_n, args.repeats), "load_start": os.getloadavg()}
    info["load_end"] = info["load_start"]
    print(f"matmul peak: {info['peak']:.1f} GFLOP/s", flush=True)
    budget = args.memory_fraction * available_bytes()
    rows, last_time = [], {}
    for T in lengths if "main" in args.parts else []:
        for backward in (False, True):
            arrays = _arrays(T, T, N, backward)
            for is_causal in (False, True):
                mode = "fwd+bwd" if backward else "fwd"
                entries = []
                for name, fn in impls.items():
                    row = dict(T=T, causal=is_causal, mode=mode, impl=name, part="main")
                    rows.append(row)
                    entries.append((row, make_program(fn, is_causal, backward), arrays,
                                    flops(T, is_causal, backward)))
                measure(entries, args, budget, last_time, info["peak"])
        info["load_end"] = os.getloadavg()
        if on_length is not None:
            on_length(rows, info)
    if "gqa" in args.parts:
        run_gqa(args, rows, info, budget, last_time)
        info["load_end"] = os.getloadavg()
        if on_length is not None:
            on_length(rows, info)
    if "window" in args.parts:
        run_window(args, rows, info, budget, last_time, on_length)
    return rows, info


def gqa_heads() -> list[int]:
    """K = N, N/4, 1: multi-head, grouped-query, multi-query."""
    return sorted({N, max(N // 4, 1), 1}, reverse=True)


def run_gqa(args, rows, info, budget, last_time) -> None:
    """Grouped-query: flash and jax.nn with the same K key/value heads, causal, T = S."""
    T = args.gqa_len
    for backward in (False, True):
        mode = "fwd+bwd" if backward else "fwd"
        for K in gqa_heads():
            arrays = _arrays(T, T, K, backward)
            entries = []
            for name, fn in (("jax.nn", jax.nn.dot_product_attention), ("flash", flash_attention)):
                row = dict(T=T, causal=True, mode=mode, impl=f"{name} K={K}", part="gqa", K=K)
                rows.append(row)
                # Same useful work as K = N: every query head still meets every key.
                entries.append((row, make_program(fn, True, backward), arrays,
                                flops(T, True, backward)))
            measure(entries, args, budget, last_time, info["peak"])


def window_flops(T: int, window: int, backward: bool) -> float:
    """Useful flops of causal window attention: each query meets min(t, w) + 1 keys."""
    keys = sum(min(t, window) + 1 for t in range(T))
    return 4.0 * B * N * keys * H * (3.5 if backward else 1.0)


def run_window(args, rows, info, budget, last_time, on_length=None) -> None:
    """Causal sliding window: time against T for flash (band skipping), flash without the
    window, and jax.nn with the window (masked, quadratic) up to ``--window-jax-max``."""
    w = args.window
    blocks = dict(block_q=args.window_block, block_k=args.window_block)
    variants = (
        (f"flash w={w}", flash_attention, dict(local_window_size=(w, 0), **blocks)),
        ("flash causal", flash_attention, {}),
        (f"jax.nn w={w}", jax.nn.dot_product_attention, dict(local_window_size=(w, 0))),
    )
    for T in args.window_lengths:
        for backward in (False, True):
            mode = "fwd+bwd" if backward else "fwd"
            arrays = _arrays(T, T, N, backward)
            entries = []
            for name, fn, options in variants:
                if name.startswith("jax.nn") and T > args.window_jax_max:
                    continue
                row = dict(T=T, causal=True, mode=mode, impl=name, part="window")
                rows.append(row)
                work = (window_flops(T, w, backward) if "w=" in name
                        else flops(T, True, backward))
                # Growth per doubling of T: 2 with the band skipped, 4 without.
                growth = 2.0 if name.startswith("flash w") else 4.0
                row["growth"] = growth
                entries.append((row, make_program(fn, True, backward, **options), arrays, work))
            measure(entries, args, budget, last_time, info["peak"])
        info["load_end"] = os.getloadavg()
        if on_length is not None:
            on_length(rows, info)


def _format_row(row: dict, peak: float) -> str:
    causal = "causal" if row["causal"] else "full"
    memory = f"{row['memory'] / 2**20:10.1f}" if "memory" in row else f"{'-':>10}"
    case = f"{row['T']:>6} {causal:>6} {row['mode']:>7} {row['impl']:>13} {memory}"
    if "seconds" not in row:
        return f"{case}  {row['note']}"
    return (
        f"{case} "
        f"{row['seconds']:10.4f} {row['gflops']:8.1f} {100 * row['gflops'] / peak:6.1f}%"
        f"{'' if row['runs'] > 1 else '  (1 run)'}"
    )


def comparison(rows: list[dict]) -> list[str]:
    """flash against jax.nn, case by case: speed-up and memory ratio."""
    by_case = {(r["T"], r["causal"], r["mode"], r["impl"]): r for r in rows}
    lines = []
    for (T, causal, mode, impl), row in by_case.items():
        if impl != "flash" or "seconds" not in row:
            continue
        other = by_case.get((T, causal, mode, "jax.nn"), {})
        if "seconds" in other:
            lines.append(
                f"{T:>6} {'causal' if causal else 'full':>6} {mode:>7}  flash is "
                f"{other['seconds'] / row['seconds']:5.2f}x faster and uses "
                f"{other['memory'] / row['memory']:7.1f}x less memory than jax.nn "
                f"({TUNABLES})"
            )
        elif "note" in other:
            lines.append(f"{T:>6} {'causal' if causal else 'full':>6} {mode:>7}  jax.nn: "
                         f"{other['note']}")
    return lines


def report(rows, info, args) -> str:
    header = [
        "Attention kernels against jax.nn.dot_product_attention",
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"machine: {platform.machine()} {cpu_description()}, {os.cpu_count()} CPUs; "
        f"backend {jax.default_backend()}; jax {jax.__version__}",
        TUNABLES,
        f"B={B} N={N} H={H} float32, self-attention (S = T); repeats={args.repeats}",
        f"matmul peak ({args.peak_n}^3 float32): {info['peak']:.1f} GFLOP/s",
        f"load average at start {info['load_start'][0]:.1f}, at end {info['load_end'][0]:.1f} "
        "(other processes on the machine make timings noisy)",
        "memory: XLA compiled memory_analysis, temp + output bytes (MiB)",
        "GFLOP/s: 4BNTSH forward (halved if causal), x3.5 for fwd+bwd; % of the matmul peak",
        "",
        f"{'T':>6} {'mask':>6} {'mode':>7} {'impl':>13} {'mem MiB':>10} {'seconds':>10} "
        f"{'GFLOP/s':>8} {'%peak':>7}",
    ]
    lines = header + [_format_row(r, info["peak"]) for r in rows]
    lines += ["", "flash against jax.nn:"] + comparison(rows)
    if any(r.get("part") == "gqa" for r in rows):
        lines += ["", f"grouped-query, causal, N={N} query heads, K key/value heads (same K for "
                      "both):"] + gqa_comparison(rows)
    if any(r.get("part") == "window" for r in rows):
        lines += ["", f"sliding window {args.window} (causal, local_window_size=({args.window}, "
                      f"0)), flash blocks {args.window_block}; time ratios between lengths "
                      "(linear in T: the length ratio; quadratic: its square):"]
        lines += window_ratios(rows)
    return "\n".join(lines) + "\n"


def gqa_comparison(rows: list[dict]) -> list[str]:
    """flash K=k against jax.nn K=k: speed-up and memory ratio."""
    by_case = {(r["mode"], r["impl"]): r for r in rows if r.get("part") == "gqa"}
    lines = []
    for (mode, impl), row in by_case.items():
        if not impl.startswith("flash") or "seconds" not in row:
            continue
        other = by_case.get((mode, impl.replace("flash", "jax.nn")), {})
        if "seconds" in other:
            lines.append(
                f"{row['T']:>6} {mode:>7} K={row['K']:<2} flash {row['seconds']:.4f} s, jax.nn "
                f"{other['seconds']:.4f} s: flash is {other['seconds'] / row['seconds']:5.2f}x "
                f"faster, {other['memory'] / row['memory']:6.1f}x less memory"
            )
    return lines


def window_ratios(rows: list[dict]) -> list[str]:
    """For each window-part implementation and mode: time(T_long) / time(T_short)."""
    timed = [r for r in rows if r.get("part") == "window" and "seconds" in r]
    lines = []
    for impl in dict.fromkeys(r["impl"] for r in timed):
        for mode in ("fwd", "fwd+bwd"):
            series = {r["T"]: r["seconds"] for r in timed if (r["impl"], r["mode"]) == (impl,
                                                                                     mode)}
            if len(series) < 2:
                continue
            longest = max(series)
            shorter = longest // 4 if longest // 4 in series else min(series)
            times = ", ".join(f"T={T}: {t:.4f} s" for T, t in sorted(series.items()))
            lines.append(
                f"{impl:>13} {mode:>7}  T={longest} / T={shorter} = "
                f"{series[longest] / series[shorter]:6.2f} (length ratio {longest // shorter}); "
                f"{times}"
            )
    return lines


def plot(rows, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [r for r in rows if r.get("part") in ("gqa", "window")]
    main_rows = rows
    rows = [r for r in rows if r.get("part", "main") == "main"]
    if not rows:  # only the variant parts were run: their row of panels alone
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        _plot_variants(axes, main_rows, plt)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    fig, axes = plt.subplots(3 if variants else 2, 2, figsize=(11, 12.5 if variants else 8.5))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    colors = dict(zip(impls, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for col, mode in enumerate(("fwd", "fwd+bwd")):
        for impl in impls:
            for causal, style in ((False, "-"), (True, "--")):
                timed_rows = [
                    r for r in rows
                    if (r["impl"], r["mode"], r["causal"]) == (impl, mode, causal)
                    and "seconds" in r
                ]
                label = f"{impl}{' causal' if causal else ''}"
                if timed_rows:
                    axes[0, col].plot([r["T"] for r in timed_rows],
                                      [r["seconds"] for r in timed_rows], style, marker="o",
                                      color=colors[impl], label=label, markersize=3)
                    axes[1, col].plot([r["T"] for r in timed_rows],
                                      [r["memory"] / 2**20 for r in timed_rows], style,
                                      marker="o", color=colors[impl], label=label, markersize=3)
        axes[0, col].set_title(f"time, {mode}")
        axes[1, col].set_title(f"memory (XLA temp + output), {mode}")
        axes[0, col].set_ylabel("seconds")
        axes[1, col].set_ylabel("MiB")
        axes[1, col].set_xlabel("sequence length T")
    for ax in axes[:2].flat:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=2)
    if variants:
        _plot_variants(axes[2], main_rows, plt)
    fig.suptitle(f"Attention, B={B} N={N} H={H} float32 on {jax.default_backend()} "
                 "(dashed: causal; missing points: OOM or skipped)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_variants(axes, rows, plt) -> None:
    """Bottom row: the window sweep (time against T) and grouped-query (time against K)."""
    window = [r for r in rows if r.get("part") == "window" and "seconds" in r]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, impl in enumerate(dict.fromkeys(r["impl"] for r in window)):
        for mode, style in (("fwd", "-"), ("fwd+bwd", "--")):
            series = sorted((r["T"], r["seconds"]) for r in window
                            if (r["impl"], r["mode"]) == (impl, mode))
            if series:
                axes[0].plot(*zip(*series, strict=True), style, marker="o", markersize=3,
                             color=colors[c % len(colors)], label=f"{impl} {mode}")
    if window:
        Ts = sorted({r["T"] for r in window})
        t0 = min(r["seconds"] for r in window if r["T"] == Ts[0] and r["impl"].startswith(
            "flash w"))
        axes[0].plot(Ts, [t0 * T / Ts[0] for T in Ts], ":", color="gray", label="linear in T")
        axes[0].set_xscale("log", base=2)
        axes[0].set_yscale("log")
        axes[0].legend(fontsize=7)
    axes[0].set_title("sliding window, causal: time against T")
    axes[0].set_xlabel("sequence length T")
    axes[0].set_ylabel("seconds")
    axes[0].grid(True, which="both", alpha=0.3)
    gqa = [r for r in rows if r.get("part") == "gqa" and "seconds" in r]
    for c, (name, mode) in enumerate([(n, m) for n in ("flash", "jax.nn")
                                      for m in ("fwd", "fwd+bwd")]):
        series = sorted((r["K"], r["seconds"]) for r in gqa
                        if r["mode"] == mode and r["impl"].startswith(name + " "))
        if series:
            axes[1].plot(*zip(*series, strict=True), "-" if mode == "fwd" else "--",
                         marker="o", markersize=3, color=colors[c % len(colors)],
                         label=f"{name} {mode}")
    if gqa:
        axes[1].set_xscale("log", base=2)
        axes[1].set_yscale("log")
        axes[1].legend(fontsize=7)
        axes[1].set_title(f"grouped-query, causal, T={gqa[0]['T']}: time against K (N={N})")
    axes[1].set_xlabel("key/value heads K")
    axes[1].set_ylabel("seconds")
    axes[1].grid(True, which="both", alpha=0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-len", type=int, default=512)
    parser.add_argument("--max-len", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="T = 128..4096, one repeat; gqa at T=1024; window T <= 4096")
    parser.add_argument("--impls", nargs="+", default=[*implementations()],
                        help="which implementations to run")
    parser.add_argument("--long", type=float, default=10.0,
                        help="a run longer than this many seconds is timed once")
    parser.add_argument("--max-seconds", type=float, default=240.0,
                        help="skip a case predicted to take longer than this")
    parser.add_argument("--memory-fraction", type=float, default=0.6,
                        help="skip a case whose compiled memory exceeds this share of MemAvailable")
    parser.add_argument("--peak-n", type=int, default=4096)
    parser.add_argument("--parts", nargs="+", default=["main", "gqa", "window"],
                        choices=["main", "gqa", "window"],
                        help="the length sweep of every rung, grouped-query, sliding window")
    parser.add_argument("--gqa-len", type=int, default=4096, help="T = S of the gqa part")
    parser.add_argument("--window", type=int, default=256, help="left window of the window part")
    parser.add_argument("--window-lengths", type=int, nargs="+",
                        default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--window-block", type=int, default=256,
                        help="block_q = block_k of the windowed flash rows")
    parser.add_argument("--window-jax-max", type=int, default=8192,
                        help="longest T for jax.nn with a window (it computes all T^2 scores)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    parser.add_argument("--figure", type=pathlib.Path, default=FIGURE)
    args = parser.parse_args()
    tag = "" if set(args.parts) == {"main", "gqa", "window"} else "_" + "_".join(args.parts)
    if args.quick:
        args.min_len, args.max_len, args.repeats = 128, min(args.max_len, 4096), 1
        args.gqa_len = min(args.gqa_len, 1024)
        args.window_lengths = [T for T in args.window_lengths if T <= 4096]
        tag = "_quick" + tag
    if args.out == RESULTS:
        args.out = RESULTS.with_name(f"attention{tag}{SUFFIX}.txt")
    if args.figure == FIGURE:
        args.figure = FIGURE.with_name(f"attention_benchmark{tag}{SUFFIX}.png")
    def save(rows, info):  # after every length, so that a long run stopped early keeps its rows
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report(rows, info, args))
        plot(rows, args.figure)

    rows, info = run(args, on_length=save)
    print("\n" + report(rows, info, args))
    print(f"wrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
