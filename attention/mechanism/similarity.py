"""Step 0: cosine similarity search, which stored embeddings point the same way as a query?

Notebook 00 ("Multiplying embeddings") multiplies embeddings before attention does: the dot
product u . v is large when u and v point the same way, and divided by both lengths it is the
cosine of the angle between them, a number in [-1, 1] that ignores how long the vectors are::

    cos(u, v) = (u . v) / (|u| |v|)

Finding the k stored vectors nearest to a query ("king - man + woman" ~ "queen") is a matrix
product followed by a top-k, and it is a lesson in where time goes on real hardware:

* **Normalise the database once.** If every row of the database already has length 1, a
  query's cosines are the single matrix-vector product ``database @ query``. Dividing by the
  row norms on every search would read the whole matrix two or three times instead of once.
* **One query is memory-bound.** A million 300-d float32 vectors are 1.2 GB and the product
  does 2 flops per 4 bytes read: the CPU spends its time waiting for memory, and the best
  possible time is the time to read the matrix once (``benchmarks/similarity.py`` measures
  both).
* **A batch of queries is compute-bound.** Q queries share one read of the matrix, so with Q
  in the hundreds the search runs at the machine's matrix-multiply speed.
* **Stream the database in chunks.** Q queries against M rows make a ``[Q, M]`` score matrix
  (4 GB for 1024 queries and a million rows). We score one chunk of rows at a time, keep a
  running top-k per query, and never hold more than ``[Q, chunk]`` scores. Merging the
  running top-k with each chunk's top-k is exact, so the result equals a full sort.

Axes here: ``Q`` queries, ``M`` database rows, ``D`` the embedding width, ``k`` results.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Shaped

from attention._checks import (
    check_axis,
    check_floating,
    check_int,
    check_positive_int,
    check_rank,
    check_real,
    shape_str,
)

# Scores held at once per chunk when the caller does not choose a chunk size: 2^24 float32
# values (64 MiB), small enough to leave memory for the database, large enough that the
# per-chunk overhead (a top-k and a merge) stays small next to the matrix product.
_SCORES_PER_CHUNK = 1 << 24


def normalize(
    vectors: Float[Array, "... D"], axis: int = -1, eps: float = 1e-12
) -> Float[Array, "... D"]:
    """Scale vectors to length 1 along ``axis``: ``v / max(|v|, eps)``.

    Zero vectors (and any shorter than ``eps``) are not divided by zero: they stay (near) zero,
    so their cosine with everything is 0 rather than NaN. The norm is accumulated in float32
    for half-precision inputs; the result keeps the input dtype. Jitted: on a large database
    the square, sum, square root and division fuse into one pass over the matrix.

    Args:
      vectors: floating, any shape, for example a database ``[M, D]``.
      axis: the axis holding each vector's coordinates.
      eps: the smallest norm divided by; a positive float.

    Returns:
      An array of the shape and dtype of ``vectors`` whose slices along ``axis`` have
      length 1 (or are zero).

    Raises:
      TypeError: ``vectors`` not a floating-point array; ``axis`` not an int; ``eps`` not a
        number.
      ValueError: ``axis`` out of range, ``eps`` not positive.

    >>> import jax.numpy as jnp
    >>> normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    check_floating("vectors", vectors)
    axis = check_axis("axis", axis, vectors, array_name="vectors")
    eps = check_real("eps", eps, low=0.0, low_inclusive=False)
    return _normalize(vectors, axis, eps)


@functools.partial(jax.jit, static_argnames=("axis", "eps"))
def _normalize(vectors, axis: int, eps: float):
    acc = vectors.astype(jnp.promote_types(vectors.dtype, jnp.float32))
    norm = jnp.sqrt(jnp.sum(acc * acc, axis=axis, keepdims=True))
    return (acc / jnp.maximum(norm, eps)).astype(vectors.dtype)


def _check_search_args(queries, database, k, chunk_size) -> None:
    check_floating("queries", queries)
    check_floating("database", database)
    if queries.ndim not in (1, 2):
        raise ValueError(
            f"queries must have shape [Q, D] (or [D] for one query), "
            f"got {shape_str(queries.shape)}."
        )
    check_rank("database", database, "MD", hint=" The database holds one row per vector.")
    if queries.shape[-1] != database.shape[-1]:
        raise ValueError(
            f"queries and database must have the same width D (last axis); got queries "
            f"{shape_str(queries.shape)} and database {shape_str(database.shape)}."
        )
    M = database.shape[0]
    k = check_int("k", k)
    if not 1 <= k <= M:
        raise ValueError(f"k must lie in 1..M={M} (the number of database rows), got k={k}.")
    if chunk_size is not None:
        check_positive_int("chunk_size", chunk_size)


