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
  matrix is never expanded back to float32 in memory. The query is rounded too, for the fast
  product, but only to find a few more candidates than asked for; those are then scored
  again with the float32 query, which costs next to nothing. What is left is a small error in
  every stored row, measured as recall@10 against exact float32 search in the tests and the
  benchmark; ``rerank=`` buys the exact order back by rescoring candidates in float32.
* **A batch of queries is compute-bound.** Q queries share one read of the matrix, so with Q
  in the hundreds the search runs near the machine's matrix-multiply speed, and the fastest
  multiply wins: on CPUs with avx512_bf16, bfloat16 x bfloat16 with float32 accumulation
  (each product of two bfloat16 is exact in float32), measured 1.4x to 1.9x the float32
  rate.
* **Stream the database in chunks.** Q queries against M rows make a ``[Q, M]`` score matrix
  (4 GB for 1024 queries and a million rows). We score one chunk of rows at a time, keep
  each chunk's top-k per query, and never hold more than ``[Q, chunk]`` scores; one last
  top-k over the chunks' candidates is exact, so the result equals a full sort.
* **Rank little.** Ranking is slow next to multiplying (XLA's top-k on CPU takes several
  nanoseconds per score, one thread; a multiply-add is a fraction of one). So a chunk is cut
  into groups of consecutive rows, only the groups' maxima are ranked, and then only the rows
  of the k best groups: about ``2 sqrt(k chunk)`` scores ranked per query instead of the
  chunk, with the same answer (:func:`_top_k_by_groups` says why it is exact).

