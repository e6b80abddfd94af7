"""Tests for attention/vectors/kmeans.py: the nearest centroid and spherical k-means.

References written out in NumPy (float64): the nearest centroid by argmax, and one Lloyd step
(assign, sum, normalise, reseed empty cells with the worst-served vectors). Sizes are distinct
(D=7, M=53, L=6).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention.vectors import kmeans
from attention.vectors.kmeans import assign_to_cells, spherical_kmeans

from ._helpers import gaussian, unit_rows

Q, D, M, L, K = 3, 7, 53, 6, 5


def numpy_lloyd_step(x, centroids):
    """One spherical k-means step in NumPy, float64: the docstring of spherical_kmeans."""
    scores = unit_rows(x) @ unit_rows(centroids).T
    cells, best = scores.argmax(axis=1), scores.max(axis=1)
    sums = np.zeros_like(centroids, dtype=np.float64)
    np.add.at(sums, cells, unit_rows(x))
    worst = np.argsort(best, kind="stable")  # ascending: the worst served first
    new, n_empty = np.empty_like(sums), 0
    for c in range(len(centroids)):
        if (cells == c).any():
            new[c] = sums[c] / np.linalg.norm(sums[c])
        else:
            new[c], n_empty = unit_rows(x)[worst[n_empty]], n_empty + 1
    return new


def objective(x, centroids):
    return float(np.sum(np.max(unit_rows(x) @ np.asarray(centroids, np.float64).T, axis=1)))


@pytest.fixture(scope="module")
def database():
    return gaussian(0, (M, D))


def test_assign_to_cells_matches_numpy_argmax_in_blocks(monkeypatch):
    vectors, centroids = gaussian(1, (M, D)), gaussian(2, (L, D))
    scores = vectors.astype(np.float64) @ centroids.T.astype(np.float64)
    # Blocks of 5 rows, the last one padded (53 = 10 * 5 + 3).
    monkeypatch.setattr(kmeans, "_ASSIGN_SCORES", 5 * L)
    kmeans._assign.clear_cache()
    try:
        cells, best = assign_to_cells(jnp.asarray(vectors), jnp.asarray(centroids))
    finally:
        kmeans._assign.clear_cache()
    np.testing.assert_array_equal(np.asarray(cells), scores.argmax(axis=1))
    np.testing.assert_allclose(np.asarray(best), scores.max(axis=1), rtol=1e-5)


def test_one_lloyd_step_matches_numpy():
    x, init = gaussian(4, (M, D)), gaussian(5, (L, D))
    got = spherical_kmeans(jnp.asarray(x), L, iterations=1, init=jnp.asarray(init))
    np.testing.assert_allclose(np.asarray(got), numpy_lloyd_step(x, init), atol=1e-5)


def test_empty_cells_take_the_worst_served_vectors():
    x = gaussian(6, (M, D))
    # Copies of centroids 0 and 1 lose every tie to them (ties go to the lower centroid), so
    # the last two cells are left empty.
    init = gaussian(7, (L, D))
    init[L - 2:] = init[:2]
    step = numpy_lloyd_step(x, init)
    nearest = (unit_rows(x) @ unit_rows(init).T).argmax(1).tolist()
    empty = [c for c in range(L) if not nearest.count(c)]
    assert empty == [L - 2, L - 1], "the set-up must leave the last two cells empty"
    got = spherical_kmeans(jnp.asarray(x), L, iterations=1, init=jnp.asarray(init))
    np.testing.assert_allclose(np.asarray(got), step, atol=1e-5)
    # Each reseeded centroid is a vector of the data.
    for c in empty:
        assert np.min(np.linalg.norm(unit_rows(x) - np.asarray(got)[c], axis=1)) < 1e-5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_objective_never_decreases(seed):
    x = jnp.asarray(gaussian(10 + seed, (M, D)))
    key = jax.random.key(seed)
    values = [objective(x, spherical_kmeans(x, L, iterations=t, key=key)) for t in range(1, 7)]
    assert all(b >= a - 1e-4 for a, b in zip(values, values[1:], strict=False)), values
    # The random start is L distinct vectors of the data, so the first step already beats it.
    start = np.asarray(x)[np.asarray(jax.random.choice(key, M, (L,), replace=False))]
    assert values[0] >= objective(x, unit_rows(start)) - 1e-4


def test_kmeans_centroids_are_unit_and_normalized_flag_trusts_the_caller():
    x = gaussian(20, (M, D))
    c = np.asarray(spherical_kmeans(jnp.asarray(x), L, key=jax.random.key(1)))
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-5)
    same = spherical_kmeans(jnp.asarray(unit_rows(x), jnp.float32), L, key=jax.random.key(1),
                            normalized=True)
    np.testing.assert_allclose(np.asarray(same), c, atol=1e-5)


@pytest.mark.outside_annotations
def test_kmeans_and_assign_errors_name_what_was_given(database):
    x = jnp.asarray(database)
    with pytest.raises(ValueError, match=f"n_clusters must lie in 1..N={M}.*got {M + 1}"):
        spherical_kmeans(x, M + 1)
    with pytest.raises(ValueError, match=r"init must have shape \[n_clusters, D\] = \[6, 7\], "
                                         r"got \[6, 8\]"):
        spherical_kmeans(x, L, init=jnp.ones((L, D + 1)))
    with pytest.raises(ValueError, match="iterations must be a positive int, got -1"):
        spherical_kmeans(x, L, iterations=-1)
    with pytest.raises(ValueError, match=r"rows with a NaN or infinity \(rows 0\)"):
        spherical_kmeans(x.at[0, 0].set(jnp.inf), L)
    with pytest.raises(ValueError, match=r"same width D.*vectors \[53, 7\] and centroids "
                                         r"\[6, 5\]"):
        assign_to_cells(x, jnp.ones((L, 5)))
    with pytest.raises(ValueError, match="centroids has no rows"):
        assign_to_cells(x, jnp.ones((0, D)))
