"""Rung 2, fused_attention: equal to the reference in values, gradients and errors."""

import jax
import jax.numpy as jnp
import pytest

from attention import dot_product_attention, padding_mask
from attention.kernels import fused_attention

from ._inputs import (
    VARIANT_CASES,
    VARIANT_PARAMS,
    check_parity_with_jax_nn,
    grouped_qkv,
    random_qkv,
)

# Same arithmetic in a different order (scale on q, division after the weighted sum): float32
# rounding differences of a few ulp on values of size ~1.
ATOL_F32 = 1e-5
# Gradients go through two more products, so allow a little more.
ATOL_GRAD = 1e-4
# bfloat16 has 8 bits of mantissa: one rounding of the output is ~4e-3 relative.
ATOL_BF16 = 2e-2

B, T, S, N, H, HV = 2, 7, 11, 3, 5, 6


def _qkv(seed=0, dtype=jnp.float32):
    return random_qkv(B, T, S, N, H, HV, seed=seed, dtype=dtype)


def _masks():
    random = jax.random.bernoulli(jax.random.key(7), 0.6, (B, N, T, S))
    return {
        "none": None,
        "padding": padding_mask(jnp.array([4, 11]), max_len=S),
        "random": random.at[0, 1, 2].set(False),  # one fully masked row
        "TS": jax.random.bernoulli(jax.random.key(8), 0.7, (T, S)),
    }


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("mask_name", ["none", "padding", "random", "TS"])
@pytest.mark.parametrize("jit", [False, True])
def test_matches_reference(is_causal, mask_name, jit):
    q, k, v = _qkv()
    mask = _masks()[mask_name]
    f = jax.jit(fused_attention, static_argnames="is_causal") if jit else fused_attention
    got = f(q, k, v, mask=mask, is_causal=is_causal)
    want = dot_product_attention(q, k, v, mask=mask, is_causal=is_causal)
    assert got.shape == (B, T, N, HV) and got.dtype == v.dtype
    assert jnp.allclose(got, want, atol=ATOL_F32)


@pytest.mark.parametrize("is_causal", [False, True])
def test_gradients_match_reference(is_causal):
    q, k, v = _qkv(1)
    mask = _masks()["random"]

    def loss(f, q, k, v):
        return jnp.sum(jnp.sin(f(q, k, v, mask=mask, is_causal=is_causal)))

    got = jax.grad(lambda *a: loss(fused_attention, *a), argnums=(0, 1, 2))(q, k, v)
    want = jax.grad(lambda *a: loss(dot_product_attention, *a), argnums=(0, 1, 2))(q, k, v)
    for g, w in zip(got, want, strict=True):
        assert bool(jnp.all(jnp.isfinite(g)))
        assert jnp.allclose(g, w, atol=ATOL_GRAD)


def test_bias_and_scale_and_unbatched():
    q, k, v = _qkv(2)
    bias = jax.random.normal(jax.random.key(3), (N, T, S))
    got = fused_attention(q[0], k[0], v[0], bias, scale=0.3, is_causal=True)
    want = dot_product_attention(q[0], k[0], v[0], bias, scale=0.3, is_causal=True)
    assert jnp.allclose(got, want, atol=ATOL_F32)


def test_fully_masked_rows_are_zero():
    q, k, v = _qkv(3)
    out = fused_attention(q, k, v, mask=jnp.zeros((B, 1, 1, S), bool))
    assert bool(jnp.all(out == 0))


