"""Tests for attention/mechanism/weighted_sum.py against a NumPy float64 einsum.

Hv differs from H.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from attention import weighted_sum

B, T, S, N, HV = 2, 3, 5, 7, 13


def normal(seed, shape, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def weighted_sum_numpy(weights, value):
    w, v = np.asarray(weights, np.float64), np.asarray(value, np.float64)
    return np.einsum("...nts,...snh->...tnh", w, v)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("batch", [(B,), ()], ids=["batched", "unbatched"])
def test_matches_numpy(batch, jit):
    weights = jax.nn.softmax(normal(0, (*batch, N, T, S)))
    value = normal(1, (*batch, S, N, HV))
    out = (jax.jit(weighted_sum) if jit else weighted_sum)(weights, value)
    assert out.shape == (*batch, T, N, HV) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, weighted_sum_numpy(weights, value), atol=1e-6)


def test_one_hot_weights_pick_out_one_value():
    value = normal(2, (B, S, N, HV))
    pick_T = np.array([4, 0, 2])  # query t takes value pick_T[t]
    weights = jnp.broadcast_to(jax.nn.one_hot(pick_T, S), (B, N, T, S))
    np.testing.assert_array_equal(weighted_sum(weights, value), value[:, pick_T])


def test_gradients_match_finite_differences_in_float64():
    with jax.enable_x64(True):
        weights = normal(3, (B, N, T, S), jnp.float64)
        value = normal(4, (B, S, N, HV), jnp.float64)
        check_grads(jax.jit(weighted_sum), (weights, value), order=1, modes=["rev"], eps=1e-6)


@pytest.mark.parametrize("dtype, atol", [(jnp.bfloat16, 2e-2), (jnp.float16, 2e-3)])
def test_half_precision_keeps_value_dtype_and_is_close(dtype, atol):
    weights = jax.nn.softmax(normal(5, (B, N, T, S))).astype(dtype)
    value = normal(6, (B, S, N, HV)).astype(dtype)
    out = weighted_sum(weights, value)
    assert out.dtype == dtype
    np.testing.assert_allclose(
        out.astype(jnp.float32), weighted_sum_numpy(weights, value), atol=atol
    )


@pytest.mark.outside_annotations
def test_bad_input_is_reported_by_name_and_shape():
    weights, value = normal(7, (B, N, T, S)), normal(8, (B, S, N, HV))
    with pytest.raises(TypeError, match=r"weights must have a floating dtype.*int32"):
        weighted_sum(weights.astype(jnp.int32), value)
    with pytest.raises(TypeError, match=r"value must have a floating dtype.*bool"):
        weighted_sum(weights, value > 0)
    with pytest.raises(
        ValueError,
        match=r"= \[2, 7, 3, 5\] and value \[B, S, K, Hv\] = \[2, 4, 7, 13\] must agree on B and S",
    ):
        weighted_sum(weights, value[:, :4])
    with pytest.raises(
        ValueError, match=r"agree on B and S, and the K=3 value heads must divide the N=7 heads"
    ):
        weighted_sum(weights, value[:, :, :3])
    with pytest.raises(ValueError, match=r"must agree on B and S"):
        weighted_sum(weights, value[:1])
    with pytest.raises(
        ValueError, match=r"or both unbatched.*weights \[2, 7, 3, 5\] and value \[5, 7, 13\]"
    ):
        weighted_sum(weights, value[0])


@pytest.mark.parametrize("k_heads", [1, 7])
def test_shared_value_heads_match_numpy(k_heads):
    """Grouped-query attention: weight head n averages value head n // (N / K)."""
    weights = jax.nn.softmax(normal(9, (B, N, T, S)))
    value = normal(10, (B, S, k_heads, HV))
    out = weighted_sum(weights, value)
    assert out.shape == (B, T, N, HV)
    group = N // k_heads
    value_by_hand = np.stack([np.asarray(value)[:, :, n // group] for n in range(N)], axis=2)
    np.testing.assert_allclose(out, weighted_sum_numpy(weights, value_by_hand), atol=1e-6)


def test_value_heads_in_groups_of_three():
    weights = jax.nn.softmax(normal(11, (B, 6, T, S)))
    value = normal(12, (B, S, 2, HV))
    value_by_hand = np.asarray(value)[:, :, [0, 0, 0, 1, 1, 1]]
    np.testing.assert_allclose(
        weighted_sum(weights, value), weighted_sum_numpy(weights, value_by_hand), atol=1e-6
    )
