"""Step 0i: spherical k-means, the cells of a database around the centroids nearest its rows.

An index that reads less than the whole database (step 0j) first cuts it into cells of
vectors that point the same way. For cosine similarity the natural clustering is *spherical*
k-means (Dhillon and Modha 2001): Lloyd's iteration with the cosine as its measure. Each
vector joins the centroid it has the largest dot product with (:func:`assign_to_cells`), and
each centroid moves to the normalised sum of its vectors (:func:`spherical_kmeans`).

Axes here: ``N`` vectors, ``D`` the width, ``L`` centroids (cells); while assigning vectors to
cells, ``B`` blocks of ``b`` vectors.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from attention._checks import (
    check_finite_rows,
    check_floating,
    check_int,
    check_positive_int,
    check_same_width,
    shape_str,
)
from attention.vectors.cosine import _normalize

# Scores held at once while assigning vectors to centroids: blocks of rows with at most
# 2^22 float32 scores (16 MiB), so a million rows against a thousand centroids never build
# the whole [M, L] matrix (4 GB).
_ASSIGN_SCORES = 1 << 22


def assign_to_cells(
    vectors: Float[Array, "N D"], centroids: Float[Array, "L D"]
) -> tuple[Int[Array, " N"], Float[Array, " N"]]:
    """The centroid with the largest dot product for each vector, and that dot product.

    For unit vectors and unit centroids the dot product is the cosine, so this is the nearest
    centroid. Computed in blocks of rows, so the whole ``[N, L]`` score matrix is never held;
    ties go to the lower centroid.

    Args:
      vectors: ``[N, D]`` floating point.
      centroids: ``[L, D]`` floating point, ``L >= 1``.

    Returns:
      ``(cells [N] int32, scores [N] float32)``.

    Raises:
      TypeError: non-floating arguments.
      ValueError: wrong ranks, different widths, no centroids.

    >>> import jax.numpy as jnp
    >>> cells, scores = assign_to_cells(jnp.array([[1.0, 0.0], [0.0, 1.0]]),
    ...                                 jnp.array([[0.0, 1.0], [1.0, 0.0]]))
    >>> cells.tolist(), scores.tolist()
    ([1, 0], [1.0, 1.0])
    """
    check_floating("vectors", vectors, axes="ND")
    check_floating("centroids", centroids, axes="LD")
    check_same_width("vectors", vectors, "centroids", centroids)
    if centroids.shape[0] == 0:
        raise ValueError("centroids has no rows (shape [0, D]): there is no cell to assign to.")
    return _assign(vectors, centroids)


@jax.jit
def _assign(vectors_ND, centroids_LD):
    N, D = vectors_ND.shape
    L = centroids_LD.shape[0]
    block = max(1, min(N, _ASSIGN_SCORES // L))
    n_blocks = -(-N // block)
    padded_BbD = jnp.pad(vectors_ND, ((0, n_blocks * block - N), (0, 0))).reshape(
        n_blocks, block, D
    )
    centroids_DL = centroids_LD.astype(jnp.float32).T

    def assign_block(block_bD):
        scores_bL = jnp.matmul(block_bD.astype(jnp.float32), centroids_DL)
        return jnp.argmax(scores_bL, axis=1).astype(jnp.int32), jnp.max(scores_bL, axis=1)

    cells_Bb, scores_Bb = jax.lax.map(assign_block, padded_BbD)
    return cells_Bb.reshape(-1)[:N], scores_Bb.reshape(-1)[:N]


def spherical_kmeans(
    vectors: Float[Array, "N D"],
    n_clusters: int,
    *,
    iterations: int = 10,
    key: jax.Array | None = None,
    init: Float[Array, "L D"] | None = None,
    normalized: bool = False,
) -> Float[Array, "L D"]:
    """Spherical k-means (Dhillon and Modha 2001): ``L`` unit centroids for unit vectors.

    Lloyd's iteration with the cosine as its measure. Starting from ``init``, or from
    ``n_clusters`` distinct vectors drawn at random (FAISS's default), each iteration

    1. assigns every vector x to the centroid c with the largest ``x . c``;
    2. moves each centroid to the normalised sum of its vectors, ``normalize(sum_x x)``,
       the unit vector with the largest total cosine to them.

    Neither step can lower the objective ``sum_x max_c (x . c)``. A centroid left with no
    vectors is moved onto the vector that is worst served (lowest cosine to its own centroid,
    one vector per empty cell, worst first), which cannot lower it either.

    Args:
      vectors: ``[N, D]`` floating point, every value finite (checked when concrete).
      n_clusters: ``L``, ``1 <= L <= N``.
      iterations: Lloyd iterations, ``>= 1``.
      key: a ``jax.random`` key for the random start (default ``jax.random.key(0)``).
      init: ``[L, D]`` starting centroids instead of the random start.
      normalized: promise that the vectors have length 1 already.

    Returns:
      ``[L, D]`` float32 unit centroids.

    Raises:
      TypeError: non-floating ``vectors`` or ``init``, non-int ``n_clusters`` or
        ``iterations``.
      ValueError: ``vectors`` not ``[N, D]`` or with NaN / infinite rows (named), ``n_clusters``
        outside ``1..N``, ``iterations < 1``, ``init`` of the wrong shape.

    >>> import jax.numpy as jnp
    >>> x = jnp.array([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [-0.1, 1.0]])
    >>> c = spherical_kmeans(x, 2, init=x[jnp.array([0, 2])])
    >>> [[round(v, 3) for v in row] for row in c.tolist()]
    [[1.0, 0.0], [0.0, 1.0]]
    """
    check_floating("vectors", vectors, axes="ND")
    N = vectors.shape[0]
    n_clusters = check_int("n_clusters", n_clusters)
    if not 1 <= n_clusters <= N:
        raise ValueError(
            f"n_clusters must lie in 1..N={N} (the number of vectors), got {n_clusters}."
        )
    iterations = check_positive_int("iterations", iterations)
    check_finite_rows("vectors", vectors)
    if init is None:
        key = jax.random.key(0) if key is None else key
        init = vectors[jax.random.choice(key, N, (n_clusters,), replace=False)]
    else:
        check_floating("init", init)
        if tuple(init.shape) != (n_clusters, vectors.shape[1]):
            raise ValueError(
                f"init must have shape [n_clusters, D] = [{n_clusters}, {vectors.shape[1]}], "
                f"got {shape_str(init.shape)}."
            )
    unit_ND = vectors.astype(jnp.float32)
    if not normalized:
        unit_ND = _normalize(unit_ND, 1, 1e-12)
    centroids_LD = _normalize(jnp.asarray(init, jnp.float32), 1, 1e-12)
    return _kmeans(unit_ND, centroids_LD, iterations)


@functools.partial(jax.jit, static_argnames=("iterations",))
def _kmeans(unit_ND, centroids_LD, iterations: int):
    L = centroids_LD.shape[0]

    def lloyd_step(_, centroids_LD):
        cells_N, scores_N = _assign(unit_ND, centroids_LD)
        sums_LD = jax.ops.segment_sum(unit_ND, cells_N, num_segments=L)
        counts_L = jax.ops.segment_sum(jnp.ones_like(cells_N), cells_N, num_segments=L)
        # Empty cells take the worst-served vectors, the first empty cell the very worst.
        empty_L = counts_L == 0
        _, worst_L = jax.lax.top_k(-scores_N, L)
        reseeds_LD = unit_ND[worst_L[jnp.cumsum(empty_L) - 1]]
        return jnp.where(empty_L[:, None], reseeds_LD, _normalize(sums_LD, 1, 1e-12))

    return jax.lax.fori_loop(0, iterations, lloyd_step, centroids_LD)


