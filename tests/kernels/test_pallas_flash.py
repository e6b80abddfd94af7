"""Rung 5, pallas_flash_attention, run by Pallas' interpreter on CPU (small sizes: it is slow)."""

from functools import partial

import jax
import jax.numpy as jnp
import pytest

from attention import dot_product_attention
from attention.kernels import (
    flash_attention_reference,
    pallas_flash_attention,
    pallas_flash_attention_reference,
    pallas_supported,
)

from ._inputs import check_parity_with_jax_nn, grouped_qkv

# The kernel is the flash algorithm: a few float32 ulp from the reference.
ATOL_F32 = 1e-5
# Gradients: rung 4's recomputing backward from this kernel's log-sum-exp.
ATOL_GRAD = 1e-4
# bfloat16 inputs, float32 accumulation, one rounding of the output (~4e-3).
ATOL_BF16 = 2e-2

B, T, S, N, H = 2, 13, 19, 2, 8
BLOCKS = dict(block_q=8, block_k=8, interpret=True)  # T, S are not multiples of 8


def _qkv(seed=0, dtype=jnp.float32):
    kq, kk, kv = jax.random.split(jax.random.key(seed), 3)
    return (
        jax.random.normal(kq, (B, T, N, H), dtype),
        jax.random.normal(kk, (B, S, N, H), dtype),
        jax.random.normal(kv, (B, S, N, H), dtype),
    )


@pytest.mark.parametrize("is_causal", [False, True])
def test_matches_reference_with_lengths(is_causal):
    q, k, v = _qkv()
    kw = dict(is_causal=is_causal, key_lengths=jnp.array([19, 4]),
              query_lengths=jnp.array([13, 6]))
    f = jax.jit(lambda q, k, v: pallas_flash_attention(q, k, v, **kw, **BLOCKS))
    assert jnp.allclose(f(q, k, v), flash_attention_reference(q, k, v, **kw), atol=ATOL_F32)

    def loss(f, q, k, v):
        return jnp.sum(jnp.sin(f(q, k, v)))

    grads = jax.jit(jax.grad(lambda *a: loss(f, *a), (0, 1, 2)))(q, k, v)
    wants = jax.grad(
        lambda *a: loss(lambda *b: flash_attention_reference(*b, **kw), *a), (0, 1, 2)
    )(q, k, v)
    for g, w in zip(grads, wants, strict=True):
        assert jnp.allclose(g, w, atol=ATOL_GRAD)


def test_unbatched_bfloat16_equals_twin():
    q, k, v = _qkv(1, jnp.bfloat16)
    got = pallas_flash_attention(q[0], k[0], v[0], is_causal=True, **BLOCKS)
    want = dot_product_attention(*(x[0].astype(jnp.float32) for x in (q, k, v)), is_causal=True)
    assert got.dtype == jnp.bfloat16 and got.shape == (T, N, H)
    assert jnp.allclose(got.astype(jnp.float32), want, atol=ATOL_BF16)
    twin = pallas_flash_attention_reference(q[0], k[0], v[0], is_causal=True)
    assert jnp.allclose(got.astype(jnp.float32), twin.astype(jnp.float32), atol=ATOL_BF16)


def test_not_supported_natively_on_cpu():
    assert pallas_supported() == (jax.default_backend() in ("gpu", "tpu"))


@pytest.mark.outside_annotations
def test_mask_is_refused_with_the_form_it_takes():
    q, k, v = _qkv()
    with pytest.raises(ValueError,
                       match="takes no boolean mask=; give key padding as key_value_seq_lengths"):
        pallas_flash_attention(q, k, v, mask=jnp.ones((T, S), bool), **BLOCKS)


@pytest.mark.parametrize("block_q, message", [
    (12, "block_q must be a multiple of 8 on this backend, got 12; try 8"),
    (0, "block_q must be a positive int, got 0"),
    (-8, "block_q must be a positive int, got -8"),
])
def test_block_sizes_must_tile_the_hardware(block_q, message):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=message):
        pallas_flash_attention(q, k, v, block_q=block_q, block_k=8, interpret=True)


@pytest.mark.outside_annotations
def test_block_sizes_that_are_not_ints_are_type_errors():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match=r"block_k must be a positive int, got 8.0 \(float\)"):
        pallas_flash_attention(q, k, v, block_q=8, block_k=8.0, interpret=True)


# Tiny sizes: the interpreter is slow. T=5, S=11 with blocks of 8: the query rows (5 G) and
# the keys are not multiples of the block.
@pytest.mark.parametrize("K, kwargs", [
    (6, {"local_window_size": (2, 0), "is_causal": True,
         "query_seq_lengths": jnp.array([5, 3]), "key_value_seq_lengths": jnp.array([11, 4])}),
    (3, {"local_window_size": (1, 6), "key_lengths": jnp.array([9, 11])}),
    (1, {"local_window_size": 3, "is_causal": True}),
])
def test_grouped_query_lengths_windows_match_jax_nn(K, kwargs):
    q, k, v = grouped_qkv(2, 5, 11, 6, K, 8, seed=K)
    f = partial(pallas_flash_attention, block_q=8, block_k=8, interpret=True)
    check_parity_with_jax_nn(f, q, k, v, atol=ATOL_F32, atol_grad=ATOL_GRAD, **kwargs)


@pytest.mark.outside_annotations
def test_bad_variant_arguments():
    q, k, v = grouped_qkv(2, 5, 11, 6, 3, 8)
    with pytest.raises(ValueError, match=r"must divide query's head count N.*\(K=4\)"):
        pallas_flash_attention(q, jnp.ones((2, 11, 4, 8)), jnp.ones((2, 11, 4, 8)), **BLOCKS)
    with pytest.raises(ValueError, match="has a negative side"):
        pallas_flash_attention(q, k, v, local_window_size=(0, -2), **BLOCKS)
    with pytest.raises(ValueError, match=r"key_lengths must have shape \[2\]"):
        pallas_flash_attention(q, k, v, key_lengths=jnp.array([1, 2, 3]), **BLOCKS)