def test_bfloat16():
    q, k, v = _qkv(4, jnp.bfloat16)
    got = fused_attention(q, k, v, is_causal=True)
    want = dot_product_attention(
        q.astype(jnp.float32), k.astype(jnp.float32), v.astype(jnp.float32), is_causal=True
    )
    assert got.dtype == jnp.bfloat16
    assert jnp.allclose(got.astype(jnp.float32), want, atol=ATOL_BF16)


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((jnp.ones((2, 3, 1, 4), int),) * 3, {}, TypeError, "query must have a floating dtype"),
        ((jnp.ones((2, 3, 1, 4)), jnp.ones((2, 3, 1, 5)), jnp.ones((2, 3, 1, 4))), {},
         ValueError, "same head dim H"),
        ((jnp.ones((2, 3, 1, 4)),) * 3, {"mask": jnp.ones((2, 3), bool)}, ValueError,
         r"mask of shape \[2, 3\] does not broadcast"),
        ((jnp.ones((2, 3, 1, 4)),) * 3, {"mask": jnp.ones((3, 3))}, TypeError,
         "mask must be boolean"),
        ((jnp.ones((2, 3, 1, 4)),) * 3, {"scale": -1.0}, ValueError, "scale must be positive"),
    ],
)
def test_errors_are_the_references(args, kwargs, error, message):
    with pytest.raises(error, match=message) as ours:
        fused_attention(*args, **kwargs)
    with pytest.raises(error) as theirs:
        dot_product_attention(*args, **kwargs)
    assert str(ours.value) == str(theirs.value)


# Grouped-query heads, sequence lengths and local windows: parity with jax.nn (outputs and
# gradients), N = 6 query heads against K = 6, 3 (N/2) and 1 key/value heads.
@pytest.mark.parametrize("case, K", VARIANT_PARAMS)
def test_grouped_query_lengths_windows_match_jax_nn(case, K):
    q, k, v = grouped_qkv(2, 7, 9, 6, K, 5, seed=K)
    check_parity_with_jax_nn(fused_attention, q, k, v, atol=ATOL_F32, atol_grad=ATOL_GRAD,
                             **VARIANT_CASES[case])


def test_grouped_query_with_mask_bias_unbatched():
    q, k, v = grouped_qkv(1, 7, 9, 6, 2, 5, seed=3)
    mask = jax.random.bernoulli(jax.random.key(4), 0.8, (6, 7, 9)).at[:, :, 0].set(True)
    bias = jax.random.normal(jax.random.key(5), (6, 7, 9))
    kw = dict(is_causal=True, local_window_size=(4, 0))
    got = fused_attention(q[0], k[0], v[0], bias, mask, **kw,
                          query_seq_lengths=jnp.array(6), key_value_seq_lengths=jnp.array(8))
    want = jax.nn.dot_product_attention(q, k, v, bias[None], mask[None], **kw,
                                        query_seq_lengths=jnp.array([6]),
                                        key_value_seq_lengths=jnp.array([8]))[0]
    assert jnp.allclose(got, want, atol=ATOL_F32)


@pytest.mark.outside_annotations
@pytest.mark.parametrize("kwargs, error, message", [
    ({"local_window_size": 1.5}, TypeError, "local_window_size must be None, a non-negative"),
    ({"local_window_size": (2, -1)}, ValueError, "has a negative side"),
    ({"query_seq_lengths": jnp.ones((2, 1), int)}, ValueError,
     r"query_seq_lengths must have shape \[2\]"),
    ({"key_value_seq_lengths": jnp.array([3, 12])}, ValueError,
     r"key_value_seq_lengths must lie in 0..9"),
    ({"key_lengths": jnp.array([3, 4]), "key_value_seq_lengths": jnp.array([3, 4])},
     ValueError, "give key_value_seq_lengths= or its old name key_lengths=, not both"),
])
def test_bad_variant_arguments(kwargs, error, message):
    q, k, v = grouped_qkv(2, 7, 9, 6, 3, 5)
    with pytest.raises(error, match=message):
        fused_attention(q, k, v, **kwargs)


@pytest.mark.outside_annotations
def test_key_heads_must_divide_query_heads():
    q, k, v = grouped_qkv(2, 7, 9, 6, 4, 5)
    with pytest.raises(ValueError, match=r"must divide query's head count N.*\(K=4\)"):
        fused_attention(q, k, v)
