"""Tests for attention/mechanism/latent.py (step 7g): multi-head latent attention against NumPy
written out from DeepSeek-V2 (section 2.1), the absorbed form equal to the plain form, the
decoupled RoPE, the latent cache.

Sizes: B=2, T=3 queries, S=5 keys, N=3 heads, H=4, R=2 rotary dims, C=7 latent dims, Hv=5,
D=10, query latent 6.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.mechanism import kv_cache
from attention.mechanism.latent import (
    LatentAttention,
    LatentCache,
    absorbed_latent_attention,
    kv_cache_bytes_per_token,
    latent_attention,
    latent_cache_bytes_per_token,
    latent_weights,
)
from attention.mechanism.multi_head import MultiHeadAttention
from attention.model.positional import RotaryEmbedding, apply_rope

B, T, S, N, H, R, C, HV, D, CQ = 2, 3, 5, 3, 4, 2, 7, 5, 10, 6


def normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def np_latent_weights(q, qr, k, kr, allowed):
    """softmax((q^C . k^C + q^R . k^R) / sqrt(H + R)) in float64, [B, N, T, S]."""
    q, qr, k, kr = (np.asarray(a, np.float64) for a in (q, qr, k, kr))
    scores = (np.einsum("btnh,bsnh->bnts", q, k) + np.einsum("btnr,bsr->bnts", qr, kr))
    scores = np.where(allowed, scores / math.sqrt(q.shape[-1] + qr.shape[-1]), -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("jit", [False, True])
def test_plain_form_equals_numpy(jit):
    q, qr = normal(1, (B, T, N, H)), normal(2, (B, T, N, R))
    k, kr, v = normal(3, (B, S, N, H)), normal(4, (B, S, R)), normal(5, (B, S, N, HV))
    mask = jnp.asarray(np.random.default_rng(6).random((B, 1, T, S)) < 0.7).at[..., 0].set(True)
    allowed = np.asarray(mask) & (np.arange(S)[None, :] <= np.arange(T)[:, None])
    expected = np_latent_weights(q, qr, k, kr, allowed)
    weights = (jax.jit(latent_weights, static_argnames="is_causal") if jit else latent_weights)
    np.testing.assert_allclose(weights(q, qr, k, kr, mask, is_causal=True), expected, atol=1e-5)
    attend = (jax.jit(latent_attention, static_argnames="is_causal") if jit
              else latent_attention)
    np.testing.assert_allclose(attend(q, qr, k, kr, v, mask, is_causal=True),
                               np.einsum("bnts,bsnh->btnh", expected, v), atol=1e-5)


def test_absorbed_form_equals_plain_form():
    q, qr = normal(7, (B, T, N, H)), normal(8, (B, T, N, R))
    latent, kr = normal(9, (B, S, C)), normal(10, (B, S, R))
    key_up, value_up = normal(11, (C, N, H)), normal(12, (C, N, HV))
    plain = latent_attention(q, qr, jnp.einsum("bsc,cnh->bsnh", latent, key_up), kr,
                             jnp.einsum("bsc,cnh->bsnh", latent, value_up), is_causal=True)
    absorbed_BTNC = absorbed_latent_attention(q, qr, latent, kr, key_up, is_causal=True)
    assert absorbed_BTNC.shape == (B, T, N, C)
    np.testing.assert_allclose(jnp.einsum("btnc,cnh->btnh", absorbed_BTNC, value_up), plain,
                               atol=1e-4)


def reference_module(mla, x):
    """The layer in NumPy from its parameters, query compressed, no hook, causal."""
    x = np.asarray(x, np.float64)
    p = lambda layer: np.asarray(layer.kernel[...], np.float64)  # noqa: E731
    c_q = x @ p(mla.query_down)
    q, qr = (c_q @ p(mla.query)).reshape(B, T, N, H), (c_q @ p(mla.query_rope)).reshape(
        B, T, N, R)
    c_kv = x @ p(mla.kv_down)
    k, v = (c_kv @ p(mla.key_up)).reshape(B, T, N, H), (c_kv @ p(mla.value_up)).reshape(
        B, T, N, H)
    weights = np_latent_weights(q, qr, k, x @ p(mla.key_rope), np.tril(np.ones((T, T), bool)))
    return np.einsum("bnts,bsnh->btnh", weights, v).reshape(B, T, N * H) @ p(mla.out)


def make_mla(rope=False, seed=0):
    return LatentAttention(N, D, head_dim=H, latent_dim=C, rope_head_dim=R,
                           query_latent_dim=CQ, process_heads=RotaryEmbedding(R) if rope else None,
                           rngs=nnx.Rngs(seed))


def test_module_equals_numpy():
    mla = make_mla()
    x = normal(13, (B, T, D))
    out = nnx.jit(lambda m, x: m(x, is_causal=True))(mla, x)
    np.testing.assert_allclose(out, reference_module(mla, x), atol=1e-4)


def test_rope_rotates_the_rotary_parts_only():
    mla = make_mla(rope=True, seed=1)
    x = normal(14, (B, T, D))
    _, sown = nnx.capture(lambda m: m(x, is_causal=True, sow_weights=True),
                          nnx.Intermediate)(mla)
    (weights,) = [v.get_value()[0] for _, v in nnx.to_flat_state(sown)]
    c_q = mla.query_down(x)
    q, qr = c_q @ mla.query.kernel[...], c_q @ mla.query_rope.kernel[...]
    c_kv = x @ mla.kv_down.kernel[...]
    positions = jnp.arange(T)
    expected = np_latent_weights(
        q.reshape(B, T, N, H), apply_rope(qr.reshape(B, T, N, R), positions),
        (c_kv @ mla.key_up.kernel[...]).reshape(B, T, N, H),
        apply_rope((x @ mla.key_rope.kernel[...])[:, :, None], positions)[:, :, 0],
        np.tril(np.ones((T, T), bool)))
    np.testing.assert_allclose(weights, expected, atol=1e-5)


def test_causal_through_gradients():
    mla = make_mla(rope=True, seed=2)
    x = normal(15, (B, 5, D))
    jac = jax.jit(jax.jacrev(lambda x: mla(x, is_causal=True)[0, 2].sum()))(x)
    assert np.abs(np.asarray(jac[0, 3:])).max() == 0
    assert np.abs(np.asarray(jac[0, :3])).min(-1).max() > 0
    assert np.abs(np.asarray(jac[1])).max() == 0


@pytest.mark.parametrize("absorbed", [True, False])
def test_decode_with_cache_equals_full_call(absorbed):
    mla = make_mla(rope=True, seed=3)
    x = normal(16, (B, 5, D))
    cache = mla.init_cache(B, 7)
    assert isinstance(cache, LatentCache)
    assert cache.latent.shape == (B, 7, C) and cache.key_rope.shape == (B, 7, R)
    step = nnx.jit(lambda m, x, cache, index: m.append_and_attend(x, cache, index,
                                                                  absorbed=absorbed))
    out, cache = step(mla, x[:, :2], cache, jnp.int32(0))
    outputs = [out]
    for t in range(2, 5):
        out, cache = step(mla, x[:, t:t + 1], cache, jnp.int32(t))
        outputs.append(out)
    full = nnx.jit(lambda m, x: m(x, is_causal=True))(mla, x)
    np.testing.assert_allclose(jnp.concatenate(outputs, 1), full, atol=1e-5)
    np.testing.assert_allclose(cache.latent[:, :5], x @ mla.kv_down.kernel[...], atol=1e-5)
    np.testing.assert_array_equal(cache.latent[:, 5:], 0)


def test_cache_bytes_match_the_caches():
    S_max = 11
    mla = LatentAttention(N, D, head_dim=H, latent_dim=C, rope_head_dim=R, rngs=nnx.Rngs(0))
    latent = mla.init_cache(B, S_max, jnp.float32)
    per_token = latent_cache_bytes_per_token(C, R, bytes_per_element=4)
    assert per_token * B * S_max == sum(a.nbytes for a in latent)
    mha = MultiHeadAttention(N, D, N * H, num_kv_heads=1, rngs=nnx.Rngs(0))
    kv = kv_cache.init_cache(mha, B, S_max)
    assert kv_cache_bytes_per_token(1, H, bytes_per_element=4) * B * S_max == sum(
        a.nbytes for a in kv)
    assert kv_cache_bytes_per_token(N, H, num_layers=3) == 3 * N * kv_cache_bytes_per_token(1, H)


@pytest.mark.outside_annotations
def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_heads=3 must divide in_features=10"):
        LatentAttention(3, D, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="latent_dim must be a positive int"):
        LatentAttention(N, D, head_dim=H, latent_dim=0, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="process_heads must be callable"):
        LatentAttention(N, D, head_dim=H, process_heads="rope", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="rope_head_dim must be a positive int"):
        latent_cache_bytes_per_token(C, 0)
    mla = make_mla()
    with pytest.raises(ValueError, match="in_features"):
        mla(normal(0, (B, T, D + 1)))
    with pytest.raises(TypeError, match="cache must be a LatentCache"):
        mla.append_and_attend(normal(0, (B, 1, D)), (jnp.zeros((B, 4, C)),) * 2, 0)
    with pytest.raises(ValueError, match=r"latent \[B, S, C\] = \[3, 4, 7\]"):
        mla.append_and_attend(normal(0, (B + 1, 1, D)), mla.init_cache(B, 4), 0)
    with pytest.raises(ValueError, match="index=4 plus 1 new"):
        mla.append_and_attend(normal(0, (B, 1, D)), mla.init_cache(B, 4), 4)