def cosine_top_k(
    queries: Float[Array, "*Q D"],
    database: Float[Array, "M D"],
    k: int,
    *,
    normalized: bool = False,
    chunk_size: int | None = None,
) -> tuple[Float[Array, "*Q k"], Int[Array, "*Q k"]]:
    """The k database rows with the largest cosine similarity to each query, best first.

    Formula, for query q and database row m::

        score[q, m] = (queries[q] . database[m]) / (|queries[q]| |database[m]|)

    and the result holds, for each query, the k largest scores and their row indices,
    sorted from the most similar down. Ties go to the lower index.

    For speed, normalise the database once with :func:`normalize` and pass
    ``normalized=True``: a search then reads the matrix exactly once. With the default
    ``normalized=False`` both the queries and the database are normalised inside every call,
    which costs extra passes over the database. Keep the database a JAX array (``normalize``
    returns one): a NumPy database would be copied to the device on every call.

    Args:
      queries: ``[Q, D]``, or ``[D]`` for one query; floating point. Cast to the database's
        dtype for the product; scores are accumulated in float32.
      database: ``[M, D]`` stored vectors, floating point.
      k: how many results per query, ``1 <= k <= M``; static (a new ``k`` recompiles).
      normalized: promise that the rows of ``database`` and of ``queries`` already have
        length 1 (as :func:`normalize` makes them), so neither is normalised again.
      chunk_size: database rows scored at once; by default as many as keep the score block
        ``[Q, chunk_size]`` within 2^24 values (all of them for a single query). Static.

    Returns:
      ``(scores, indices)``, each ``[Q, k]`` (or ``[k]`` for a single ``[D]`` query): float32
      cosines in descending order and the int32 rows of ``database`` they belong to.

    Raises:
      TypeError: non-floating ``queries`` or ``database``, non-int ``k`` or ``chunk_size``.
      ValueError: wrong ranks, different widths D, ``k`` outside ``1..M``, a non-positive
        ``chunk_size``.

    >>> import jax.numpy as jnp
    >>> db = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> scores, indices = cosine_top_k(jnp.array([0.0, 1.0]), db, 2)
    >>> indices.tolist(), [round(s, 4) for s in scores.tolist()]
    ([1, 2], [1.0, 0.7071])
    """
    _check_search_args(queries, database, k, chunk_size)
    M = database.shape[0]
    Q = 1 if queries.ndim == 1 else queries.shape[0]
    if chunk_size is None:
        chunk_size = max(_SCORES_PER_CHUNK // max(Q, 1), 1)
    # Each chunk must hold at least k rows, so that the first chunk alone fills the running
    # top-k with real scores; and no more than the whole database.
    chunk_size = min(max(int(chunk_size), k), M)
    return _cosine_top_k(queries, database, int(k), bool(normalized), chunk_size)


@functools.partial(jax.jit, static_argnames=("k", "normalized", "chunk_size"))
def _cosine_top_k(queries, database, k: int, normalized: bool, chunk_size: int):
    single = queries.ndim == 1
    queries_QD = queries[None, :] if single else queries
    if not normalized:
        queries_QD = _normalize(queries_QD, 1, 1e-12)
        database = _normalize(database, 1, 1e-12)
    queries_QD = queries_QD.astype(database.dtype)
    M = database.shape[0]
    Q = queries_QD.shape[0]
    n_chunks = -(-M // chunk_size)

    def score_chunk(i, carry):
        best_scores_Qk, best_rows_Qk = carry
        # The last chunk may run past the end of the database; slide it back so that it
        # ends at row M, and hide the rows it then repeats (already scored by chunk i - 1).
        nominal_start = i * chunk_size
        start = jnp.minimum(nominal_start, M - chunk_size)
        rows_C = start + jnp.arange(chunk_size, dtype=jnp.int32)
        chunk_CD = jax.lax.dynamic_slice_in_dim(database, start, chunk_size, axis=0)
        # Written as a product with the transpose, not as an einsum contracting both last
        # axes: XLA on CPU sends this form to its multi-threaded matrix multiply, and the
        # einsum form to a path that measured twice as slow for one query.
        scores_QC = jnp.matmul(queries_QD, chunk_CD.T, preferred_element_type=jnp.float32)
        # A where, not arithmetic, so -inf cannot turn into NaN; real cosines are >= -1.
        scores_QC = jnp.where(rows_C[None, :] >= nominal_start, scores_QC, -jnp.inf)
        chunk_scores_Qk, chunk_pos_Qk = jax.lax.top_k(scores_QC, k)
        # The running best come first and hold lower row indices, so top_k's preference for
        # the earlier position among equal scores keeps ties going to the lower row.
        both_scores_Q2k = jnp.concatenate([best_scores_Qk, chunk_scores_Qk], axis=1)
        both_rows_Q2k = jnp.concatenate([best_rows_Qk, rows_C[chunk_pos_Qk]], axis=1)
        best_scores_Qk, pick_Qk = jax.lax.top_k(both_scores_Q2k, k)
        return best_scores_Qk, jnp.take_along_axis(both_rows_Q2k, pick_Qk, axis=1)

    init = (
        jnp.full((Q, k), -jnp.inf, jnp.float32),
        jnp.zeros((Q, k), jnp.int32),
    )
    if n_chunks == 1:
        # One chunk covers the database: no loop, so XLA sees one product and one top-k.
        scores_Qk, rows_Qk = score_chunk(0, init)
    else:
        scores_Qk, rows_Qk = jax.lax.fori_loop(0, n_chunks, score_chunk, init)
    if single:
        return scores_Qk[0], rows_Qk[0]
    return scores_Qk, rows_Qk


def cosine_top_k_reference(
    queries: Shaped[Array, "*Q D"],
    database: Shaped[Array, "M D"],
    k: int,
) -> tuple[Float[Array, "*Q k"], Int[Array, "*Q k"]]:
    """Plain twin of :func:`cosine_top_k`: every score at once, then one top-k.

    The straightforward version, kept to test the chunked one against: it holds the whole
    ``[Q, M]`` score matrix in memory and normalises everything on every call.
    """
    _check_search_args(queries, database, k, None)
    queries = queries.astype(jnp.float32)
    database = database.astype(jnp.float32)
    queries = queries / jnp.maximum(jnp.linalg.norm(queries, axis=-1, keepdims=True), 1e-12)
    database = database / jnp.maximum(jnp.linalg.norm(database, axis=-1, keepdims=True), 1e-12)
    scores = jnp.einsum("...D,MD->...M", queries, database)
    values, indices = jax.lax.top_k(scores, k)
    return values, indices
