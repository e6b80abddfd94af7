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
# # 15 Searching many vectors: the memory floor, batches, and an inverted-file index (steps 0f-0j)
#
# An optional sequel to notebook 00, which searched a vocabulary by cosine. Here the database
# is large: how fast can an exact search be, and how does an inverted-file index read less
# than all of it?
#
# **Memory.** The full setting builds a database of a million rows of 300 float32 numbers,
# 1.2 GB, and holds about three times that at its peak (the JAX array, a NumPy copy for the
# reference, the index's data), with JAX's own memory on top: the kernel peaked at 5.1 GB
# (`benchmarks/notebooks.py`), so it needs about **5.5 GB of free memory**. The first cell
# checks what this machine has free and shrinks the database to fit, saying so, rather than
# run out of memory.
# `ATTENTION_FAST=1` (the tests) uses 20,000 rows.

# %%
# %matplotlib inline
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from attention import build_inverted_index, cosine_top_k, inverted_index_top_k, normalize
from attention.comprehension import check, show_code

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
D = 300  # the width of the vectors (word2vec's usual size)
WANTED_ROWS = 20_000 if FAST else 1_000_000
PEAK_COPIES = 3  # database, its NumPy copy, the index's data: copies held at the peak
RUNTIME = 1.5e9  # JAX, its compiled programs, temporaries: 5.1 GB measured for 3.6 GB of copies


def free_bytes():
    """Memory this process may still take: MemAvailable on Linux, else psutil's estimate."""
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        import psutil  # installed with Jupyter's kernel

        return psutil.virtual_memory().available


need = WANTED_ROWS * D * 4 * PEAK_COPIES + RUNTIME
free = free_bytes()
NUM_ROWS = (WANTED_ROWS if need < 0.8 * free
            else max(20_000, int((0.8 * free - RUNTIME) / (D * 4 * PEAK_COPIES))))
print(f"needs about {need / 1e9:.2f} GB, {free / 1e9:.1f} GB free: {NUM_ROWS:,} rows"
      + ("" if NUM_ROWS == WANTED_ROWS else f" (shrunk from {WANTED_ROWS:,} to fit)"))

# %% [markdown]
# ## 1. How fast can a search be?
#
# A database of `M` rows of `D = 300` float32 numbers is `1.2 GB` for a million rows. One query
# does `2 M D` flops and reads `4 M D` bytes: half a flop per byte, far too little arithmetic
# to keep a CPU busy, so the time is set by **memory bandwidth**. The floor is the time to
# read the matrix once, which we measure with a plain reduction over it. A **batch** of `Q`
# queries reads the matrix once for all of them, does `2 Q M D` flops, and with `Q` in the
# hundreds becomes **compute-bound**: its floor is the matrix-multiply peak, also measured
# here, in the same run, on the same machine.
#
# This is a quick look on random vectors: a million rows in the full setting, 20,000 in the
# fast one (where the matrix fits in the CPU's caches and the "bandwidth" is the cache's).
# The real measurement, with more repeats, other storage formats and a reference library
# beside it, is `benchmarks/similarity.py`.

