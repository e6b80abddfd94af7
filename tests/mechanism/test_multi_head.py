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
from attention.mechanism import kv_cache  # step 7a: the key/value cache of this module

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
        ValueError, match=r"num_heads=5 must divide qkv_features=28 into equal heads"
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
        kv_cache.init_cache(mha, 2.0, S)
    with pytest.raises(ValueError, match=r"max_len must be a positive int, got 0\."):
        kv_cache.init_cache(mha, B, 0)
    cache = kv_cache.init_cache(mha, B, S)
    x = normal(28, (B, 1, N * H))
    with pytest.raises(TypeError, match=r"index must be an int or an integer scalar array"):
        kv_cache.append_and_attend(mha, x, cache, 1.0)
    with pytest.raises(ValueError, match=r"index must be >= 0.*got -1"):
        kv_cache.append_and_attend(mha, x, cache, -1)
    with pytest.raises(ValueError, match=rf"the cache holds S={S} positions but index={S}"):
        kv_cache.append_and_attend(mha, x, cache, S)
    # A traced index (a step counter under jit) skips the value checks and still works.
    step = jax.jit(lambda i: kv_cache.append_and_attend(mha, x, cache, i)[0])
    np.testing.assert_allclose(step(jnp.int32(0)), kv_cache.append_and_attend(mha, x, cache, 0)[0],
                               atol=1e-6)


# ------------------------------------------------ grouped-query heads and position hooks
#
# Sizes for these tests: B=2, T=5 (decoding length), N=6 query heads, K in {6, 3, 2, 1},
# H=4, D=11: N / K is an int and every axis has its own size.
G_N, G_H, G_T = 6, 4, 5


def rotate_pairs(x, positions):
    """A test-local rotary hook: pair (x_2i, x_2i+1) turned by positions * 0.3 ** i radians.

    Deliberately not the package's RoPE: any position-dependent rotation of queries and keys
    must go through the module's hook the same way.
    """
    half = x.shape[-1] // 2
    angle_T1F = positions[:, None].astype(jnp.float32) * 0.3 ** jnp.arange(half)[None, :]
    cos, sin = jnp.cos(angle_T1F)[:, None, :], jnp.sin(angle_T1F)[:, None, :]  # [T, 1, F]
    even, odd = x[..., 0::2], x[..., 1::2]
    cos, sin = jnp.broadcast_to(cos, even.shape), jnp.broadcast_to(sin, even.shape)
    rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return rotated.reshape(x.shape)


def rotate_heads(query, key, value, query_positions, key_positions):
    """The test-local ``process_heads`` hook: :func:`rotate_pairs` on queries and keys."""
    return rotate_pairs(query, query_positions), rotate_pairs(key, key_positions), value


def distance_bias(query_positions, key_positions):
    """A test-local ALiBi-like hook: -slope_n * |t - s| with one slope per head, [N, T, S]."""
    slopes_N11 = (0.5 ** jnp.arange(1, G_N + 1, dtype=jnp.float32))[:, None, None]
    distance_TS = jnp.abs(query_positions[:, None] - key_positions[None, :])
    return -slopes_N11 * distance_TS[None].astype(jnp.float32)


def gqa_module(num_kv_heads, seed=0, **kwargs):
    module = MultiHeadAttention(
        G_N, D, G_N * G_H, num_kv_heads=num_kv_heads, rngs=nnx.Rngs(seed), **kwargs
    )
    # Random biases (nnx starts them at zero) so that a bias of the wrong head would show.
    for i, name in enumerate(("query", "key", "value", "out")):
        proj = getattr(module, name)
        proj.bias[...] = normal(seed + 30 + i, proj.bias.shape)
    return module


