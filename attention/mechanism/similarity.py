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
* **Fewer bytes per row beat the float32 floor.** Stored in bfloat16 (2 bytes a coordinate)
  or in int8 with one float32 scale per row (1 byte), the same search reads 2x or 4x fewer
  bytes (:func:`quantize_database`). The products still accumulate in float32 (bfloat16) or
  exactly in int32 (int8), and each row's score is multiplied by its scale afterwards, so the
  matrix is never expanded back to float32 in memory. The price is a small error in every
  score, measured as recall@10 against exact float32 search in the tests and the benchmark;
  ``rerank=`` buys the exact order back by rescoring a few candidates in float32.
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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, Shaped

from attention._checks import (
    check_array,
    check_axis,
    check_floating,
    check_int,
    check_positive_int,
    check_rank,
    check_real,
    is_traced,
    shape_str,
)

# Scores held at once per chunk when the caller does not choose a chunk size: 2^24 float32
# values (64 MiB), small enough to leave memory for the database, large enough that the
# per-chunk overhead (a top-k and a merge) stays small next to the matrix product.
_SCORES_PER_CHUNK = 1 << 24

# A batch searched in a quantized database expands one chunk of rows to float32 at a time (the
# CPU's float32 matrix multiply is its fast one; see _quantized_top_k). Rows per chunk: 8192
# rows of 300 float32 coordinates are 9.8 MB, which stays in the last-level cache.
_QUANTIZED_BATCH_ROWS = 8192

# The storage dtypes quantize_database knows, by name.
QUANTIZED_DTYPES = ("bfloat16", "int8")

# Row indices named in an error about bad rows; the message gives the count of the rest.
_ROWS_NAMED = 10


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


# --- quantized storage -------------------------------------------------------------------


class QuantizedDatabase(NamedTuple):
    """A database stored in fewer bytes per coordinate: row m stands for ``scales[m] * values[m]``.

    Made by :func:`quantize_database`; searched by :func:`cosine_top_k`; expanded back by
    :func:`dequantize`. A NamedTuple, hence a JAX pytree: it passes through ``jax.jit``.

    Attributes:
      values: ``[M, D]`` bfloat16 (the unit rows, rounded) or int8 (``round(x / scale)``, in
        ``-127..127``).
      scales: ``[M]`` float32, one per row: ``max_d |x[m, d]| / 127`` for int8 (0 for an
        all-zero row), 1 for bfloat16.
    """

    values: Shaped[Array, "M D"]
    scales: Float[Array, " M"]

    @property
    def shape(self) -> tuple[int, int]:
        """``(M, D)``, the shape of the database it stands for."""
        return tuple(self.values.shape)

    @property
    def dtype(self):
        """The storage dtype of ``values`` (bfloat16 or int8)."""
        return self.values.dtype

    @property
    def nbytes(self) -> int:
        """Bytes held: values and scales (what one search reads)."""
        return int(self.values.nbytes) + int(self.scales.nbytes)


def _check_dtype_name(dtype) -> str:
    if isinstance(dtype, str):
        name = dtype
    else:
        try:
            name = jnp.dtype(dtype).name
        except TypeError:
            raise TypeError(
                f"dtype must be one of {', '.join(map(repr, QUANTIZED_DTYPES))} (a name or a "
                f"dtype), got {dtype!r} ({type(dtype).__name__})."
            ) from None
    if name not in QUANTIZED_DTYPES:
        raise ValueError(
            f"dtype must be one of {', '.join(map(repr, QUANTIZED_DTYPES))}, got {name!r}."
        )
    return name


def _bad_rows_message(name: str, bad_rows: np.ndarray, what: str, total: int) -> str:
    named = ", ".join(str(int(m)) for m in bad_rows[:_ROWS_NAMED])
    more = f" and {len(bad_rows) - _ROWS_NAMED} more" if len(bad_rows) > _ROWS_NAMED else ""
    return (
        f"{name} has {len(bad_rows)} of {total} rows with {what} (rows {named}{more}); "
        f"drop or repair them before searching: a NaN has no cosine with anything."
    )


