"""Tests for attention/vectors/inverted_index.py: the index and its search.

References written out in NumPy (float64): the nearest centroid by argmax, and the exact top-k
over the rows of the probed cells (the cells ranked by their centroids' scores). Random
Gaussian data has no ties, so row indices must match exactly. Sizes are distinct (Q=3, D=7,
M=53, L=6, k=5).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attention.vectors.inverted_index import (
    InvertedIndex,
    build_inverted_index,
    inverted_index_top_k,
)
from attention.vectors.quantized import quantize_database
from attention.vectors.search import cosine_top_k

from ._helpers import gaussian, unit_rows

Q, D, M, L, K = 3, 7, 53, 6, 5


def numpy_probed_top_k(queries, database, index, k, n_probe):
    """Exact top-k over the rows of the probed cells, with -inf / -1 for missing places."""
    ids, starts, sizes = (np.asarray(a) for a in (index.ids, index.starts, index.sizes))
    cell_scores = unit_rows(queries) @ np.asarray(index.centroids, np.float64).T
    all_scores = unit_rows(queries) @ unit_rows(database).T
    top_scores = np.full((len(queries), k), -np.inf)
    top_rows = np.full((len(queries), k), -1)
    for q in range(len(queries)):
        cells = np.argsort(-cell_scores[q], kind="stable")[:n_probe]
        rows = np.concatenate([ids[starts[c]:starts[c] + sizes[c]] for c in cells])
        best = rows[np.argsort(-all_scores[q, rows], kind="stable")][:k]
        top_rows[q, :len(best)], top_scores[q, :len(best)] = best, all_scores[q, best]
    return top_scores, top_rows


@pytest.fixture(scope="module")
def database():
    return gaussian(0, (M, D))


@pytest.fixture(scope="module")
def index(database):
    return build_inverted_index(jnp.asarray(database), L, key=jax.random.key(3))


# --- the index ---------------------------------------------------------------------------


def test_build_stores_every_row_once_in_its_nearest_cell(database, index):
    ids, starts, sizes = (np.asarray(a) for a in (index.ids, index.starts, index.sizes))
    rows = np.asarray(index.rows)
    assert index.shape == (M, D) and index.n_cells == L
    assert index.capacity == sizes.max() and sizes.sum() == M
    assert rows.shape == (M + index.capacity, D)
    np.testing.assert_array_equal(np.sort(ids[:M]), np.arange(M))
    np.testing.assert_array_equal(ids[M:], -1)
    np.testing.assert_array_equal(rows[M:], 0.0)
    np.testing.assert_allclose(rows[:M], unit_rows(database)[ids[:M]], atol=1e-6)
    nearest = (unit_rows(database) @ np.asarray(index.centroids, np.float64).T).argmax(axis=1)
    for c in range(L):
        members = ids[starts[c]:starts[c] + sizes[c]]
        np.testing.assert_array_equal(nearest[members], c)
        assert np.all(np.diff(members) > 0), "rows keep the database's order in a cell"


def test_index_is_a_pytree_with_static_capacity(index):
    leaves, treedef = jax.tree_util.tree_flatten(index)
    assert len(leaves) == 5 and all(hasattr(leaf, "shape") for leaf in leaves)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(rebuilt, InvertedIndex) and rebuilt.capacity == index.capacity


# --- search ------------------------------------------------------------------------------


@pytest.mark.parametrize("n_probe", [1, 2, 4])
def test_search_is_exact_within_the_probed_cells(database, index, n_probe):
    queries = gaussian(30, (Q, D))
    want_scores, want_rows = numpy_probed_top_k(queries, database, index, K, n_probe)
    scores, rows = inverted_index_top_k(jnp.asarray(queries), index, K, n_probe=n_probe)
    np.testing.assert_array_equal(np.asarray(rows), want_rows)
    np.testing.assert_allclose(np.asarray(scores), want_scores, rtol=1e-5, atol=1e-6)


def test_probing_every_cell_is_the_exact_search(database, index):
    queries = jnp.asarray(gaussian(31, (Q, D)))
    want_scores, want_rows = cosine_top_k(queries, jnp.asarray(database), K)
    scores, rows = inverted_index_top_k(queries, index, K, n_probe=L)
    np.testing.assert_array_equal(np.asarray(rows), np.asarray(want_rows))
    np.testing.assert_allclose(np.asarray(scores), np.asarray(want_scores), rtol=1e-5)
    one_scores, one_rows = inverted_index_top_k(queries[1], index, K, n_probe=L)
    assert one_rows.shape == (K,)
    np.testing.assert_array_equal(np.asarray(one_rows), np.asarray(want_rows)[1])


def test_too_few_rows_in_the_probed_cells_leave_minus_one(database, index):
    queries = gaussian(32, (Q, D))
    k = int(np.asarray(index.sizes).max()) + 3  # more than any one cell holds
    want_scores, want_rows = numpy_probed_top_k(queries, database, index, k, 1)
    scores, rows = inverted_index_top_k(jnp.asarray(queries), index, k, n_probe=1)
    np.testing.assert_array_equal(np.asarray(rows), want_rows)
    assert (want_rows == -1).any()
    np.testing.assert_array_equal(np.isinf(np.asarray(scores)), want_rows == -1)
    real = want_rows != -1
    np.testing.assert_allclose(np.asarray(scores)[real], want_scores[real], rtol=1e-5)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 12))
def test_property_more_probes_never_lower_a_score(database, index, seed, k):
    queries = jnp.asarray(gaussian(seed, (Q, D)))
    previous = None
    for n_probe in range(1, L + 1):
        scores = np.asarray(inverted_index_top_k(queries, index, k, n_probe=n_probe)[0])
        if previous is not None:
            # The probed rows only grow, so the j-th best can only rise.
            assert np.all(scores >= previous - 1e-6)
        previous = scores


def test_batch_equals_one_query_at_a_time_and_jit_equals_eager(index):
    queries = jnp.asarray(gaussian(34, (Q, D)))
    scores, rows = inverted_index_top_k(queries, index, K, n_probe=2)
    for q in range(Q):
        one_scores, one_rows = inverted_index_top_k(queries[q], index, K, n_probe=2)
        np.testing.assert_array_equal(np.asarray(one_rows), np.asarray(rows)[q])
        np.testing.assert_allclose(np.asarray(one_scores), np.asarray(scores)[q], rtol=1e-6)
    jitted = jax.jit(lambda q, i: inverted_index_top_k(q, i, K, n_probe=2))(queries, index)
    np.testing.assert_array_equal(np.asarray(jitted[1]), np.asarray(rows))


def test_bfloat16_rows_are_stored_and_searched_in_bfloat16(database):
    index = build_inverted_index(jnp.asarray(database, jnp.bfloat16), L, key=jax.random.key(3))
    assert index.rows.dtype == jnp.bfloat16
    queries = gaussian(35, (Q, D))
    stored = np.asarray(index.rows[:M].astype(jnp.float32))
    as_stored = np.empty_like(stored)
    as_stored[np.asarray(index.ids[:M])] = stored  # back in the database's order
    # The query is rounded to bfloat16 for the product, as the rows are.
    rounded = np.asarray(jnp.asarray(unit_rows(queries), jnp.float32).astype(jnp.bfloat16)
                         .astype(jnp.float32), np.float64)
    want = np.argsort(-(rounded @ as_stored.T.astype(np.float64)), axis=1, kind="stable")[:, :K]
    _, rows = inverted_index_top_k(jnp.asarray(queries), index, K, n_probe=L)
    np.testing.assert_array_equal(np.asarray(rows), want)


def test_clustered_data_is_found_reading_a_fraction_of_the_rows():
    """What the index is for: neighbours share a cell, so a few probes find most of them."""
    rng = np.random.default_rng(40)
    topics, per_topic, width = 24, 100, 16
    centres = unit_rows(rng.standard_normal((topics, width)))
    db = unit_rows(np.repeat(centres, per_topic, axis=0)
              + 0.15 * rng.standard_normal((topics * per_topic, width)))
    queries = unit_rows(centres[rng.integers(0, topics, 64)]
                        + 0.15 * rng.standard_normal((64, width)))
    db, queries = jnp.asarray(db, jnp.float32), jnp.asarray(queries, jnp.float32)
    index = build_inverted_index(db, topics, key=jax.random.key(0))
    _, exact = cosine_top_k(queries, db, 10)
    _, found = inverted_index_top_k(queries, index, 10, n_probe=2)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in
                      zip(np.asarray(found).tolist(), np.asarray(exact).tolist(), strict=True)])
    read = 2 * index.capacity / db.shape[0]
    assert read < 0.2 and recall >= 0.98, (read, recall)


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.outside_annotations
def test_build_errors_name_what_was_given(database):
    db = jnp.asarray(database)
    with pytest.raises(TypeError, match="database must have a floating dtype"):
        build_inverted_index(jnp.ones((M, D), jnp.int32), L)
    with pytest.raises(ValueError, match=r"database must have 2 dimensions \[M, D\]"):
        build_inverted_index(db[0], L)
    with pytest.raises(ValueError, match="at least one row and one column"):
        build_inverted_index(db[:0], 1)
    with pytest.raises(ValueError, match=r"rows with a NaN or infinity \(rows 4\)"):
        build_inverted_index(db.at[4, 2].set(jnp.nan), L)
    with pytest.raises(ValueError, match="n_cells must be a positive int, got 0"):
        build_inverted_index(db, 0)
    with pytest.raises(TypeError, match=r"n_cells must be a positive int, got True \(bool\)"):
        build_inverted_index(db, True)
    with pytest.raises(ValueError, match=f"n_cells={M + 1}, train_size={M}, M={M}"):
        build_inverted_index(db, M + 1)
    with pytest.raises(ValueError, match=f"n_cells={L}, train_size=3, M={M}"):
        build_inverted_index(db, L, train_size=3)
    with pytest.raises(ValueError, match=f"train_size={M + 1}, M={M}"):
        build_inverted_index(db, L, train_size=M + 1)
    with pytest.raises(ValueError, match="iterations must be a positive int, got 0"):
        build_inverted_index(db, L, iterations=0)
    with pytest.raises(ValueError, match="cannot run under jax.jit"):
        jax.jit(lambda d: build_inverted_index(d, L).rows)(db)


@pytest.mark.outside_annotations
def test_search_errors_name_what_was_given(index):
    q = jnp.ones((Q, D))
    with pytest.raises(TypeError, match="index must be an InvertedIndex.*got QuantizedDatabase"):
        inverted_index_top_k(q, quantize_database(jnp.ones((M, D))), K)
    with pytest.raises(TypeError, match="queries must have a floating dtype"):
        inverted_index_top_k(jnp.ones((Q, D), jnp.int32), index, K)
    with pytest.raises(ValueError, match=r"not a consistent InvertedIndex.*starts \[5\]"):
        inverted_index_top_k(q, dataclasses.replace(index, starts=index.starts[:-1]), K)
    with pytest.raises(ValueError, match="not a consistent InvertedIndex.*capacity 0"):
        inverted_index_top_k(q, dataclasses.replace(index, capacity=0), K)
    with pytest.raises(ValueError, match=r"queries and index must have the same width D.*queries "
                                         r"\[3, 8\] and an index of 53 rows of width 7"):
        inverted_index_top_k(jnp.ones((Q, D + 1)), index, K)
    with pytest.raises(ValueError, match=r"queries must have shape \[Q, D\].*got \[2, 3, 7\]"):
        inverted_index_top_k(jnp.ones((2, Q, D)), index, K)
    with pytest.raises(ValueError, match=f"k must lie in 1..M={M}.*got k={M + 1}"):
        inverted_index_top_k(q, index, M + 1)
    with pytest.raises(ValueError, match="k must lie in 1..M=53.*got k=0"):
        inverted_index_top_k(q, index, 0)
    with pytest.raises(ValueError, match=f"n_probe must lie in 1..L={L}.*got {L + 1}"):
        inverted_index_top_k(q, index, K, n_probe=L + 1)
    with pytest.raises(ValueError, match=f"n_probe must lie in 1..L={L}.*got 0"):
        inverted_index_top_k(q, index, K, n_probe=0)
    with pytest.raises(TypeError, match=r"n_probe must be an int, got 2.0 \(float\)"):
        inverted_index_top_k(q, index, K, n_probe=2.0)
    with pytest.raises(ValueError, match=r"queries has 1 of 3 rows with a NaN.*\(rows 1\)"):
        inverted_index_top_k(q.at[1, 0].set(jnp.nan), index, K, n_probe=2)