@pytest.mark.parametrize("num_kv_heads", [G_N, 3, 1])
def test_grouped_query_parameter_and_cache_shapes(num_kv_heads):
    mha = gqa_module(num_kv_heads)
    assert mha.num_kv_heads == num_kv_heads
    assert mha.query.kernel.shape == (D, G_N * G_H)
    assert mha.key.kernel.shape == mha.value.kernel.shape == (D, num_kv_heads * G_H)
    assert mha.key.bias.shape == (num_kv_heads * G_H,)
    assert mha.out.kernel.shape == (G_N * G_H, D)
    # (What append_and_attend and project_kv return is checked in the tests below.)
    cache = kv_cache.init_cache(mha, B, G_T)
    assert cache.key.shape == cache.value.shape == (B, G_T, num_kv_heads, G_H)


def test_grouped_query_module_equals_multi_head_with_repeated_key_value_weights():
    """K = 2 heads shared by groups of 3 = N = 6 heads each holding its group's copy."""
    gqa = gqa_module(2, seed=1)
    mha = MultiHeadAttention(G_N, D, G_N * G_H, rngs=nnx.Rngs(2))
    for name in ("query", "out"):
        getattr(mha, name).kernel[...] = getattr(gqa, name).kernel[...]
        getattr(mha, name).bias[...] = getattr(gqa, name).bias[...]
    for name in ("key", "value"):
        # In NumPy, by hand: key head k serves query heads 3k, 3k+1, 3k+2 (head-major columns).
        kernel = np.asarray(getattr(gqa, name).kernel[...]).reshape(D, 2, G_H)
        bias = np.asarray(getattr(gqa, name).bias[...]).reshape(2, G_H)
        getattr(mha, name).kernel[...] = np.repeat(kernel, 3, axis=1).reshape(D, G_N * G_H)
        getattr(mha, name).bias[...] = np.repeat(bias, 3, axis=0).reshape(G_N * G_H)
    x = normal(42, (B, T, D))
    mask = mask_with_a_key_per_row(44, (B, G_N, T, T))
    np.testing.assert_allclose(
        gqa(x, mask=mask, is_causal=True), mha(x, mask=mask, is_causal=True), atol=1e-5
    )