def _check_finite_rows(name: str, array) -> None:
    """ValueError naming the rows of a concrete ``[R, D]`` array that hold a NaN or infinity.

    Skipped under ``jit``, where the values cannot be read. It reads the array once: cheap for
    queries, and a one-time cost for a database being quantized.
    """
    if is_traced(array):
        return
    finite_R = np.asarray(jnp.all(jnp.isfinite(array), axis=-1)).reshape(-1)
    if not finite_R.all():
        raise ValueError(
            _bad_rows_message(name, np.flatnonzero(~finite_R), "a NaN or infinity",
                              finite_R.size)
        )


def quantize_database(
    database: Float[Array, "M D"], dtype="int8", *, normalized: bool = False
) -> QuantizedDatabase:
    """Store a database in bfloat16 or in int8 with one scale per row, for faster search.

    The rows are first scaled to length 1 (unless ``normalized=True`` promises they are), so
    that a score is a cosine. Then, for row ``x`` (float32)::

        bfloat16:  values = bfloat16(x)                          scales = 1
        int8:      scale = max_d |x_d| / 127,  values = round(x / scale)   (in -127..127)

    Symmetric per-row int8 quantization (as in Jacob et al. 2018, "Quantization and Training of
    Neural Networks for Efficient Integer-Arithmetic-Only Inference", with zero point 0 and
    one scale per row): every coordinate is off by at most half a step,
    ``|x_d - scale * values_d| <= scale / 2``. bfloat16 keeps 8 significant bits, a relative
    error of at most 2^-8 per coordinate. An all-zero row gets scale 0 and values 0: it scores
    0 against every query, as :func:`normalize` makes its cosine.

    One search then reads 2 (bfloat16) or 1 (int8) byte per coordinate instead of 4, plus 4
    bytes per row for the scales.

    Args:
      database: ``[M, D]`` floating point, ``M, D >= 1``, every value finite.
      dtype: ``"bfloat16"`` or ``"int8"`` (or ``jnp.bfloat16``, ``jnp.int8``).
      normalized: promise that the rows already have length 1; they are then stored as given.

    Returns:
      A :class:`QuantizedDatabase` ``(values [M, D], scales [M])``.

    Raises:
      TypeError: ``database`` not a floating array, ``dtype`` neither a name nor a dtype.
      ValueError: ``database`` not ``[M, D]``, with no rows or no columns, rows holding a NaN
        or an infinity (the message names them; checked when the values are concrete, not
        under ``jit``), an unknown ``dtype``.

    >>> import jax.numpy as jnp
    >>> q = quantize_database(jnp.array([[3.0, -4.0], [0.0, 0.0]]), "int8")
    >>> q.values.tolist(), [round(s, 5) for s in q.scales.tolist()], q.nbytes
    ([[95, -127], [0, 0]], [0.0063, 0.0], 12)
    """
    check_floating("database", database)
    check_rank("database", database, "MD", hint=" The database holds one row per vector.")
    if 0 in database.shape:
        raise ValueError(
            f"database must have at least one row and one column, got shape "
            f"{shape_str(database.shape)}."
        )
    name = _check_dtype_name(dtype)
    _check_finite_rows("database", database)
    values, scales = _quantize(database, name, bool(normalized))
    return QuantizedDatabase(values, scales)


@functools.partial(jax.jit, static_argnames=("dtype", "normalized"))
def _quantize(database, dtype: str, normalized: bool):
    unit_MD = database.astype(jnp.promote_types(database.dtype, jnp.float32))
    if not normalized:
        unit_MD = _normalize(unit_MD, 1, 1e-12)
    M = unit_MD.shape[0]
    if dtype == "bfloat16":
        return unit_MD.astype(jnp.bfloat16), jnp.ones((M,), jnp.float32)
    scales_M = (jnp.max(jnp.abs(unit_MD), axis=1) / 127.0).astype(jnp.float32)
    # An all-zero row has scale 0: divide it by 1 instead, which leaves it 0.
    safe_M1 = jnp.where(scales_M > 0, scales_M, 1.0)[:, None]
    values_MD = jnp.clip(jnp.round(unit_MD / safe_M1), -127, 127).astype(jnp.int8)
    return values_MD, scales_M