# %%
def best_time(fn, *args, repeats=5):
    """Fastest of `repeats` calls, in seconds, after one warm-up call (compilation)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


K = 10
database = normalize(jax.random.normal(jax.random.key(1), (NUM_ROWS, D)))
database_np = np.asarray(database)
query = normalize(jax.random.normal(jax.random.key(2), (D,)))
query_np = np.asarray(query)
gigabytes = database.nbytes / 1e9
print(f"database: {NUM_ROWS:,} x {D} float32 = {gigabytes:.2f} GB")

# The memory-bandwidth floor: one pass over the matrix, doing almost no arithmetic. Two
# ways to sum every entry; the faster one is our estimate of the time to read it once.
t_read = min(best_time(jax.jit(jnp.sum), database), best_time(np.sum, database_np))


def numpy_top_k(q, db, k):
    scores = db @ q
    top = np.argpartition(-scores, k)[:k]
    return scores[top[np.argsort(-scores[top])]], top[np.argsort(-scores[top])]


t_numpy = best_time(numpy_top_k, query_np, database_np, K)
t_jax = best_time(lambda q, db: cosine_top_k(q, db, K, normalized=True), query, database)
print(f"read the matrix once : {1e3 * t_read:8.1f} ms  ({gigabytes / t_read:.1f} GB/s)")
print(f"NumPy matvec + top-k : {1e3 * t_numpy:8.1f} ms  ({t_numpy / t_read:.1f}x the floor)")
print(f"cosine_top_k         : {1e3 * t_jax:8.1f} ms  ({t_jax / t_read:.1f}x the floor)")

scores_jax, rows_jax = cosine_top_k(query, database, K, normalized=True)
scores_np, rows_np = numpy_top_k(query_np, database_np, K)
assert np.array_equal(np.asarray(rows_jax), rows_np)
print("same top-10 rows as NumPy:", np.asarray(rows_jax))

# %% [markdown]
# Now a batch of queries, against the matrix-multiply peak of this machine.

# %%
Q = 64 if FAST else 256
queries = normalize(jax.random.normal(jax.random.key(3), (Q, D)))
n = 512 if FAST else 2048
square = jax.random.normal(jax.random.key(4), (n, n))
matmul = jax.jit(lambda x: x @ x)
peak = 2 * n**3 / best_time(matmul, square, repeats=3)
t_batch = best_time(lambda q, db: cosine_top_k(q, db, K, normalized=True), queries, database,
                    repeats=3)
achieved = 2 * Q * NUM_ROWS * D / t_batch
print(f"matmul peak ({n}x{n}) : {peak / 1e9:7.1f} GFLOP/s")
print(f"{Q} queries at once  : {1e3 * t_batch:7.1f} ms = {1e3 * t_batch / Q:.2f} ms a query, "
      f"{achieved / 1e9:.1f} GFLOP/s ({achieved / peak:.0%} of the peak)")
print(f"one query at a time  : {1e3 * t_jax:7.1f} ms a query")

# %% [markdown]
# On a laptop-class CPU a single query should sit within a small factor of the bandwidth
# floor, and the batch should run many times faster *per query* than one query at a time,
# at a good fraction of the matmul peak: the same lesson that makes attention kernels fast
# (notebook 10). Numbers on a shared or busy machine vary from run to run.

# %% [markdown]
# ## 2. Reading less than the whole matrix: an inverted-file index
#
# An exact search cannot skip a row: any row might be the best. To go below the floor we must
# accept a small chance of missing a neighbour. The inverted-file index
# (`attention/vectors/inverted_index.py`, FAISS's `IndexIVFFlat`) clusters the database once
# with k-means into `L` cells. A query then ranks the `L` centroids and searches only the rows
# of its `n_probe` best cells, about `n_probe / L` of the matrix. What it misses is measured as
# **recall@10**: the fraction of the exact top-10 that it returns.
#
# Whether that pays depends on the data. Below, the same index is built on the random vectors
# above and on **clustered** vectors (each one a random "topic" plus noise, as real embeddings
# gather around topics).

# %% [markdown]
# **Predict first.** With 16 probes of the 63-odd cells, which data will the index search
# better, measured by recall@10: (a) the random vectors, (b) the clustered ones, or (c) both
# about the same? Write your letter before you run the next cell.

# %%
my_prediction = None  # "a", "b" or "c"

# %%
def recall_at_10(found, exact):
    found, exact = np.asarray(found).tolist(), np.asarray(exact).tolist()
    return np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)])


ROWS = NUM_ROWS // 5  # 4,000 (fast) or 200,000 rows: a build of a few seconds
CELLS = int(np.sqrt(ROWS))  # a usual choice: about sqrt(M) cells
topics = normalize(jax.random.normal(jax.random.key(5), (ROWS // 100, D)))
picks = jax.random.randint(jax.random.key(6), (ROWS + 64,), 0, topics.shape[0])
noisy = topics[picks] + 0.07 * jax.random.normal(jax.random.key(7), (ROWS + 64, D))
data = {
    "random": normalize(jax.random.normal(jax.random.key(8), (ROWS + 64, D))),
    "clustered": normalize(noisy),
}
print(f"{ROWS:,} rows, {CELLS} cells, 64 queries; time per query, one query at a time")
recall_16 = {}
for name, vectors in data.items():
    rows, probes = vectors[:ROWS], vectors[ROWS:]  # the queries are not in the database
    index = build_inverted_index(rows, CELLS, normalized=True)
    _, exact = cosine_top_k(probes, rows, K, normalized=True)
    t_exact = best_time(lambda q, db: cosine_top_k(q, db, K, normalized=True), probes[0], rows)
    print(f"{name:>9}: exact search {1e3 * t_exact:6.2f} ms")
    for n_probe in (1, 4, 16):
        _, found = inverted_index_top_k(probes, index, K, n_probe=n_probe, normalized=True)
        t_index = best_time(
            lambda q, i, n=n_probe: inverted_index_top_k(q, i, K, n_probe=n, normalized=True),
            probes[0], index,
        )
        print(f"{'':>9}  n_probe {n_probe:2d} of {CELLS}: recall@10 "
              f"{recall_at_10(found, exact):.2f}, {1e3 * t_index:6.2f} ms")
    recall_16[name] = recall_at_10(found, exact)  # the last n_probe, 16
assert recall_16["clustered"] > 0.9, "clustered data: 16 probes find most neighbours"

# %%
gap = recall_16["clustered"] - recall_16["random"]
measured = "b" if gap > 0.1 else "a" if gap < -0.1 else "c"
check("15.clustered_recall", my_prediction, lambda answer: answer == measured)

# %% [markdown]
# On random vectors the index is little use: in 300 dimensions random vectors are all nearly
# orthogonal, so a query's nearest rows are scattered over every cell and few of them lie in
# the cells it probes. On clustered vectors a few cells hold most of the neighbours, and the
# search reads a small fraction of the matrix for nearly all of the recall.
# `benchmarks/inverted_index.py` draws the whole recall-against-speed curve at a million rows,
# beside FAISS's `IndexIVFFlat`.

# %% [markdown]
# The index in the package: the cells a query searches, then an exact search inside them.

# %%
show_code(inverted_index_top_k)
