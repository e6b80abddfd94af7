"""get_attention_fn: every name gives a drop-in replacement for dot_product_attention."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from attention import MultiHeadAttention, dot_product_attention, padding_mask
from attention.kernels import IMPLEMENTATIONS, get_attention_fn

# Every rung equals the reference to a few float32 ulp (see each rung's tests).
ATOL_F32 = 1e-5

B, T, N, H = 2, 9, 2, 8


def _qkv():
    kq, kk, kv = jax.random.split(jax.random.key(0), 3)
    return tuple(jax.random.normal(key, (B, T, N, H)) for key in (kq, kk, kv))


@pytest.mark.parametrize("name", ["reference", "fused", "blockwise", "flash", "auto"])
def test_every_name_matches_reference(name):
    q, k, v = _qkv()
    options = {"block_k": 4} if name in ("blockwise", "flash") else {}
    f = get_attention_fn(name, **options)
    got = f(q, k, v, is_causal=True)
    assert jnp.allclose(got, dot_product_attention(q, k, v, is_causal=True), atol=ATOL_F32)


def test_pallas_by_name():
    q, k, v = _qkv()
    f = get_attention_fn("pallas", block_q=8, block_k=8, interpret=True)
    assert jnp.allclose(f(q, k, v), dot_product_attention(q, k, v), atol=ATOL_F32)


def test_auto_takes_bias_and_masks():
    q, k, v = _qkv()
    bias = jax.random.normal(jax.random.key(1), (T, T))
    mask = padding_mask(jnp.array([3, 9]), max_len=T)
    auto = get_attention_fn("auto")
    assert jnp.allclose(auto(q, k, v, bias), dot_product_attention(q, k, v, bias), atol=ATOL_F32)
    want = dot_product_attention(q, k, v, mask=mask)
    assert jnp.allclose(auto(q, k, v, mask=mask), want, atol=ATOL_F32)


def test_drop_in_for_multi_head_attention():
    x = jax.random.normal(jax.random.key(2), (B, T, 16))
    mask = padding_mask(jnp.array([5, 9]), max_len=T)
    plain = MultiHeadAttention(num_heads=2, in_features=16, rngs=nnx.Rngs(0))
    fast = MultiHeadAttention(
        num_heads=2, in_features=16, rngs=nnx.Rngs(0), attention_fn=get_attention_fn("flash")
    )
    want = plain(x, mask=mask, is_causal=True)
    assert jnp.allclose(fast(x, mask=mask, is_causal=True), want, atol=ATOL_F32)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown attention implementation 'flashy'; choose one of"
                       " 'reference', 'fused', 'blockwise', 'flash', 'pallas', 'auto'"):
        get_attention_fn("flashy")
    assert set(IMPLEMENTATIONS) == {"reference", "fused", "blockwise", "flash", "pallas"}


@pytest.mark.parametrize("name", ["fused", "blockwise", "flash", "pallas", "auto"])
def test_every_kernel_name_takes_grouped_query_lengths_and_windows(name):
    kq, kk, kv = jax.random.split(jax.random.key(3), 3)
    q = jax.random.normal(kq, (B, T, 4, H))
    k, v = (jax.random.normal(x, (B, 7, 2, H)) for x in (kk, kv))
    options = {"pallas": dict(block_q=8, block_k=8, interpret=True)}.get(name, {})
    kw = dict(is_causal=True, local_window_size=(3, 0), query_seq_lengths=jnp.array([9, 6]),
              key_value_seq_lengths=jnp.array([7, 5]))
    got = get_attention_fn(name, **options)(q, k, v, **kw)
    assert jnp.allclose(got, jax.nn.dot_product_attention(q, k, v, **kw), atol=ATOL_F32)


def test_auto_with_bias_takes_the_variants():
    kq, kk = jax.random.split(jax.random.key(4))
    q = jax.random.normal(kq, (B, T, 4, H))
    k = jax.random.normal(kk, (B, T, 1, H))
    bias = jax.random.normal(jax.random.key(5), (4, T, T))
    kw = dict(local_window_size=2, key_value_seq_lengths=jnp.array([9, 7]))
    got = get_attention_fn("auto", block_q=8)(q, k, k, bias, **kw)
    assert jnp.allclose(got, jax.nn.dot_product_attention(q, k, k, bias, **kw), atol=ATOL_F32)


def test_auto_takes_soft_cap_and_sink_logits_through_flash():
    q, k, v = _qkv()
    sink = jax.random.normal(jax.random.key(2), (N,))
    kw = dict(is_causal=True, soft_cap=0.5, sink_logits=sink)
    got = get_attention_fn("auto", block_q=4, block_k=4)(q, k, v, **kw)
    assert jnp.allclose(got, dot_product_attention(q, k, v, **kw), atol=ATOL_F32)


@pytest.mark.outside_annotations
@pytest.mark.parametrize("name, kernel", [
    ("fused", "fused_attention"), ("blockwise", "blockwise_attention"),
    ("pallas", "pallas_flash_attention"),
])
@pytest.mark.parametrize("option", ["soft_cap", "sink_logits"])
def test_kernels_without_soft_cap_or_sinks_name_those_that_have_them(name, kernel, option):
    q, k, v = _qkv()
    value = 50.0 if option == "soft_cap" else jnp.zeros(N)
    with pytest.raises(ValueError, match=rf"{kernel} takes no {option}=; use one of "
                                         r"dot_product_attention, flash_attention"):
        get_attention_fn(name)(q, k, v, **{option: value})


@pytest.mark.outside_annotations
def test_blockwise_reference_refuses_them_too():
    from attention.kernels import blockwise_attention_reference

    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"blockwise_attention_reference takes no soft_cap= or "
                                         r"sink_logits="):
        blockwise_attention_reference(q, k, v, soft_cap=1.0, sink_logits=jnp.zeros(N))