def dequantize(quantized: QuantizedDatabase) -> Float[Array, "M D"]:
    """The float32 database a :class:`QuantizedDatabase` stands for: ``scales[:, None] * values``.

    For tests and for inspection; a search never builds it.

    >>> import jax.numpy as jnp
    >>> q = quantize_database(jnp.array([[0.6, 0.8]]), "bfloat16")
    >>> [round(v, 3) for v in dequantize(q)[0].tolist()]
    [0.602, 0.801]
    """
    _check_quantized("quantized", quantized)
    return quantized.values.astype(jnp.float32) * quantized.scales[:, None]


def _check_quantized(name: str, quantized) -> None:
    if not isinstance(quantized, QuantizedDatabase):
        raise TypeError(
            f"{name} must be a QuantizedDatabase (from quantize_database), got "
            f"{type(quantized).__name__}."
        )
    values, scales = quantized
    check_array(f"{name}.values", values)
    check_array(f"{name}.scales", scales)
    if values.dtype.name not in QUANTIZED_DTYPES:
        raise TypeError(
            f"{name}.values must be stored as one of {', '.join(QUANTIZED_DTYPES)}, got "
            f"{values.dtype}; make it with quantize_database."
        )
    check_rank(f"{name}.values", values, "MD")
    if tuple(scales.shape) != (values.shape[0],) or scales.dtype != jnp.float32:
        raise ValueError(
            f"{name}.scales must be float32 of shape [M] = {shape_str(values.shape[:1])}, got "
            f"{scales.dtype} of shape {shape_str(scales.shape)}."
        )


# --- search ------------------------------------------------------------------------------


