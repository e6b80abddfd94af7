"""Tests for attention/mechanism/scores.py against a NumPy float64 einsum.

Sizes B=2 T=3 S=5 N=7 H=11.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from attention import default_scale, dot_product_scores
from attention.mechanism.scores import repeat_kv_heads

B, T, S, N, H = 2, 3, 5, 7, 11


def normal(seed, shape, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def scores_numpy(query, key, scale):
    q, k = np.asarray(query, np.float64), np.asarray(key, np.float64)
    return np.einsum("...tnh,...snh->...nts", q, k) * scale


def test_default_scale_is_one_over_sqrt_head_dim():
    assert default_scale(H) == pytest.approx(1 / math.sqrt(H), rel=1e-15)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("scale", [None, 0.25], ids=["default_scale", "scale"])
@pytest.mark.parametrize("batch", [(B,), ()], ids=["batched", "unbatched"])
def test_matches_numpy(batch, scale, jit):
    query, key = normal(0, (*batch, T, N, H)), normal(1, (*batch, S, N, H))
    fn = lambda q, k: dot_product_scores(q, k, scale=scale)  # noqa: E731
    out = (jax.jit(fn) if jit else fn)(query, key)
    assert out.shape == (*batch, N, T, S) and out.dtype == jnp.float32
    expected = scores_numpy(query, key, 1 / math.sqrt(H) if scale is None else scale)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


def test_gradients_match_finite_differences_in_float64():
    with jax.enable_x64(True):
        query = normal(2, (B, T, N, H), jnp.float64)
        key = normal(3, (B, S, N, H), jnp.float64)
        check_grads(jax.jit(dot_product_scores), (query, key), order=2, modes=["rev"], eps=1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_half_precision_accumulates_in_float32_without_overflow(dtype):
    # Scores of about 1e5 overflow float16 (max 65504); they must come back finite, float32.
    query = (normal(4, (B, T, N, H)) * 1e4).astype(dtype)
    key = (normal(5, (B, S, N, H)) * 8).astype(dtype)
    out = dot_product_scores(query, key)
    assert out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    expected = scores_numpy(query.astype(jnp.float32), key.astype(jnp.float32), 1 / math.sqrt(H))
    assert np.abs(expected).max() > 65504 or dtype == jnp.bfloat16
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-2)


@pytest.mark.outside_annotations
def test_bad_input_is_reported_by_name_and_shape():
    query, key = normal(6, (B, T, N, H)), normal(7, (B, S, N, H))
    with pytest.raises(
        TypeError, match=r"query must have a floating dtype.*int32 with shape \[2, 3, 7, 11\]"
    ):
        dot_product_scores(query.astype(jnp.int32), key)
    with pytest.raises(TypeError, match=r"key must have a floating dtype.*bool"):
        dot_product_scores(query, key > 0)
    with pytest.raises(TypeError, match=r"query must be a JAX or NumPy array, got list"):
        dot_product_scores([[1.0]], key)
    with pytest.raises(
        ValueError, match=r"same head dim H.*query \[2, 3, 7, 11\] and key \[2, 5, 7, 4\]"
    ):
        dot_product_scores(query, key[..., :4])
    with pytest.raises(ValueError, match=r"K \(axis -2\) must divide.*key \[2, 5, 3, 11\] \(K=3\)"):
        dot_product_scores(query, key[:, :, :3])
    with pytest.raises(ValueError, match=r"same batch size B.*key \[1, 5, 7, 11\]"):
        dot_product_scores(query, key[:1])
    with pytest.raises(ValueError, match=r"query must have shape \[B, T, N, H\].*got \[3, 11\]"):
        dot_product_scores(query[0, :, 0], key[0, :, 0])
    with pytest.raises(ValueError, match=r"same rank.*key has shape \[5, 7, 11\]"):
        dot_product_scores(query, key[0])
    with pytest.raises(ValueError, match=r"scale must be positive, got -1"):
        dot_product_scores(query, key, scale=-1)
    with pytest.raises(TypeError, match=r"scale must be a Python float or None, got bool"):
        dot_product_scores(query, key, scale=True)


# ------------------------------------------------------- grouped-query (shared) key heads
#
# N=6 query heads so that K in {6, 3, 1} divides it; the other sizes are as above.
N6 = 6


@pytest.mark.parametrize("k_heads", [N6, 3, 1])
@pytest.mark.parametrize("batch", [(B,), ()], ids=["batched", "unbatched"])
def test_repeat_kv_heads_gives_query_head_n_the_key_head_n_over_group(batch, k_heads):
    x = normal(8, (*batch, S, k_heads, H))
    out = repeat_kv_heads(x, N6)
    assert out.shape == (*batch, S, N6, H)
    group = N6 // k_heads
    for n in range(N6):  # by hand: heads 0..group-1 read key head 0, and so on
        np.testing.assert_array_equal(out[..., n, :], x[..., n // group, :])


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_scores_with_shared_key_heads_match_numpy(jit):
    query, key = normal(9, (B, T, N6, H)), normal(10, (B, S, 2, H))
    fn = jax.jit(dot_product_scores) if jit else dot_product_scores
    out = fn(query, key)
    assert out.shape == (B, N6, T, S)
    key_by_hand = np.asarray(key)[:, :, [0, 0, 0, 1, 1, 1]]  # K=2 heads, groups of 3
    np.testing.assert_allclose(out, scores_numpy(query, key_by_hand, 1 / math.sqrt(H)),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.outside_annotations
def test_repeat_kv_heads_bad_input():
    x = normal(11, (B, S, 4, H))
    with pytest.raises(
        ValueError, match=r"num_heads=6 \(query heads N\) must be a multiple of the K=4 "
        r"key/value heads of x \(shape \[2, 5, 4, 11\], axis -2\)"
    ):
        repeat_kv_heads(x, 6)
    with pytest.raises(ValueError, match=r"num_heads must be a positive int, got 0\."):
        repeat_kv_heads(x, 0)
    with pytest.raises(TypeError, match=r"num_heads must be a positive int, got 8.0 \(float\)"):
        repeat_kv_heads(x, 8.0)
    with pytest.raises(
        ValueError, match=r"x must be keys or values \[B, S, K, H\].*got shape \[5, 11\]"
    ):
        repeat_kv_heads(x[0, :, 0], 4)
    with pytest.raises(TypeError, match=r"x must be a JAX or NumPy array, got list"):
        repeat_kv_heads([[[1.0]]], 1)
    with pytest.raises(ValueError, match=r"must divide query's head count N.*\(N=6\).*\(K=4\)"):
        dot_product_scores(normal(12, (B, T, 6, H)), x)