Axes here: ``Q`` queries, ``M`` database rows, ``D`` the embedding width, ``k`` results.
"""

from __future__ import annotations

import functools
import math
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

# Smallest group worth the grouped top-k (see _top_k_by_groups).
_MIN_GROUP = 4

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


def _check_database(database) -> None:
    """A floating ``[M, D]`` database with ``M, D >= 1``: what every index is built from."""
    check_floating("database", database)
    check_rank("database", database, "MD", hint=" The database holds one row per vector.")
    if 0 in database.shape:
        raise ValueError(
            f"database must have at least one row and one column, got shape "
            f"{shape_str(database.shape)}."
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
    _check_database(database)
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
    M, D = database_shape
    if M == 0:
        raise ValueError(
            f"database has no rows (shape {shape_str(database_shape)}): there is nothing to "
            f"search."
        )
    _check_queries_and_k(queries, k, M, D, "database", f"database {shape_str(database_shape)}")
    if chunk_size is not None:
        check_positive_int("chunk_size", chunk_size)


def _check_queries_and_k(queries, k, M: int, D: int, searched: str, described: str) -> int:
    """``queries`` ``[Q, D]`` or ``[D]`` of the database's width, ``1 <= k <= M``; returns k.

    Shared by every search. ``searched`` names the argument searched and ``described`` says
    what it holds, for the messages.
    """
    if queries.ndim not in (1, 2):
        raise ValueError(
            f"queries must have shape [Q, D] (or [D] for one query), "
            f"got {shape_str(queries.shape)}."
        )
    if queries.shape[-1] != D:
        raise ValueError(
            f"queries and {searched} must have the same width D (last axis); got queries "
            f"{shape_str(queries.shape)} and {described}."
        )
    k = check_int("k", k)
    if not 1 <= k <= M:
        raise ValueError(f"k must lie in 1..M={M} (the number of database rows), got k={k}.")
    return k


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


def _group_size(rows: int, k: int) -> int:
    """Rows per group for :func:`_top_k_by_groups`: a power of two near ``sqrt(rows / k)``.

    The selection costs about ``rows / g`` (group maxima ranked) plus ``k * g`` (candidates
    ranked), least at ``g = sqrt(rows / k)``. 1 means "no groups": a chunk too small to gain.
    """
    g = 1 << max(round(math.log2(math.sqrt(rows / k))), 0)
    return g if g >= _MIN_GROUP else 1


def _top_k_by_groups(scores_CQ, k: int, group: int):
    """Exact top-k down each column of ``scores_CQ`` [C, Q]: ``(scores [Q, k], positions [Q, k])``.

    The same answer as ``lax.top_k(scores_CQ.T, k)`` (ties to the lower position), for scores
    holding no NaN and no -0.0, found with less ranking: cut the C rows into groups of
    ``group`` consecutive rows, rank only the groups' maxima, and rank the rows of the k best
    groups. Exact because each of the k best rows is the best of its group or lies in a group
    whose best beats it; either way its group is among the k best groups (on equal maxima the
    lower group wins, and its rows come first).
    """
    C, Q = scores_CQ.shape
    G = -(-C // group)
    if group == 1 or G < k:  # (fewer than k groups: nothing to gain)
        return jax.lax.top_k(scores_CQ.T, k)
    # Pad to whole groups with -inf, which only ever ranks after every real score.
    padded_PQ = jnp.pad(scores_CQ, ((0, G * group - C), (0, 0)), constant_values=-jnp.inf)
    best_QG = jnp.max(padded_PQ.reshape(G, group, Q), axis=1).T
    _, groups_Qk = jax.lax.top_k(best_QG, k)
    # In ascending order, the candidates are in row order, so ties go to the lower row.
    groups_Qk = jnp.sort(groups_Qk, axis=1)
    offsets_11g = jnp.arange(group)[None, None, :]
    positions_Qn = (groups_Qk[:, :, None] * group + offsets_11g).reshape(Q, k * group)
    candidates_Qn = padded_PQ[positions_Qn, jnp.arange(Q)[:, None]]
    scores_Qk, pick_Qk = jax.lax.top_k(candidates_Qn, k)
    return scores_Qk, jnp.take_along_axis(positions_Qn, pick_Qk, axis=1)


def _chunked_top_k(score_chunk, Q: int, M: int, k: int, chunk_size: int):
    """Top-k over the chunks of rows; ``score_chunk(start, size) -> [size, Q]`` float32.

    Shared by the float and the quantized searches: only the way a chunk is scored differs.
    Each chunk passes on its own top-k, and one top-k over those ``[Q, n_chunks * k]``
    candidates at the end gives the answer: exact, since each of the k best rows is among the
    k best of its own chunk.
    """
    n_chunks = -(-M // chunk_size)
    group = _group_size(chunk_size, k)

    def chunk_top_k(i):
        # The last chunk may run past the end of the database; slide it back so that it
        # ends at row M, and hide the rows it then repeats (already scored by chunk i - 1).
        nominal_start = i * chunk_size
        start = jnp.minimum(nominal_start, M - chunk_size)
        rows_C = start + jnp.arange(chunk_size, dtype=jnp.int32)
        scores_CQ = score_chunk(start, chunk_size)
        # A where, not arithmetic, so -inf cannot turn into NaN; real cosines are >= -1. A NaN
        # score (a NaN row of a float database) counts as -inf: never above a real one. And
        # -0.0 becomes 0.0: top_k ranks -0.0 below 0.0, a maximum does not tell them apart.
        keep_CQ = (rows_C[:, None] >= nominal_start) & ~jnp.isnan(scores_CQ)
        scores_CQ = jnp.where(keep_CQ, jnp.where(scores_CQ == 0, 0.0, scores_CQ), -jnp.inf)
        scores_Qk, positions_Qk = _top_k_by_groups(scores_CQ, k, group)
        return scores_Qk, rows_C[positions_Qk]

    if n_chunks == 1:
        # One chunk covers the database: no loop, so XLA sees one product and one top-k.
        return chunk_top_k(0)
    _, (scores_NQk, rows_NQk) = jax.lax.scan(
        lambda carry, i: (carry, chunk_top_k(i)), None, jnp.arange(n_chunks)
    )
    # Chunk by chunk, so the candidates of lower rows come first; among equal scores top_k
    # keeps the earlier one, hence the lower row.
    scores_Qn = jnp.transpose(scores_NQk, (1, 0, 2)).reshape(Q, n_chunks * k)
    rows_Qn = jnp.transpose(rows_NQk, (1, 0, 2)).reshape(Q, n_chunks * k)
    scores_Qk, pick_Qk = jax.lax.top_k(scores_Qn, k)
    return scores_Qk, jnp.take_along_axis(rows_Qn, pick_Qk, axis=1)


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
