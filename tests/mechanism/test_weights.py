"""Tests for attention/mechanism/weights.py.

Against a NumPy float64 softmax(Q K^T * scale + bias).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attention import attention_weights, causal_mask

B, T, S, N, H = 2, 3, 5, 7, 11


def normal(seed, shape, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def random_mask(seed, shape, p=0.6):
    return jnp.asarray(np.random.default_rng(seed).random(shape) < p)


def weights_numpy(query, key, mask=None, bias=None, scale=None, is_causal=False):
    q, k = np.asarray(query, np.float64), np.asarray(key, np.float64)
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    x = np.einsum("...tnh,...snh->...nts", q, k) * scale
    if bias is not None:
        x = x + np.asarray(bias, np.float64)
    allowed = np.ones(x.shape, bool)
    if mask is not None:
        allowed &= np.asarray(mask)
    if is_causal:
        allowed &= np.tril(np.ones(x.shape[-2:], bool))
    x = np.where(allowed, x, -np.inf)
    row_max = x.max(-1, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(row_max), row_max, 0.0))
    total = e.sum(-1, keepdims=True)
    return e / np.where(total > 0, total, 1.0)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
    "mask_shape, bias_shape, is_causal, scale",
    [
        (None, None, False, None),
        ((B, 1, 1, S), None, True, None),
        ((T, S), (T, S), False, 0.7),  # lower-rank mask and bias: explicit broadcasting
        ((B, N, T, S), (B, N, T, S), True, None),
    ],
    ids=["plain", "padding_causal", "TS_mask_and_bias", "full_mask_bias_causal"],
)
def test_matches_numpy(mask_shape, bias_shape, is_causal, scale, jit):
    query, key = normal(0, (B, T, N, H)), normal(1, (B, S, N, H))
    mask = None if mask_shape is None else random_mask(2, mask_shape)
    bias = None if bias_shape is None else normal(3, bias_shape)
    fn = functools.partial(attention_weights, is_causal=is_causal, scale=scale)
    out = (jax.jit(fn) if jit else fn)(query, key, mask, bias=bias)
    assert out.shape == (B, N, T, S) and out.dtype == jnp.float32
    np.testing.assert_allclose(
        out, weights_numpy(query, key, mask, bias, scale, is_causal), atol=1e-6
    )


def test_unbatched_equals_batched_with_b_equal_1():
    query, key = normal(4, (T, N, H)), normal(5, (S, N, H))
    mask, bias = random_mask(6, (N, T, S)), normal(7, (T, S))
    out = attention_weights(query, key, mask, bias=bias, is_causal=True)
    assert out.shape == (N, T, S)
    batched = attention_weights(query[None], key[None], mask[None], bias=bias, is_causal=True)
    np.testing.assert_allclose(out, batched[0], atol=1e-7)


def test_is_causal_equals_passing_causal_mask():
    query, key = normal(8, (B, 7, N, H)), normal(9, (B, S, N, H))
    np.testing.assert_array_equal(
        attention_weights(query, key, is_causal=True),
        attention_weights(query, key, causal_mask(7, S)),
    )


def test_additive_bias_mask_equals_boolean_mask_where_rows_have_a_key():
    query, key = normal(10, (B, T, N, H)), normal(11, (B, S, N, H))
    mask = random_mask(12, (B, 1, T, S)).at[..., 0].set(True)
    as_bias = jnp.where(mask, 0.0, -jnp.inf)
    np.testing.assert_allclose(
        attention_weights(query, key, bias=as_bias), attention_weights(query, key, mask), atol=1e-7
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), logit_scale=st.sampled_from([1.0, 1e4]))
def test_weights_are_distributions_and_masked_entries_are_zero(seed, logit_scale):
    query, key = normal(seed, (B, T, N, H)) * logit_scale, normal(seed + 1, (B, S, N, H))
    mask = random_mask(seed + 2, (B, N, T, S), p=0.5)
    out = np.asarray(attention_weights(query, key, mask))
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    assert np.all(out[~np.asarray(mask)] == 0.0)
    any_allowed = np.asarray(mask).any(-1)
    np.testing.assert_allclose(out.sum(-1)[any_allowed], 1.0, atol=1e-5)
    np.testing.assert_array_equal(out.sum(-1)[~any_allowed], 0.0)


@pytest.mark.outside_annotations
def test_bad_input_is_reported_by_name_and_shape():
    query, key = normal(13, (B, T, N, H)), normal(14, (B, S, N, H))
    with pytest.raises(TypeError, match=r"mask must be boolean.*float32.*pass it as bias="):
        attention_weights(query, key, jnp.ones((T, S)))
    with pytest.raises(
        ValueError,
        match=r"mask of shape \[2, 5\] does not broadcast to \[B, N, T, S\] = \[2, 7, 3, 5\]",
    ):
        attention_weights(query, key, jnp.ones((B, S), bool))
    with pytest.raises(
        ValueError,
        match=r"mask of shape \[7, 5, 3\] does not broadcast to \[N, T, S\] = \[7, 3, 5\]",
    ):
        attention_weights(query[0], key[0], jnp.ones((N, S, T), bool))
    with pytest.raises(TypeError, match=r"bias must have a floating dtype.*bool"):
        attention_weights(query, key, bias=jnp.ones((T, S), bool))
    with pytest.raises(
        ValueError, match=r"bias of shape \[5, 3\] does not broadcast to \[B, N, T, S\]"
    ):
        attention_weights(query, key, bias=jnp.ones((S, T)))
    with pytest.raises(ValueError, match=r"same head dim H"):
        attention_weights(query, key[..., :4])
    with pytest.raises(ValueError, match=r"scale must be positive, got 0"):
        attention_weights(query, key, scale=0)


# --------------------------------- shared key heads, sequence lengths and sliding windows


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_shared_key_heads_lengths_and_window_match_numpy(jit):
    # N = 6 query heads over K = 3 key heads (groups of two).
    query, key = normal(20, (B, T, 6, H)), normal(21, (B, S, 3, H))
    q_lengths, kv_lengths = jnp.array([2, 3]), jnp.array([5, 3])
    window = (1, 2)
    fn = functools.partial(attention_weights, is_causal=True, local_window_size=window)
    out = (jax.jit(fn) if jit else fn)(
        query, key, query_seq_lengths=q_lengths, key_value_seq_lengths=kv_lengths
    )
    assert out.shape == (B, 6, T, S)
    t, s = np.arange(T)[:, None], np.arange(S)[None, :]
    allowed = (s <= t) & (s >= t - 1) & (s <= t + 2)                        # [T, S]
    allowed = (allowed[None]
               & (np.arange(T)[None, :, None] < np.asarray(q_lengths)[:, None, None])
               & (np.arange(S)[None, None, :] < np.asarray(kv_lengths)[:, None, None]))
    key_by_hand = np.asarray(key)[:, :, [0, 0, 1, 1, 2, 2]]
    expected = weights_numpy(query, key_by_hand, mask=allowed[:, None])
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_array_equal(out[0, :, 2], 0.0)  # query 2 of sequence 0 is padding


def test_unbatched_lengths_and_window_equal_batched_with_b_equal_1():
    query, key = normal(22, (T, N, H)), normal(23, (S, N, H))
    kwargs = dict(local_window_size=1)
    unbatched = attention_weights(
        query, key, query_seq_lengths=jnp.int32(2), key_value_seq_lengths=jnp.int32(4), **kwargs
    )
    batched = attention_weights(
        query[None], key[None], query_seq_lengths=jnp.array([2]),
        key_value_seq_lengths=jnp.array([4]), **kwargs,
    )
    assert unbatched.shape == (N, T, S)
    np.testing.assert_allclose(unbatched, batched[0], atol=1e-7)


@pytest.mark.outside_annotations
def test_lengths_must_match_the_batch_of_the_query():
    query, key = normal(24, (B, T, N, H)), normal(25, (B, S, N, H))
    with pytest.raises(
        ValueError, match=r"query_seq_lengths must have shape \[2\] \(one length per sequence\), "
        r"got \[3\]"
    ):
        attention_weights(query, key, query_seq_lengths=jnp.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"key_value_seq_lengths must lie in 0..5.*6..6"):
        attention_weights(query, key, key_value_seq_lengths=jnp.array([6, 6]))
    with pytest.raises(TypeError, match=r"local_window_size must be.*'2' \(str\)"):
        attention_weights(query, key, local_window_size="2")


# --------------------------------- soft-capping and sink logits (steps 1a, 3a)


def capped_sink_weights_numpy(query, key, *, cap=None, sink=None, mask=None, bias=None):
    """Gemma 2's ``cap tanh(s / cap)`` on the scaled scores, then the bias and the mask, then
    gpt-oss's softmax with a sink column ``sink[n]`` (which has no value), in float64."""
    q, k = np.asarray(query, np.float64), np.asarray(key, np.float64)
    k = np.repeat(k, q.shape[-2] // k.shape[-2], axis=-2)
    x = np.einsum("...tnh,...snh->...nts", q, k) / np.sqrt(q.shape[-1])
    if cap is not None:
        x = cap * np.tanh(x / cap)
    if bias is not None:
        x = x + np.asarray(bias, np.float64)
    allowed = np.ones(x.shape, bool) if mask is None else np.broadcast_to(mask, x.shape)
    m = np.where(allowed, x, -np.inf).max(-1, keepdims=True)
    if sink is not None:
        sink_NT1 = np.asarray(sink, np.float64)[:, None, None]
        m = np.maximum(m, sink_NT1)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.where(allowed, np.exp(x - m), 0.0)
    total = e.sum(-1, keepdims=True)
    if sink is not None:
        total = total + np.exp(sink_NT1 - m)
    return e / np.where(total > 0, total, 1.0)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("cap, with_sink", [(2.0, False), (None, True), (1.5, True)],
                         ids=["soft_cap", "sink", "both"])
def test_soft_cap_and_sink_logits_match_numpy(cap, with_sink, jit):
    # Large scores (x4) so that the cap bites; a bias larger than the cap, added after it.
    query, key = 4 * normal(30, (B, T, 6, H)), normal(31, (B, S, 3, H))
    sink = normal(32, (6,)) if with_sink else None
    bias = 3 * normal(33, (T, S))
    mask = random_mask(34, (B, 1, T, S)).at[0, 0, 1].set(False)  # one row fully masked
    causal = np.tril(np.ones((T, S), bool))
    fn = functools.partial(attention_weights, is_causal=True, soft_cap=cap)
    out = (jax.jit(fn) if jit else fn)(query, key, mask, bias=bias, sink_logits=sink)
    want = capped_sink_weights_numpy(query, key, cap=cap, sink=sink, mask=np.asarray(mask) & causal,
                                     bias=bias)
    np.testing.assert_allclose(out, want, atol=1e-6)
    np.testing.assert_array_equal(out[0, :, 1], 0.0)  # the fully masked row: zeros, no NaN
    if with_sink:
        assert bool(jnp.all(out.sum(-1) < 1.0))


def test_sink_logits_take_gradients_through_the_weights():
    query, key = normal(35, (B, T, N, H)), normal(36, (B, S, N, H))
    c = normal(37, (B, N, T, S))

    @jax.jit
    def loss(sink):
        return jnp.sum(c * attention_weights(query, key, is_causal=True, sink_logits=sink))

    sink, eps = normal(38, (N,)), 1e-3
    grad = jax.grad(loss)(sink)
    for n in (0, N - 1):
        e = jnp.zeros(N).at[n].set(eps)
        np.testing.assert_allclose(grad[n], (loss(sink + e) - loss(sink - e)) / (2 * eps),
                                   rtol=2e-2, atol=1e-3)


@pytest.mark.outside_annotations
def test_bad_soft_cap_and_sink_logits_are_named():
    query, key = normal(39, (B, T, N, H)), normal(40, (B, S, N, H))
    with pytest.raises(ValueError, match=r"soft_cap must be a positive finite number.*got 0"):
        attention_weights(query, key, soft_cap=0)
    with pytest.raises(TypeError, match=r"soft_cap must be a positive number.*'50' \(str\)"):
        attention_weights(query, key, soft_cap="50")
    with pytest.raises(ValueError, match=r"sink_logits must be \[N\] = \[7\].*got \[5\]"):
        attention_weights(query, key, sink_logits=jnp.zeros(5))
    with pytest.raises(TypeError, match=r"sink_logits must have a floating dtype"):
        attention_weights(query, key, sink_logits=jnp.zeros(N, jnp.int32))
