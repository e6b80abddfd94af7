"""How fast is cosine top-k search, next to what the hardware allows?

Two questions, each measured against a bound taken on this machine in this run:

1. **One query** against M normalised D-d float32 vectors is memory-bound (2 flops per 4 bytes).
   Bound: the time to read the matrix once, the faster of a jitted ``jnp.sum`` and NumPy's
   ``sum`` over it. Compared with NumPy doing the same search (``db @ q``, ``argpartition``,
   then sorting the k winners). Also shown: the product alone and ``lax.top_k`` alone, to see
   which part costs what.
2. **A batch of queries** shares one read of the matrix and is compute-bound. Bound: the
   GFLOP/s of a large jitted float32 matrix product (``--peak-n`` cubed).

Every timing is the median over ``--repeats`` runs after a warm-up, with ``block_until_ready``,
and the candidates are run round-robin (one of each per repeat) so that load from other
processes falls on all of them alike. Arrays are passed as arguments, never closed over.

    python benchmarks/similarity.py                  # a million 300-d vectors (1.2 GB)
    python benchmarks/similarity.py --rows 100000    # smaller, quicker

The table is printed and written to ``benchmarks/results/similarity.txt`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from attention.mechanism.similarity import cosine_top_k, normalize

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "similarity.txt"


def numpy_top_k(database: np.ndarray, query: np.ndarray, k: int):
    """The NumPy way: one matrix-vector product, an O(M) partition, then sort the k."""
    scores = database @ query
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return scores[top], top


def time_round_robin(candidates: dict, repeats: int) -> dict[str, float]:
    """Median seconds per candidate; each is a zero-argument callable returning its result."""
    for fn in candidates.values():  # warm-up: compile, fault the pages in.
        jax.block_until_ready(fn())
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="database rows M")
    parser.add_argument("--dim", type=int, default=300, help="vector width D")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256, help="queries in the batch test")
    parser.add_argument("--peak-n", type=int, default=4096, help="size of the peak matmul")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    M, D, k, Q = args.rows, args.dim, args.k, args.batch
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    keys = jax.random.split(jax.random.key(0), 4)
    database = normalize(jax.random.normal(keys[0], (M, D), jnp.float32))
    query = normalize(jax.random.normal(keys[1], (D,), jnp.float32))
    queries = normalize(jax.random.normal(keys[2], (Q, D), jnp.float32))
    database_np = np.array(database)  # a NumPy-owned copy, as a NumPy user would hold it.
    query_np = np.array(query)

    # The same answer from both, before timing anything.
    got_scores, got_rows = cosine_top_k(query, database, k, normalized=True)
    want_scores, want_rows = numpy_top_k(database_np, query_np, k)
    assert np.array_equal(np.asarray(got_rows), want_rows), (got_rows, want_rows)
    assert np.allclose(np.asarray(got_scores), want_scores, atol=1e-5)

    read_once = jax.jit(jnp.sum)
    # The same product written two ways: XLA on CPU runs the first on its multi-threaded
    # matrix multiply, the second (a matrix-vector einsum) on a slower path.
    scores_only = jax.jit(lambda db, q: q[None, :] @ db.T)
    scores_matvec = jax.jit(lambda db, q: jnp.einsum("MD,D->M", db, q))
    top_k_only = jax.jit(jax.lax.top_k, static_argnames="k")
    all_scores = scores_only(database, query)[0]
    peak_a = jax.random.normal(keys[3], (args.peak_n, args.peak_n), jnp.float32)
    matmul = jax.jit(jnp.matmul)

    one = time_round_robin(
        {
            "read once: jnp.sum (jit)": lambda: read_once(database),
            "read once: numpy sum": lambda: database_np.sum(),
            "cosine_top_k, 1 query (jit)": lambda: cosine_top_k(
                query, database, k, normalized=True
            ),
            "numpy: db @ q + argpartition": lambda: numpy_top_k(database_np, query_np, k),
            "  part: scores only, q @ db.T (jit)": lambda: scores_only(database, query),
            "  part: scores only, db @ q (jit)": lambda: scores_matvec(database, query),
            "  part: lax.top_k only (jit)": lambda: top_k_only(all_scores, k=k),
        },
        args.repeats,
    )
    many = time_round_robin(
        {
            f"matmul peak {args.peak_n}^3 (jit)": lambda: matmul(peak_a, peak_a),
            f"cosine_top_k, {Q} queries (jit)": lambda: cosine_top_k(
                queries, database, k, normalized=True
            ),
        },
        max(3, args.repeats // 2),
    )

    gigabytes = M * D * 4 / 1e9
    read_bound = min(one["read once: jnp.sum (jit)"], one["read once: numpy sum"])
    ours = one["cosine_top_k, 1 query (jit)"]
    numpy_time = one["numpy: db @ q + argpartition"]
    peak_name, batch_name = list(many)
    peak_gflops = 2 * args.peak_n**3 / many[peak_name] / 1e9
    batch_gflops = 2 * Q * M * D / many[batch_name] / 1e9

    lines = [
        f"# benchmarks/similarity.py  {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"# M={M} rows x D={D} float32 ({gigabytes:.2f} GB), k={k}, batch={Q}, "
        f"median of {args.repeats} (batch: {max(3, args.repeats // 2)}) round-robin repeats",
        f"# jax {jax.__version__} on {jax.devices()[0].platform}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average at start {load:.2f} (other processes share the CPU: timings are noisy)",
        "",
        "one query (memory-bound)                 median ms     GB/s   x read-once",
    ]
    for name, seconds in one.items():
        rate = f"{gigabytes / seconds:8.1f}" if "top_k only" not in name else "       -"
        lines.append(f"  {name:<38} {seconds * 1e3:9.2f} {rate} {seconds / read_bound:10.2f}")
    lines += [
        "",
        "batch of queries (compute-bound)         median ms   GFLOP/s   x peak",
        f"  {peak_name:<38} {many[peak_name] * 1e3:9.1f} {peak_gflops:9.1f} {1.0:8.2f}",
        f"  {batch_name:<38} {many[batch_name] * 1e3:9.1f} {batch_gflops:9.1f} "
        f"{batch_gflops / peak_gflops:8.2f}",
        "",
        "summary",
        f"  one query / read-once bound: {ours / read_bound:.2f}x  (goal <= 1.25x)",
        f"  numpy / one query:           {numpy_time / ours:.2f}x faster  (goal >= 2.5x)",
        f"  batch / matmul peak:         {batch_gflops / peak_gflops:.2f}  "
        f"({batch_gflops:.1f} of {peak_gflops:.1f} GFLOP/s)",
    ]
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")
    print(f"\nwritten to {args.out}")
    return table


if __name__ == "__main__":
    main()
