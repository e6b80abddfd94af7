"""Step 0j: an inverted-file index, which searches a few cells of the database, not every row.

:func:`~attention.vectors.search.cosine_top_k` reads the whole database for every query,
and nothing exact can read less. Reading less means giving up a little recall. The simplest
index that does so, the one FAISS calls ``IndexIVFFlat`` (the coarse quantizer of Jegou,
Douze and Schmid 2011, "Product Quantization for Nearest Neighbor Search"; Sivic and Zisserman
2003, "Video Google", brought text retrieval's inverted file to vectors), runs in two steps:

1. **Cluster once** (step 0i, :func:`~attention.vectors.kmeans.spherical_kmeans`): cut the
   unit database rows into L cells around L centroids, and store the rows cell by cell. For
   cosine similarity the natural clustering is *spherical* k-means (Dhillon and Modha 2001):
   each row joins the centroid it has the largest dot product with, and each centroid is the
   normalised sum of its rows.
2. **Search a few cells** (:func:`inverted_index_top_k`): rank the L centroids against the query
   (L dot products: cheap) and search only the rows of the ``n_probe`` best cells. About
   ``n_probe / L`` of the database is read. A true neighbour is missed only when it sits in a
   cell whose centroid ranked below ``n_probe``; probing all L cells is the exact search.

Where it pays: data with structure, where neighbours share a cell (word vectors, image
embeddings). Where it does not: random vectors in many dimensions are all nearly orthogonal,
so a query's true neighbours are spread over every cell and recall needs ``n_probe`` near L.

Static shapes. XLA compiles for fixed shapes, and cells differ in size. The rows are stored
cell after cell, followed by ``capacity`` rows of zeros, where ``capacity`` is the size of the
largest cell. A probe reads ``capacity`` rows from its cell's first row and masks the rows
past the cell's end. The price of an uneven clustering is that each probe reads the largest
cell's worth of rows; ``InvertedIndex.capacity`` against ``M / L`` shows how much that is.

Axes here: ``Q`` queries, ``M`` database rows, ``D`` the width, ``L`` cells (centroids),
``P`` probes per query, ``C`` the capacity (rows one probe reads), ``R = M + C`` rows stored,
``k`` results; in the search, ``S = Q * P`` cell searches (one query in one cell).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from attention._checks import (
    check_array,
    check_database,
    check_finite_rows,
    check_floating,
    check_int,
    check_positive_int,
    check_queries_and_k,
    is_traced,
    shape_str,
)
from attention.vectors.cosine import _normalize
from attention.vectors.kmeans import _assign, spherical_kmeans

# FAISS trains its k-means on at most 256 points per centroid; more moves the centroids
# little and costs in proportion.
TRAIN_POINTS_PER_CELL = 256


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["centroids", "rows", "ids", "starts", "sizes"],
    meta_fields=["capacity"],
)
@dataclasses.dataclass(frozen=True)
class InvertedIndex:
    """A database stored cell by cell around ``L`` centroids (made by :func:`build_inverted_index`).

    A JAX pytree whose ``capacity`` is static: it passes through ``jax.jit``, and a new
    capacity compiles a new search.

    Attributes:
      centroids: ``[L, D]`` float32, unit length: the cells' centres.
      rows: ``[R, D]``, ``R = M + capacity``: the unit database rows, those of cell 0 first,
        then cell 1, and so on, in the database's order within a cell; then ``capacity`` rows
        of zeros.
      ids: ``[R]`` int32: the database row each stored row came from; -1 on the
        zero rows.
      starts: ``[L]`` int32: the position in ``rows`` of each cell's first row.
      sizes: ``[L]`` int32: the rows in each cell (0 for an empty cell).
      capacity: the size of the largest cell, hence the rows one probe reads.
    """

    centroids: Float[Array, "L D"]
    rows: Float[Array, "R D"]
    ids: Int[Array, " R"]
    starts: Int[Array, " L"]
    sizes: Int[Array, " L"]
    capacity: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(M, D)``, the shape of the database it holds."""
        return (self.rows.shape[0] - self.capacity, self.rows.shape[1])

    @property
    def n_cells(self) -> int:
        """``L``, the number of cells."""
        return self.centroids.shape[0]


