"""Tests for attention/vectors/top_k.py: the grouped top-k against ``jax.lax.top_k``, and the
chunked top-k against NumPy's stable sort, on scores full of ties and signed zeros."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention.vectors.top_k import _chunked_top_k, _top_k_by_groups

Q, D, M, K = 3, 7, 53, 5


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
