"""Tests for attention/mechanism/sink_logits.py (step 3a): the softmax with a sink column.

Reference: NumPy float64 from gpt-oss's formula, ``exp(x_s) / (exp(sink_n) + sum_s' exp(x_s'))``
over the allowed keys; finite differences of it for the gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention import masked_softmax, softmax_with_sink

B, N, T, S = 2, 3, 5, 7


def normal(seed, shape, scale=1.0):
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def random_mask(seed, shape, p=0.6):
    mask = np.random.default_rng(seed).random(shape) < p
    mask[0, 1, 2] = False  # one row with every key masked
    return jnp.asarray(mask)


def sink_softmax_numpy(scores, sink, mask=None):
    x = np.asarray(scores, np.float64)
    allowed = np.ones(x.shape, bool) if mask is None else np.broadcast_to(mask, x.shape)
    sink_NT1 = np.broadcast_to(np.asarray(sink, np.float64)[:, None, None], x.shape[:-1] + (1,))
    m = np.maximum(np.where(allowed, x, -np.inf).max(-1, keepdims=True), sink_NT1)
    e = np.where(allowed, np.exp(x - m), 0.0)
    return e / (np.exp(sink_NT1 - m) + e.sum(-1, keepdims=True))


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "mask"])
def test_matches_numpy(masked, jit):
    scores, sink = normal(0, (B, N, T, S), 3.0), normal(1, (N,), 2.0)
    mask = random_mask(2, (B, N, T, S)) if masked else None
    f = jax.jit(softmax_with_sink) if jit else softmax_with_sink
    got = f(scores, sink, mask)
    want = sink_softmax_numpy(scores, sink, mask)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The rows sum to 1 - p_sink < 1: the sink took the rest.
    assert bool(jnp.all(jnp.sum(got, -1) < 1.0))


def test_unbatched_and_broadcast_mask():
    scores, sink = normal(3, (N, T, S)), normal(4, (N,))
    mask = jnp.tril(jnp.ones((T, S), bool))  # [T, S] broadcasts over the heads
    np.testing.assert_allclose(softmax_with_sink(scores, sink, mask),
                               sink_softmax_numpy(scores, sink, mask), rtol=1e-5, atol=1e-6)


def test_fully_masked_row_gives_zeros_and_finite_gradients():
    scores, sink = normal(5, (B, N, T, S)), normal(6, (N,))
    mask = jnp.ones((B, N, T, S), bool).at[1, 2, 3].set(False)
    weights = softmax_with_sink(scores, sink, mask)
    assert bool(jnp.all(weights[1, 2, 3] == 0))
    grads = jax.grad(lambda x, s: jnp.sum(softmax_with_sink(x, s, mask) ** 2), (0, 1))(
        scores, sink)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    assert bool(jnp.all(grads[0][1, 2, 3] == 0))


def test_a_very_negative_sink_is_the_plain_softmax():
    scores, mask = normal(7, (B, N, T, S)), random_mask(8, (B, N, T, S))
    got = softmax_with_sink(scores, jnp.full((N,), -1e4), mask)
    np.testing.assert_allclose(got, masked_softmax(scores, mask), rtol=1e-6, atol=1e-7)


def test_gradients_match_finite_differences():
    scores, sink = normal(9, (1, N, T, S)), normal(10, (N,))
    mask = random_mask(11, (1, N, T, S), p=0.7)
    c = np.random.default_rng(12).standard_normal((1, N, T, S))

    def loss_numpy(x, s):
        return float(np.sum(c * sink_softmax_numpy(x, s, mask)))

    def loss(x, s):
        return jnp.sum(jnp.asarray(c, jnp.float32) * softmax_with_sink(x, s, mask))

    d_scores, d_sink = jax.grad(loss, (0, 1))(scores, sink)
    x64, s64, eps = np.asarray(scores, np.float64), np.asarray(sink, np.float64), 1e-6
    for n in range(N):
        e = np.zeros(N)
        e[n] = eps
        finite = (loss_numpy(x64, s64 + e) - loss_numpy(x64, s64 - e)) / (2 * eps)
        np.testing.assert_allclose(d_sink[n], finite, rtol=1e-4, atol=1e-6)
    for index in [(0, 0, 0, 0), (0, 2, 4, 6), (0, 1, 3, 2)]:
        e = np.zeros(x64.shape)
        e[index] = eps
        finite = (loss_numpy(x64 + e, s64) - loss_numpy(x64 - e, s64)) / (2 * eps)
        np.testing.assert_allclose(d_scores[index], finite, rtol=1e-4, atol=1e-6)


def test_half_precision_input_keeps_its_dtype():
    scores, sink = normal(13, (N, T, S), 3.0), normal(14, (N,))
    got = softmax_with_sink(scores.astype(jnp.bfloat16), sink)
    assert got.dtype == jnp.bfloat16
    want = sink_softmax_numpy(np.asarray(scores.astype(jnp.bfloat16), np.float64), sink)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, atol=1e-2)


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    "scores, sink, mask, error, message",
    [
        (jnp.ones((T, S)), jnp.ones(N), None, ValueError, r"scores must be \[..., N, T, S\]"),
        (jnp.ones((N, T, S)), jnp.ones(N + 1), None, ValueError,
         r"sink_logits must be \[N\] = \[3\]"),
        (jnp.ones((N, T, S)), jnp.ones(N, jnp.int32), None, TypeError,
         "sink_logits must have a floating dtype"),
        (jnp.ones((N, T, S), jnp.int32), jnp.ones(N), None, TypeError,
         "scores must have a floating dtype"),
        (jnp.ones((N, T, S)), jnp.ones(N), jnp.ones((T, S + 1), bool), ValueError, "mask"),
    ],
    ids=["rank_2", "sink_shape", "int_sink", "int_scores", "mask_shape"],
)
def test_bad_arguments_are_named(scores, sink, mask, error, message):
    with pytest.raises(error, match=message):
        softmax_with_sink(scores, sink, mask)