# --- the index ---------------------------------------------------------------------------


def build_inverted_index(
    database: Float[Array, "M D"],
    n_cells: int,
    *,
    iterations: int = 10,
    train_size: int | None = None,
    key: jax.Array | None = None,
    normalized: bool = False,
) -> InvertedIndex:
    """Cluster the database into ``n_cells`` cells and store its rows cell by cell.

    The centroids are trained with :func:`spherical_kmeans` on ``train_size`` rows drawn at
    random (default ``min(M, 256 L)``, FAISS's cap), then every row joins its nearest
    centroid (:func:`assign_to_cells`). A common choice of ``L`` is about ``sqrt(M)`` to
    ``16 sqrt(M)``: more cells make each probe read fewer rows but cost more centroids to rank
    and more probes for the same recall.

    Not under ``jit``: the largest cell's size sets the shapes of every search.

    Args:
      database: ``[M, D]`` floating point, every value finite. Stored in its dtype (float32,
        or bfloat16 to halve the bytes read), after scaling the rows to length 1.
      n_cells: ``L``, ``1 <= L <= train_size``.
      iterations: k-means iterations, ``>= 1``.
      train_size: rows to train the centroids on, ``L..M``.
      key: a ``jax.random`` key for the training rows and the k-means start (default
        ``jax.random.key(0)``).
      normalized: promise that the rows have length 1 already.

    Returns:
      An :class:`InvertedIndex`.

    Raises:
      TypeError: non-floating ``database``; non-int ``n_cells``, ``iterations`` or
        ``train_size``.
      ValueError: ``database`` not ``[M, D]``, with no rows or columns, or with NaN / infinite
        rows (named); ``n_cells`` or ``train_size`` out of range; ``iterations < 1``; a traced
        database (under ``jit``).

    >>> import jax.numpy as jnp
    >>> db = jnp.array([[1.0, 0.1], [0.1, 1.0], [1.0, -0.1], [-0.1, 1.0]])
    >>> index = build_inverted_index(db, 2)
    >>> sorted(index.sizes.tolist()), index.capacity, index.shape
    ([2, 2], 2, (4, 2))
    """
    check_database(database)
    M, D = database.shape
    if is_traced(database):
        raise ValueError(
            "build_inverted_index cannot run under jax.jit: the size of the largest cell sets "
            "the shapes of the index. Build it outside jit, then search it inside."
        )
    n_cells = check_positive_int("n_cells", n_cells)
    if train_size is None:
        train_size = min(M, TRAIN_POINTS_PER_CELL * n_cells)
    train_size = check_int("train_size", train_size)
    if not n_cells <= train_size <= M:
        raise ValueError(
            f"need n_cells <= train_size <= M (the database's rows); got n_cells={n_cells}, "
            f"train_size={train_size}, M={M}."
        )
    check_positive_int("iterations", iterations)
    check_finite_rows("database", database)
    unit_MD = database if normalized else _normalize(database, 1, 1e-12)
    sample_key, start_key = jax.random.split(jax.random.key(0) if key is None else key)
    sample = jax.random.choice(sample_key, M, (train_size,), replace=False)
    centroids_LD = spherical_kmeans(
        unit_MD[sample], n_cells, iterations=iterations, key=start_key, normalized=True
    )
    cells_M, _ = _assign(unit_MD, centroids_LD)
    # A stable sort keeps the database's order inside each cell.
    order_M = np.argsort(np.asarray(cells_M), kind="stable").astype(np.int32)
    sizes_L = np.bincount(np.asarray(cells_M), minlength=n_cells).astype(np.int32)
    starts_L = (np.cumsum(sizes_L) - sizes_L).astype(np.int32)
    capacity = int(sizes_L.max())
    rows = jnp.concatenate([unit_MD[order_M], jnp.zeros((capacity, D), unit_MD.dtype)])
    ids = np.concatenate([order_M, np.full(capacity, -1, np.int32)])
    return InvertedIndex(
        centroids=centroids_LD, rows=rows, ids=jnp.asarray(ids),
        starts=jnp.asarray(starts_L), sizes=jnp.asarray(sizes_L), capacity=capacity,
    )


