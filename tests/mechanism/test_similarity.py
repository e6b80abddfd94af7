"""Tests for attention/mechanism/similarity.py: normalize, cosine_top_k and its reference twin,
quantize_database / dequantize and the search in a QuantizedDatabase.

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

from attention.mechanism.similarity import (
    QuantizedDatabase,
    _bfloat16_bits,
    _chunked_top_k,
    _top_k_by_groups,
    cosine_top_k,
    cosine_top_k_reference,
    dequantize,
    normalize,
    quantize_database,
)

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


# --- quantize_database / dequantize ------------------------------------------------------


def unit_rows(x):
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def test_int8_quantization_matches_numpy_and_is_within_half_a_step():
    database = gaussian(20, (M, D)) * np.arange(1, M + 1, dtype=np.float32)[:, None]
    quantized = quantize_database(jnp.asarray(database), "int8")
    unit = unit_rows(database)
    want_scales = np.abs(unit).max(axis=1) / 127
    assert quantized.values.dtype == jnp.int8 and quantized.values.shape == (M, D)
    assert quantized.scales.dtype == jnp.float32 and quantized.scales.shape == (M,)
    np.testing.assert_allclose(quantized.scales, want_scales, rtol=1e-6)
    values = np.asarray(quantized.values, np.int64)
    assert np.abs(values).max() == 127  # the largest coordinate of each row maps to +-127
    np.testing.assert_array_equal(np.abs(values).max(axis=1), 127)
    # Round to nearest: off by at most half a step (plus float32 rounding of the division).
    error = np.abs(unit - want_scales[:, None] * values)
    assert np.all(error <= want_scales[:, None] * (0.5 + 1e-4))
    np.testing.assert_allclose(dequantize(quantized), want_scales[:, None] * values, rtol=1e-6)
    assert quantized.nbytes == M * D * 1 + M * 4


def test_bfloat16_quantization_is_within_one_rounding():
    database = gaussian(21, (M, D))
    quantized = quantize_database(jnp.asarray(database), jnp.bfloat16)
    unit = unit_rows(database)
    assert quantized.values.dtype == jnp.bfloat16
    np.testing.assert_array_equal(quantized.scales, np.ones(M))
    # bfloat16 keeps 8 significant bits: round to nearest is off by at most 2^-8 relative.
    error = np.abs(unit - np.asarray(dequantize(quantized), np.float64))
    assert np.all(error <= 2.0**-8 * np.abs(unit) + 1e-7)
    assert quantized.nbytes == M * D * 2 + M * 4


def test_normalized_true_stores_the_rows_as_given():
    database = 3.0 * gaussian(22, (M, D))  # rows far from unit length
    quantized = quantize_database(jnp.asarray(database), "int8", normalized=True)
    np.testing.assert_allclose(quantized.scales, np.abs(database).max(axis=1) / 127, rtol=1e-6)


def test_all_zero_row_gets_scale_zero_and_scores_zero():
    database = gaussian(23, (M, D))
    database[:, 0] = -1.0 - np.abs(database[:, 0])  # every row points away from e_0 ...
    database[4] = 0.0  # ... but row 4, which is zero: cosine 0, the best there is.
    quantized = quantize_database(jnp.asarray(database), "int8")
    assert float(quantized.scales[4]) == 0.0
    assert not np.asarray(quantized.values[4]).any()
    for query in (jnp.eye(D)[0], jnp.eye(D)[jnp.array([0, 0])]):  # one query, and a batch
        scores, indices = cosine_top_k(query, quantized, 1)
        assert indices.ravel()[0] == 4 and float(scores.ravel()[0]) == 0.0


def test_quantize_under_jit_equals_eager():
    database = jnp.asarray(gaussian(24, (M, D)))
    jitted = jax.jit(quantize_database, static_argnames=("dtype",))(database, dtype="int8")
    eager = quantize_database(database, "int8")
    np.testing.assert_array_equal(jitted.values, eager.values)
    np.testing.assert_array_equal(jitted.scales, eager.scales)


# --- search in a QuantizedDatabase --------------------------------------------------------


def numpy_quantized_top_k(scores, k):
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(scores, order, axis=-1), order


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("chunk_size", [None, 11], ids=["auto", "11"])
def test_batch_scores_match_numpy(dtype, chunk_size):
    # A batch scores scales[m] * (values[m] . q) with the float32 unit queries.
    queries, database = gaussian(30, (Q, D)), gaussian(31, (M, D))
    quantized = quantize_database(jnp.asarray(database), dtype)
    want = unit_rows(queries) @ np.asarray(dequantize(quantized), np.float64).T  # [Q, M]
    scores, indices = cosine_top_k(jnp.asarray(queries), quantized, K, chunk_size=chunk_size)
    want_scores, want_indices = numpy_quantized_top_k(want, K)
    assert scores.shape == indices.shape == (Q, K) and indices.dtype == jnp.int32
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6)
    twin_scores, twin_indices = cosine_top_k_reference(jnp.asarray(queries), quantized, K)
    np.testing.assert_array_equal(twin_indices, want_indices)
    np.testing.assert_allclose(twin_scores, want_scores, atol=1e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_single_query_scores_match_numpy(dtype):
    # One query is rounded (bfloat16, or int8 like a row) only to pick the candidates; the
    # scores returned are those of the float32 query, as for a batch.
    query, database = gaussian(32, (D,)), gaussian(33, (M, D))
    quantized = quantize_database(jnp.asarray(database), dtype)
    want = np.asarray(dequantize(quantized), np.float64) @ unit_rows(query)  # [M]
    scores, indices = cosine_top_k(jnp.asarray(query), quantized, K)
    want_scores, want_indices = numpy_quantized_top_k(want, K)
    assert scores.shape == indices.shape == (K,)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6)


@pytest.mark.parametrize("chunk_size", [61, 64, None], ids=["61", "64", "auto"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_grouped_selection_over_several_chunks(dtype, chunk_size):
    # 200 rows in chunks of 61 (the last one slid back over rows already scored) or 64, k=3:
    # chunks large enough to be ranked by groups of 4 rows (see _top_k_by_groups).
    m, k = 200, 3
    queries, database = gaussian(50, (Q, D)), gaussian(51, (m, D))
    if dtype == "float32":
        stored = jnp.asarray(database)
        want = unit_rows(queries) @ unit_rows(database).T
    else:
        stored = quantize_database(jnp.asarray(database), dtype)
        want = unit_rows(queries) @ np.asarray(dequantize(stored), np.float64).T
    want_scores, want_indices = numpy_quantized_top_k(want, k)
    for q, ws, wi in ((queries, want_scores, want_indices),
                      (queries[1], want_scores[1], want_indices[1])):
        scores, indices = cosine_top_k(jnp.asarray(q), stored, k, chunk_size=chunk_size)
        np.testing.assert_array_equal(indices, wi)
        np.testing.assert_allclose(scores, ws, atol=1e-6)


@pytest.mark.parametrize("group", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("rows, k", [(1, 1), (7, 3), (53, 5), (64, 11), (53, 53)])
def test_top_k_by_groups_equals_top_k_with_ties(rows, k, group):
    # Few distinct values, -inf among them, so that ties are everywhere: the grouped selection
    # must give lax.top_k's answer, equal scores going to the lower position.
    rng = np.random.default_rng(rows * 100 + k + group)
    values = np.array([-np.inf, -0.5, 0.0, 0.25, 1.0], np.float32)
    scores = values[rng.integers(0, len(values), (rows, Q))]
    got_scores, got_positions = _top_k_by_groups(jnp.asarray(scores), k, group)
    want_scores, want_positions = jax.lax.top_k(jnp.asarray(scores.T), k)
    np.testing.assert_array_equal(got_scores, want_scores)
    np.testing.assert_array_equal(got_positions, want_positions)


@pytest.mark.parametrize("chunk_size", [480, 96], ids=["one-chunk", "chunks"])
def test_negative_zero_scores_tie_with_zero_scores(chunk_size):
    # -0.0 and 0.0 are the same cosine, so their ties must go to the lower row, as NumPy's
    # stable sort (for which -0.0 == 0.0) orders them; lax.top_k ranks -0.0 below 0.0 and a
    # group maximum may keep either. Products accumulated from +0.0 rarely give -0.0, so the
    # scores are handed to the chunked selection directly, signed zeros everywhere.
    m, k = 480, 40  # chunks ranked by groups of 4 rows or more (see _top_k_by_groups)
    rng = np.random.default_rng(61)
    scores_MQ = np.where(rng.random((m, Q)) < 0.5, -0.0, 0.0).astype(np.float32)
    best = rng.choice(m, 5, replace=False)
    scores_MQ[best] = rng.random((5, Q), np.float32) + 0.5
    scores_MQ[rng.choice(m, 60, replace=False)] = -0.25
    assert np.signbit(scores_MQ[scores_MQ == 0]).any() and not np.signbit(scores_MQ).all()

    def score_chunk(start, size):
        return jax.lax.dynamic_slice_in_dim(jnp.asarray(scores_MQ), start, size, axis=0)

    got_scores, got_rows = jax.jit(
        lambda: _chunked_top_k(score_chunk, Q, m, k, chunk_size)
    )()
    want_rows = np.argsort(-scores_MQ.T, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(got_rows, want_rows)
    np.testing.assert_array_equal(got_scores, np.take_along_axis(scores_MQ.T, want_rows, 1))


@pytest.mark.parametrize("dtype, one_query", [("int8", True), ("bfloat16", False)])
def test_quantized_search_under_jit_equals_eager(dtype, one_query):
    queries, database = jnp.asarray(gaussian(36, (Q, D))), jnp.asarray(gaussian(37, (M, D)))
    quantized = quantize_database(database, dtype)
    q = queries[1] if one_query else queries
    jitted = jax.jit(cosine_top_k, static_argnames=("k", "chunk_size"))(
        q, quantized, k=K, chunk_size=9
    )
    eager = cosine_top_k(q, quantized, K, chunk_size=9)
    np.testing.assert_array_equal(jitted[1], eager[1])
    np.testing.assert_allclose(jitted[0], eager[0], atol=1e-6)


def test_bfloat16_bits_share_the_buffer_on_cpu():
    # A chunked search reads a bfloat16 database through its uint16 bits; on one CPU device
    # they must be the same memory (a copy would cost a write of the whole database).
    values = quantize_database(jnp.asarray(gaussian(40, (M, D))), "bfloat16").values
    bits = _bfloat16_bits(values)
    assert bits.dtype == jnp.uint16 and bits.shape == values.shape
    np.testing.assert_array_equal(np.asarray(bits), np.asarray(values).view(np.uint16))
    if values.devices() == {jax.devices("cpu")[0]}:
        assert bits.unsafe_buffer_pointer() == values.unsafe_buffer_pointer()
    # Under jit the value is abstract: it is left to the program, which takes the bits itself.
    seen = []
    jax.jit(lambda v: seen.append(_bfloat16_bits(v)) or v)(values)
    assert seen[0].dtype == jnp.bfloat16


def test_rerank_returns_the_float32_answer():
    queries, database = gaussian(38, (Q, D)), gaussian(39, (M, D))
    quantized = quantize_database(jnp.asarray(database), "int8")
    want_scores, want_indices = numpy_top_k(queries, database, K)
    for q, ws, wi in ((queries, want_scores, want_indices), (queries[0], want_scores[0],
                                                             want_indices[0])):
        scores, indices = cosine_top_k(
            jnp.asarray(q), quantized, K, rerank=jnp.asarray(database), rerank_candidates=3 * K
        )
        np.testing.assert_array_equal(indices, wi)
        np.testing.assert_allclose(scores, ws, atol=1e-6)


# Recall against exact float32 search on data of the benchmark's shape (D=300), at a small M.
# Cosines of Gaussian data: the 10th and 11th best of 20,000 lie a median 1.4e-3 apart (and
# sometimes 1e-6), while an int8 row's step is max|x| / 127 ~ 1.3e-3, a score error of std
# ~4e-4: roughly one query in nine swaps its 10th and 11th rows, so "the exact top-10 for 99%
# of queries" is out of reach for int8 alone, and just within reach for bfloat16 (error std
# ~6e-5). Measured over four seeds (fraction of queries with the exact top-10 set / recall@10,
# the mean fraction of the true top-10 found), the same for a batch and for one query (both
# round the query only to pick 2k + 8 candidates, then score them with the float32 query):
#   bfloat16 0.96-0.99 / 0.996-0.999   int8 0.86-0.91 / 0.986-0.991
#   either, rerank=float32 rows (40 candidates): 1.00 / 1.000
# The asserted bounds sit just under the worst seed.
RECALL_M, RECALL_D, RECALL_Q, RECALL_K = 20_000, 300, 200, 10
RECALL_BOUNDS = {  # (dtype, path): least recall@10 asserted
    ("bfloat16", "batch"): 0.99,
    ("bfloat16", "one query"): 0.99,
    ("int8", "batch"): 0.98,
    ("int8", "one query"): 0.98,
}


@pytest.fixture(scope="module")
def recall_data():
    rng = np.random.default_rng(0)
    database = rng.standard_normal((RECALL_M, RECALL_D)).astype(np.float32)
    queries = rng.standard_normal((RECALL_Q, RECALL_D)).astype(np.float32)
    exact = unit_rows(queries) @ unit_rows(database).T
    top = np.argpartition(-exact, RECALL_K, axis=1)[:, :RECALL_K]
    return jnp.asarray(queries), jnp.asarray(database), top


def overlap(indices, top):
    """Per query, how many of the true top-k rows were found."""
    pairs = zip(indices.tolist(), top.tolist(), strict=True)
    return np.array([len(set(a) & set(b)) for a, b in pairs])


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_recall_at_10_against_float32(recall_data, dtype):
    queries, database, top = recall_data
    quantized = quantize_database(database, dtype)
    _, batch = cosine_top_k(queries, quantized, RECALL_K)
    # The one-query path, for all queries at once: vmap keeps its numerics (each query is
    # rounded on its own) without 200 separate calls.
    _, single = jax.vmap(lambda q: cosine_top_k(q, quantized, RECALL_K))(queries)
    for path, indices in (("batch", batch), ("one query", single)):
        found = overlap(np.asarray(indices), top)
        recall = found.mean() / RECALL_K
        assert recall >= RECALL_BOUNDS[dtype, path], (dtype, path, recall)
    _, reranked = cosine_top_k(queries, quantized, RECALL_K, rerank=database)
    exact_fraction = (overlap(np.asarray(reranked), top) == RECALL_K).mean()
    assert exact_fraction >= 0.99, exact_fraction  # the criterion, met with rerank


# --- bad input ----------------------------------------------------------------------------


def test_nan_row_of_a_float_database_is_never_ranked_above_a_real_one():
    database = gaussian(40, (M, D))
    database[[3, 8]] = np.nan
    query = database[5]
    scores, indices = cosine_top_k(jnp.asarray(query), jnp.asarray(database), M - 2,
                                   chunk_size=10)
    assert not {3, 8} & set(indices.tolist()) and np.isfinite(scores).all()
    assert indices[0] == 5


@pytest.mark.outside_annotations
def test_quantized_errors_name_what_was_given():
    db = jnp.asarray(gaussian(41, (M, D)))
    quantized = quantize_database(db, "int8")
    with pytest.raises(ValueError, match=r"dtype must be one of 'bfloat16', 'int8', got 'float16'"):
        quantize_database(db, "float16")
    with pytest.raises(ValueError, match=r"got 'float32'"):
        quantize_database(db, jnp.float32)
    with pytest.raises(TypeError, match=r"dtype must be one of .*got 8 \(int\)"):
        quantize_database(db, 8)
    with pytest.raises(TypeError, match="database must have a floating dtype"):
        quantize_database(quantized.values, "int8")
    with pytest.raises(ValueError, match=r"at least one row and one column, got shape \[0, 7\]"):
        quantize_database(jnp.ones((0, D)), "int8")
    with pytest.raises(ValueError, match=r"database must have 2 dimensions \[M, D\]"):
        quantize_database(jnp.ones(D), "int8")
    bad = np.asarray(db).copy()
    bad[[2, 30], 1] = np.nan
    bad[45, 0] = np.inf
    with pytest.raises(ValueError, match=r"3 of 53 rows with a NaN or infinity \(rows 2, 30, 45\)"):
        quantize_database(jnp.asarray(bad), "bfloat16")
    many = np.full((M, D), np.nan, np.float32)
    with pytest.raises(ValueError, match=r"rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 43 more"):
        quantize_database(jnp.asarray(many), "int8")
    with pytest.raises(TypeError, match="quantized must be a QuantizedDatabase.*got tuple"):
        dequantize((quantized.values, quantized.scales))


@pytest.mark.outside_annotations
def test_search_errors_name_what_was_given():
    db = jnp.asarray(gaussian(42, (M, D)))
    quantized = quantize_database(db, "int8")
    with pytest.raises(ValueError, match=r"same width D.*queries \[6\] and database \[53, 7\]"):
        cosine_top_k(jnp.ones(D - 1), quantized, K)
    with pytest.raises(ValueError, match="k must lie in 1..M=53.*got k=54"):
        cosine_top_k(jnp.ones(D), quantized, M + 1)
    with pytest.raises(ValueError, match=r"database has no rows \(shape \[0, 7\]\)"):
        cosine_top_k(jnp.ones(D), jnp.ones((0, D)), 1)
    queries = np.ones((Q, D), np.float32)
    queries[2, 4] = np.nan
    with pytest.raises(ValueError, match=r"queries has 1 of 3 rows with a NaN.*\(rows 2\)"):
        cosine_top_k(jnp.asarray(queries), quantized, K)
    with pytest.raises(ValueError, match=r"queries has 1 of 1 rows with a NaN"):
        cosine_top_k(jnp.asarray(queries[2]), db, K)
    with pytest.raises(TypeError, match=r"database.values must be stored as one of"):
        cosine_top_k(jnp.ones(D), QuantizedDatabase(db, quantized.scales), K)
    with pytest.raises(ValueError, match=r"scales must be float32 of shape \[M\] = \[53\]"):
        cosine_top_k(jnp.ones(D), QuantizedDatabase(quantized.values, jnp.ones(M - 1)), K)
    with pytest.raises(ValueError, match="rerank= rescores the candidates of a search in a"):
        cosine_top_k(jnp.ones(D), db, K, rerank=db)
    with pytest.raises(ValueError, match=r"rerank must have the shape .* \[53, 7\], got \[52, 7\]"):
        cosine_top_k(jnp.ones(D), quantized, K, rerank=db[1:])
    with pytest.raises(ValueError, match=r"rerank_candidates must lie in k..M = 5..53, got 4"):
        cosine_top_k(jnp.ones(D), quantized, K, rerank=db, rerank_candidates=K - 1)
    with pytest.raises(ValueError, match="rerank_candidates was given without rerank="):
        cosine_top_k(jnp.ones(D), quantized, K, rerank_candidates=2 * K)
