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
    with pytest.raises(ValueError, match=r"same number of heads N.*key \[2, 5, 3, 11\]"):
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