def module_numpy(module, x, *, rotary=None, bias=None, window=None):
    """Causal self-attention of ``module`` on ``x`` written out in NumPy float64, key/value
    heads repeated by hand; rotary on queries and keys only."""
    params = {
        name: (np.asarray(getattr(module, name).kernel[...], np.float64),
               np.asarray(getattr(module, name).bias[...], np.float64))
        for name in ("query", "key", "value", "out")
    }
    x = np.asarray(x, np.float64)
    t = x.shape[1]
    k_heads = module.num_kv_heads

    def project(name, heads):
        kernel, b = params[name]
        return (x @ kernel + b).reshape(*x.shape[:2], heads, G_H)

    q, k, v = project("query", G_N), project("key", k_heads), project("value", k_heads)
    if rotary is not None:
        positions = jnp.arange(t)
        q = np.asarray(rotary(jnp.asarray(q, jnp.float32), positions), np.float64)
        k = np.asarray(rotary(jnp.asarray(k, jnp.float32), positions), np.float64)
    group = G_N // k_heads
    k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(G_H)
    if bias is not None:
        scores = scores + np.asarray(bias, np.float64)[None]
    query_pos, key_pos = np.arange(t)[:, None], np.arange(t)[None, :]
    allowed = key_pos <= query_pos
    if window is not None:
        allowed &= (key_pos >= query_pos - window[0]) & (key_pos <= query_pos + window[1])
    scores = np.where(allowed, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = np.einsum("bnts,bsnh->btnh", weights, v).reshape(*x.shape[:2], G_N * G_H)
    kernel, b = params["out"]
    return heads @ kernel + b


HOOK_CASES = {
    "gqa": dict(num_kv_heads=2),
    "mqa_window": dict(num_kv_heads=1, local_window_size=(2, 0)),
    "gqa_rotary": dict(num_kv_heads=3, process_heads=rotate_heads),
    "gqa_bias_window": dict(num_kv_heads=2, position_bias=distance_bias, local_window_size=1),
    "all": dict(num_kv_heads=3, process_heads=rotate_heads, position_bias=distance_bias,
                local_window_size=(1, 3)),
}


@pytest.mark.parametrize("case", list(HOOK_CASES), ids=list(HOOK_CASES))
def test_causal_call_with_hooks_matches_numpy(case):
    kwargs = HOOK_CASES[case]
    mha = gqa_module(seed=3, **kwargs)
    x = normal(45, (B, G_T, D))
    positions = jnp.arange(G_T)
    expected = module_numpy(
        mha, x, rotary=rotate_pairs if "process_heads" in kwargs else None,
        bias=distance_bias(positions, positions) if "position_bias" in kwargs else None,
        window=mha.local_window_size,
    )
    np.testing.assert_allclose(mha(x, is_causal=True), expected, atol=2e-5, rtol=1e-5)


# Every case with a jitted step (a traced index, as in decoding), the richest also eagerly.
DECODE = [(case, True) for case in HOOK_CASES] + [("all", False)]


@pytest.mark.parametrize(
    "case, jit", DECODE, ids=[f"{c}-{'jit' if j else 'eager'}" for c, j in DECODE]
)
def test_cached_decoding_equals_the_full_causal_call(case, jit):
    mha = gqa_module(seed=4, **HOOK_CASES[case])
    x = normal(46, (B, G_T, D))
    full = mha(x, is_causal=True)
    step = lambda x_t, cache, i: kv_cache.append_and_attend(mha, x_t, cache, i)  # noqa: E731
    step = jax.jit(step) if jit else step
    cache = kv_cache.init_cache(mha, B, G_T + 1)  # one slot more than needed: it must stay masked
    outputs = []
    # Token by token, except positions 2 and 3 together (T = 2 new queries at index 2).
    for start, stop in ((0, 1), (1, 2), (2, 4), (4, 5)):
        out, cache = step(x[:, start:stop], cache, jnp.int32(start) if jit else start)
        outputs.append(out)
    np.testing.assert_allclose(jnp.concatenate(outputs, axis=1), full, atol=2e-5, rtol=1e-5)
    assert cache.key.shape == (B, G_T + 1, mha.num_kv_heads, G_H)
    # The cache holds the keys exactly as the call uses them: rotated, K heads.
    keys = split_heads(mha.key(x), mha.num_kv_heads)
    if mha.process_heads is not None:
        keys = rotate_pairs(keys, jnp.arange(G_T))
    np.testing.assert_allclose(cache.key[:, :G_T], keys, atol=1e-5)
    np.testing.assert_array_equal(cache.key[:, G_T:], 0.0)


def test_hooks_get_the_documented_positions():
    calls = []

    def process_heads(query, key, value, query_positions, key_positions):
        calls.append(("heads", query.shape, key.shape, value.shape,
                      np.asarray(query_positions).tolist(), np.asarray(key_positions).tolist(),
                      query_positions.dtype, key_positions.dtype))
        return query, key, value

    def position_bias(query_positions, key_positions):
        calls.append(("bias", np.asarray(query_positions).tolist(),
                      np.asarray(key_positions).tolist()))
        return jnp.zeros((G_N, query_positions.shape[0], key_positions.shape[0]))

    mha = gqa_module(2, process_heads=process_heads, position_bias=position_bias)
    mha(normal(47, (B, 3, D)))
    heads = (B, 3, G_N, G_H), (B, 3, 2, G_H), (B, 3, 2, G_H)
    assert calls == [
        ("heads", *heads, [0, 1, 2], [0, 1, 2], jnp.int32, jnp.int32),
        ("bias", [0, 1, 2], [0, 1, 2]),
    ]
    calls.clear()
    kv_cache.append_and_attend(mha, normal(48, (B, 2, D)), kv_cache.init_cache(mha, B, 6), 3)
    heads = (B, 2, G_N, G_H), (B, 2, 2, G_H), (B, 2, 2, G_H)
    assert calls == [
        ("heads", *heads, [3, 4], [3, 4], jnp.int32, jnp.int32),  # the new keys only
        ("bias", [3, 4], list(range(6))),
    ]
    calls.clear()
    memory_kv = kv_cache.project_kv(mha, normal(50, (B, 4, D)))
    kv_cache.attend_to_cache(mha, normal(49, (B, 2, D)), memory_kv)
    heads = (B, 2, G_N, G_H), (B, 4, 2, G_H), (B, 4, 2, G_H)
    assert calls == [  # cross-attention: as the call, queries 0..T-1, keys 0..S-1
        ("heads", *heads, [0, 1], [0, 1, 2, 3], jnp.int32, jnp.int32),
        ("bias", [0, 1], [0, 1, 2, 3]),
    ]


def test_attention_fn_gets_bias_and_window_only_when_set():
    seen = []

    def spy(query, key, value, **kwargs):
        seen.append((key.shape, sorted(kwargs)))
        return jax.nn.dot_product_attention(query, key, value, **kwargs)

    x = normal(49, (B, G_T, D))
    for kwargs in (dict(), dict(position_bias=distance_bias), dict(local_window_size=(2, 1))):
        reference = gqa_module(3, seed=5, **kwargs)
        fused = gqa_module(3, seed=5, attention_fn=spy, **kwargs)
        np.testing.assert_allclose(
            fused(x, is_causal=True), reference(x, is_causal=True), atol=1e-5
        )
    assert seen == [
        ((B, G_T, 3, G_H), ["is_causal", "mask"]),
        ((B, G_T, 3, G_H), ["bias", "is_causal", "mask"]),
        ((B, G_T, 3, G_H), ["is_causal", "local_window_size", "mask"]),
    ]


def test_grouped_query_cross_attention_through_the_cache():
    mha = gqa_module(2, seed=6)
    x, y = normal(50, (B, T, D)), normal(51, (B, S, D))
    mask = mask_with_a_key_per_row(52, (B, 1, T, S))
    cache = kv_cache.project_kv(mha, y)
    assert cache.key.shape == (B, S, 2, G_H)
    np.testing.assert_allclose(
        kv_cache.attend_to_cache(mha, x, cache, mask=mask), mha(x, y, mask=mask), atol=1e-5
    )


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(num_kv_heads=4), ValueError,
         r"num_kv_heads=4 must divide num_heads=6.*among \[1, 2, 3, 6\]"),
        (dict(num_kv_heads=12), ValueError, r"num_kv_heads=12 must divide num_heads=6"),
        (dict(num_kv_heads=0), ValueError, r"num_kv_heads must be a positive int, got 0\."),
        (dict(num_kv_heads=True), TypeError, r"num_kv_heads must be a positive int, got True"),
        (dict(num_kv_heads=2.0), TypeError, r"num_kv_heads must be a positive int, got 2.0"),
        (dict(process_heads="rope"), TypeError,
         r"process_heads must be None or a callable, got 'rope'"),
        (dict(position_bias=jnp.zeros(3)), TypeError, r"position_bias must be None or a callable"),
        (dict(local_window_size=-1), ValueError, r"local_window_size must be .*got -1"),
        (dict(local_window_size=(2, -1)), ValueError, r"local_window_size.*negative side"),
        (dict(local_window_size=1.5), TypeError, r"local_window_size must be .*got 1.5 \(float\)"),
        (dict(local_window_size=True), TypeError, r"local_window_size must be .*got True \(bool\)"),
        (dict(local_window_size=(1, 2, 3)), TypeError, r"local_window_size must be"),
    ],
)
def test_grouped_query_and_hook_arguments_are_checked(kwargs, error, message):
    with pytest.raises(error, match=message):
        MultiHeadAttention(G_N, D, G_N * G_H, rngs=nnx.Rngs(0), **kwargs)


