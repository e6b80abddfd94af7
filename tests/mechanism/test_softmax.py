"""Tests for attention/mechanism/softmax.py against a NumPy float64 softmax and jax.nn.softmax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from attention import masked_softmax

B, N, T, S = 2, 7, 3, 5


def normal(seed, shape, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def random_mask(seed, shape, p=0.6):
    return jnp.asarray(np.random.default_rng(seed).random(shape) < p)


def softmax_numpy(scores, mask=None, axis=-1):
    """float64 softmax over the allowed entries; a row with none allowed is all zeros."""
    x = np.asarray(scores, np.float64)
    allowed = np.broadcast_to(np.asarray(mask) if mask is not None else True, x.shape)
    x = np.where(allowed, x, -np.inf)
    row_max = x.max(axis, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(row_max), row_max, 0.0))
    total = e.sum(axis, keepdims=True)
    return e / np.where(total > 0, total, 1.0)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("mask_shape", [None, (B, N, T, S), (B, 1, 1, S), (T, S)])
def test_matches_numpy(mask_shape, jit):
    scores = normal(0, (B, N, T, S)) * 3
    mask = None if mask_shape is None else random_mask(1, mask_shape)
    out = (jax.jit(masked_softmax) if jit else masked_softmax)(scores, mask)
    assert out.shape == scores.shape and out.dtype == jnp.float32
    np.testing.assert_allclose(out, softmax_numpy(scores, mask), atol=1e-6)
    if mask is None:
        np.testing.assert_allclose(out, jax.nn.softmax(scores), atol=1e-6)


def test_other_axis():
    scores, mask = normal(2, (T, S)), random_mask(3, (T, S))
    np.testing.assert_allclose(
        masked_softmax(scores, mask, axis=0), softmax_numpy(scores, mask, axis=0), atol=1e-6
    )


def test_masked_entries_get_exactly_zero_and_fully_masked_rows_are_zero():
    scores = normal(4, (B, N, T, S)) * 50
    mask = random_mask(5, (B, N, T, S)).at[1, 3, 2].set(False)
    out = masked_softmax(scores, mask)
    assert np.all(np.asarray(out)[~np.asarray(mask)] == 0.0)
    np.testing.assert_array_equal(out[1, 3, 2], np.zeros(S))


def test_fully_masked_row_has_finite_zero_gradients():
    scores = normal(6, (T, S))
    mask = random_mask(7, (T, S)).at[1].set(False)
    cotangent = normal(8, (T, S))
    grad = jax.grad(lambda x: jnp.sum(masked_softmax(x, mask) * cotangent))(scores)
    assert bool(jnp.all(jnp.isfinite(grad)))
    np.testing.assert_array_equal(grad[1], np.zeros(S))
    np.testing.assert_array_equal(np.asarray(grad)[~np.asarray(mask)], 0.0)


def test_minus_inf_scores_give_zeros_not_nan():
    scores = jnp.array([[-jnp.inf, -jnp.inf, -jnp.inf], [0.0, -jnp.inf, 1.0]])
    out = masked_softmax(scores)
    np.testing.assert_array_equal(out[0], np.zeros(3))
    np.testing.assert_allclose(out[1], softmax_numpy(scores[1]), atol=1e-7)
    grad = jax.grad(lambda x: jnp.sum(masked_softmax(x)[:, 2]))(scores)
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_gradients_match_finite_differences_in_float64():
    with jax.enable_x64(True):
        scores = normal(9, (N, T, S), jnp.float64)
        mask = random_mask(10, (T, S)).at[0].set(False)
        check_grads(
            jax.jit(lambda x: masked_softmax(x, mask)), (scores,), order=2, modes=["rev"], eps=1e-6
        )


@pytest.mark.parametrize("scale", [1.0, 1e4], ids=["normal", "large_logits"])
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_half_precision_is_computed_in_float32(dtype, scale):
    scores = (normal(11, (N, T, S)) * scale).astype(dtype)
    mask = random_mask(12, (T, S))
    out = masked_softmax(scores, mask)
    assert out.dtype == dtype and bool(jnp.all(jnp.isfinite(out)))
    # Computed in float32 and rounded once at the end: bit-identical to doing that by hand.
    np.testing.assert_array_equal(
        out, masked_softmax(scores.astype(jnp.float32), mask).astype(dtype)
    )
    np.testing.assert_allclose(out.astype(jnp.float32), softmax_numpy(scores, mask), atol=4e-3)
    # And the exponential itself runs in float32, not in the input dtype.
    jaxpr = jax.make_jaxpr(masked_softmax)(scores, mask)
    exps = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "exp"]
    assert exps and all(e.outvars[0].aval.dtype == jnp.float32 for e in exps)


def test_large_logits_are_finite_and_match_numpy():
    scores = normal(13, (N, T, S)) * 1e4
    out = masked_softmax(scores, random_mask(14, (T, S)))
    assert bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_allclose(out, softmax_numpy(scores, random_mask(14, (T, S))), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), spread=st.sampled_from([1.0, 30.0, 1e4]))
def test_rows_are_distributions_where_any_key_is_allowed(seed, spread):
    scores = normal(seed, (N, T, S)) * spread
    mask = random_mask(seed + 1, (N, T, S), p=0.5)
    out = np.asarray(masked_softmax(scores, mask))
    assert np.all(out >= 0.0)
    any_allowed = np.asarray(mask).any(-1)
    np.testing.assert_allclose(out.sum(-1)[any_allowed], 1.0, atol=1e-5)
    np.testing.assert_array_equal(out.sum(-1)[~any_allowed], 0.0)


@pytest.mark.outside_annotations
def test_bad_input_is_reported_by_name_and_shape():
    scores = normal(15, (B, N, T, S))
    with pytest.raises(
        TypeError, match=r"scores must have a floating dtype.*int32 with shape \[2, 7, 3, 5\]"
    ):
        masked_softmax(scores.astype(jnp.int32))
    with pytest.raises(
        TypeError, match=r"mask must be boolean.*float32 with shape \[3, 5\].*bias="
    ):
        masked_softmax(scores, jnp.ones((T, S)))
    with pytest.raises(
        ValueError, match=r"mask of shape \[5, 3\] does not broadcast to \[2, 7, 3, 5\]"
    ):
        masked_softmax(scores, jnp.ones((S, T), bool))
    with pytest.raises(
        ValueError, match=r"axis=4 is out of range for scores of shape \[2, 7, 3, 5\] \(rank 4\)"
    ):
        masked_softmax(scores, axis=4)
    with pytest.raises(TypeError, match=r"axis must be an int, got -1.0 \(float\)"):
        masked_softmax(scores, axis=-1.0)
