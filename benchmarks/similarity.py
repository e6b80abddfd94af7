"""How fast is cosine top-k search, next to what the hardware allows and next to FAISS?

Measured against bounds taken on this machine in this run:

1. **The floor**: one query against M normalised D-d float32 vectors is memory-bound (2 flops
   per 4 bytes), so its best time is the time to read the float32 matrix once: the fastest of
   a jitted ``jnp.sum``, NumPy's ``sum``, and XLA's float32 matrix-vector product with no
   top-k after it, taken afresh in every repeat.
2. **Past the floor**: the same database stored in bfloat16 and in int8 with per-row scales
   (``quantize_database``) reads 2x and 4x fewer bytes; goals: one query in bfloat16 at most
   0.6x the floor, in int8 at most 0.35x. The bare product each makes (the query rounded as
   a row is, no top-k) is timed beside them: the search costs about 1 ms more than it at 1M
   rows, and the product has a ceiling of its own. On a 2-core AMD EPYC (no AMX), XLA's
   bfloat16 matrix-vector product kept up with the float32 read while memory ran at about
   40 GB/s (42.4 against 41.5 GB/s) but not at 65 GB/s (53.7), so the bfloat16 goal is met
   only in runs where memory is slow.
3. **Batches** of 1, 16 and 256 queries, float32 / bfloat16 / int8 (and int8 with float32
   rerank of 4k candidates), beside FAISS ``IndexFlatIP`` (exact inner-product search) run
   with the same number of threads as XLA's CPU pool; goal: 256 queries at least 5x faster
   than FAISS.

Every search figure has its recall@10 beside it: the mean fraction of the exact float32 top-10
(our float32 search, itself checked against NumPy) that it returns. For one query, recall is
taken over ``--recall-queries`` separate one-query searches (not timed); for a batch, over the
timed batch's own results.

Every timing is the median over ``--repeats`` runs after a warm-up, with ``block_until_ready``,
and the candidates are run round-robin (one of each per repeat) so that load from other
processes falls on all of them alike. The memory bandwidth of a shared machine drifts (the
floor was seen anywhere between 19 and 38 ms within minutes), so a one-query "x floor" is the
median over repeats of the time divided by that same repeat's floor. Arrays are passed as
arguments, never closed over.

Other libraries' threads are told not to spin. After a call, OpenBLAS's threads (NumPy's
``db @ q``) busy-wait for work for about 2^28 cycles, and OpenMP's (FAISS's) for a while too:
they took the cores from whichever candidate ran next (a jitted read measured 4-14 ms slower
right after NumPy's product, and our one-query searches 1.3-1.6x slower in the round-robin).
``OPENBLAS_THREAD_TIMEOUT=4`` and ``OMP_WAIT_POLICY=PASSIVE``, set before NumPy is imported
unless the caller set them, put those threads to sleep at once.
FAISS is a benchmark-only dependency (``pip install faiss-cpu``); without it its rows are
skipped.

    python benchmarks/similarity.py                  # a million 300-d vectors (1.2 GB)
    python benchmarks/similarity.py --rows 100000    # smaller, quicker

The table is printed and written to ``benchmarks/results/similarity.txt`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import pathlib
import sys
import time

# Before NumPy (which jax imports) loads OpenBLAS: see the docstring, "told not to spin".
SLEEPING_THREADS = {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "PASSIVE"}
for _name, _value in SLEEPING_THREADS.items():
    os.environ.setdefault(_name, _value)

# benchmarks/attention.py sits beside this script: take this folder off the import path, so
# that `import attention` below finds the package and not that file.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from attention._machine import cpu_description  # noqa: E402
from attention.vectors import cosine_top_k, normalize, quantize_database  # noqa: E402
from attention.vectors.search import _product_CQ  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "similarity.txt"

def numpy_top_k(database: np.ndarray, query: np.ndarray, k: int):
    """The NumPy way: one matrix-vector product, an O(M) partition, then sort the k."""
    scores = database @ query
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return scores[top], top


def recall_at(found, exact) -> float:
    """Mean over queries of |found & exact| / k; both [Q, k] row indices."""
    found, exact = np.atleast_2d(np.asarray(found)), np.atleast_2d(np.asarray(exact))
    hits = [len(set(f) & set(e)) for f, e in zip(found.tolist(), exact.tolist(), strict=True)]
    return float(np.mean(hits)) / exact.shape[1]


def print_and_write(lines: list[str], out: pathlib.Path) -> str:
    """Print the table and write it to ``out`` (its folder made if need be); return it."""
    table = "\n".join(lines)
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    print(f"\nwritten to {out}")
    return table


def load_faiss(skip: bool, threads: int, skipped: str):
    """The faiss module with ``threads`` OpenMP threads, or None (skipped, or not installed)."""
    if skip:
        return None
    try:
        import faiss
    except ImportError:
        print(f"faiss not installed (pip install faiss-cpu): its {skipped} are skipped")
        return None
    faiss.omp_set_num_threads(threads)
    return faiss


def time_round_robin(candidates: dict, repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Seconds of every repeat, per candidate, and each one's warm-up result.

    Each candidate is a zero-argument callable returning its result.
    """
    results = {}
    for name, fn in candidates.items():  # warm-up: compile, fault the pages in.
        results[name] = jax.block_until_ready(fn())
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return times, results


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="database rows M")
    parser.add_argument("--dim", type=int, default=300, help="vector width D")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 256],
                        help="batch sizes Q besides one query")
    parser.add_argument("--peak-n", type=int, default=2048, help="size of the peak matmul")
    parser.add_argument("--repeats", type=int, default=15, help="repeats for one query")
    parser.add_argument("--batch-repeats", type=int, default=3)
    parser.add_argument("--recall-queries", type=int, default=64,
                        help="one-query searches that the one-query recall is taken over")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="FAISS threads (XLA's CPU pool uses every core)")
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    M, D, k = args.rows, args.dim, args.k
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    faiss = load_faiss(args.no_faiss, args.threads, "rows")

    keys = jax.random.split(jax.random.key(0), 5)
    database = normalize(jax.random.normal(keys[0], (M, D), jnp.float32))
    stored = {
        "float32": database,
        "bfloat16": quantize_database(database, "bfloat16", normalized=True),
        "int8": quantize_database(database, "int8", normalized=True),
    }
    database_np = np.array(database)  # a NumPy-owned copy, as a NumPy (or FAISS) user holds it.
    index = None
    if faiss is not None:
        index = faiss.IndexFlatIP(D)
        index.add(database_np)

    query = normalize(jax.random.normal(keys[1], (D,), jnp.float32))
    query_np = np.array(query)
    recall_queries = normalize(jax.random.normal(keys[2], (args.recall_queries, D)))
    batches = {
        Q: normalize(jax.random.normal(jax.random.fold_in(keys[3], Q), (Q, D), jnp.float32))
        for Q in args.batches
    }

    # The same answer from ours and NumPy, before timing anything.
    got_scores, got_rows = cosine_top_k(query, database, k, normalized=True)
    want_scores, want_rows = numpy_top_k(database_np, query_np, k)
    assert np.array_equal(np.asarray(got_rows), want_rows), (got_rows, want_rows)
    assert np.allclose(np.asarray(got_scores), want_scores, atol=1e-5)

    def search(name, queries):
        if name == "int8 + rerank":
            return lambda: cosine_top_k(queries, stored["int8"], k, normalized=True,
                                        rerank=database)
        return lambda: cosine_top_k(queries, stored[name], k, normalized=True)

    names = ["float32", "bfloat16", "int8", "int8 + rerank"]

    # One-query recall, over separate one-query searches (the one-query code path).
    exact_rows = [np.asarray(search("float32", q)()[1]) for q in recall_queries]
    one_recall = {}
    for name in names[1:]:
        rows = [np.asarray(search(name, q)()[1]) for q in recall_queries]
        one_recall[name] = recall_at(rows, exact_rows)
    one_recall["float32"] = 1.0
    if index is not None:
        _, faiss_rows = index.search(np.array(recall_queries), k)
        one_recall["faiss IndexFlatIP"] = recall_at(faiss_rows, exact_rows)

    bare_product = jax.jit(_product_CQ, static_argnums=2)  # the search's own product
    read_once = jax.jit(jnp.sum)
    read_bf16 = jax.jit(lambda x: jnp.sum(x, dtype=jnp.float32))
    matmul = jax.jit(jnp.matmul)  # also the peak's product below
    floors = ["read once: jnp.sum float32 (jit)", "read once: numpy sum float32",
              "read once: db @ q float32 (jit)"]
    one_candidates = {
        floors[0]: lambda: read_once(database),
        floors[1]: lambda: database_np.sum(),
        floors[2]: lambda: matmul(database, query),
        "read once: jnp.sum bfloat16 (jit)": lambda: read_bf16(stored["bfloat16"].values),
        "numpy: db @ q + argpartition": lambda: numpy_top_k(database_np, query_np, k),
    }
    # The product a quantized one-query search makes, alone: the query rounded as a row is
    # (quantize_database), no candidates, no top-k. What the search costs beyond it is the rest.
    for name in ("bfloat16", "int8"):
        rounded = quantize_database(query[None], name, normalized=True).values
        one_candidates[f"product only: q @ db.T {name} (jit)"] = functools.partial(
            bare_product, stored[name].values, rounded, 1
        )
    one_candidates |= {f"cosine_top_k {name}": search(name, query) for name in names}
    if index is not None:
        one_candidates["faiss IndexFlatIP"] = lambda: index.search(query_np[None], k)
    one_times, _ = time_round_robin(one_candidates, args.repeats)
    floor_times = np.min([one_times[name] for name in floors], axis=0)
    one = {name: float(np.median(ts)) for name, ts in one_times.items()}
    # Each repeat's time over that repeat's floor, then the median (see the docstring).
    one_ratio = {name: float(np.median(np.asarray(ts) / floor_times))
                 for name, ts in one_times.items()}
    floor = float(np.median(floor_times))

    peak_a = jax.random.normal(keys[4], (args.peak_n, args.peak_n), jnp.float32)
    peak, _ = time_round_robin({"peak": lambda: matmul(peak_a, peak_a)}, args.batch_repeats)
    peak_seconds = float(np.median(peak["peak"]))
    peak_gflops = 2 * args.peak_n**3 / peak_seconds / 1e9

    many = {}
    for Q, queries in batches.items():
        candidates = {f"cosine_top_k {name}": search(name, queries) for name in names}
        if index is not None:
            queries_np = np.array(queries)
            candidates["faiss IndexFlatIP"] = lambda q=queries_np: index.search(q, k)
        batch_times, results = time_round_robin(candidates, args.batch_repeats)
        times = {name: float(np.median(ts)) for name, ts in batch_times.items()}
        exact = np.asarray(results["cosine_top_k float32"][1])
        recalls = {}
        for name, result in results.items():
            rows = result[1] if name == "faiss IndexFlatIP" else np.asarray(result[1])
            recalls[name] = recall_at(rows, exact)
        many[Q] = (times, recalls)

    gigabytes = M * D * 4 / 1e9
    lines = [
        f"# benchmarks/similarity.py  {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"# M={M} rows x D={D} ({gigabytes:.2f} GB in float32, {M * D * 2 / 1e9:.2f} in "
        f"bfloat16, {stored['int8'].nbytes / 1e9:.2f} in int8 with scales), k={k}; median of "
        f"{args.repeats} (batches: {args.batch_repeats}) round-robin repeats",
        f"# jax {jax.__version__} on {jax.devices()[0].platform}, numpy {np.__version__}, "
        + (f"faiss {faiss.__version__} with {args.threads} threads, " if faiss else "no faiss, ")
        + f"{os.cpu_count()} CPUs",
        f"# CPU {cpu_description()}",
        f"# load average at start {load:.2f}, at end {os.getloadavg()[0]:.2f} (other processes "
        f"share the CPU: timings are noisy)",
        "# other libraries' threads sleep when idle: "
        + ", ".join(f"{name}={os.environ.get(name)}" for name in SLEEPING_THREADS),
        "",
        "one query (memory-bound)                 median ms     GB/s   x floor  recall@10",
    ]
    for name, seconds in one.items():
        bytes_read = gigabytes
        if "bfloat16" in name:
            bytes_read = gigabytes / 2
        elif "int8" in name:
            bytes_read = stored["int8"].nbytes / 1e9
        rate = f"{bytes_read / seconds:8.1f}"
        recall = one_recall.get(name.removeprefix("cosine_top_k "))
        recall = "" if recall is None else f"{recall:10.3f}"
        if name.startswith("numpy:"):
            recall = f"{1.0:10.3f}"
        lines.append(
            f"  {name:<38} {seconds * 1e3:9.2f} {rate} {one_ratio[name]:9.2f}{recall}"
        )
    lines += [
        "",
        f"(one-query recall over {args.recall_queries} separate one-query searches; x floor = "
        f"median over the {args.repeats} repeats of time / that repeat's fastest float32 "
        f"read-once; the floor's median: {floor * 1e3:.2f} ms)",
        "",
        f"float32 matmul peak {args.peak_n}^3 (jit): {peak_seconds * 1e3:.1f} ms, "
        f"{peak_gflops:.1f} GFLOP/s",
    ]
    for Q, (times, recalls) in many.items():
        faiss_time = times.get("faiss IndexFlatIP")
        lines += [
            "",
            f"{Q} queries                               median ms   GFLOP/s   x peak  "
            f"recall@10  faiss/this",
        ]
        for name, seconds in times.items():
            gflops = 2 * Q * M * D / seconds / 1e9
            speedup = "" if faiss_time is None else f"{faiss_time / seconds:11.2f}"
            lines.append(
                f"  {name:<38} {seconds * 1e3:9.1f} {gflops:9.1f} {gflops / peak_gflops:8.2f} "
                f"{recalls[name]:10.3f}{speedup}"
            )

    def ratio(name):
        return one_ratio[f"cosine_top_k {name}"]

    def verdict(ok):
        return "met" if ok else "MISSED"

    lines += ["", "summary (goals of issue 17, measured in this run)"]
    lines.append(f"  one query float32 / floor:   {ratio('float32'):.2f}x")
    lines.append(f"  one query bfloat16 / floor:  {ratio('bfloat16'):.2f}x  (goal <= 0.60x: "
                 f"{verdict(ratio('bfloat16') <= 0.6)}), recall@10 {one_recall['bfloat16']:.3f}")
    lines.append(f"  one query int8 / floor:      {ratio('int8'):.2f}x  (goal <= 0.35x: "
                 f"{verdict(ratio('int8') <= 0.35)}), recall@10 {one_recall['int8']:.3f}")
    lines.append(f"  one query int8+rerank/floor: {ratio('int8 + rerank'):.2f}x, recall@10 "
                 f"{one_recall['int8 + rerank']:.3f}")
    if 256 in many and "faiss IndexFlatIP" in many[256][0]:
        times, recalls = many[256]
        for name in names:
            speedup = times["faiss IndexFlatIP"] / times[f"cosine_top_k {name}"]
            lines.append(f"  256 queries {name:<14} vs faiss: {speedup:5.2f}x faster  "
                         f"(goal >= 5x: {verdict(speedup >= 5)}), recall@10 "
                         f"{recalls[f'cosine_top_k {name}']:.3f}")
    return print_and_write(lines, args.out)


if __name__ == "__main__":
    main()
