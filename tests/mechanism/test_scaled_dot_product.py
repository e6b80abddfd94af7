"""Tests for attention/mechanism/scaled_dot_product.py: single_head_attention and
dot_product_attention.

References:
* ``jax.nn.dot_product_attention`` (outputs and gradients) where it applies: same head dim for
  values, and only query rows with at least one allowed key (for a fully masked row jax.nn
  averages every value, we return zeros by design; that row is tested on its own);
* a plain NumPy float64 implementation of softmax(Q K^T / sqrt(H) + bias, masked) V for what
  jax.nn cannot do (Hv != H);
* central finite differences in float64 (``jax.test_util.check_grads``).

Sizes are distinct on every axis (B=2, T=3, S=5, N=7, H=11, Hv=13) so a swapped axis fails.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from attention import dot_product_attention, single_head_attention

B, T, S, N, H, HV = 2, 3, 5, 7, 11, 13

JIT = pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])


def maybe_jit(fn, jit):
    return jax.jit(fn) if jit else fn


# Test data comes from NumPy: jax.random would compile a generator for every new shape.
def normal(seed, shape, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def qkv(seed=0, *, t=T, s=S, hv=H, batch=(B,)):
    return (
        normal(seed, (*batch, t, N, H)),
        normal(seed + 1, (*batch, s, N, H)),
        normal(seed + 2, (*batch, s, N, hv)),
    )


def random_mask(seed, shape, p=0.6):
    return jnp.asarray(np.random.default_rng(seed).random(shape) < p)


def attention_numpy(query, key, value, bias=None, mask=None, *, scale=None, is_causal=False):
    """softmax(scale * Q K^T + bias, where mask) V in float64 NumPy; fully masked rows -> 0."""
    q, k, v = (np.asarray(a, np.float64) for a in (query, key, value))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = np.einsum("...tnh,...snh->...nts", q, k) * scale
    if bias is not None:
        scores = scores + np.asarray(bias, np.float64)
    allowed = np.ones(scores.shape, bool)
    if mask is not None:
        allowed &= np.asarray(mask)
    if is_causal:
        t, s = scores.shape[-2:]
        allowed &= np.tril(np.ones((t, s), bool))
    scores = np.where(allowed, scores, -np.inf)
    row_max = scores.max(-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    e = np.exp(scores - row_max)
    total = e.sum(-1, keepdims=True)
    weights = e / np.where(total > 0, total, 1.0)
    return np.einsum("...nts,...snh->...tnh", weights, v)


def rows_with_a_key(mask, is_causal, shape_BNTS):
    """[B, T, N, 1] True where query (b, t) in head n may attend at least one key."""
    allowed = np.broadcast_to(np.asarray(mask) if mask is not None else True, shape_BNTS)
    if is_causal:
        allowed = allowed & np.tril(np.ones(shape_BNTS[-2:], bool))
    return np.transpose(allowed.any(-1), (0, 2, 1))[..., None]


# ------------------------------------------------------------------- parity with jax.nn


# Shapes of masks and biases; "T" is replaced by the query length of the test.
CASES = {
    "plain": dict(),
    "causal": dict(is_causal=True),
    "mask_BNTS": dict(mask=(B, N, "T", S)),
    "mask_B11S": dict(mask=(B, 1, 1, S)),
    "bias": dict(bias=(B, N, "T", S)),
    "bias_mask_causal_scale": dict(
        bias=(1, N, 1, S), mask=(B, 1, "T", S), is_causal=True, scale=0.3
    ),
}


def build_case(case, seed=10, t=T):
    kwargs = dict(CASES[case])
    for name, make in (("mask", random_mask), ("bias", normal)):
        if name in kwargs:
            kwargs[name] = make(seed, tuple(t if d == "T" else d for d in kwargs[name]))
    return kwargs


# Every case under jit with T < S, the richest ones also eagerly and with T > S.
PARITY = [(case, T, True) for case in CASES] + [
    ("plain", T, False),
    ("bias_mask_causal_scale", T, False),
    ("causal", 7, True),
    ("mask_BNTS", 7, True),
    ("bias_mask_causal_scale", 7, True),
]


@pytest.mark.parametrize(
    "case, t, jit", PARITY, ids=[f"{c}-T{t}-{'jit' if j else 'eager'}" for c, t, j in PARITY]
)
def test_output_and_grads_match_jax_nn(case, t, jit):
    query, key, value = qkv(t=t)
    kwargs = build_case(case, t=t)
    valid = rows_with_a_key(kwargs.get("mask"), kwargs.get("is_causal", False), (B, N, t, S))
    # Rows in which every key is masked differ by design (zeros here, an average in jax.nn):
    # they get a zero cotangent and are tested on their own below.
    cotangent = normal(99, (B, t, N, H)) * valid
    bias = kwargs.pop("bias", None)

    def output_and_grads(attention_fn, q, k, v, bias):
        out, vjp = jax.vjp(lambda *a: attention_fn(*a, **kwargs), q, k, v, bias)
        return out, vjp(cotangent)

    ours = maybe_jit(functools.partial(output_and_grads, dot_product_attention), jit)
    ref = jax.jit(functools.partial(output_and_grads, jax.nn.dot_product_attention))
    out, grads = ours(query, key, value, bias)
    out_ref, grads_ref = ref(query, key, value, bias)
    np.testing.assert_allclose(out * valid, out_ref * valid, atol=2e-6, rtol=1e-5)
    for name, g, g_ref in zip(["query", "key", "value", "bias"], grads, grads_ref, strict=True):
        if g is not None:
            np.testing.assert_allclose(g, g_ref, atol=1e-5, rtol=1e-4, err_msg=name)


def test_causal_with_t_not_s_is_top_left_aligned_like_jax_nn():
    query, key, value = qkv(t=S + 2)
    # Row t < S sees keys 0..t; rows t >= S see every key: top-left alignment.
    out = dot_product_attention(query, key, value, is_causal=True)
    np.testing.assert_allclose(
        out, jax.nn.dot_product_attention(query, key, value, is_causal=True), atol=2e-6
    )
    np.testing.assert_allclose(out, attention_numpy(query, key, value, is_causal=True), atol=2e-6)


# --------------------------------------------------------- NumPy float64 reference, Hv != H


@JIT
@pytest.mark.parametrize("case", list(CASES))
def test_matches_numpy_reference_with_value_dim_different_from_key_dim(case, jit):
    query, key, value = qkv(seed=3, hv=HV)
    kwargs = build_case(case, seed=4)
    static = {k: kwargs.pop(k) for k in ("is_causal", "scale") if k in kwargs}
    fn = maybe_jit(functools.partial(dot_product_attention, **static), jit)
    out = fn(query, key, value, **kwargs)
    assert out.shape == (B, T, N, HV) and out.dtype == jnp.float32
    np.testing.assert_allclose(
        out, attention_numpy(query, key, value, **kwargs, **static), atol=2e-6, rtol=1e-5
    )


def test_unbatched_equals_batched_with_b_equal_1():
    query, key, value = qkv(seed=5, hv=HV, batch=())
    mask = random_mask(6, (N, T, S))
    bias = normal(7, (T, S))
    unbatched = dot_product_attention(query, key, value, bias, mask, is_causal=True)
    batched = dot_product_attention(
        query[None], key[None], value[None], bias[None, None], mask[None], is_causal=True
    )
    assert unbatched.shape == (T, N, HV)
    np.testing.assert_allclose(unbatched, batched[0], atol=1e-7)
    np.testing.assert_allclose(
        unbatched,
        attention_numpy(query, key, value, bias, mask, is_causal=True),
        atol=2e-6,
    )


def test_finite_differences_in_float64():
    with jax.enable_x64(True):
        query, key, value = (a.astype(jnp.float64) for a in qkv(seed=8, hv=HV))
        bias = normal(9, (N, T, S), jnp.float64)
        mask = random_mask(10, (B, 1, T, S))

        @jax.jit
        def fn(q, k, v, b):
            return dot_product_attention(q, k, v, b, mask, is_causal=True)

        check_grads(fn, (query, key, value, bias), order=1, modes=["rev"], eps=1e-6)


# --------------------------------------------------------------- single-head, vmapped up


@JIT
def test_vmap_of_single_head_equals_dot_product_attention(jit):
    query, key, value = qkv(seed=11, t=S + 2, hv=HV)
    mask_BTS = random_mask(12, (B, S + 2, S))
    # Map over heads (axis 1 of [T, N, H], axis 0 of the mask is not per head) then batch.
    per_head = jax.vmap(single_head_attention, in_axes=(1, 1, 1, None), out_axes=1)
    per_batch = jax.vmap(per_head, in_axes=(0, 0, 0, 0))
    ours = maybe_jit(per_batch, jit)(query, key, value, mask_BTS)
    batched = dot_product_attention(query, key, value, mask=mask_BTS[:, None])
    np.testing.assert_allclose(ours, batched, atol=1e-6, rtol=1e-6)


def test_single_head_matches_numpy_and_masks():
    query, key, value = normal(13, (T, H)), normal(14, (S, H)), normal(15, (S, HV))
    mask = random_mask(16, (T, S)).at[0].set(False)  # row 0: nothing allowed
    out = single_head_attention(query, key, value, mask)
    assert out.shape == (T, HV)
    expected = attention_numpy(query[:, None], key[:, None], value[:, None], mask=mask[None])
    np.testing.assert_allclose(out, expected[:, 0], atol=2e-6)
    np.testing.assert_array_equal(out[0], np.zeros(HV))


# ------------------------------------------------------------------------- masked rows


def test_fully_masked_row_gives_zeros_and_finite_gradients():
    query, key, value = qkv(seed=17)
    mask = random_mask(18, (B, N, T, S), p=0.7).at[1, 2, 0].set(False).at[0, :, 2].set(False)

    def loss(q, k, v):
        return jnp.sum(dot_product_attention(q, k, v, mask=mask) ** 2)

    out = dot_product_attention(query, key, value, mask=mask)
    np.testing.assert_array_equal(out[1, 0, 2], np.zeros(H))
    np.testing.assert_array_equal(out[0, 2], np.zeros((N, H)))
    grads = jax.grad(loss, (0, 1, 2))(query, key, value)
    for g in grads:
        assert bool(jnp.all(jnp.isfinite(g)))
    # A query that sees nothing has no influence on the loss, so its gradient is exactly 0.
    np.testing.assert_array_equal(grads[0][0, 2], np.zeros((N, H)))


def test_causality_holds_through_gradients():
    query, key, value = qkv(seed=19, t=S)

    def summed_over_b_n_h(k, v):  # [T]: one number per query position
        return jnp.sum(dot_product_attention(query, k, v, is_causal=True), axis=(0, 2, 3))

    # Jacobians [T, B, S, N, H]: how query t's output moves with key/value s.
    jac_key, jac_value = jax.jit(jax.jacrev(summed_over_b_n_h, (0, 1)))(key, value)
    later_TS = np.triu(np.ones((S, S), bool), k=1)  # key s comes after query t
    for jac in (jac_key, jac_value):
        per_ts = np.abs(np.asarray(jac)).sum(axis=(1, 3, 4))  # [T, S]
        np.testing.assert_array_equal(per_ts[later_TS], 0.0)  # no peeking at the future
    # ...while every earlier value does matter.
    assert np.all(np.abs(np.asarray(jac_value)).sum(axis=(1, 3, 4))[~later_TS] > 0)


# --------------------------------------------------------------------------- properties

PROPERTY = settings(max_examples=15, deadline=None)


@PROPERTY
@given(seed=st.integers(0, 2**16), perm=st.permutations(range(T)))
def test_permuting_queries_permutes_outputs(seed, perm):
    query, key, value = qkv(seed=seed, hv=HV)
    perm = np.asarray(perm)
    out = dot_product_attention(query, key, value)
    out_perm = dot_product_attention(query[:, perm], key, value)
    np.testing.assert_allclose(out_perm, out[:, perm], atol=1e-6)


@PROPERTY
@given(seed=st.integers(0, 2**16), perm=st.permutations(range(S)))
def test_permuting_keys_and_values_together_changes_nothing(seed, perm):
    query, key, value = qkv(seed=seed, hv=HV)
    perm = np.asarray(perm)
    out = dot_product_attention(query, key, value)
    np.testing.assert_allclose(
        dot_product_attention(query, key[:, perm], value[:, perm]), out, atol=1e-6
    )


@PROPERTY
@given(seed=st.integers(0, 2**16), deleted=st.integers(0, S - 1))
def test_masking_a_key_equals_deleting_it(seed, deleted):
    query, key, value = qkv(seed=seed, hv=HV)
    mask_S = np.arange(S) != deleted
    masked = dot_product_attention(query, key, value, mask=jnp.asarray(mask_S))
    deleted_out = dot_product_attention(query, key[:, mask_S], value[:, mask_S])
    np.testing.assert_allclose(masked, deleted_out, atol=1e-6)


# ---------------------------------------------------------------------------- numerics


def test_large_logits_stay_finite_and_match_references():
    query, key, value = qkv(seed=20)
    query = query * 1e4

    def loss(q, k, v):
        return jnp.sum(dot_product_attention(q, k, v, is_causal=True) ** 2)

    out = dot_product_attention(query, key, value, is_causal=True)
    assert bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_allclose(out, attention_numpy(query, key, value, is_causal=True), atol=1e-5)
    np.testing.assert_allclose(
        out, jax.nn.dot_product_attention(query, key, value, is_causal=True), atol=1e-5
    )
    for g in jax.grad(loss, (0, 1, 2))(query, key, value):
        assert bool(jnp.all(jnp.isfinite(g)))


# Tolerances for half precision against float32/float64 references on the same (rounded)
# inputs: the weights and the output are each rounded once to the input dtype (bfloat16 keeps
# 8 bits of mantissa, float16 11) on values of size about 1. Measured worst errors: bfloat16
# 8e-3 (outputs) and 3e-3 (gradients, relative to the largest), float16 1.2e-3 and 4e-4.
HALF = pytest.mark.parametrize(
    "dtype, atol, grad_rtol",
    [(jnp.bfloat16, 2e-2, 1e-2), (jnp.float16, 3e-3, 1e-3)],
    ids=["bfloat16", "float16"],
)


@HALF
@pytest.mark.parametrize("logit_scale", [1.0, 1e4], ids=["normal", "large_logits"])
def test_half_precision_is_finite_and_close_to_float32(dtype, atol, grad_rtol, logit_scale):
    query, key, value = (a.astype(dtype) for a in qkv(seed=21))
    # float16 tops out at 65504: with H=11 these scores would overflow a float16 product.
    query = (query * logit_scale).astype(dtype)
    mask = random_mask(22, (B, 1, T, S)).at[0, 0, 1].set(False)
    valid = rows_with_a_key(mask, False, (B, N, T, S))

    def loss(attention_fn, q, k, v):
        out = attention_fn(q, k, v, mask=mask).astype(jnp.float32)
        return jnp.sum(out * valid)  # jax.nn treats the fully masked row differently

    out = dot_product_attention(query, key, value, mask=mask)
    assert out.dtype == dtype
    assert bool(jnp.all(jnp.isfinite(out)))
    upcast = [a.astype(jnp.float32) for a in (query, key, value)]
    np.testing.assert_allclose(
        out.astype(jnp.float32), attention_numpy(*upcast, mask=mask), atol=atol
    )
    grads = jax.grad(functools.partial(loss, dot_product_attention), (0, 1, 2))(
        *[query, key, value]
    )
    grads_ref = jax.grad(functools.partial(loss, jax.nn.dot_product_attention), (0, 1, 2))(*upcast)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert g.dtype == dtype and bool(jnp.all(jnp.isfinite(g)))
        if logit_scale == 1.0:  # with huge logits the softmax is one-hot and its gradient ~0
            largest = float(jnp.max(jnp.abs(g_ref)))
            np.testing.assert_allclose(g.astype(jnp.float32), g_ref, atol=grad_rtol * largest)


# --------------------------------------------------------------------------- bad input


@pytest.mark.outside_annotations
def test_errors_name_the_argument_and_the_shapes():
    query, key, value = qkv(seed=23)
    with pytest.raises(
        ValueError, match=r"same head dim H.*query \[2, 3, 7, 11\] and key \[2, 5, 7, 4\]"
    ):
        dot_product_attention(query, key[..., :4], value)
    with pytest.raises(
        ValueError, match=r"key and value must agree.*key \[2, 5, 7, 11\] and value \[2, 4, 7, 11\]"
    ):
        dot_product_attention(query, key, value[:, :4])
    with pytest.raises(
        ValueError, match=r"same batch size B.*query \[2, 3, 7, 11\] and key \[1, 5, 7, 11\]"
    ):
        dot_product_attention(query, key[:1], value[:1])
    with pytest.raises(
        ValueError, match=r"key's head count K \(axis -2\) must divide query's head count N.*"
        r"\(N=7\) and key \[2, 5, 3, 11\] \(K=3\)"
    ):
        dot_product_attention(query, key[:, :, :3], value[:, :, :3])
    with pytest.raises(ValueError, match=r"query must have shape \[B, T, N, H\].*got \[3, 11\]"):
        dot_product_attention(query[0, :, 0], key[0, :, 0], value[0, :, 0])
    with pytest.raises(ValueError, match=r"same rank.*value has shape \[5, 7, 11\]"):
        dot_product_attention(query, key, value[0])
    with pytest.raises(
        ValueError,
        match=r"mask of shape \[2, 5\] does not broadcast to \[B, N, T, S\] = \[2, 7, 3, 5\]",
    ):
        dot_product_attention(query, key, value, mask=jnp.ones((B, S), bool))
    with pytest.raises(TypeError, match=r"mask must be boolean.*float32.*pass it as bias="):
        dot_product_attention(query, key, value, mask=jnp.zeros((B, 1, 1, S)))
    with pytest.raises(ValueError, match=r"bias of shape \[3, 3\] does not broadcast"):
        dot_product_attention(query, key, value, bias=jnp.zeros((3, 3)))
    with pytest.raises(TypeError, match=r"bias must have a floating dtype.*int32"):
        dot_product_attention(query, key, value, bias=jnp.zeros((T, S), jnp.int32))
    with pytest.raises(
        TypeError, match=r"query must have a floating dtype.*int32 with shape \[2, 3, 7, 11\]"
    ):
        dot_product_attention(query.astype(jnp.int32), key, value)
    with pytest.raises(TypeError, match=r"key must have a floating dtype.*int32"):
        dot_product_attention(query, key.astype(jnp.int32), value)
    with pytest.raises(TypeError, match=r"value must have a floating dtype.*bool"):
        dot_product_attention(query, key, value > 0)
    with pytest.raises(ValueError, match=r"scale must be positive, got 0.0"):
        dot_product_attention(query, key, value, scale=0.0)
    with pytest.raises(TypeError, match=r"scale must be a Python float or None, got str"):
        dot_product_attention(query, key, value, scale="0.5")


@pytest.mark.outside_annotations
def test_single_head_errors_name_the_argument_and_the_shapes():
    q, k, v = normal(0, (T, H)), normal(1, (S, H)), normal(2, (S, HV))
    with pytest.raises(
        ValueError, match=r"query \[T, H\] and key \[S, H\].*query \[3, 11\] and key \[5, 4\]"
    ):
        single_head_attention(q, k[:, :4], v)
    with pytest.raises(ValueError, match=r"same length S.*key \[5, 11\] and value \[4, 13\]"):
        single_head_attention(q, k, v[:4])
    with pytest.raises(
        ValueError,
        match=r"query must have 2 dimensions \[T, H\], got shape \[2, 3, 11\]\. "
        r"single_head_attention takes one head.*use dot_product_attention",
    ):
        single_head_attention(q[None].repeat(2, 0), k, v)
    with pytest.raises(ValueError, match=r"value must have 2 dimensions \[S, Hv\], got shape"):
        single_head_attention(q, k, v[None])
    with pytest.raises(
        ValueError, match=r"mask of shape \[5, 3\] does not broadcast to \[T, S\] = \[3, 5\]"
    ):
        single_head_attention(q, k, v, jnp.ones((S, T), bool))
    with pytest.raises(TypeError, match=r"mask must be boolean.*bias="):
        single_head_attention(q, k, v, jnp.ones((T, S)))
    with pytest.raises(TypeError, match=r"key must have a floating dtype.*int32"):
        single_head_attention(q, k.astype(jnp.int32), v)


# ---------------------------- grouped-query heads, sequence lengths and sliding windows
#
# Own sizes, so that K = N, N / 2 and 1 differ from each other and from every other axis:
# B=3, T=5 (9 where T > S), S=7, N=4 query heads, K in {4, 2, 1} key/value heads, H=6.
GB, GT, GS, GN, GH = 3, 5, 7, 4, 6


def gqa_inputs(seed, k_heads, *, t=GT, hv=GH, batch=(GB,)):
    return (
        normal(seed, (*batch, t, GN, GH)),
        normal(seed + 1, (*batch, GS, k_heads, GH)),
        normal(seed + 2, (*batch, GS, k_heads, hv)),
    )


def allowed_numpy(t, *, mask=None, is_causal=False, local_window_size=None,
                  query_seq_lengths=None, key_value_seq_lengths=None, **_):
    """[B, N, T, S]: which keys each query may attend, from the definitions, in NumPy."""
    query_pos, key_pos = np.arange(t)[:, None], np.arange(GS)[None, :]
    allowed = np.ones((GB, GN, t, GS), bool)
    if mask is not None:
        allowed &= np.asarray(mask)
    if is_causal:
        allowed &= key_pos <= query_pos
    if local_window_size is not None:
        window = local_window_size
        left, right = (window, window) if isinstance(window, int) else window
        allowed &= (key_pos >= query_pos - left) & (key_pos <= query_pos + right)
    if query_seq_lengths is not None:
        allowed &= (np.arange(t)[:, None] < np.asarray(query_seq_lengths)[:, None, None, None])
    if key_value_seq_lengths is not None:
        allowed &= np.arange(GS) < np.asarray(key_value_seq_lengths)[:, None, None, None]
    return allowed


def gqa_attention_numpy(query, key, value, allowed, bias=None, scale=None):
    """softmax(scale * q . k + bias, where allowed) v in float64 NumPy, the key/value heads
    picked by hand (query head n reads head n // (N / K)); rows with no allowed key -> 0."""
    q, k, v = (np.asarray(a, np.float64) for a in (query, key, value))
    n_heads, group = q.shape[-2], q.shape[-2] // k.shape[-2]
    k = np.stack([k[..., n // group, :] for n in range(n_heads)], axis=-2)
    v = np.stack([v[..., n // group, :] for n in range(n_heads)], axis=-2)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = np.einsum("btnh,bsnh->bnts", q, k) * scale
    if bias is not None:
        scores = scores + np.asarray(bias, np.float64)
    scores = np.where(allowed, scores, -np.inf)
    row_max = scores.max(-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(row_max), row_max, 0.0))
    total = e.sum(-1, keepdims=True)
    return np.einsum("bnts,bsnh->btnh", e / np.where(total > 0, total, 1.0), v)


# name: (K, T, options). Lengths are lists, masks and biases shapes ("T": the query length).
# Each case is compiled twice (ours and jax.nn, forward and backward), so they are few and
# each covers several options.
GQA_CASES = {
    "mha_causal": (4, GT, dict(is_causal=True)),
    "gqa": (2, GT, dict()),
    "mqa_kv_lengths": (1, GT, dict(key_value_seq_lengths=[7, 3, 1])),
    # A zero query length: the whole sequence is padding.
    "gqa_q_lengths_window_int": (2, GT, dict(query_seq_lengths=[5, 2, 0], local_window_size=1)),
    "mha_both_lengths_causal": (
        4, GT, dict(query_seq_lengths=[4, 5, 1], key_value_seq_lengths=[6, 7, 2], is_causal=True)
    ),
    "mqa_window_pair_causal": (1, GT, dict(local_window_size=(1, 2), is_causal=True)),
    # Query 8 of 9 sees keys 7..10 of 0..6, none: all masked (zeros here, an average in jax.nn).
    "gqa_window_t_above_s": (2, 9, dict(local_window_size=(1, 2))),
    "gqa_everything": (2, GT, dict(
        mask=(GB, 1, "T", GS), bias=(1, GN, 1, GS), is_causal=True, local_window_size=(2, 1),
        query_seq_lengths=[5, 3, 4], key_value_seq_lengths=[7, 4, 6], scale=0.4,
    )),
    "mqa_everything_t_above_s": (1, 9, dict(
        mask=(GB, GN, "T", GS), bias=(GB, GN, "T", GS), local_window_size=(3, 0),
        is_causal=True, query_seq_lengths=[9, 6, 2], key_value_seq_lengths=[7, 5, 2],
    )),
}


def build_gqa_case(case, seed=60):
    k_heads, t, options = GQA_CASES[case]
    options = dict(options)
    for name, make in (("mask", lambda seed, shape: random_mask(seed, shape, p=0.7)),
                       ("bias", normal)):
        if name in options:
            options[name] = make(seed, tuple(t if d == "T" else d for d in options[name]))
    for name in ("query_seq_lengths", "key_value_seq_lengths"):
        if name in options:
            options[name] = jnp.asarray(options[name], jnp.int32)
    return k_heads, t, options


def query_rows(allowed_BNTS):
    """[B, T, N, 1]: True where the query has at least one key to attend."""
    return np.transpose(allowed_BNTS.any(-1), (0, 2, 1))[..., None]


@pytest.mark.parametrize("case", list(GQA_CASES))
def test_gqa_lengths_and_windows_match_jax_nn_outputs_and_gradients(case):
    k_heads, t, options = build_gqa_case(case)
    query, key, value = gqa_inputs(61, k_heads, t=t)
    has_key = query_rows(allowed_numpy(t, **options))
    # The loss weighs only rows with a key: the others differ from jax.nn by design.
    loss_weights = normal(62, (GB, t, GN, GH)) * has_key
    arrays = {name: options.pop(name) for name in
              ("bias", "mask", "query_seq_lengths", "key_value_seq_lengths") if name in options}

    def loss(attention_fn, q, k, v, arrays):
        out = attention_fn(q, k, v, **arrays, **options)
        return jnp.sum(out * loss_weights), out

    # Lengths and masks are arguments, so under jit they are traced like a user's batch.
    # (An eager backward pass is slow on CPU; the eager forward pass is tested below.)
    (_, out), grads = jax.jit(jax.value_and_grad(
        functools.partial(loss, dot_product_attention), (0, 1, 2), has_aux=True
    ))(query, key, value, arrays)
    (_, out_ref), grads_ref = jax.jit(jax.value_and_grad(
        functools.partial(loss, jax.nn.dot_product_attention), (0, 1, 2), has_aux=True
    ))(query, key, value, arrays)
    assert out.shape == (GB, t, GN, GH)
    np.testing.assert_allclose(out * has_key, out_ref * has_key, atol=2e-6, rtol=1e-5)
    # Padding queries and queries with no key at all: exactly zero.
    np.testing.assert_array_equal(np.where(has_key, 0.0, out), 0.0)
    for name, g, g_ref in zip(["query", "key", "value"], grads, grads_ref, strict=True):
        assert g.shape == g_ref.shape
        np.testing.assert_allclose(g, g_ref, atol=1e-5, rtol=1e-4, err_msg=name)


@JIT
def test_gqa_everything_matches_numpy_with_value_dim_different_from_key_dim(jit):
    """Eager and jitted, against NumPy (jax.nn needs Hv = H); K = 2 with this case's masks."""
    _, t, options = build_gqa_case("mqa_everything_t_above_s", seed=63)
    query, key, value = gqa_inputs(64, 2, t=t, hv=11)
    allowed = allowed_numpy(t, **options)
    static = {name: options.pop(name) for name in ("local_window_size", "is_causal")}
    fn = maybe_jit(functools.partial(dot_product_attention, **static), jit)
    out = fn(query, key, value, **options)
    assert out.shape == (GB, t, GN, 11)
    expected = gqa_attention_numpy(query, key, value, allowed, bias=options["bias"])
    np.testing.assert_allclose(out, expected, atol=2e-6, rtol=1e-5)


def test_grouped_query_equals_multi_head_on_repeated_keys_and_values():
    query, key, value = gqa_inputs(65, 2)
    repeated = [jnp.asarray(np.repeat(np.asarray(a), 2, axis=2)) for a in (key, value)]
    np.testing.assert_allclose(
        dot_product_attention(query, key, value, is_causal=True, local_window_size=(1, 0)),
        dot_product_attention(query, *repeated, is_causal=True, local_window_size=(1, 0)),
        atol=1e-6,
    )


def test_unbatched_lengths_are_scalars_and_equal_batched_with_b_equal_1():
    query, key, value = gqa_inputs(66, 2, batch=())
    kwargs = dict(local_window_size=(2, 1), is_causal=True)
    lengths = dict(query_seq_lengths=jnp.int32(4), key_value_seq_lengths=jnp.int32(5))
    unbatched = dot_product_attention(query, key, value, **lengths, **kwargs)
    batched = dot_product_attention(
        query[None], key[None], value[None], **{k: v[None] for k, v in lengths.items()}, **kwargs
    )
    assert unbatched.shape == (GT, GN, GH)
    np.testing.assert_allclose(unbatched, batched[0], atol=1e-7)
    np.testing.assert_array_equal(unbatched[4:], 0.0)  # query 4 is padding


def test_a_real_query_with_no_key_gives_zeros_where_jax_nn_averages_the_values():
    """The one documented difference from jax.nn (see dot_product_attention's docstring)."""
    query, key, value = gqa_inputs(67, 2)
    kv_lengths = jnp.asarray([7, 0, 3], jnp.int32)  # sequence 1 has no keys at all
    ours = dot_product_attention(query, key, value, key_value_seq_lengths=kv_lengths)
    theirs = jax.nn.dot_product_attention(query, key, value, key_value_seq_lengths=kv_lengths)
    np.testing.assert_array_equal(ours[1], 0.0)
    mean_value = np.repeat(np.asarray(value[1]).mean(0), 2, axis=0)  # [N, H], uniform weights
    np.testing.assert_allclose(theirs[1], np.broadcast_to(mean_value, (GT, GN, GH)), atol=1e-5)
    np.testing.assert_allclose(ours[::2], theirs[::2], atol=2e-6)  # sequences 0 and 2


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(local_window_size=-1), ValueError,
         r"local_window_size must be None, a non-negative int.*got -1, which has a negative"),
        (dict(local_window_size=(0, -2)), ValueError, r"local_window_size.*\(0, -2\).*negative"),
        (dict(local_window_size=2.0), TypeError, r"local_window_size must be.*got 2.0 \(float\)"),
        (dict(local_window_size=True), TypeError, r"local_window_size must be.*got True \(bool\)"),
        (dict(local_window_size=(1, 2, 3)), TypeError, r"local_window_size.*\(1, 2, 3\) \(tuple\)"),
        (dict(local_window_size=(1, 0.5)), TypeError, r"local_window_size.*\(1, 0.5\)"),
        (dict(query_seq_lengths=jnp.array([5, 5])), ValueError,
         r"query_seq_lengths must have shape \[3\] \(one length per sequence\), got \[2\]"),
        (dict(key_value_seq_lengths=jnp.ones((GB, 1), jnp.int32)), ValueError,
         r"key_value_seq_lengths must have shape \[3\].*got \[3, 1\]"),
        (dict(query_seq_lengths=jnp.array([5.0, 5.0, 5.0])), TypeError,
         r"query_seq_lengths must have an integer dtype.*float32"),
        (dict(key_value_seq_lengths=jnp.array([True, True, True])), TypeError,
         r"key_value_seq_lengths must have an integer dtype.*bool"),
        (dict(key_value_seq_lengths=[7, 7, 7]), TypeError,
         r"key_value_seq_lengths must be an integer array, got list"),
        (dict(query_seq_lengths=jnp.array([5, 6, 1])), ValueError,
         r"query_seq_lengths must lie in 0..5 \(the sequence length\), got values 1..6"),
        (dict(key_value_seq_lengths=jnp.array([-1, 7, 2])), ValueError,
         r"key_value_seq_lengths must lie in 0..7 \(the sequence length\), got values -1..7"),
    ],
)
def test_bad_windows_and_lengths_are_reported_by_name(options, error, message):
    query, key, value = gqa_inputs(68, 2)
    with pytest.raises(error, match=message):
        dot_product_attention(query, key, value, **options)


@pytest.mark.outside_annotations
def test_unbatched_lengths_must_be_scalars():
    query, key, value = gqa_inputs(69, 2, batch=())
    with pytest.raises(
        ValueError, match=r"query_seq_lengths must have shape \[\] \(one length per sequence of "
        r"the unbatched input\), got \[1\]"
    ):
        dot_product_attention(query, key, value, query_seq_lengths=jnp.array([3]))


# ------------------------------------------- soft-capping and sink logits (steps 1a, 3a)


def capped_sink_attention_numpy(query, key, value, mask, *, cap=None, sink=None):
    """``weights V`` with Gemma 2's ``cap tanh(s / cap)`` on the scaled scores and gpt-oss's
    sink column ``sink[n]`` (no value) in the softmax, float64; fully masked rows -> 0."""
    q, k, v = (np.asarray(a, np.float64) for a in (query, key, value))
    x = np.einsum("...tnh,...snh->...nts", q, k) / np.sqrt(q.shape[-1])
    if cap is not None:
        x = cap * np.tanh(x / cap)
    allowed = np.broadcast_to(np.asarray(mask), x.shape)
    sink_NT1 = (np.full((x.shape[-3], 1, 1), -np.inf) if sink is None
                else np.asarray(sink, np.float64)[:, None, None])
    m = np.maximum(np.where(allowed, x, -np.inf).max(-1, keepdims=True), sink_NT1)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.where(allowed, np.exp(x - m), 0.0)
    total = e.sum(-1, keepdims=True) + np.exp(sink_NT1 - m)
    weights = e / np.where(total > 0, total, 1.0)
    return np.einsum("...nts,...snh->...tnh", weights, v)


@JIT
@pytest.mark.parametrize("cap, with_sink", [(1.0, False), (None, True), (2.5, True)],
                         ids=["soft_cap", "sink", "both"])
def test_soft_cap_and_sink_logits_match_numpy(cap, with_sink, jit):
    query, key, value = qkv(seed=70, hv=HV)
    query = 3 * query  # scores well past the cap
    sink = normal(71, (N,)) if with_sink else None
    mask = random_mask(72, (B, N, T, S)).at[1, 3, 2].set(False)  # one row fully masked
    fn = functools.partial(dot_product_attention, soft_cap=cap)
    out = maybe_jit(fn, jit)(query, key, value, mask=mask, sink_logits=sink)
    want = capped_sink_attention_numpy(query, key, value, mask, cap=cap, sink=sink)
    np.testing.assert_allclose(out, want, atol=2e-6)
    np.testing.assert_array_equal(out[1, 2, 3], np.zeros(HV))


def test_soft_cap_and_sink_logits_finite_differences_in_float64():
    with jax.enable_x64(True):
        query, key, value = (a.astype(jnp.float64) for a in qkv(seed=73, hv=HV))
        sink = normal(74, (N,), jnp.float64)

        @jax.jit
        def fn(q, k, v, sink):
            return dot_product_attention(3 * q, k, v, is_causal=True, soft_cap=2.0,
                                         sink_logits=sink)

        check_grads(fn, (query, key, value, sink), order=1, modes=["rev"], eps=1e-6)


def test_causality_holds_through_gradients_with_soft_cap_and_sinks():
    query, key, value = qkv(seed=75, t=S)
    sink = normal(76, (N,))

    def summed_over_b_n_h(k, v):  # [T]
        out = dot_product_attention(query, k, v, is_causal=True, soft_cap=1.5, sink_logits=sink)
        return jnp.sum(out, axis=(0, 2, 3))

    jac_key, jac_value = jax.jit(jax.jacrev(summed_over_b_n_h, (0, 1)))(key, value)
    later_TS = np.triu(np.ones((S, S), bool), k=1)
    for jac in (jac_key, jac_value):
        per_ts = np.abs(np.asarray(jac)).sum(axis=(1, 3, 4))
        np.testing.assert_array_equal(per_ts[later_TS], 0.0)
    assert np.all(np.abs(np.asarray(jac_value)).sum(axis=(1, 3, 4))[~later_TS] > 0)


@pytest.mark.outside_annotations
def test_bad_soft_cap_and_sink_logits_are_named():
    query, key, value = qkv(seed=77)
    with pytest.raises(ValueError, match=r"soft_cap must be a positive finite number.*inf"):
        dot_product_attention(query, key, value, soft_cap=float("inf"))
    with pytest.raises(ValueError, match=r"sink_logits must be \[N\] = \[7\].*got \[1, 7\]"):
        dot_product_attention(query, key, value, sink_logits=jnp.zeros((1, N)))
