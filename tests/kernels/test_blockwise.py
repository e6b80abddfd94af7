"""Rung 3, blockwise_attention: online softmax over key blocks equals the reference."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention import dot_product_attention, padding_mask
from attention.kernels import blockwise_attention, blockwise_attention_reference

from ._inputs import (
    VARIANT_CASES,
    VARIANT_PARAMS,
    check_parity_with_jax_nn,
    grouped_qkv,
    random_qkv,
)

# The online softmax sums the same terms in another order and rescales partial sums by
# exp(m_old - m_new): a few float32 ulp on values of size ~1.
ATOL_F32 = 1e-5
# Gradients are differentiated through the scan: a few more roundings.
ATOL_GRAD = 1e-4
# bfloat16 inputs, float32 accumulation, one rounding of the output to bfloat16 (~4e-3).
ATOL_BF16 = 2e-2

B, T, S, N, H, HV = 2, 7, 11, 3, 5, 6


def _qkv(seed=0, dtype=jnp.float32):
    return random_qkv(B, T, S, N, H, HV, seed=seed, dtype=dtype)


def _mask(name):
    if name == "padding":
        return padding_mask(jnp.array([4, 11]), max_len=S)
    if name == "random":
        random = jax.random.bernoulli(jax.random.key(7), 0.6, (B, N, T, S))
        return random.at[1, 0, 3].set(False)  # one fully masked row
    return None


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("mask_name", ["none", "padding", "random"])
@pytest.mark.parametrize("block_k", [4, 64])  # 4: S=11 is not a multiple; 64 > S
def test_matches_reference(is_causal, mask_name, block_k):
    q, k, v = _qkv()
    mask = _mask(mask_name)
    got = blockwise_attention(q, k, v, mask=mask, is_causal=is_causal, block_k=block_k)
    want = dot_product_attention(q, k, v, mask=mask, is_causal=is_causal)
    assert got.shape == (B, T, N, HV)
    assert jnp.allclose(got, want, atol=ATOL_F32)
    twin = blockwise_attention_reference(q, k, v, mask=mask, is_causal=is_causal, block_k=block_k)
    assert jnp.allclose(twin, want, atol=ATOL_F32)


def test_jit_bias_and_unbatched():
    q, k, v = _qkv(1)
    bias = jax.random.normal(jax.random.key(2), (B, 1, T, S))
    f = jax.jit(blockwise_attention, static_argnames=("is_causal", "block_k"))
    got = f(q, k, v, bias, is_causal=True, block_k=4)
    assert jnp.allclose(got, dot_product_attention(q, k, v, bias, is_causal=True), atol=ATOL_F32)
    got = blockwise_attention(q[1], k[1], v[1], mask=jnp.ones((S,), bool), block_k=4)
    assert jnp.allclose(got, dot_product_attention(q[1], k[1], v[1]), atol=ATOL_F32)


@pytest.mark.parametrize("is_causal", [False, True])
def test_gradients_match_reference(is_causal):
    q, k, v = _qkv(3)
    mask = _mask("random")

    def loss(f, q, k, v, **kw):
        return jnp.sum(jnp.sin(f(q, k, v, mask=mask, is_causal=is_causal, **kw)))

    got = jax.grad(lambda *a: loss(blockwise_attention, *a, block_k=4), argnums=(0, 1, 2))(
        q, k, v
    )
    want = jax.grad(lambda *a: loss(dot_product_attention, *a), argnums=(0, 1, 2))(q, k, v)
    for g, w in zip(got, want, strict=True):
        assert jnp.allclose(g, w, atol=ATOL_GRAD)


def test_fully_masked_rows_are_zero_with_finite_gradients():
    q, k, v = _qkv(4)
    mask = jnp.zeros((B, 1, 1, S), bool)
    assert bool(jnp.all(blockwise_attention(q, k, v, mask=mask, block_k=4) == 0))
    grads = jax.grad(
        lambda q: blockwise_attention(q, k, v, mask=mask, block_k=4).sum()
    )(q)
    assert bool(jnp.all(grads == 0))


def test_bfloat16():
    q, k, v = _qkv(5, jnp.bfloat16)
    got = blockwise_attention(q, k, v, block_k=4)
    want = dot_product_attention(*(x.astype(jnp.float32) for x in (q, k, v)))
    assert got.dtype == jnp.bfloat16
    assert jnp.allclose(got.astype(jnp.float32), want, atol=ATOL_BF16)


@pytest.mark.outside_annotations
@pytest.mark.parametrize("block_k, error", [
    (0, ValueError), (-4, ValueError), (2.5, TypeError), (True, TypeError), ("8", TypeError),
])
def test_bad_block_size(block_k, error):
    q, k, v = _qkv()
    with pytest.raises(error, match=f"block_k must be a positive int, got {block_k!r}"):
        blockwise_attention(q, k, v, block_k=block_k)


@pytest.mark.outside_annotations
def test_numpy_int_block_size():
    q, k, v = _qkv()
    np.testing.assert_array_equal(blockwise_attention(q, k, v, block_k=np.int64(4)),
                                  blockwise_attention(q, k, v, block_k=4))


@pytest.mark.outside_annotations
def test_bad_inputs_raise_like_the_reference():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="key and value must agree"):
        blockwise_attention(q, k, v[:, :5])
    with pytest.raises(ValueError, match="head count K .* must divide query.s head count N"):
        blockwise_attention(q[:, :, :2], k, v)


@pytest.mark.parametrize("case, K", VARIANT_PARAMS)
def test_grouped_query_lengths_windows_match_jax_nn(case, K):
    """block_k=4 does not divide S=9; N = 6 query heads for K key/value heads."""
    q, k, v = grouped_qkv(2, 7, 9, 6, K, 5, seed=K)
    f = partial(blockwise_attention, block_k=4)
    check_parity_with_jax_nn(f, q, k, v, atol=ATOL_F32, atol_grad=ATOL_GRAD,
                             **VARIANT_CASES[case])


def test_grouped_query_mask_bias_and_twin():
    q, k, v = grouped_qkv(2, 7, 9, 6, 3, 5, seed=2)
    mask = jax.random.bernoulli(jax.random.key(4), 0.8, (2, 6, 7, 9)).at[..., 0].set(True)
    bias = jax.random.normal(jax.random.key(5), (1, 6, 1, 9))
    kw = dict(is_causal=True, local_window_size=(4, 1), query_seq_lengths=jnp.array([7, 5]))
    want = jax.nn.dot_product_attention(q, k, v, bias, mask, **kw)
    assert jnp.allclose(blockwise_attention(q, k, v, bias, mask, **kw, block_k=4), want,
                        atol=ATOL_F32)
    want = jax.nn.dot_product_attention(q, k, v, None, mask, **kw)
    twin = blockwise_attention_reference(q, k, v, mask=mask, **kw, block_k=4)
    assert jnp.allclose(twin, want, atol=ATOL_F32)


@pytest.mark.outside_annotations
def test_bad_variant_arguments():
    q, k, v = grouped_qkv(2, 7, 9, 6, 3, 5)
    with pytest.raises(ValueError, match=r"must divide query's head count N.*\(K=4\)"):
        blockwise_attention(q, k[:, :, :1].repeat(4, 2), v[:, :, :1].repeat(4, 2))
    with pytest.raises(ValueError, match="has a negative side"):
        blockwise_attention(q, k, v, local_window_size=(-1, 0))
    with pytest.raises(ValueError, match=r"query_lengths must have shape \[2\]"):
        blockwise_attention(q, k, v, query_lengths=jnp.array(3))