def _check_search_args(queries, database, k, chunk_size) -> None:
    check_floating("queries", queries)
    if isinstance(database, QuantizedDatabase):
        _check_quantized("database", database)
        database_shape = database.values.shape
    else:
        check_floating("database", database)
        check_rank("database", database, "MD", hint=" The database holds one row per vector.")
        database_shape = database.shape
    if queries.ndim not in (1, 2):
        raise ValueError(
            f"queries must have shape [Q, D] (or [D] for one query), "
            f"got {shape_str(queries.shape)}."
        )
    if queries.shape[-1] != database_shape[-1]:
        raise ValueError(
            f"queries and database must have the same width D (last axis); got queries "
            f"{shape_str(queries.shape)} and database {shape_str(database_shape)}."
        )
    M = database_shape[0]
    if M == 0:
        raise ValueError(
            f"database has no rows (shape {shape_str(database_shape)}): there is nothing to "
            f"search."
        )
    k = check_int("k", k)
    if not 1 <= k <= M:
        raise ValueError(f"k must lie in 1..M={M} (the number of database rows), got k={k}.")
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
      int32. The row scales (and ``s``) multiply the M scores afterwards. The query's own
      rounding adds a little error on top of the database's.
    * a batch (``Q > 1``): one chunk of rows at a time is expanded to float32 (exactly) and
      multiplied with the float32 queries on the float32 matrix-multiply path, which on CPUs
      without AMX is the fastest one XLA has (bfloat16 and int8 matrix-matrix products
      measured several times slower there). A batch is compute-bound, so the bytes saved in
      storage matter less than the multiply speed.

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
      chunk_size: database rows scored at once; by default as many as keep the score block
        ``[Q, chunk_size]`` within 2^24 values (all of them for a single query; at most
        8192 for a batch in a quantized database). Static.
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
    _check_finite_rows("queries", queries)
    k_search = k if rerank is None else candidates
    if chunk_size is None:
        chunk_size = max(_SCORES_PER_CHUNK // max(Q, 1), 1)
        if quantized and Q > 1:
            chunk_size = min(chunk_size, _QUANTIZED_BATCH_ROWS)
    # Each chunk must hold at least k rows, so that the first chunk alone fills the running
    # top-k with real scores; and no more than the whole database.
    chunk_size = min(max(int(chunk_size), k_search), M)
    if not quantized:
        return _cosine_top_k(queries, database, int(k), bool(normalized), chunk_size)
    query_int8 = _int8_query_if_needed(queries, database, bool(normalized))
    if rerank is None:
        return _quantized_top_k(
            queries, database, query_int8, int(k), bool(normalized), chunk_size
        )
    return _reranked_top_k(
        queries, database, query_int8, rerank, int(k), candidates, bool(normalized), chunk_size
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


def _chunked_top_k(score_chunk, Q: int, M: int, k: int, chunk_size: int):
    """Running top-k over the chunks of rows; ``score_chunk(start, size) -> [Q, size]`` float32.

    Shared by the float and the quantized searches: only the way a chunk is scored differs.
    """
    n_chunks = -(-M // chunk_size)

    def merge(i, carry):
        best_scores_Qk, best_rows_Qk = carry
        # The last chunk may run past the end of the database; slide it back so that it
        # ends at row M, and hide the rows it then repeats (already scored by chunk i - 1).
        nominal_start = i * chunk_size
        start = jnp.minimum(nominal_start, M - chunk_size)
        rows_C = start + jnp.arange(chunk_size, dtype=jnp.int32)
        scores_QC = score_chunk(start, chunk_size)
        # A where, not arithmetic, so -inf cannot turn into NaN; real cosines are >= -1. A NaN
        # score (a NaN row of a float database) counts as -inf: never above a real one.
        keep_QC = (rows_C[None, :] >= nominal_start) & ~jnp.isnan(scores_QC)
        scores_QC = jnp.where(keep_QC, scores_QC, -jnp.inf)
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
        return merge(0, init)
    return jax.lax.fori_loop(0, n_chunks, merge, init)


@functools.partial(jax.jit, static_argnames=("k", "normalized", "chunk_size"))
def _cosine_top_k(queries, database, k: int, normalized: bool, chunk_size: int):
    single = queries.ndim == 1
    queries_QD = queries[None, :] if single else queries
    if not normalized:
        queries_QD = _normalize(queries_QD, 1, 1e-12)
        database = _normalize(database, 1, 1e-12)
    queries_QD = queries_QD.astype(database.dtype)

    def score_chunk(start, size):
        chunk_CD = jax.lax.dynamic_slice_in_dim(database, start, size, axis=0)
        # Written as a product with the transpose, not as an einsum contracting both last
        # axes: XLA on CPU sends this form to its multi-threaded matrix multiply, and the
        # einsum form to a path that measured twice as slow for one query.
        return jnp.matmul(queries_QD, chunk_CD.T, preferred_element_type=jnp.float32)

    scores_Qk, rows_Qk = _chunked_top_k(
        score_chunk, queries_QD.shape[0], database.shape[0], k, chunk_size
    )
    if single:
        return scores_Qk[0], rows_Qk[0]
    return scores_Qk, rows_Qk


def _quantized_scores(queries_QD, database: QuantizedDatabase, k: int, chunk_size: int,
                      query_int8=None):
    """Top-k of ``scales[m] * (values[m] . q)`` for unit float32 queries ``[Q, D]``.

    ``query_int8``: for one query in an int8 database, ``(round(q / s) [1, D] int8, s)`` from
    :func:`_quantize_query`.
    """
    values_MD, scales_M = database
    Q, M = queries_QD.shape[0], values_MD.shape[0]
    integer = values_MD.dtype == jnp.int8
    if Q == 1 and integer:
        # int8 x int8 -> int32 is exact, and XLA on CPU runs q[None] @ values.T as one pass
        # over the int8 matrix. The query arrives already quantized, from a separate jitted
        # call: computed in the same program, its conversion was fused into that pass and
        # redone for every row, 3x slower (measured; an optimization barrier did not help).
        query_QD, query_scale = query_int8

        def score_chunk(start, size):
            chunk_CD = jax.lax.dynamic_slice_in_dim(values_MD, start, size, axis=0)
            dots_QC = jnp.matmul(query_QD, chunk_CD.T, preferred_element_type=jnp.int32)
            scale_C = jax.lax.dynamic_slice_in_dim(scales_M, start, size) * query_scale
            return dots_QC.astype(jnp.float32) * scale_C[None, :]
    elif Q == 1:
        # bfloat16 x bfloat16 with float32 accumulation: XLA's matrix-vector product reads the
        # bfloat16 matrix directly (half the bytes of float32).
        query_QD = queries_QD.astype(jnp.bfloat16)

        def score_chunk(start, size):
            chunk_CD = jax.lax.dynamic_slice_in_dim(values_MD, start, size, axis=0)
            dots_QC = jnp.matmul(query_QD, chunk_CD.T, preferred_element_type=jnp.float32)
            return dots_QC * jax.lax.dynamic_slice_in_dim(scales_M, start, size)[None, :]
    else:
        # A batch: expand one cache-sized chunk to float32 (exact for bfloat16 and int8) and
        # use the float32 matrix-matrix multiply, the fast one on CPUs without AMX.
        if integer:
            stored_MD = values_MD
        else:
            # bfloat16 is sliced as its raw 16 bits: XLA on CPU does not slice bfloat16 in a
            # loop natively, and rewrote the slice as convert-to-float32 of the WHOLE matrix
            # before the loop (seen in the compiled HLO: a float32 copy of the database).
            stored_MD = jax.lax.bitcast_convert_type(values_MD, jnp.uint16)

        def score_chunk(start, size):
            chunk_CD = jax.lax.dynamic_slice_in_dim(stored_MD, start, size, axis=0)
            if integer:
                chunk_CD = chunk_CD.astype(jnp.float32)
            else:
                # A bfloat16 is the top half of the float32 of the same value: shift it there.
                bits_CD = chunk_CD.astype(jnp.uint32) << 16
                chunk_CD = jax.lax.bitcast_convert_type(bits_CD, jnp.float32)
            dots_QC = jnp.matmul(queries_QD, chunk_CD.T, preferred_element_type=jnp.float32)
            return dots_QC * jax.lax.dynamic_slice_in_dim(scales_M, start, size)[None, :]

    return _chunked_top_k(score_chunk, Q, M, k, chunk_size)


def _unit_queries(queries, normalized: bool):
    queries_QD = queries[None, :] if queries.ndim == 1 else queries
    queries_QD = queries_QD.astype(jnp.float32)
    if not normalized:
        queries_QD = _normalize(queries_QD, 1, 1e-12)
    return queries_QD


@functools.partial(jax.jit, static_argnames=("normalized",))
def _quantize_query(queries, normalized: bool):
    """One query quantized like an int8 row: ``(round(q / s) [1, D] int8, s = max|q| / 127)``."""
    queries_QD = _unit_queries(queries, normalized)
    query_scale = jnp.max(jnp.abs(queries_QD)) / 127.0
    query_QD = jnp.round(queries_QD / jnp.where(query_scale > 0, query_scale, 1.0))
    return query_QD.astype(jnp.int8), query_scale


def _int8_query_if_needed(queries, database, normalized: bool):
    one_query = queries.ndim == 1 or queries.shape[0] == 1
    if one_query and database.values.dtype == jnp.int8:
        return _quantize_query(queries, normalized)
    return None


@functools.partial(jax.jit, static_argnames=("k", "normalized", "chunk_size"))
def _quantized_top_k(queries, database, query_int8, k: int, normalized: bool, chunk_size: int):
    scores_Qk, rows_Qk = _quantized_scores(
        _unit_queries(queries, normalized), database, k, chunk_size, query_int8
    )
    if queries.ndim == 1:
        return scores_Qk[0], rows_Qk[0]
    return scores_Qk, rows_Qk


@functools.partial(
    jax.jit, static_argnames=("k", "candidates", "normalized", "chunk_size")
)
def _reranked_top_k(
    queries, database, query_int8, rerank, k: int, candidates: int, normalized: bool,
    chunk_size: int,
):
    queries_QD = _unit_queries(queries, normalized)
    _, rows_Qc = _quantized_scores(queries_QD, database, candidates, chunk_size, query_int8)
    # Only the candidates' rows are read from the full-precision database.
    rows_QcD = rerank[rows_Qc].astype(jnp.float32)
    if not normalized:
        rows_QcD = _normalize(rows_QcD, 2, 1e-12)
    exact_Qc = jnp.einsum("QD,QcD->Qc", queries_QD, rows_QcD)
    exact_Qc = jnp.where(jnp.isnan(exact_Qc), -jnp.inf, exact_Qc)
    # Candidates come sorted by quantized score; break exact ties by the lower row instead.
    order_Qc = jnp.lexsort((rows_Qc, -exact_Qc), axis=1)[:, :k]
    scores_Qk = jnp.take_along_axis(exact_Qc, order_Qc, axis=1)
    rows_Qk = jnp.take_along_axis(rows_Qc, order_Qc, axis=1)
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
    :class:`QuantizedDatabase` is expanded with :func:`dequantize` and not renormalised (the
    batch path's numerics; the one-query path also rounds the query).
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
