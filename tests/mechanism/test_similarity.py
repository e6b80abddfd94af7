"""Tests for attention/mechanism/similarity.py: normalize, cosine_top_k and its reference twin.

Reference: a NumPy float64 brute force (every cosine, then a stable argsort of the negated
scores, so ties go to the lower index as in ``cosine_top_k``). Random Gaussian data has no
ties, so indices must match exactly. Sizes are distinct (Q=3, D=7, M=53, k=5) and chunk sizes
are chosen so that the last chunk runs past the end of the database (53 = 5 * 10 + 3).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attention.mechanism.similarity import cosine_top_k, cosine_top_k_reference, normalize

Q, D, M, K = 3, 7, 53, 5


def gaussian(seed, shape, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def numpy_top_k(queries, database, k):
    q = np.atleast_2d(queries).astype(np.float64)
    db = database.astype(np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    db = db / np.maximum(np.linalg.norm(db, axis=-1, keepdims=True), 1e-12)
    scores = q @ db.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(scores, order, axis=1)
    if np.ndim(queries) == 1:
        return top[0], order[0]
    return top, order


# --- normalize ---------------------------------------------------------------------------


def test_normalize_gives_unit_rows_and_keeps_direction():
    x = gaussian(0, (M, D))
    unit = np.asarray(normalize(jnp.asarray(x)))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(unit, x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-6)


def test_normalize_other_axis_and_zero_vector():
    x = gaussian(1, (D, Q))
    x[:, 1] = 0.0
    unit = np.asarray(normalize(jnp.asarray(x), axis=0))
    np.testing.assert_allclose(np.linalg.norm(unit[:, [0, 2]], axis=0), 1.0, rtol=1e-6)
    assert np.all(unit[:, 1] == 0.0)  # a zero vector stays zero instead of becoming NaN.


def test_normalize_keeps_bfloat16():
    x = jnp.asarray(gaussian(2, (Q, D))).astype(jnp.bfloat16)
    unit = normalize(x)
    assert unit.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.linalg.norm(np.asarray(unit, np.float32), axis=1), 1.0, atol=1e-2)


@pytest.mark.outside_annotations
def test_normalize_errors():
    with pytest.raises(TypeError, match="vectors must have a floating dtype"):
        normalize(jnp.ones((2, 3), jnp.int32))
    with pytest.raises(
        ValueError, match=r"axis=2 is out of range for vectors of shape \[2, 3\] \(rank 2\)"
    ):
        normalize(jnp.ones((2, 3)), axis=2)
    with pytest.raises(TypeError, match=r"axis must be an int, got 1.0 \(float\)"):
        normalize(jnp.ones((2, 3)), axis=1.0)
    with pytest.raises(ValueError, match=r"eps must be in \(0, inf\), got 0.0"):
        normalize(jnp.ones((2, 3)), eps=0)
    with pytest.raises(TypeError, match=r"eps must be a number, got True \(bool\)"):
        normalize(jnp.ones((2, 3)), eps=True)
    # NumPy ints are axes too.
    np.testing.assert_array_equal(normalize(jnp.ones((2, 3)), axis=np.int64(0)),
                                  normalize(jnp.ones((2, 3)), axis=0))


# --- cosine_top_k ------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [None, 10, 11, M], ids=["auto", "10", "11", "M"])
def test_matches_numpy_brute_force(chunk_size):
    queries, database = gaussian(3, (Q, D)), gaussian(4, (M, D))
    scores, indices = cosine_top_k(
        jnp.asarray(queries), jnp.asarray(database), K, chunk_size=chunk_size
    )
    want_scores, want_indices = numpy_top_k(queries, database, K)
    assert scores.shape == indices.shape == (Q, K)
    assert scores.dtype == jnp.float32 and indices.dtype == jnp.int32
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6)


def test_single_query_returns_k_vector():
    query, database = gaussian(5, (D,)), gaussian(6, (M, D))
    scores, indices = cosine_top_k(jnp.asarray(query), jnp.asarray(database), K, chunk_size=8)
    want_scores, want_indices = numpy_top_k(query, database, K)
    assert scores.shape == indices.shape == (K,)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6)


def test_normalized_database_gives_same_answer_as_raw():
    queries, database = gaussian(7, (Q, D)), gaussian(8, (M, D))
    raw = cosine_top_k(jnp.asarray(queries), jnp.asarray(database), K)
    prepared = cosine_top_k(
        normalize(jnp.asarray(queries)), normalize(jnp.asarray(database)), K, normalized=True
    )
    np.testing.assert_array_equal(raw[1], prepared[1])
    np.testing.assert_allclose(raw[0], prepared[0], atol=1e-6)


def test_normalized_true_trusts_the_caller():
    # With normalized=True the scores are plain dot products: a database row of length 2
    # doubles its score, which shows that nothing was renormalised.
    database = jnp.eye(D, dtype=jnp.float32) * jnp.arange(1.0, D + 1.0)[:, None]
    scores, indices = cosine_top_k(jnp.ones(D), database, 1, normalized=True)
    assert indices.tolist() == [D - 1] and scores.tolist() == [float(D)]


def test_ties_go_to_the_lower_index_across_chunks():
    database = jnp.asarray(np.tile(gaussian(9, (1, D)), (M, 1)))  # every row identical
    _, indices = cosine_top_k(database[0], database, K, chunk_size=4)
    assert indices.tolist() == list(range(K))


def test_k_equal_to_m_sorts_everything():
    queries, database = gaussian(10, (Q, D)), gaussian(11, (M, D))
    scores, indices = cosine_top_k(jnp.asarray(queries), jnp.asarray(database), M, chunk_size=7)
    want_scores, want_indices = numpy_top_k(queries, database, M)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6)


def test_bfloat16_database_finds_the_same_neighbours_of_a_stored_row():
    database = gaussian(12, (M, D))
    db16 = normalize(jnp.asarray(database).astype(jnp.bfloat16))
    scores, indices = cosine_top_k(db16[jnp.array([2, 17, 40])], db16, 1, normalized=True)
    assert indices[:, 0].tolist() == [2, 17, 40]
    assert scores.dtype == jnp.float32
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=2e-2)


def test_reference_twin_agrees_under_jit():
    queries, database = jnp.asarray(gaussian(13, (Q, D))), jnp.asarray(gaussian(14, (M, D)))
    fast = jax.jit(cosine_top_k, static_argnames=("k", "chunk_size"))(
        queries, database, k=K, chunk_size=9
    )
    slow = cosine_top_k_reference(queries, database, K)
    np.testing.assert_array_equal(fast[1], slow[1])
    np.testing.assert_allclose(fast[0], slow[0], atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(
    m=st.integers(1, 40),
    k_frac=st.floats(0.0, 1.0),
    chunk=st.integers(1, 45),
    seed=st.integers(0, 2**16),
)
def test_property_chunking_never_changes_the_answer(m, k_frac, chunk, seed):
    k = 1 + int(k_frac * (m - 1))
    queries, database = gaussian(seed, (2, D)), gaussian(seed + 1, (m, D))
    scores, indices = cosine_top_k(jnp.asarray(queries), jnp.asarray(database), k, chunk_size=chunk)
    want_scores, want_indices = numpy_top_k(queries, database, k)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6)


@pytest.mark.outside_annotations
def test_errors_name_the_argument():
    db = jnp.ones((M, D))
    with pytest.raises(TypeError, match="queries must have a floating dtype"):
        cosine_top_k(jnp.ones(D, jnp.int32), db, K)
    with pytest.raises(TypeError, match="database must have a floating dtype"):
        cosine_top_k(jnp.ones(D), jnp.ones((M, D), jnp.int32), K)
    with pytest.raises(ValueError, match=r"queries must have shape \[Q, D\].*got \[1, 2, 7\]"):
        cosine_top_k(jnp.ones((1, 2, D)), db, K)
    with pytest.raises(
        ValueError, match=r"database must have 2 dimensions \[M, D\], got shape \[53\]"
    ):
        cosine_top_k(jnp.ones(D), jnp.ones(M), K)
    with pytest.raises(ValueError, match=r"same width D.*queries \[3, 6\] and database \[53, 7\]"):
        cosine_top_k(jnp.ones((Q, D - 1)), db, K)
    with pytest.raises(ValueError, match="k must lie in 1..M=53.*got k=54"):
        cosine_top_k(jnp.ones(D), db, M + 1)
    with pytest.raises(ValueError, match="k must lie in 1..M=53.*got k=0"):
        cosine_top_k(jnp.ones(D), db, 0)
    with pytest.raises(TypeError, match=r"k must be an int, got 2.0 \(float\)"):
        cosine_top_k(jnp.ones(D), db, 2.0)
    with pytest.raises(TypeError, match=r"k must be an int, got True \(bool\)"):
        cosine_top_k(jnp.ones(D), db, True)
    with pytest.raises(ValueError, match="chunk_size must be a positive int, got 0"):
        cosine_top_k(jnp.ones(D), db, K, chunk_size=0)
    with pytest.raises(TypeError, match=r"chunk_size must be a positive int, got 8.0 \(float\)"):
        cosine_top_k(jnp.ones(D), db, K, chunk_size=8.0)