def inverted_index_top_k(
    queries: Float[Array, "*Q D"],
    index: InvertedIndex,
    k: int,
    *,
    n_probe: int | None = None,
    normalized: bool = False,
) -> tuple[Float[Array, "*Q k"], Int[Array, "*Q k"]]:
    """Approximate cosine top-k: the k best rows among those of the ``n_probe`` nearest cells.

    For each unit query q::

        cells  = the n_probe cells c with the largest centroids[c] . q
        result = the k largest rows[m] . q over the rows m of those cells, best first

    Exact within the probed cells: with ``n_probe = L`` it is the exact search
    (:func:`~attention.vectors.search.cosine_top_k`). It reads about
    ``n_probe * capacity`` rows instead of M. The ``Q * n_probe`` cell searches run one after
    another, sorted by cell so that the queries probing one cell find its rows in the cache;
    besides the result, they hold one cell's scores and ``k`` candidates per search.

    When the probed cells hold fewer than k rows in all, the missing places hold score
    ``-inf`` and row ``-1`` (as FAISS returns). Equal scores are ranked by probe order, then
    by row.

    Args:
      queries: ``[Q, D]``, or ``[D]`` for one query; floating point, finite.
      index: an :class:`InvertedIndex` from :func:`build_inverted_index`.
      k: results per query, ``1 <= k <= M``. Static.
      n_probe: cells searched per query, ``1..L``; default ``min(8, L)``. Static.
      normalized: promise that the queries have length 1 already.

    Returns:
      ``(scores, rows)``, each ``[Q, k]`` (``[k]`` for one ``[D]`` query): float32 cosines in
      descending order and the int32 database rows they belong to.

    Raises:
      TypeError: non-floating ``queries``, ``index`` not an :class:`InvertedIndex`, non-int
        ``k`` or ``n_probe``.
      ValueError: ``queries`` not ``[Q, D]`` / ``[D]`` or of another width, ``k`` outside
        ``1..M``, ``n_probe`` outside ``1..L``, NaN or infinite queries (named).

    >>> import jax.numpy as jnp
    >>> db = jnp.array([[1.0, 0.1], [0.1, 1.0], [1.0, -0.1], [-0.1, 1.0]])
    >>> index = build_inverted_index(db, 2)
    >>> scores, rows = inverted_index_top_k(jnp.array([1.0, 0.0]), index, 2, n_probe=1)
    >>> sorted(rows.tolist())
    [0, 2]
    """
    check_floating("queries", queries)
    if not isinstance(index, InvertedIndex):
        raise TypeError(
            f"index must be an InvertedIndex (from build_inverted_index), got "
            f"{type(index).__name__}."
        )
    _check_index(index)
    M, D = index.shape
    k = check_queries_and_k(queries, k, M, D, "index", f"an index of {M} rows of width {D}")
    n_probe = min(8, index.n_cells) if n_probe is None else check_int("n_probe", n_probe)
    if not 1 <= n_probe <= index.n_cells:
        raise ValueError(
            f"n_probe must lie in 1..L={index.n_cells} (the number of cells), got {n_probe}."
        )
    check_finite_rows("queries", queries)
    return _inverted_index_top_k(queries, index, k, n_probe, bool(normalized))