@pytest.mark.outside_annotations
def test_a_cache_or_hook_output_of_the_wrong_shape_is_reported():
    gqa = gqa_module(2)
    x = normal(53, (B, 1, D))
    full_cache = kv_cache.init_cache(gqa_module(G_N), B, G_T)  # K = 6 heads, this module has K = 2
    with pytest.raises(
        ValueError, match=r"cache key/value must be \[B, S, K, H\] = \[2, 5, 2, 4\].*"
        r"num_kv_heads=2 key/value heads.*got key \[2, 5, 6, 4\]"
    ):
        kv_cache.append_and_attend(gqa, x, full_cache, 0)
    with pytest.raises(ValueError, match=r"cache key/value must be \[B, S, K, H\]"):
        kv_cache.attend_to_cache(gqa, x, kv_cache.project_kv(gqa_module(1), normal(54, (B, S, D))))
    bad_heads = gqa_module(2, process_heads=lambda q, k, v, tq, ts: (q[..., :2], k, v))
    with pytest.raises(
        ValueError, match=r"process_heads\(query, key, value, query_positions, key_positions\) "
        r"must return .*for query \[2, 5, 6, 4\], key \[2, 5, 2, 4\], value \[2, 5, 2, 4\] "
        r"it returned \[2, 5, 6, 2\], \[2, 5, 2, 4\], \[2, 5, 2, 4\]"
    ):
        bad_heads(normal(55, (B, G_T, D)))
    with pytest.raises(
        ValueError, match=r"must return \(query, key, value\) of the shapes.*returned ArrayImpl\."
    ):
        gqa_module(2, process_heads=lambda q, k, v, tq, ts: q)(normal(55, (B, G_T, D)))
    bad_bias = gqa_module(2, position_bias=lambda t, s: jnp.zeros((t.shape[0], s.shape[0])))
    with pytest.raises(
        ValueError, match=r"must return a bias \[N, T, S\] = \[6, 5, 5\], got \[5, 5\]"
    ):
        bad_bias(normal(56, (B, G_T, D)))


