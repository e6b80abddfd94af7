"""Tests for attention/mechanism/differential.py (step 7f): differential attention against NumPy
written out from Ye et al. 2024, section 2.1; causality through gradients; the cache.

Sizes: B=2, T=3 queries, S=5 keys, N=6 query heads, K=3 key/value heads, H=4, Hv=7, D=12.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.mechanism.differential import (
    DifferentialAttention,
    differential_attention,
    differential_lambda,
    differential_weights,
    lambda_init,
)
from attention.mechanism.kv_cache import KVCache
from attention.model.positional import RotaryEmbedding

B, T, S, N, K, H, HV, D = 2, 3, 5, 6, 3, 4, 7, 12


def normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def np_softmax_map(q, k, allowed):
    """softmax(q k^T / sqrt(H)) over allowed keys, [B, N, T, S]; grouped heads repeated."""
    q, k = np.asarray(q, np.float64), np.asarray(k, np.float64)
    k = np.repeat(k, q.shape[2] // k.shape[2], axis=2)
    scores = np.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(q.shape[-1])
    scores = np.where(allowed, scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("jit", [False, True])
def test_weights_and_attention_equal_numpy(jit):
    q1, q2 = normal(1, (B, T, N, H)), normal(2, (B, T, N, H))
    k1, k2 = normal(3, (B, S, K, H)), normal(4, (B, S, K, H))
    v = normal(5, (B, S, K, HV))
    mask = jnp.asarray(np.random.default_rng(6).random((B, 1, T, S)) < 0.7).at[..., 0].set(True)
    lam = 0.37
    allowed = np.asarray(mask) & (np.arange(S)[None, :] <= np.arange(T)[:, None])
    weights = jax.jit(differential_weights, static_argnames="is_causal") if jit else (
        differential_weights)
    a1, a2, diff = weights(q1, k1, q2, k2, lam, mask, is_causal=True)
    e1, e2 = np_softmax_map(q1, k1, allowed), np_softmax_map(q2, k2, allowed)
    np.testing.assert_allclose(a1, e1, atol=1e-5)
    np.testing.assert_allclose(a2, e2, atol=1e-5)
    np.testing.assert_allclose(diff, e1 - lam * e2, atol=1e-5)
    np.testing.assert_allclose(np.asarray(diff).sum(-1), 1 - lam, atol=1e-5)
    out = differential_attention(q1, k1, q2, k2, v, lam, mask, is_causal=True)
    expected = np.einsum("bnts,bsnh->btnh", e1 - lam * e2,
                         np.repeat(np.asarray(v, np.float64), N // K, axis=2))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_lambda_formulas():
    assert lambda_init(1) == pytest.approx(0.2)
    inits = [lambda_init(layer) for layer in range(1, 30)]
    assert all(a < b < 0.8 for a, b in zip(inits, inits[1:], strict=False))
    assert inits[-1] == pytest.approx(0.8, abs=1e-3)
    lq1, lk1, lq2, lk2 = (normal(seed, (H,)) * 0.3 for seed in range(10, 14))
    expected = (np.exp(np.dot(lq1, lk1)) - np.exp(np.dot(lq2, lk2)) + 0.25)
    assert float(differential_lambda(lq1, lk1, lq2, lk2, 0.25)) == pytest.approx(expected, 1e-5)


def reference_module(module, x, causal=True):
    """The layer written out in NumPy from its parameters (no hook)."""
    x = np.asarray(x, np.float64)
    p = lambda a: np.asarray(a[...], np.float64)  # noqa: E731
    Hh = module.head_dim
    q = (x @ p(module.query.kernel)).reshape(B, T, N, 2, Hh)
    k = (x @ p(module.key.kernel)).reshape(B, T, K, 2, Hh)
    v = (x @ p(module.value.kernel)).reshape(B, T, K, 2 * Hh)
    lam = (np.exp(p(module.lambda_q1) @ p(module.lambda_k1))
           - np.exp(p(module.lambda_q2) @ p(module.lambda_k2)) + module.lambda_init)
    allowed = np.tril(np.ones((T, T), bool)) if causal else np.ones((T, T), bool)
    a1 = np_softmax_map(q[..., 0, :], k[..., 0, :], allowed)
    a2 = np_softmax_map(q[..., 1, :], k[..., 1, :], allowed)
    heads = np.einsum("bnts,bsnh->btnh", a1 - lam * a2, np.repeat(v, N // K, axis=2))
    normed = heads / np.sqrt((heads ** 2).mean(-1, keepdims=True) + module.epsilon)
    normed = normed * p(module.norm_scale) * (1 - module.lambda_init)
    return normed.reshape(B, T, N * 2 * Hh) @ p(module.out.kernel)


def test_module_equals_numpy():
    module = DifferentialAttention(N, D, head_dim=H, num_kv_heads=K, layer=3,
                                   rngs=nnx.Rngs(0))
    x = normal(7, (B, T, D))
    out = nnx.jit(lambda m, x: m(x, is_causal=True))(module, x)
    np.testing.assert_allclose(out, reference_module(module, x), atol=1e-4)


def test_default_head_dim_is_the_papers():
    module = DifferentialAttention(3, D, rngs=nnx.Rngs(0))
    assert module.head_dim == D // 6 and module.query.kernel.shape == (D, D)


def test_causal_through_gradients():
    module = DifferentialAttention(N, D, head_dim=H, num_kv_heads=K, rngs=nnx.Rngs(1))
    x = normal(8, (B, 5, D))
    jac = jax.jit(jax.jacrev(lambda x: module(x, is_causal=True)[0, 2].sum()))(x)
    assert np.abs(np.asarray(jac[0, 3:])).max() == 0
    assert np.abs(np.asarray(jac[0, :3])).min(-1).max() > 0
    assert np.abs(np.asarray(jac[1])).max() == 0


def test_sows_the_difference_and_both_maps():
    module = DifferentialAttention(N, D, head_dim=H, num_kv_heads=K, rngs=nnx.Rngs(2))
    x = normal(9, (B, T, D))
    _, sown = nnx.capture(lambda m: m(x, is_causal=True, sow_weights=True),
                          nnx.Intermediate)(module)
    values = {path[-1]: v.get_value()[0] for path, v in nnx.to_flat_state(sown)}
    assert set(values) == {"attention_weights", "attention_weights_1", "attention_weights_2"}
    lam = float(module.lambda_())
    np.testing.assert_allclose(
        values["attention_weights"],
        values["attention_weights_1"] - lam * values["attention_weights_2"], atol=1e-6)
    assert values["attention_weights"].shape == (B, N, T, T)


@pytest.mark.parametrize("rope", [False, True])
def test_decode_with_cache_equals_full_call(rope):
    module = DifferentialAttention(
        N, D, head_dim=H, num_kv_heads=K, process_heads=RotaryEmbedding(H) if rope else None,
        rngs=nnx.Rngs(3))
    x = normal(10, (B, 5, D))
    cache = module.init_cache(B, 7)
    assert isinstance(cache, KVCache) and cache.key.shape == (B, 7, K, 2 * H)
    step = nnx.jit(lambda m, x, cache, index: m.append_and_attend(x, cache, index))
    out, cache = step(module, x[:, :2], cache, jnp.int32(0))  # a prefill of two
    outputs = [out]
    for t in range(2, 5):
        out, cache = step(module, x[:, t:t + 1], cache, jnp.int32(t))
        outputs.append(out)
    full = nnx.jit(lambda m, x: m(x, is_causal=True))(module, x)
    np.testing.assert_allclose(jnp.concatenate(outputs, 1), full, atol=1e-5)


@pytest.mark.outside_annotations
def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_kv_heads=4 must divide num_heads=6"):
        DifferentialAttention(6, D, num_kv_heads=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="2 \\* num_heads = 10 must divide in_features=12"):
        DifferentialAttention(5, D, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="process_heads must be callable"):
        DifferentialAttention(3, D, process_heads=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="layer must be an int >= 1"):
        DifferentialAttention(3, D, layer=0, rngs=nnx.Rngs(0))
    module = DifferentialAttention(3, D, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_features"):
        module(normal(0, (B, T, D + 1)))
    with pytest.raises(TypeError, match="cache must be a KVCache"):
        module.append_and_attend(normal(0, (B, 1, D)), (1, 2), 0)
    with pytest.raises(ValueError, match=r"cache key/value must be \[B, S, K, 2H\]"):
        module.append_and_attend(normal(0, (B + 1, 1, D)), module.init_cache(B, 4), 0)
    with pytest.raises(ValueError, match="index=4 plus 1 new"):
        module.append_and_attend(normal(0, (B, 1, D)), module.init_cache(B, 4), 4)
