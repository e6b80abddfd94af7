"""Tests for attention/mechanism/linear.py (step 7h): linear attention against NumPy written out
from Katharopoulos et al. 2020 (eq. 2 with phi = elu + 1), the recurrent form equal to the
parallel one, the gated recurrence, the constant-size decode state.

Sizes: B=2, T=3 queries, S=5 keys, N=6 query heads, K=3 key/value heads, H=4, Hv=7, D=12.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.mechanism.linear import (
    LinearAttention,
    LinearState,
    elu_feature_map,
    gated_linear_attention_recurrent,
    linear_attention,
    linear_attention_recurrent,
)

B, T, S, N, K, H, HV, D = 2, 3, 5, 6, 3, 4, 7, 12


def normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def np_phi(x):
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x + 1.0, np.exp(x))  # elu(x) + 1


def np_linear(q, k, v, allowed, decay=1.0):
    """eq. 2: out_t = sum_s w_ts phi(q_t).phi(k_s) v_s / sum_s w_ts phi(q_t).phi(k_s), with
    w_ts = allowed * decay^(t - s); grouped heads repeated; 0 where no key is allowed."""
    G = q.shape[2] // k.shape[2]
    pk, v = np.repeat(np_phi(k), G, axis=2), np.repeat(np.asarray(v, np.float64), G, axis=2)
    sim = np.einsum("btnh,bsnh->bnts", np_phi(q), pk)
    t, s = np.arange(q.shape[1])[:, None], np.arange(k.shape[1])[None, :]
    sim = np.where(allowed, sim * decay ** np.maximum(t - s, 0), 0.0)
    rows = sim.sum(-1, keepdims=True)
    weights = np.divide(sim, rows, out=np.zeros_like(sim), where=rows > 0)
    return np.einsum("bnts,bsnh->btnh", weights, v)


def test_feature_map_is_elu_plus_one():
    x = normal(0, (11,))
    np.testing.assert_allclose(elu_feature_map(x), jax.nn.elu(x) + 1, rtol=1e-6)
    assert float(elu_feature_map(x).min()) > 0


@pytest.mark.parametrize("jit", [False, True])
def test_non_causal_linear_form_equals_numpy(jit):
    q, k, v = normal(1, (B, T, N, H)), normal(2, (B, S, K, H)), normal(3, (B, S, K, HV))
    attend = jax.jit(linear_attention) if jit else linear_attention
    np.testing.assert_allclose(attend(q, k, v), np_linear(q, k, v, True), atol=1e-5)


@pytest.mark.parametrize("jit", [False, True])
def test_masked_parallel_form_equals_numpy(jit):
    q, k, v = normal(4, (B, T, N, H)), normal(5, (B, S, K, H)), normal(6, (B, S, K, HV))
    mask = jnp.asarray(np.random.default_rng(7).random((B, 1, T, S)) < 0.6)
    mask = mask.at[0, 0, 1].set(False)  # a query that sees no key: 0
    allowed = np.asarray(mask) & (np.arange(S)[None, :] <= np.arange(T)[:, None])
    attend = jax.jit(linear_attention, static_argnames="is_causal") if jit else linear_attention
    out = attend(q, k, v, mask, is_causal=True)
    np.testing.assert_allclose(out, np_linear(q, k, v, allowed), atol=1e-5)
    np.testing.assert_array_equal(out[0, 1], 0)


@pytest.mark.parametrize("jit", [False, True])
def test_recurrent_form_equals_parallel_form(jit):
    q, k, v = normal(8, (B, 5, N, H)), normal(9, (B, 5, K, H)), normal(10, (B, 5, K, HV))
    recurrent = jax.jit(linear_attention_recurrent) if jit else linear_attention_recurrent
    first, state = recurrent(q[:, :2], k[:, :2], v[:, :2])  # then continue from the state
    rest, state = recurrent(q[:, 2:], k[:, 2:], v[:, 2:], state)
    parallel = linear_attention(q, k, v, is_causal=True)
    np.testing.assert_allclose(jnp.concatenate([first, rest], 1), parallel, atol=1e-5)
    assert isinstance(state, LinearState)
    assert state.S.shape == (B, K, H, HV) and state.z.shape == (B, K, H)
    np.testing.assert_allclose(state.z, np_phi(k).sum(1), rtol=1e-5)
    np.testing.assert_allclose(state.S, np.einsum("bskh,bske->bkhe", np_phi(k), v), rtol=1e-4,
                               atol=1e-5)


def test_gated_recurrence_and_parallel_form_equal_numpy():
    q, k, v = normal(11, (B, 5, N, H)), normal(12, (B, 5, K, H)), normal(13, (B, 5, K, HV))
    decay = 0.7
    expected = np_linear(q, k, v, np.tril(np.ones((5, 5), bool)), decay)
    out, _ = jax.jit(gated_linear_attention_recurrent)(q, k, v, decay)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(linear_attention(q, k, v, is_causal=True, decay=decay), expected,
                               atol=1e-5)


def test_module_causal_through_gradients():
    module = LinearAttention(N, D, head_dim=H, num_kv_heads=K, rngs=nnx.Rngs(0))
    x = normal(14, (B, 5, D))
    jac = jax.jit(jax.jacrev(lambda x: module(x, is_causal=True)[0, 2].sum()))(x)
    assert np.abs(np.asarray(jac[0, 3:])).max() == 0
    assert np.abs(np.asarray(jac[0, :3])).min(-1).max() > 0
    assert np.abs(np.asarray(jac[1])).max() == 0


@pytest.mark.parametrize("decay", [None, 0.8])
def test_module_decode_with_state_equals_full_call(decay):
    module = LinearAttention(N, D, head_dim=H, num_kv_heads=K, decay=decay, rngs=nnx.Rngs(1))
    x = normal(15, (B, 5, D))
    state = module.init_cache(B, 7)
    assert state.S.shape == (B, K, H, H)  # the same size for any max_len
    step = nnx.jit(lambda m, x, state, index: m.append_and_attend(x, state, index))
    out, state = step(module, x[:, :2], state, jnp.int32(0))
    outputs = [out]
    for t in range(2, 5):
        out, state = step(module, x[:, t:t + 1], state, jnp.int32(t))
        outputs.append(out)
    full = nnx.jit(lambda m, x: m(x, is_causal=True))(module, x)
    np.testing.assert_allclose(jnp.concatenate(outputs, 1), full, atol=1e-5)
    def np_linear_layer(layer, x):
        return np.asarray(x) @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])

    reference = np_linear(
        *(np_linear_layer(layer, x).reshape(B, 5, -1, H)
          for layer in (module.query, module.key, module.value)),
        np.tril(np.ones((5, 5), bool)), 1.0 if decay is None else decay)
    np.testing.assert_allclose(full, np_linear_layer(module.out, reference.reshape(B, 5, N * H)),
                               atol=1e-4)


@pytest.mark.outside_annotations
def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_heads=5 must divide in_features=12"):
        LinearAttention(5, D, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_kv_heads"):
        LinearAttention(N, D, num_kv_heads=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\]"):
        LinearAttention(N, D, decay=1.5, rngs=nnx.Rngs(0))
    q = normal(0, (B, T, N, H))
    with pytest.raises(ValueError, match="pass is_causal=True or a causal mask"):
        linear_attention(q, q, q, decay=0.5)
    module = LinearAttention(N, D, num_kv_heads=K, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="linear attention forms no attention weights"):
        module(normal(0, (B, T, D)), sow_weights=True)
    with pytest.raises(TypeError, match="cache must be a LinearState"):
        module.append_and_attend(normal(0, (B, 1, D)), (jnp.zeros((B, K, 2, 2)),) * 2, 0)
    with pytest.raises(ValueError, match=r"cache must hold S \[B, K, H, Hv\] = \[3, 3, 2, 2\]"):
        module.append_and_attend(normal(0, (B + 1, 1, D)), module.init_cache(B, 4), 0)
    with pytest.raises(TypeError, match="index must be an int"):
        module.append_and_attend(normal(0, (B, 1, D)), module.init_cache(B, 4), 0.5)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        module.init_cache(B, 0)