@pytest.mark.parametrize("num_kv_heads", [4, 2])
def test_fused_self_attention_projection_equals_three_projections(num_kv_heads):
    # Self-attention projects queries, keys and values in one product; mha(x, x + 0) is not
    # `x is x`, so it takes the three separate projections: outputs and gradients agree.
    mha = MultiHeadAttention(num_heads=4, in_features=16, num_kv_heads=num_kv_heads,
                             rngs=nnx.Rngs(0))
    x = normal(1, (2, 5, 16))

    def loss(module, fused):
        y = module(x, is_causal=True) if fused else module(x, x + 0.0, is_causal=True)
        return jnp.sum(jnp.sin(y))

    (fused, g_fused), (separate, g_separate) = (
        nnx.value_and_grad(loss)(mha, flag) for flag in (True, False))
    np.testing.assert_allclose(fused, separate, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_fused), jax.tree.leaves(g_separate), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_mixed_precision_gives_a_kernel_bfloat16_inputs_and_float32_outputs():
    seen = {}

    def kernel(query, key, value, **options):
        seen.update(q=query.dtype, k=key.dtype, v=value.dtype)
        return dot_product_attention(query, key, value, **options)

    mixed = dict(dtype=jnp.bfloat16, preferred_element_type=jnp.float32)
    mha = MultiHeadAttention(num_heads=2, in_features=8, attention_fn=kernel, **mixed,
                             rngs=nnx.Rngs(0))
    reference = MultiHeadAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
    x = normal(2, (2, 4, 8))
    y = mha(x)
    assert seen == {"q": jnp.bfloat16, "k": jnp.bfloat16, "v": jnp.bfloat16}
    assert y.dtype == jnp.float32 and mha.query.kernel.dtype == jnp.float32
    np.testing.assert_allclose(y, reference(x), rtol=0.05, atol=0.02)


