"""Recall against speed of the inverted-file index, beside FAISS ``IndexIVFFlat`` at equal recall.

``attention.vectors.inverted_index`` clusters the database with spherical k-means and
searches only the rows of the ``n_probe`` cells whose centroids best match a query. This
script sweeps ``n_probe`` and measures, in one run:

* **recall@10** against the exact float32 search (``cosine_top_k``, itself checked against
  NumPy in the tests) over ``--queries`` queries;
* **one query** and **a batch of --queries queries**, median milliseconds over round-robin
  repeats (one of each candidate per repeat, so load from other processes falls on all alike),
  with the exact float32 ``cosine_top_k`` timed beside them as the reference;
* **FAISS** ``IndexIVFFlat`` with the same number of cells, trained the same way (spherical
  k-means, the same iterations, at most 256 training points per cell), with the inner product
  as its metric and as many threads as XLA's CPU pool.

The two indexes cluster differently (each trains its own centroids), so they are compared at
equal recall: for each recall target, the fastest ``n_probe`` of each that reaches it.

The data is synthetic and clustered, the setting where an index pays: ``--topics`` random unit
centres, each row a centre plus Gaussian noise (``--spread`` per coordinate), normalised; the
queries are fresh draws of the same kind. The default spread puts recall@10 between about 0.9
and 0.99 over the sweep (at 0.055 one probe finds everything, at 0.08 128 probes find 0.95):
the range where an index is used in practice. Random unit vectors with no clusters (the flat
benchmark's data) would need nearly every cell probed for any recall: in 300 dimensions they
are all nearly orthogonal, and a query's nearest rows are spread over every cell.

    python benchmarks/inverted_index.py                  # 1M x 300, 1024 cells
    python benchmarks/inverted_index.py --rows 100000 --cells 256

The table is printed and written to ``benchmarks/results/inverted_index.txt`` (``--out``).
FAISS is a benchmark-only dependency (``pip install faiss-cpu``); without it its columns are
skipped.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import pathlib
import time

# The flat benchmark sets the thread policies before NumPy loads and takes this folder off
# the import path (benchmarks/attention.py would hide the package); its helpers serve here.
_HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("similarity_benchmark", _HERE / "similarity.py")
_flat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_flat)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from attention._machine import cpu_description  # noqa: E402
from attention.vectors import (  # noqa: E402
    build_inverted_index,
    cosine_top_k,
    inverted_index_top_k,
    normalize,
)

RESULTS = _HERE / "results" / "inverted_index.txt"
RECALL_TARGETS = (0.9, 0.95, 0.97, 0.99)


def clustered(key, rows: int, centres, spread: float):
    """``rows`` unit vectors, each a random centre plus ``spread`` Gaussian noise per coordinate."""
    pick_key, noise_key = jax.random.split(key)
    topic_R = jax.random.randint(pick_key, (rows,), 0, centres.shape[0])
    noise_RD = spread * jax.random.normal(noise_key, (rows, centres.shape[1]), jnp.float32)
    return normalize(centres[topic_R] + noise_RD)


def timed(fn):
    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    return result, time.perf_counter() - start


def fastest_reaching(target: float, recalls: dict, times: dict):
    """``(seconds, n_probe)`` of the fastest setting with recall >= target, or None."""
    reached = [(times[p], p) for p in recalls if recalls[p] >= target]
    return min(reached) if reached else None


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="database rows M")
    parser.add_argument("--dim", type=int, default=300, help="vector width D")
    parser.add_argument("--topics", type=int, default=4096, help="cluster centres of the data")
    parser.add_argument("--spread", type=float, default=0.07,
                        help="noise per coordinate around a centre")
    parser.add_argument("--cells", type=int, default=1024, help="cells L of both indexes")
    parser.add_argument("--iterations", type=int, default=10, help="k-means iterations")
    parser.add_argument("--probes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128, 256])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=256, help="batch size Q")
    parser.add_argument("--repeats", type=int, default=15, help="repeats for one query")
    parser.add_argument("--batch-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="FAISS threads (XLA's CPU pool uses every core)")
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    M, D, L, k = args.rows, args.dim, args.cells, args.k
    probes = [p for p in args.probes if p <= L]
    load = os.getloadavg()[0]

    faiss = _flat.load_faiss(args.no_faiss, args.threads, "columns")

    keys = jax.random.split(jax.random.key(0), 4)
    centres = normalize(jax.random.normal(keys[0], (args.topics, D), jnp.float32))
    database = jax.block_until_ready(clustered(keys[1], M, centres, args.spread))
    queries = clustered(keys[2], args.queries, centres, args.spread)
    query = queries[0]
    _, exact = cosine_top_k(queries, database, k, normalized=True)

    index, ours_build = timed(lambda: build_inverted_index(
        database, L, iterations=args.iterations, key=keys[3], normalized=True))
    mean_cell = M / L
    ivf = None
    if faiss is not None:
        database_np, queries_np = np.array(database), np.array(queries)
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(D), D, L, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.spherical = True  # unit centroids: the k-means that suits cosine similarity
        ivf.cp.niter = args.iterations
        start = time.perf_counter()
        ivf.train(database_np)
        ivf.add(database_np)
        faiss_build = time.perf_counter() - start

    def ours(p, q):
        return lambda: inverted_index_top_k(q, index, k, n_probe=p, normalized=True)

    def theirs(p, q):
        def search():
            ivf.nprobe = p
            return ivf.search(q, k)
        return search

    flat = "cosine_top_k float32 (exact)"
    one_candidates = {flat: lambda: cosine_top_k(query, database, k, normalized=True)}
    batch_candidates = {flat: lambda: cosine_top_k(queries, database, k, normalized=True)}
    for p in probes:
        one_candidates[("ours", p)] = ours(p, query)
        batch_candidates[("ours", p)] = ours(p, queries)
        if ivf is not None:
            one_candidates[("faiss", p)] = theirs(p, queries_np[:1])
            batch_candidates[("faiss", p)] = theirs(p, queries_np)
    one_times, _ = _flat.time_round_robin(one_candidates, args.repeats)
    batch_times, results = _flat.time_round_robin(batch_candidates, args.batch_repeats)
    one = {name: float(np.median(ts)) for name, ts in one_times.items()}
    batch = {name: float(np.median(ts)) for name, ts in batch_times.items()}
    # Recall over the batch's results: a query's answer does not depend on its batch.
    recall = {name: _flat.recall_at(np.asarray(result[1]), exact)
              for name, result in results.items() if name != flat}

    Q = args.queries
    lines = [
        f"# benchmarks/inverted_index.py  {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"# M={M} rows x D={D} float32, clustered ({args.topics} topics, spread {args.spread}); "
        f"L={L} cells, k={k}, {Q} queries; median of {args.repeats} (batch: "
        f"{args.batch_repeats}) round-robin repeats",
        f"# jax {jax.__version__} on {jax.devices()[0].platform}, numpy {np.__version__}, "
        + (f"faiss {faiss.__version__} with {args.threads} threads, " if faiss else "no faiss, ")
        + f"{os.cpu_count()} CPUs",
        f"# CPU {cpu_description()}",
        f"# load average at start {load:.2f}, at end {os.getloadavg()[0]:.2f}",
        "",
        f"build: ours {ours_build:.1f} s (k-means on {min(M, 256 * L)} rows, "
        f"{args.iterations} iterations, then every row assigned)"
        + (f"; faiss {faiss_build:.1f} s" if ivf is not None else ""),
        f"ours: largest cell {index.capacity} rows = {index.capacity / mean_cell:.2f}x the mean "
        f"({mean_cell:.0f}): what each probe reads",
        "",
        f"exact float32 cosine_top_k: one query {one[flat] * 1e3:.2f} ms, {Q} queries "
        f"{batch[flat] * 1e3:.1f} ms",
        "",
        "         rows read |  ours: recall@10   1 query ms  batch ms |"
        + (" faiss: recall@10   1 query ms  batch ms" if ivf is not None else ""),
        "n_probe     (ours) |",
    ]
    for p in probes:
        row = (f"{p:7d} {min(1.0, p * index.capacity / M):10.3f} | {recall[('ours', p)]:15.3f} "
               f"{one[('ours', p)] * 1e3:12.2f} {batch[('ours', p)] * 1e3:9.1f} |")
        if ivf is not None:
            row += (f" {recall[('faiss', p)]:15.3f} {one[('faiss', p)] * 1e3:12.2f} "
                    f"{batch[('faiss', p)] * 1e3:9.1f}")
        lines.append(row)

    lines += ["", "at equal recall: the fastest n_probe reaching each recall@10 target"]
    for target in RECALL_TARGETS:
        for label, times in (("1 query", one), (f"{Q} queries", batch)):
            mine = fastest_reaching(target, {p: recall[("ours", p)] for p in probes},
                                    {p: times[("ours", p)] for p in probes})
            text = f"  recall >= {target:.2f}, {label:<11}: "
            if mine is None:
                lines.append(text + f"ours not reached with n_probe <= {probes[-1]}")
                continue
            text += (f"ours {mine[0] * 1e3:8.2f} ms (n_probe {mine[1]:3d}, speed-up over exact "
                     f"{times[flat] / mine[0]:5.1f}x)")
            if ivf is not None:
                them = fastest_reaching(target, {p: recall[("faiss", p)] for p in probes},
                                        {p: times[("faiss", p)] for p in probes})
                text += ("; faiss not reached" if them is None else
                         f"; faiss {them[0] * 1e3:8.2f} ms (n_probe {them[1]:3d}): "
                         f"faiss/ours {them[0] / mine[0]:5.2f}")
            lines.append(text)
    return _flat.print_and_write(lines, args.out)


if __name__ == "__main__":
    main()
