"""Step 0h: cosine top-k search: which stored vectors point the same way as a query?

Finding the k stored vectors nearest to a query ("king - man + woman" ~ "queen") is a matrix
product followed by a top-k (:func:`cosine_top_k_reference` does just that), and it is a
lesson in where time goes on real hardware. :func:`cosine_top_k` puts the steps before it
together:

* **Normalise the database once** (:func:`~attention.vectors.cosine.normalize`): a query's
  cosines are then the single product ``database @ query``, one read of the matrix.
* **One query is memory-bound.** The product does 2 flops per 4 bytes read: the CPU spends
  its time waiting for memory, and the best possible time is the time to read the matrix once
  (``benchmarks/similarity.py`` measures both).
* **Fewer bytes per row** (:mod:`attention.vectors.quantized`): a bfloat16 or int8 database
  is multiplied as stored. The query is rounded too, for the fast product, but only to find a
  few more candidates than asked for; those are then scored again with the float32 query,
  which costs next to nothing. ``rerank=`` buys the exact order back by rescoring candidates
  with the full-precision rows.
* **A batch of queries is compute-bound.** Q queries share one read of the matrix, so with Q
  in the hundreds the search runs near the machine's matrix-multiply speed, and the fastest
  multiply wins: on CPUs with avx512_bf16, bfloat16 x bfloat16 with float32 accumulation
  (each product of two bfloat16 is exact in float32), measured 1.4x to 1.9x the float32
  rate.
* **Stream in chunks, rank little** (:mod:`attention.vectors.top_k`): never the whole
  ``[Q, M]`` score matrix, and only a few scores ranked per query.

Axes here: ``Q`` queries, ``M`` database rows, ``D`` the embedding width, ``k`` results,
``C`` rows of a chunk, ``c`` candidates per query.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, Shaped

from attention._checks import (
    check_finite_rows,
    check_floating,
    check_int,
    check_positive_int,
    check_queries_and_k,
    check_rank,
    is_traced,
    shape_str,
)
from attention.vectors.cosine import _normalize
from attention.vectors.quantized import QuantizedDatabase, _check_quantized, dequantize
from attention.vectors.top_k import _chunked_top_k

# Scores held at once when the caller does not choose a chunk size. All of them, in one chunk,
# when the whole [Q, M] block fits in 2^24 float32 values (64 MiB): a few queries are
# memory-bound, and slicing a chunk out of the database is a copy they cannot afford.
# Otherwise chunks of 2^23 values (32 MiB, about a last-level cache): 32768 rows for 256
# queries, measured faster than 8192, 16384 or 65536.
_SCORES_ONE_CHUNK = 1 << 24
_SCORES_PER_CHUNK = 1 << 23

# A batch in an int8 database converts each chunk to bfloat16 (a copy): at most this many rows
# at once (19.7 MB at D=300, about the last-level cache). Measured faster than larger chunks.
_CONVERTED_ROWS = 32768


def _check_search_args(queries, database, k, chunk_size) -> None:
    check_floating("queries", queries)
    if isinstance(database, QuantizedDatabase):
        _check_quantized("database", database)
        database_shape = database.values.shape
    else:
        check_floating("database", database)
        check_rank("database", database, "MD", hint=" The database holds one row per vector.")
        database_shape = database.shape
    M, D = database_shape
    if M == 0:
        raise ValueError(
            f"database has no rows (shape {shape_str(database_shape)}): there is nothing to "
            f"search."
        )
    check_queries_and_k(queries, k, M, D, "database", f"database {shape_str(database_shape)}")
    if chunk_size is not None:
        check_positive_int("chunk_size", chunk_size)


def cosine_top_k(
    queries: Float[Array, "*Q D"],
    database: Float[Array, "M D"] | QuantizedDatabase,
    k: int,
    *,
    normalized: bool = False,
    chunk_size: int | None = None,
    rerank: Float[Array, "M D"] | None = None,
    rerank_candidates: int | None = None,
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

    **Quantized databases.** Given a :class:`QuantizedDatabase` (from
    :func:`quantize_database`, whose rows are unit length by construction), the score of row
    m is ``scales[m] * (values[m] . q)`` for the unit query q, and ``normalized`` speaks for
    the queries only. How it runs on a CPU:

    * one query (``[D]`` or ``[1, D]``): a single matrix-vector product over the stored
      values, which reads 2 or 1 bytes per coordinate. For bfloat16 the query is rounded to
      bfloat16 and the products accumulate in float32; for int8 the query is quantized like a
      row (``round(q / s)``, ``s = max|q| / 127``) and the products accumulate exactly in
      int32. The row scales (and ``s``) multiply the M scores afterwards.
    * a batch (``Q > 1``): the queries are rounded to bfloat16 and multiplied with one chunk
      of rows at a time in bfloat16 with float32 accumulation (an int8 chunk is converted to
      bfloat16 first, exactly), the fastest matrix product XLA has on CPUs with avx512_bf16.
    * either way, that rounded product only picks the ``2 k + 8`` best candidates; they are
      scored again with the float32 query, and the k best by that score are returned. So the
      scores returned are exactly ``scales[m] * (values[m] . q)`` (in float32), and the
      query's rounding costs recall only when it moves a row across 2 k + 8 places.

    Either way a score is off by a little, and rows whose cosines lie that close can swap.
    ``rerank=`` fixes the order: pass the full-precision database (the one that was
    quantized) and the best ``rerank_candidates`` rows (default ``min(4 k, M)``) of the
    quantized search are rescored exactly in float32 before the top k are kept. That reads
    only those rows of it, so the float32 copy may live in slower memory.

    **Bad values.** NaN or infinite queries are refused (when concrete) with an error naming
    them. :func:`quantize_database` refuses NaN rows the same way. A float database is not
    scanned for NaN on every search (that would read it a second time, doubling the cost of
    a one-query search); instead a NaN score is treated as -inf, so a NaN row is never ranked
    above a real one (it can appear, with score -inf, only when k exceeds the number of
    finite rows).

    Args:
      queries: ``[Q, D]``, or ``[D]`` for one query; floating point. For a float database
        cast to the database's dtype for the product; scores are accumulated in float32.
      database: ``[M, D]`` stored vectors, floating point, or a :class:`QuantizedDatabase`.
      k: how many results per query, ``1 <= k <= M``; static (a new ``k`` recompiles).
      normalized: promise that the rows of ``queries`` (and of ``database`` and ``rerank``
        when given as float arrays) already have length 1 (as :func:`normalize` makes them),
        so none is normalised again.
      chunk_size: database rows scored at once; by default all of them when the scores
        ``[Q, M]`` fit in 2^24 values, else as many as keep ``[Q, chunk_size]`` within 2^23
        (at most 32768 for a batch in an int8 database). Static.
      rerank: ``[M, D]`` floating, only with a :class:`QuantizedDatabase`: the full-precision
        rows to rescore the candidates with.
      rerank_candidates: how many candidates per query to rescore, ``k..M``; only with
        ``rerank``.

    Returns:
      ``(scores, indices)``, each ``[Q, k]`` (or ``[k]`` for a single ``[D]`` query): float32
      cosines in descending order and the int32 rows of ``database`` they belong to.

    Raises:
      TypeError: non-floating ``queries`` or ``database``, non-int ``k``, ``chunk_size`` or
        ``rerank_candidates``, a malformed :class:`QuantizedDatabase`.
      ValueError: wrong ranks, different widths D, a database with no rows, ``k`` outside
        ``1..M``, a non-positive ``chunk_size``, NaN or infinite queries (named), ``rerank``
        without a quantized database or of another shape, ``rerank_candidates`` outside
        ``k..M`` or without ``rerank``.

    >>> import jax.numpy as jnp
    >>> from attention.vectors.quantized import quantize_database
    >>> db = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> scores, indices = cosine_top_k(jnp.array([0.0, 1.0]), db, 2)
    >>> indices.tolist(), [round(s, 4) for s in scores.tolist()]
    ([1, 2], [1.0, 0.7071])
    >>> scores, indices = cosine_top_k(jnp.array([0.0, 1.0]), quantize_database(db), 2)
    >>> indices.tolist(), [round(s, 2) for s in scores.tolist()]
    ([1, 2], [1.0, 0.71])
    """
    _check_search_args(queries, database, k, chunk_size)
    quantized = isinstance(database, QuantizedDatabase)
    M = database.values.shape[0] if quantized else database.shape[0]
    Q = 1 if queries.ndim == 1 else queries.shape[0]
    candidates = _check_rerank(database, rerank, rerank_candidates, k, M)
    check_finite_rows("queries", queries)
    if not quantized:
        k_search = k
    else:
        k_search = _candidate_count(k, M) if rerank is None else candidates
    if chunk_size is None:
        chunk_size = M if Q * M <= _SCORES_ONE_CHUNK else max(_SCORES_PER_CHUNK // Q, 1)
        if quantized and Q > 1 and database.values.dtype == jnp.int8:
            chunk_size = min(chunk_size, _CONVERTED_ROWS)
    # Each chunk must hold at least k rows, so that the first chunk alone fills the running
    # top-k with real scores; and no more than the whole database.
    chunk_size = min(max(int(chunk_size), k_search), M)
    if not quantized:
        return _cosine_top_k(queries, database, int(k), bool(normalized), chunk_size)
    rounded = _rounded_queries(queries, database.values.dtype == jnp.int8, bool(normalized))
    if chunk_size < M and database.values.dtype == jnp.bfloat16:
        database = QuantizedDatabase(_bfloat16_bits(database.values), database.scales)
    if rerank is None:
        return _quantized_top_k(queries, database, rounded, int(k), bool(normalized), chunk_size)
    return _reranked_top_k(
        queries, database, rounded, rerank, int(k), candidates, bool(normalized), chunk_size
    )


def _check_rerank(database, rerank, rerank_candidates, k: int, M: int) -> int | None:
    if rerank is None:
        if rerank_candidates is not None:
            raise ValueError("rerank_candidates was given without rerank= (nothing to rescore).")
        return None
    if not isinstance(database, QuantizedDatabase):
        raise ValueError(
            "rerank= rescores the candidates of a search in a QuantizedDatabase; the database "
            "given is already full precision, so its search is exact without it."
        )
    check_floating("rerank", rerank)
    if tuple(rerank.shape) != tuple(database.values.shape):
        raise ValueError(
            f"rerank must have the shape of the quantized database, "
            f"{shape_str(database.values.shape)}, got {shape_str(rerank.shape)}."
        )
    if rerank_candidates is None:
        return min(4 * k, M)
    candidates = check_int("rerank_candidates", rerank_candidates)
    if not k <= candidates <= M:
        raise ValueError(
            f"rerank_candidates must lie in k..M = {k}..{M}, got {candidates}."
        )
    return candidates


@functools.partial(jax.jit, static_argnames=("k", "normalized", "chunk_size"))
def _cosine_top_k(queries, database, k: int, normalized: bool, chunk_size: int):
    single = queries.ndim == 1
    queries_QD = queries[None, :] if single else queries
    if not normalized:
        queries_QD = _normalize(queries_QD, 1, 1e-12)
        database = _normalize(database, 1, 1e-12)
    queries_QD = queries_QD.astype(database.dtype)
    Q = queries_QD.shape[0]

    def score_chunk(start, size):
        chunk_CD = jax.lax.dynamic_slice_in_dim(database, start, size, axis=0)
        return _product_CQ(chunk_CD, queries_QD if Q == 1 else queries_QD.T, Q)

    scores_Qk, rows_Qk = _chunked_top_k(score_chunk, Q, database.shape[0], k, chunk_size)
    if single:
        return scores_Qk[0], rows_Qk[0]
    return scores_Qk, rows_Qk


def _product_CQ(chunk_CD, queries, Q: int):
    """Scores ``[C, Q]`` of a chunk of rows, accumulated in float32 (int32 for int8 x int8).

    ``queries``: one query as ``[1, D]``, or a batch as ``[D, Q]`` (transposed).
    """
    out = jnp.int32 if chunk_CD.dtype == jnp.int8 else jnp.float32
    if Q == 1:
        # Written as the query times the transpose: XLA on CPU sends this form to its
        # multi-threaded matrix-vector product (others measured 1.5x to 25x slower). [1, C]
        # and [C, 1] are the same numbers in memory, so the reshape is free.
        return jnp.matmul(queries, chunk_CD.T, preferred_element_type=out).reshape(-1, 1)
    return jnp.matmul(chunk_CD, queries, preferred_element_type=out)


def _candidate_count(k: int, M: int) -> int:
    """Candidates the fast product of a quantized search passes on to be scored exactly."""
    return min(2 * k + 8, M)


@functools.partial(jax.jit, static_argnames=("integer", "normalized"))
def _rounded_queries(queries, integer: bool, normalized: bool):
    """The queries as the product with a quantized database takes them: ``(rounded, scale)``.

    One query in an int8 database: ``(round(q / s) [1, D] int8, s = max|q| / 127)``, quantized
    like a row. One query in a bfloat16 database: ``(bfloat16(q) [1, D], 1)``. A batch, in
    either: ``(bfloat16(q).T [D, Q], 1)``. Made in a call of its own, so that the search
    receives it as an argument: computed in the same program, XLA fused the int8 query's
    rounding into the pass over the database and redid it for every row (3x slower), and
    folded the transpose into the product, where a transposed bfloat16 operand made it expand
    both operands to float32 (the slow path) instead of multiplying bfloat16 directly.
    """
    queries_QD = _unit_queries(queries, normalized)
    if queries_QD.shape[0] > 1:
        return queries_QD.astype(jnp.bfloat16).T, jnp.float32(1.0)
    if not integer:
        return queries_QD.astype(jnp.bfloat16), jnp.float32(1.0)
    query_scale = jnp.max(jnp.abs(queries_QD)) / 127.0
    query_QD = jnp.round(queries_QD / jnp.where(query_scale > 0, query_scale, 1.0))
    return query_QD.astype(jnp.int8), query_scale


def _bfloat16_bits(values_MD):
    """bfloat16 ``values_MD`` as their raw 16 bits, uint16 ``[M, D]``: the same memory, if it can.

    XLA on CPU cannot slice bfloat16 in a loop: it converts the WHOLE matrix to float32 before
    the loop (1.2 GB at 1M x 300) and slices that (seen in the compiled HLO). Slicing the bits
    as uint16 avoids it, but taking the bits inside the program is itself a copy of the matrix
    (0.6 GB written at every search; in benchmarks/similarity.py, 256 queries over 1M x 300
    took 1.07 s that way and 0.57 s with the view). On one CPU device the uint16 array is made
    outside the program instead: NumPy reinterprets the buffer and ``jax.device_put`` wraps
    it without copying. Elsewhere (a traced value, several devices, an accelerator) the bits
    are taken inside the program.
    """
    if is_traced(values_MD) or len(values_MD.devices()) != 1:
        return values_MD
    (device,) = values_MD.devices()
    if device.platform != "cpu":
        return values_MD
    # np.asarray of a CPU array is a read-only view of its buffer, so nothing can write it.
    return jax.device_put(np.asarray(values_MD).view(np.uint16), device)


def _as_float32(values):
    """Stored values (float, int8, or bfloat16 as uint16 bits) in float32, exactly."""
    if values.dtype == jnp.uint16:
        values = jax.lax.bitcast_convert_type(values, jnp.bfloat16)
    return values.astype(jnp.float32)


def _quantized_candidates(database: QuantizedDatabase, rounded, Q: int, n: int,
                          chunk_size: int):
    """Rows ``[Q, n]`` of the n best ``scales[m] * (values[m] . q)`` for the rounded queries.

    ``rounded``: ``(queries, scale)`` from :func:`_rounded_queries`. bfloat16 values may come
    as their uint16 bits (see :func:`_bfloat16_bits`).
    """
    values_MD, scales_M = database
    query, query_scale = rounded
    # One int8 query: int8 x int8 -> int32 is exact, and XLA on CPU runs it as one pass over
    # the int8 matrix. Otherwise bfloat16 x bfloat16 with float32 accumulation (each product
    # of two bfloat16 is exact in float32): for a batch the fastest matrix product XLA has on
    # CPUs with avx512_bf16. int8 values (-127..127) are exact in bfloat16, so an int8 chunk
    # is converted, exactly, one chunk at a time.
    to_bfloat16 = query.dtype == jnp.bfloat16
    # bfloat16 is sliced as raw 16 bits (see _bfloat16_bits).
    raw = values_MD.dtype in (jnp.bfloat16, jnp.uint16)
    stored_MD = values_MD
    if values_MD.dtype == jnp.bfloat16:
        stored_MD = jax.lax.bitcast_convert_type(values_MD, jnp.uint16)

    def score_chunk(start, size):
        chunk_CD = jax.lax.dynamic_slice_in_dim(stored_MD, start, size, axis=0)
        if raw:
            chunk_CD = jax.lax.bitcast_convert_type(chunk_CD, jnp.bfloat16)
        elif to_bfloat16:
            chunk_CD = chunk_CD.astype(jnp.bfloat16)
        dots_CQ = _product_CQ(chunk_CD, query, Q).astype(jnp.float32)
        scale_C = jax.lax.dynamic_slice_in_dim(scales_M, start, size) * query_scale
        return dots_CQ * scale_C[:, None]

    _, rows_Qn = _chunked_top_k(score_chunk, Q, values_MD.shape[0], n, chunk_size)
    return rows_Qn


def _rescored(queries_QD, rows_QcD, rows_Qc, k: int, scales_Qc=None):
    """The k best of candidates ``rows_Qc`` rescored as ``scales * (rows . q)`` in float32."""
    exact_Qc = jnp.einsum("QD,QcD->Qc", queries_QD, rows_QcD)
    if scales_Qc is not None:
        exact_Qc = exact_Qc * scales_Qc
    exact_Qc = jnp.where(jnp.isnan(exact_Qc), -jnp.inf, exact_Qc)
    # Candidates come ranked by the rounded scores; break exact ties by the lower row instead.
    order_Qc = jnp.lexsort((rows_Qc, -exact_Qc), axis=1)[:, :k]
    return (jnp.take_along_axis(exact_Qc, order_Qc, axis=1),
            jnp.take_along_axis(rows_Qc, order_Qc, axis=1))


def _unit_queries(queries, normalized: bool):
    queries_QD = queries[None, :] if queries.ndim == 1 else queries
    queries_QD = queries_QD.astype(jnp.float32)
    if not normalized:
        queries_QD = _normalize(queries_QD, 1, 1e-12)
    return queries_QD


@functools.partial(jax.jit, static_argnames=("k", "normalized", "chunk_size"))
def _quantized_top_k(queries, database, rounded, k: int, normalized: bool, chunk_size: int):
    queries_QD = _unit_queries(queries, normalized)
    values_MD, scales_M = database
    n = _candidate_count(k, values_MD.shape[0])
    rows_Qn = _quantized_candidates(database, rounded, queries_QD.shape[0], n, chunk_size)
    # The candidates are scored again with the float32 query: only the search used its rounding.
    scores_Qk, rows_Qk = _rescored(
        queries_QD, _as_float32(values_MD[rows_Qn]), rows_Qn, k, scales_M[rows_Qn]
    )
    if queries.ndim == 1:
        return scores_Qk[0], rows_Qk[0]
    return scores_Qk, rows_Qk


@functools.partial(
    jax.jit, static_argnames=("k", "candidates", "normalized", "chunk_size")
)
def _reranked_top_k(
    queries, database, rounded, rerank, k: int, candidates: int, normalized: bool,
    chunk_size: int,
):
    queries_QD = _unit_queries(queries, normalized)
    rows_Qc = _quantized_candidates(
        database, rounded, queries_QD.shape[0], candidates, chunk_size
    )
    # Only the candidates' rows are read from the full-precision database.
    rows_QcD = rerank[rows_Qc].astype(jnp.float32)
    if not normalized:
        rows_QcD = _normalize(rows_QcD, 2, 1e-12)
    scores_Qk, rows_Qk = _rescored(queries_QD, rows_QcD, rows_Qc, k)
    if queries.ndim == 1:
        return scores_Qk[0], rows_Qk[0]
    return scores_Qk, rows_Qk


def cosine_top_k_reference(
    queries: Shaped[Array, "*Q D"],
    database: Shaped[Array, "M D"] | QuantizedDatabase,
    k: int,
) -> tuple[Float[Array, "*Q k"], Int[Array, "*Q k"]]:
    """Plain twin of :func:`cosine_top_k`: every score at once, then one top-k.

    The straightforward version, kept to test the chunked one against: it holds the whole
    ``[Q, M]`` score matrix in memory and normalises everything on every call. A
    :class:`QuantizedDatabase` is expanded with :func:`dequantize` and not renormalised: the
    scores :func:`cosine_top_k` returns (which rounds the query only to pick candidates).
    """
    _check_search_args(queries, database, k, None)
    queries = queries.astype(jnp.float32)
    queries = queries / jnp.maximum(jnp.linalg.norm(queries, axis=-1, keepdims=True), 1e-12)
    if isinstance(database, QuantizedDatabase):
        # Its rows stand for unit vectors already; renormalising the rounded rows would
        # change the scores the search computes.
        database = dequantize(database)
    else:
        database = database.astype(jnp.float32)
        norms = jnp.linalg.norm(database, axis=-1, keepdims=True)
        database = database / jnp.maximum(norms, 1e-12)
    scores = jnp.einsum("...D,MD->...M", queries, database)
    values, indices = jax.lax.top_k(scores, k)
    return values, indices