def test_biases_in_query_key_value_but_not_the_output():
    """Qwen2's projections: ``use_bias=True, out_bias=False``."""
    mha = MultiHeadAttention(num_heads=2, in_features=6, out_bias=False, rngs=nnx.Rngs(0))
    assert mha.query.bias is not None and mha.value.bias is not None and mha.out.bias is None
    assert mha(jnp.ones((3, 5, 6))).shape == (3, 5, 6)


# ------------------------ today's switches: qk_norm, soft_cap, sink_logits, output_gate


def scale_queries_by_ten(query, key, value, query_positions, key_positions):
    """A process_heads hook whose effect a QK-norm applied after it would undo."""
    return 10.0 * query, key, value


def modern_module(*, cross=False, num_kv_heads=None, seed=30, **overrides):
    options = dict(qk_norm="rms", soft_cap=3.0, sink_logits=True, output_gate=True) | overrides
    kv = dict(in_kv_features=DKV) if cross else {}
    mha = MultiHeadAttention(N, D, N * H, DOUT, num_kv_heads=num_kv_heads,
                             process_heads=scale_queries_by_ten, rngs=nnx.Rngs(seed),
                             **kv, **options)
    # Learned values away from their initial ones (ones, zeros), so that each one matters.
    if mha.qk_norm is not None:
        mha.qk_norm.query_scale[...] = 1 + 0.3 * normal(seed + 1, (H,))
        mha.qk_norm.key_scale[...] = 1 + 0.3 * normal(seed + 2, (H,))
    if mha.sink_logits is not None:
        mha.sink_logits[...] = normal(seed + 3, (N,))
    return mha


