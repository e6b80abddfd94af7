"""Decoder layer and stack; the key/value cache of MultiHeadAttention; step == full call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.mechanism import kv_cache
from attention.mechanism.kv_cache import KVCache
from attention.mechanism.masks import padding_mask
from attention.mechanism.multi_head import MultiHeadAttention
from attention.model.config import TransformerConfig
from attention.model.decoder import Decoder, DecoderLayer, target_mask
from attention.model.embeddings import TokenEmbedding

CFG = TransformerConfig(
    src_vocab_size=13, tgt_vocab_size=13, d_model=12, num_heads=3, d_ff=20, num_layers=2,
    max_len=16,
)


def test_target_mask_is_causal_and_hides_padding():
    tokens = jnp.array([[1, 4, 5, 0], [1, 6, 0, 0]])
    mask = np.asarray(target_mask(tokens, pad_id=0))
    assert mask.shape == (2, 1, 4, 4)
    for b in range(2):
        for t in range(4):
            for s in range(4):
                assert mask[b, 0, t, s] == (s <= t and int(tokens[b, s]) != 0)


def test_self_attention_cache_equals_the_full_causal_call():
    mha = MultiHeadAttention(num_heads=3, in_features=12, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 5, 12))
    full = mha(x, is_causal=True)
    cache = kv_cache.init_cache(mha, 2, 7)
    steps = []
    for t in range(5):
        out, cache = kv_cache.append_and_attend(mha, x[:, t:t + 1], cache, t)
        steps.append(out)
    np.testing.assert_allclose(jnp.concatenate(steps, 1), full, rtol=1e-5, atol=1e-5)
    # the cache holds the projected keys of the 5 positions, zeros after
    np.testing.assert_allclose(cache.key[:, :5].reshape(2, 5, 12), mha.key(x), rtol=1e-6)
    assert np.all(cache.key[:, 5:] == 0)


def test_self_attention_cache_several_positions_and_traced_index():
    mha = MultiHeadAttention(num_heads=3, in_features=12, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 5, 12))
    first, cache = kv_cache.append_and_attend(mha, x[:, :2], kv_cache.init_cache(mha, 2, 5), 0)

    @jax.jit
    def rest(cache, index):
        return kv_cache.append_and_attend(mha, x[:, 2:], cache, index)

    second, _ = rest(cache, jnp.int32(2))
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), mha(x, is_causal=True),
                               rtol=1e-5, atol=1e-5)


def test_cross_attention_cache_equals_the_call():
    mha = MultiHeadAttention(num_heads=3, in_features=12, in_kv_features=6, rngs=nnx.Rngs(0))
    q = jax.random.normal(jax.random.key(1), (2, 3, 12))
    memory = jax.random.normal(jax.random.key(2), (2, 7, 6))
    mask = padding_mask(jnp.array([7, 4]), max_len=7)
    kv = kv_cache.project_kv(mha, memory)
    assert kv.key.shape == (2, 7, 3, 4)
    np.testing.assert_allclose(kv_cache.attend_to_cache(mha, q, kv, mask=mask),
                               mha(q, memory, mask=mask), rtol=1e-5, atol=1e-5)


@pytest.mark.outside_annotations
def test_cache_errors():
    mha = MultiHeadAttention(num_heads=3, in_features=12, rngs=nnx.Rngs(0))
    x = jnp.ones((2, 1, 12))
    with pytest.raises(ValueError, match=r"holds S=3 positions but index=3 plus 1 new"):
        kv_cache.append_and_attend(mha, x, kv_cache.init_cache(mha, 2, 3), 3)
    with pytest.raises(ValueError, match=r"cache key/value must be \[B, S, K, H\] = \[2, 3, 3, 4"):
        kv_cache.append_and_attend(mha, x, kv_cache.init_cache(mha, 5, 3), 0)
    with pytest.raises(TypeError, match="cache must be a KVCache"):
        kv_cache.attend_to_cache(mha, x, (jnp.ones((2, 3, 3, 4)),) * 2 + (0,))
    with pytest.raises(ValueError, match="max_len must be a positive int, got 0"):
        kv_cache.init_cache(mha, 2, 0)
    cross = MultiHeadAttention(num_heads=3, in_features=12, in_kv_features=6, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="needs in_kv_features == in_features"):
        kv_cache.append_and_attend(cross, x, kv_cache.init_cache(cross, 2, 3), 0)
    with pytest.raises(ValueError, match="inputs_kv has width 12 .* in_kv_features=6"):
        kv_cache.project_kv(cross, jnp.ones((2, 3, 12)))
    assert isinstance(kv_cache.init_cache(mha, 1, 2), KVCache)


# RoPE and ALiBi act inside self-attention, with grouped-query (K=2 of N=4) and multi-query
# (K=1) heads: D=24, N=4, H=6, K=2 keep every axis distinct.
GQA = dict(d_model=24, num_heads=4)


@pytest.mark.parametrize("changes", [
    dict(norm_first=False),
    dict(norm_first=True),
    dict(GQA, positional="rope", num_kv_heads=2),
    dict(GQA, positional="alibi", num_kv_heads=1, norm_first=True),
], ids=["post_ln", "pre_ln", "rope_gqa", "alibi_mqa"])
def test_decoder_steps_equal_the_full_decoder(changes):
    cfg = CFG.replace(**changes)
    D = cfg.d_model
    decoder = Decoder(cfg, TokenEmbedding(13, D, rngs=nnx.Rngs(1)), rngs=nnx.Rngs(0))
    memory = jax.random.normal(jax.random.key(3), (2, 6, D))
    src_mask = padding_mask(jnp.array([6, 3]), max_len=6)
    tgt = jnp.array([[1, 5, 7, 9, 4], [1, 3, 3, 8, 11]])
    full = decoder(tgt, memory, src_mask, deterministic=True)

    cache = decoder.init_cache(memory, max_len=8)
    # The caches hold the K key/value heads, not the N query heads.
    K, H = cfg.kv_heads, cfg.head_dim
    for self_kv, cross_kv in zip(cache.self_attention, cache.cross_attention, strict=True):
        assert self_kv.key.shape == self_kv.value.shape == (2, 8, K, H)
        assert cross_kv.key.shape == cross_kv.value.shape == (2, 6, K, H)
    # compiled, as a decoding loop runs it: one program for every step (eagerly, each of its
    # operations compiles apart, again for each position)
    step = nnx.jit(lambda decoder, tokens, cache, t: decoder.step(tokens, cache, t, src_mask))
    hidden = []
    for t in range(5):
        h, cache = step(decoder, tgt[:, t], cache, jnp.int32(t))
        hidden.append(h)
    np.testing.assert_allclose(jnp.stack(hidden, 1), full, rtol=1e-4, atol=1e-5)


def test_decoder_layer_ignores_source_padding():
    layer = DecoderLayer(CFG, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 4, 12))
    memory = jax.random.normal(jax.random.key(2), (2, 5, 12))
    junk = 100 * jax.random.normal(jax.random.key(3), (2, 3, 12))
    tgt_mask = target_mask(jnp.ones((2, 4), jnp.int32), pad_id=0)
    short = layer(x, memory, None, tgt_mask, deterministic=True)
    long_memory = jnp.concatenate([memory, junk], 1)
    long = layer(x, long_memory, padding_mask(jnp.array([5, 5]), max_len=8), tgt_mask,
                 deterministic=True)
    np.testing.assert_allclose(long, short, rtol=1e-5, atol=1e-5)


def test_target_mask_annotation():
    from beartype import beartype
    from jaxtyping import TypeCheckError, jaxtyped

    checked = jaxtyped(typechecker=beartype)(target_mask)
    assert checked(jnp.ones((2, 3), jnp.int32), 0).shape == (2, 1, 3, 3)
    with pytest.raises(TypeCheckError):
        checked(jnp.ones((2, 3)), 0)  # float tokens