@functools.partial(jax.jit, static_argnames=("k", "n_probe", "normalized"))
def _inverted_index_top_k(queries, index: InvertedIndex, k: int, n_probe: int,
                          normalized: bool):
    queries_QD = queries[None, :] if queries.ndim == 1 else queries
    queries_QD = queries_QD.astype(jnp.float32)
    if not normalized:
        queries_QD = _normalize(queries_QD, 1, 1e-12)
    Q = queries_QD.shape[0]
    C, P = index.capacity, n_probe
    # Every query ranks the centroids: [Q, L] scores, one small matrix product for the batch.
    _, cells_QP = jax.lax.top_k(queries_QD @ index.centroids.T, P)
    # The S = Q * P cell searches (query, cell), sorted by cell: the queries that probe one
    # cell are searched one after another, so its rows come from the cache after the first.
    order_S = jnp.argsort(cells_QP.reshape(-1), stable=True)
    cells_S = cells_QP.reshape(-1)[order_S]
    queries_S = order_S // P
    kept = min(k, C)
    offsets_C = jnp.arange(C, dtype=jnp.int32)

    def search_cell(args):
        cell, query = args
        start = index.starts[cell]
        rows_CD = jax.lax.dynamic_slice_in_dim(index.rows, start, C)
        query_1D = queries_QD[query][None, :].astype(rows_CD.dtype)
        # One search at a time, written as the query times the transpose: XLA on CPU runs
        # this form as a fast matrix-vector product straight from the slice (a batch of
        # cells at once, as an einsum over gathered rows, measured 3x to 6x slower).
        scores_C = jnp.matmul(query_1D, rows_CD.T, preferred_element_type=jnp.float32)[0]
        # A where, not arithmetic: the rows past the cell's end (the next cell's, or zeros).
        inside_C = offsets_C < index.sizes[cell]
        best_k, pick_k = jax.lax.top_k(jnp.where(inside_C, scores_C, -jnp.inf), kept)
        ids_C = jax.lax.dynamic_slice_in_dim(index.ids, start, C)
        return best_k, jnp.where(inside_C, ids_C, -1)[pick_k]

    best_Sk, rows_Sk = jax.lax.map(search_cell, (cells_S, queries_S))
    # Back to (query, probe) order, so that equal scores go to the earlier probe.
    unsort_S = jnp.argsort(order_S)
    best_QPk = best_Sk[unsort_S].reshape(Q, P * kept)
    rows_QPk = rows_Sk[unsort_S].reshape(Q, P * kept)
    if P * kept < k:  # the probed cells hold fewer than k rows in all
        best_QPk = jnp.pad(best_QPk, ((0, 0), (0, k - P * kept)), constant_values=-jnp.inf)
        rows_QPk = jnp.pad(rows_QPk, ((0, 0), (0, k - P * kept)), constant_values=-1)
    scores_Qk, pick_Qk = jax.lax.top_k(best_QPk, k)
    rows_Qk = jnp.take_along_axis(rows_QPk, pick_Qk, axis=1)
    if queries.ndim == 1:
        return scores_Qk[0], rows_Qk[0]
    return scores_Qk, rows_Qk


def _check_index(index: InvertedIndex) -> None:
    """Shapes and dtypes of an index agree with each other (static: free under ``jit``)."""
    for name in ("centroids", "rows", "ids", "starts", "sizes"):
        check_array(f"index.{name}", getattr(index, name))
    check_floating("index.centroids", index.centroids, axes="LD")
    check_floating("index.rows", index.rows, axes="RD")
    L, D = index.centroids.shape
    R = index.rows.shape[0]
    capacity = index.capacity
    expected = {"ids": (R,), "starts": (L,), "sizes": (L,)}
    consistent = (
        isinstance(capacity, int) and 1 <= capacity < R and index.rows.shape[1] == D
        and all(tuple(getattr(index, name).shape) == shape and getattr(index, name).dtype
                == jnp.int32 for name, shape in expected.items())
    )
    if not consistent:
        raise ValueError(
            f"index is not a consistent InvertedIndex: centroids {shape_str((L, D))}, rows "
            f"{shape_str(index.rows.shape)}, ids {shape_str(index.ids.shape)}, starts "
            f"{shape_str(index.starts.shape)}, sizes {shape_str(index.sizes.shape)}, capacity "
            f"{capacity!r}; expected int32 ids [R], starts and sizes [L], rows [R, D] and "
            f"1 <= capacity < R. Make it with build_inverted_index."
        )


