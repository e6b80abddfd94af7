"""Tests for attention/mechanism/multi_head.py: parity with flax.nnx.MultiHeadAttention given
the same weights, head splitting against NumPy, the sown weights, and the errors.

Flax stores the projections per head: query/key/value kernels [D, N, H] with biases [N, H],
the output kernel [N, H, Dout]. Ours are the same numbers flattened head-major: [D, N * H],
[N * H] and [N * H, Dout]. Sizes: B=2, T=3, S=5, N=7, H=4, D=11, Dkv=13, Dout=6.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention import (
    MultiHeadAttention,
    attention_weights,
    dot_product_attention,
    merge_heads,
    split_heads,
)

B, T, S, N, H, D, DKV, DOUT = 2, 3, 5, 7, 4, 11, 13, 6


def normal(seed, shape, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def mask_with_a_key_per_row(seed, shape):
    """Random boolean mask in which every query keeps at least key 0 (flax and we agree)."""
    mask = np.random.default_rng(seed).random(shape) < 0.5
    mask[..., 0] = True
    return jnp.asarray(mask)


def twin_modules(cross: bool, seed: int = 0):
    """A flax.nnx.MultiHeadAttention with random biases, and ours holding the same numbers."""
    kv = dict(in_kv_features=DKV) if cross else {}
    theirs = nnx.MultiHeadAttention(
        num_heads=N,
        in_features=D,
        qkv_features=N * H,
        out_features=DOUT,
        decode=False,
        rngs=nnx.Rngs(seed),
        **kv,
    )
    ours = MultiHeadAttention(N, D, N * H, DOUT, rngs=nnx.Rngs(seed + 1), **kv)
    for i, name in enumerate(("query", "key", "value")):
        flax_proj, our_proj = getattr(theirs, name), getattr(ours, name)
        flax_proj.bias[...] = normal(seed + 10 + i, (N, H))  # flax starts biases at zero
        our_proj.kernel[...] = flax_proj.kernel[...].reshape(-1, N * H)
        our_proj.bias[...] = flax_proj.bias[...].reshape(N * H)
    theirs.out.bias[...] = normal(seed + 20, (DOUT,))
    ours.out.kernel[...] = theirs.out.kernel[...].reshape(N * H, DOUT)
    ours.out.bias[...] = theirs.out.bias[...]
    return theirs, ours


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_matches_flax_with_a_mask_outputs_and_gradients(cross, jit):
    theirs, ours = twin_modules(cross)
    x = normal(1, (B, T, D))
    y = normal(2, (B, S, DKV)) if cross else x
    mask = mask_with_a_key_per_row(3, (B, N, T, S if cross else T))

    def loss_ours(module, x, y):
        return jnp.sum(jnp.sin(module(x, y if cross else None, mask=mask)))

    def loss_theirs(module, x, y):
        return jnp.sum(jnp.sin(module(x, y if cross else None, mask=mask, deterministic=True)))

    def forward(module, x, y):
        return module(x, y if cross else None, mask=mask)

    out = (nnx.jit(forward) if jit else forward)(ours, x, y)
    expected = theirs(x, y if cross else None, mask=mask, deterministic=True)
    assert out.shape == (B, T, DOUT)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    # Gradients are compiled in both variants: an eager backward pass is slow on CPU.
    value, grads = nnx.jit(nnx.value_and_grad(loss_ours, argnums=(1, 2)))(ours, x, y)
    value_ref, grads_ref = nnx.jit(nnx.value_and_grad(loss_theirs, argnums=(1, 2)))(theirs, x, y)
    np.testing.assert_allclose(value, value_ref, rtol=1e-5)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        np.testing.assert_allclose(g, g_ref, atol=1e-5, rtol=1e-4)


def test_matches_flax_causal_self_attention():
    theirs, ours = twin_modules(cross=False, seed=4)
    x = normal(5, (B, T, D))
    np.testing.assert_allclose(
        ours(x, is_causal=True), theirs(x, is_causal=True, deterministic=True), atol=1e-5
    )


def test_parameter_gradients_match_flax_after_reshaping():
    theirs, ours = twin_modules(cross=True, seed=6)
    x, y = normal(7, (B, T, D)), normal(8, (B, S, DKV))
    mask = mask_with_a_key_per_row(9, (B, 1, T, S))
    g_ours = nnx.jit(nnx.grad(lambda m: jnp.sum(m(x, y, mask=mask) ** 2)))(ours)
    g_theirs = nnx.jit(nnx.grad(lambda m: jnp.sum(m(x, y, mask=mask, deterministic=True) ** 2)))(
        theirs
    )
    for name in ("query", "key", "value", "out"):
        for param in ("kernel", "bias"):
            ours_g = g_ours[name][param][...]
            theirs_g = g_theirs[name][param][...].reshape(ours_g.shape)
            np.testing.assert_allclose(ours_g, theirs_g, atol=1e-5, rtol=1e-4, err_msg=name)


def test_unbatched_equals_batched_with_b_equal_1():
    _, ours = twin_modules(cross=True, seed=10)
    x, y = normal(11, (T, D)), normal(12, (S, DKV))
    mask = mask_with_a_key_per_row(13, (N, T, S))
    out = ours(x, y, mask=mask)
    assert out.shape == (T, DOUT)
    np.testing.assert_allclose(out, ours(x[None], y[None], mask=mask[None])[0], atol=1e-6)


def test_sown_weights_are_the_attention_weights():
    _, ours = twin_modules(cross=True, seed=14)
    x, y = normal(15, (B, T, D)), normal(16, (B, S, DKV))
    mask = mask_with_a_key_per_row(17, (B, 1, T, S))
    forward = nnx.capture(ours, nnx.Intermediate)
    out, intermediates = forward(x, y, mask=mask, sow_weights=True)
    (sown,) = intermediates["attention_weights"]
    sown = sown[...] if isinstance(sown, nnx.Variable) else sown
    assert sown.shape == (B, N, T, S)
    expected = attention_weights(split_heads(ours.query(x), N), split_heads(ours.key(y), N), mask)
    np.testing.assert_allclose(sown, expected, atol=1e-6)
    np.testing.assert_allclose(out, ours(x, y, mask=mask), atol=1e-6)


@pytest.mark.parametrize(
    "attention_fn", [dot_product_attention, jax.nn.dot_product_attention], ids=["ours", "jax_nn"]
)
def test_attention_fn_gives_the_same_result(attention_fn):
    _, ours = twin_modules(cross=True, seed=18)
    fused = MultiHeadAttention(
        N, D, N * H, DOUT, in_kv_features=DKV, attention_fn=attention_fn, rngs=nnx.Rngs(0)
    )
    nnx.update(fused, nnx.state(ours, nnx.Param))
    x, y = normal(19, (B, T, D)), normal(20, (B, S, DKV))
    mask = mask_with_a_key_per_row(21, (B, N, T, S))
    np.testing.assert_allclose(fused(x, y, mask=mask), ours(x, y, mask=mask), atol=1e-5)


def test_dropout_only_when_not_deterministic():
    mha = MultiHeadAttention(N, D, N * H, dropout_rate=0.5, rngs=nnx.Rngs(0, dropout=1))
    plain = MultiHeadAttention(N, D, N * H, rngs=nnx.Rngs(0))
    nnx.update(plain, nnx.state(mha, nnx.Param))
    x = normal(22, (B, T, D))
    np.testing.assert_allclose(mha(x, deterministic=True), plain(x), atol=1e-7)
    assert not np.allclose(mha(x, deterministic=False), plain(x), atol=1e-3)


def test_split_and_merge_heads_are_head_major_reshapes():
    x = normal(23, (B, T, N * H))
    heads = split_heads(x, N)
    assert heads.shape == (B, T, N, H)
    for n in range(N):
        np.testing.assert_array_equal(heads[:, :, n], x[:, :, n * H : (n + 1) * H])
    np.testing.assert_array_equal(merge_heads(heads), x)


@pytest.mark.outside_annotations
def test_bad_input_is_reported_by_name_and_shape():
    with pytest.raises(
        ValueError, match=r"num_heads=5 must divide the projection width qkv_features=28"
    ):
        MultiHeadAttention(5, D, N * H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"num_heads must be a positive int, got 0"):
        MultiHeadAttention(0, D, rngs=nnx.Rngs(0))
    mha = MultiHeadAttention(N, D, N * H, in_kv_features=DKV, rngs=nnx.Rngs(0))
    x, y = normal(24, (B, T, D)), normal(25, (B, S, DKV))
    with pytest.raises(
        ValueError, match=r"inputs_q has width 13 \(shape \[2, 5, 13\]\).*in_features=11"
    ):
        mha(y, y)
    with pytest.raises(
        ValueError, match=r"inputs_kv has width 11 \(shape \[2, 3, 11\]\).*in_kv_features=13"
    ):
        mha(x)
    with pytest.raises(
        ValueError, match=r"inputs_q \[2, 3, 11\] and inputs_kv \[1, 5, 13\].*same batch size"
    ):
        mha(x, y[:1])
    with pytest.raises(TypeError, match=r"inputs_q must have a floating dtype.*int32"):
        mha(x.astype(jnp.int32), y)
    with pytest.raises(ValueError, match=r"inputs_q must be \[B, T, D\].*got inputs_q \[11\]"):
        mha(x[0, 0], y)
    with pytest.raises(
        ValueError, match=r"mask of shape \[2, 5\] does not broadcast to \[B, N, T, S\]"
    ):
        mha(x, y, mask=jnp.ones((B, S), bool))
    with pytest.raises(TypeError, match=r"mask must be boolean.*bias="):
        mha(x, y, mask=jnp.ones((B, 1, 1, S)))
    with pytest.raises(ValueError, match=r"last axis of x \(shape \[2, 3, 11\]\).*num_heads=7"):
        split_heads(x, N)
    fused = MultiHeadAttention(N, D, N * H, attention_fn=dot_product_attention, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"sow_weights=True needs the weights"):
        fused(x, sow_weights=True)


def test_split_heads_rejects_zero_heads():
    with pytest.raises(ValueError, match=r"num_heads must be a positive int, got 0\."):
        split_heads(normal(26, (T, D)), 0)
    with pytest.raises(TypeError, match=r"num_heads must be a positive int, got True \(bool\)"):
        split_heads(normal(26, (T, D)), True)


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        # True is an int in Python: without the check it would build one head.
        (dict(num_heads=True), TypeError, r"num_heads must be a positive int, got True \(bool\)"),
        (dict(num_heads=2.0), TypeError, r"num_heads must be a positive int, got 2.0 \(float\)"),
        (dict(num_heads=-1), ValueError, r"num_heads must be a positive int, got -1\."),
        (dict(in_features=11.0), TypeError, r"in_features must be a positive int, got 11.0"),
        (dict(qkv_features=0), ValueError, r"qkv_features must be a positive int, got 0\."),
        (dict(out_features="6"), TypeError, r"out_features must be a positive int, got '6'"),
        (dict(in_kv_features=False), TypeError, r"in_kv_features must be a positive int"),
        (dict(dropout_rate=1.0), ValueError, r"dropout_rate must be in \[0, 1\), got 1.0"),
        (dict(dropout_rate=float("nan")), ValueError, r"dropout_rate must be in \[0, 1\)"),
        (dict(dropout_rate=None), TypeError, r"dropout_rate must be a number, got None"),
    ],
)
def test_constructor_arguments_are_checked(kwargs, error, message):
    arguments = dict(num_heads=N, in_features=N * H) | kwargs
    with pytest.raises(error, match=message):
        MultiHeadAttention(**arguments, rngs=nnx.Rngs(0))


@pytest.mark.outside_annotations
def test_numpy_ints_are_counts():
    mha = MultiHeadAttention(np.int64(N), np.int32(N * H), rngs=nnx.Rngs(0))
    assert mha.num_heads == N and type(mha.num_heads) is int
    assert mha(normal(27, (B, T, N * H))).shape == (B, T, N * H)


@pytest.mark.outside_annotations
def test_cache_arguments_are_checked():
    mha = MultiHeadAttention(N, N * H, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"batch_size must be a positive int, got 2.0 \(float\)"):
        mha.init_cache(2.0, S)
    with pytest.raises(ValueError, match=r"max_len must be a positive int, got 0\."):
        mha.init_cache(B, 0)
    cache = mha.init_cache(B, S)
    x = normal(28, (B, 1, N * H))
    with pytest.raises(TypeError, match=r"index must be an int or an integer scalar array"):
        mha.append_and_attend(x, cache, 1.0)
    with pytest.raises(ValueError, match=r"index must be >= 0.*got -1"):
        mha.append_and_attend(x, cache, -1)
    with pytest.raises(ValueError, match=rf"the cache holds S={S} positions but index={S}"):
        mha.append_and_attend(x, cache, S)
    # A traced index (a step counter under jit) skips the value checks and still works.
    step = jax.jit(lambda i: mha.append_and_attend(x, cache, i)[0])
    np.testing.assert_allclose(step(jnp.int32(0)), mha.append_and_attend(x, cache, 0)[0],
                               atol=1e-6)