def modern_mha_numpy(mha, x, y, mask):
    """The module's forward written out in NumPy float64 from the papers' formulas."""
    def linear(layer, inputs):
        out = np.asarray(inputs, np.float64) @ np.asarray(layer.kernel[...], np.float64)
        return out if layer.bias is None else out + np.asarray(layer.bias[...], np.float64)

    K = mha.num_kv_heads
    q = linear(mha.query, x).reshape(*x.shape[:-1], N, H)
    k = linear(mha.key, y).reshape(*y.shape[:-1], K, H)
    v = linear(mha.value, y).reshape(*y.shape[:-1], K, H)
    if mha.qk_norm is not None:  # norm of each head, learned scale (Qwen3), then the hook
        def norm(a, g):
            if mha.qk_norm.kind == "layer":
                a = a - a.mean(-1, keepdims=True)
            return a / np.sqrt((a**2).mean(-1, keepdims=True) + 1e-6) * np.asarray(g[...])
        q, k = norm(q, mha.qk_norm.query_scale), norm(k, mha.qk_norm.key_scale)
    q = 10.0 * q
    k, v = np.repeat(k, N // K, axis=-2), np.repeat(v, N // K, axis=-2)
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(H)
    if mha.soft_cap is not None:  # Gemma 2
        scores = mha.soft_cap * np.tanh(scores / mha.soft_cap)
    allowed = np.broadcast_to(np.asarray(mask), scores.shape)
    sink = (np.full((N, 1, 1), -np.inf) if mha.sink_logits is None
            else np.asarray(mha.sink_logits[...], np.float64)[:, None, None])
    m = np.maximum(np.where(allowed, scores, -np.inf).max(-1, keepdims=True), sink)
    e = np.where(allowed, np.exp(scores - m), 0.0)
    weights = e / (e.sum(-1, keepdims=True) + np.exp(sink - m))  # gpt-oss: a sink column
    heads = np.einsum("bnts,bsnh->btnh", weights, v)
    if mha.gate is not None:  # Qiu et al. 2025: sigmoid(x W_g), elementwise
        heads = heads / (1 + np.exp(-linear(mha.gate, x).reshape(heads.shape)))
    return linear(mha.out, heads.reshape(*heads.shape[:-2], N * H))


@pytest.mark.parametrize(
    "cross, num_kv_heads, jit",
    [(False, None, False), (False, None, True), (True, 7, True), (False, 1, True)],
    ids=["self-eager", "self-jit", "cross-jit", "multi_query-jit"],
)
def test_all_four_switches_match_numpy(cross, num_kv_heads, jit):
    mha = modern_module(cross=cross, num_kv_heads=num_kv_heads)
    x = 2 * normal(31, (B, T, D))
    y = normal(32, (B, S, DKV)) if cross else x
    mask = mask_with_a_key_per_row(33, (B, 1, T, S if cross else T))

    def call(module, x, y):
        return module(x, None if not cross else y, mask=mask)

    out = (nnx.jit(call) if jit else call)(mha, x, y)
    np.testing.assert_allclose(out, modern_mha_numpy(mha, x, y, mask), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("switch", ["qk_norm", "soft_cap", "sink_logits", "output_gate"])
def test_each_switch_alone_matches_numpy_and_changes_the_output(switch):
    off = dict(qk_norm=None, soft_cap=None, sink_logits=False, output_gate=False)
    on = dict(qk_norm="layer" if switch == "qk_norm" else None, soft_cap=0.5,
              sink_logits=True, output_gate=True)
    mha = modern_module(**(off | {switch: on[switch]}))
    plain = modern_module(**off)
    x = normal(34, (B, T, D))
    mask = jnp.tril(jnp.ones((T, T), bool))
    np.testing.assert_allclose(mha(x, is_causal=True), modern_mha_numpy(mha, x, x, mask),
                               rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(mha(x, is_causal=True) - plain(x, is_causal=True)).max()) > 1e-3


def test_new_parameters_have_their_shapes_and_initial_values_and_get_gradients():
    mha = MultiHeadAttention(N, D, N * H, num_kv_heads=1, qk_norm="rms", soft_cap=2.0,
                             sink_logits=True, output_gate=True, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(mha.sink_logits[...], np.zeros(N))
    np.testing.assert_array_equal(mha.qk_norm.query_scale[...], np.ones(H))
    assert mha.gate.kernel.shape == (D, N * H)
    x = normal(35, (B, T, D))
    grads = nnx.jit(nnx.grad(lambda m: jnp.sum(m(x, is_causal=True) ** 2)))(mha)
    for grad in (grads.sink_logits, grads.gate.kernel, grads.qk_norm.key_scale):
        assert float(jnp.abs(grad[...]).sum()) > 0


def test_options_reach_an_attention_fn_only_when_set():
    seen = []

    def recording_fn(query, key, value, bias=None, mask=None, **options):
        seen.append(sorted(options))
        return dot_product_attention(query, key, value, bias, mask, **options)

    x = normal(36, (B, T, D))
    for sink_logits in (False, True):
        teaching = modern_module(sink_logits=sink_logits)
        fused = modern_module(sink_logits=sink_logits)
        fused.attention_fn = recording_fn
        np.testing.assert_allclose(fused(x, is_causal=True), teaching(x, is_causal=True),
                                   atol=1e-6)
    assert seen == [["is_causal", "soft_cap"], ["is_causal", "sink_logits", "soft_cap"]]
    plain = MultiHeadAttention(N, D, N * H, attention_fn=recording_fn, rngs=nnx.Rngs(0))
    plain(x)
    assert seen[-1] == ["is_causal"]


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(qk_norm="l2"), ValueError, r"qk_norm must be None, 'rms' or 'layer', got 'l2'"),
        (dict(soft_cap=-1.0), ValueError, r"soft_cap must be a positive finite number"),
        (dict(soft_cap=[50]), TypeError, r"soft_cap must be a positive number"),
        (dict(sink_logits=1), TypeError, r"sink_logits must be True or False, got 1 \(int\)"),
        (dict(output_gate="yes"), TypeError, r"output_gate must be True or False"),
    ],
    ids=["qk_norm", "soft_cap_negative", "soft_cap_list", "sink_logits_int", "output_gate_str"],
)
def test_bad_switches_are_named(options, error, message):
    with pytest.raises(error, match=message):
        MultiHeadAttention(N, D, N * H, rngs=nnx.Rngs(0), **options)
