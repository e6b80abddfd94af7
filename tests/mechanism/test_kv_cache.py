"""Tests for attention/mechanism/kv_cache.py (step 7a): the pure cache functions against NumPy,
and the cached attention functions against the module's full call. (The module methods that
delegate here are tested in test_multi_head.py and tests/model/test_decoder.py.)

Sizes: B=2, S=7 slots, K=3 key/value heads of N=6 query heads, H=4, D=10.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.mechanism import kv_cache
from attention.mechanism.kv_cache import KVCache, init_kv_cache, update_kv_cache
from attention.mechanism.multi_head import MultiHeadAttention

B, S, K, N, H, D = 2, 7, 3, 6, 4, 10


def normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def test_init_kv_cache_is_zeros_of_the_cache_shape():
    cache = init_kv_cache(B, S, K, H, dtype=jnp.bfloat16)
    assert isinstance(cache, KVCache)
    for array in cache:
        assert array.shape == (B, S, K, H) and array.dtype == jnp.bfloat16
        np.testing.assert_array_equal(array, 0)


@pytest.mark.parametrize("jit", [False, True])
def test_update_kv_cache_writes_the_new_slots_only(jit):
    cache = KVCache(normal(1, (B, S, K, H)), normal(2, (B, S, K, H)))
    new_key, new_value = normal(3, (B, 2, K, H)), normal(4, (B, 2, K, H))
    update = jax.jit(update_kv_cache) if jit else update_kv_cache
    updated = update(cache, new_key, new_value, jnp.int32(3) if jit else 3)
    for old, new, got in ((cache.key, new_key, updated.key),
                          (cache.value, new_value, updated.value)):
        expected = np.array(old)
        expected[:, 3:5] = np.asarray(new)
        np.testing.assert_array_equal(got, expected)


def test_update_kv_cache_casts_to_the_cache_dtype():
    cache = init_kv_cache(B, S, K, H, dtype=jnp.bfloat16)
    updated = update_kv_cache(cache, normal(5, (B, 1, K, H)), normal(6, (B, 1, K, H)), 0)
    assert updated.key.dtype == updated.value.dtype == jnp.bfloat16


def test_functions_equal_the_full_call():
    mha = MultiHeadAttention(N, D, N * H, num_kv_heads=K, rngs=nnx.Rngs(0))
    x = normal(7, (B, 5, D))
    cache = kv_cache.init_cache(mha, B, S)
    outputs = []
    for t in range(5):
        out, cache = kv_cache.append_and_attend(mha, x[:, t:t + 1], cache, t)
        outputs.append(out)
    np.testing.assert_allclose(jnp.concatenate(outputs, 1), mha(x, is_causal=True), atol=1e-5)
    memory = normal(8, (B, S, D))
    np.testing.assert_allclose(
        kv_cache.attend_to_cache(mha, x, kv_cache.project_kv(mha, memory)), mha(x, memory),
        atol=1e-5,
    )


def scale_queries_by_ten(query, key, value, query_positions, key_positions):
    """A process_heads hook whose effect a QK-norm applied after it would undo."""
    return 10.0 * query, key, value


def test_every_switch_is_honoured_position_by_position():
    """QK-norm, soft-cap, sink logits and the output gate (steps 1a, 3a, 6a), with a window
    and grouped heads: decoding with the cache equals the full call, and attending to a
    projected memory equals cross-attention."""
    mha = MultiHeadAttention(N, D, N * H, num_kv_heads=K, qk_norm="rms", soft_cap=2.0,
                             sink_logits=True, output_gate=True, local_window_size=(3, 0),
                             process_heads=scale_queries_by_ten, rngs=nnx.Rngs(1))
    mha.sink_logits[...] = normal(9, (N,))
    mha.qk_norm.key_scale[...] = 1 + normal(10, (H,))
    x = normal(11, (B, 5, D))
    cache = kv_cache.init_cache(mha, B, S)
    step = nnx.jit(kv_cache.append_and_attend)
    outputs = []
    for t in range(5):
        out, cache = step(mha, x[:, t:t + 1], cache, jnp.int32(t))
        outputs.append(out)
    np.testing.assert_allclose(jnp.concatenate(outputs, 1), mha(x, is_causal=True), atol=1e-5)
    memory = normal(12, (B, S, D))
    mask = (jnp.arange(S)[None] < jnp.array([[4], [7]]))[:, None, None]  # [B, 1, 1, S]
    np.testing.assert_allclose(
        kv_cache.attend_to_cache(mha, x, kv_cache.project_kv(mha, memory), mask=mask),
        mha(x, memory, mask=mask), atol=1e-5,
    )
