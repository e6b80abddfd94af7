"""Rung 4, flash_attention: tiles, causal skipping and the custom backward equal the reference."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention import dot_product_attention, padding_mask
from attention.kernels import flash as flash_module
from attention.kernels import flash_attention, flash_attention_reference
from attention.kernels.flash import Band, _Tiling, key_block_range, query_block_range

from ._inputs import (
    VARIANT_CASES,
    VARIANT_PARAMS,
    check_parity_with_jax_nn,
    grouped_qkv,
    random_qkv,
)

# Tiled online softmax: the same terms summed in another order, a few float32 ulp.
ATOL_F32 = 1e-5
# The custom backward recomputes the weights from the saved log-sum-exp instead of
# differentiating the forward: a different but equally exact formula, a few more roundings.
ATOL_GRAD = 1e-4
# bfloat16 inputs, float32 accumulation, one rounding of the output to bfloat16 (~4e-3).
ATOL_BF16 = 2e-2
# bfloat16 gradients come back in bfloat16: a rounding of values of size ~1-5.
ATOL_BF16_GRAD = 6e-2

B, T, S, N, H, HV = 2, 13, 11, 3, 5, 6
BLOCKS = dict(block_q=4, block_k=3)  # neither T=13 nor S=11 is a multiple


def _qkv(seed=0, dtype=jnp.float32, T=T, S=S):
    return random_qkv(B, T, S, N, H, HV, seed=seed, dtype=dtype)


def _kwargs(name):
    random = jax.random.bernoulli(jax.random.key(7), 0.6, (B, N, T, S)).at[0, 1, 2].set(False)
    return {
        "none": {},
        "key_lengths": {"key_lengths": jnp.array([4, 11])},
        "both_lengths": {"key_lengths": jnp.array([0, 6]), "query_lengths": jnp.array([13, 5])},
        "padding_mask": {"mask": padding_mask(jnp.array([4, 11]), max_len=S)},
        "random_mask": {"mask": random},
        "mask_and_lengths": {"mask": random[:, :1], "key_lengths": jnp.array([9, 2])},
    }[name]


NAMES = ["none", "key_lengths", "both_lengths", "random_mask", "mask_and_lengths"]


def _weigh(out):
    """The scalar whose gradients the tests compare: a sum of a non-linear function of every
    output, so that each output element gets its own weight."""
    return jnp.sum(jnp.sin(3 * out))


def _loss(f, q, k, v, **kwargs):
    return _weigh(f(q, k, v, **kwargs))


def _output_and_gradients(f, *args, argnums=(0, 1, 2), **kwargs):
    """``f(*args, **kwargs)`` and the gradients of :func:`_weigh` of it for ``args[argnums]``,
    compiled as one program (the forward once, one compilation)."""
    def loss_and_output(*args):
        out = f(*args, **kwargs)
        return _weigh(out), out

    grad_fn = jax.value_and_grad(loss_and_output, argnums, has_aux=True)
    (_, out), grads = jax.jit(grad_fn)(*args)
    return out, grads


@pytest.fixture(params=["all_heads", "head_by_head"])
def strategy(request, monkeypatch):
    """Both ways through the tiles: all heads together (short sequences) and one head at a
    time with the backward's query blocks cut in two (long sequences, forced here)."""
    if request.param == "head_by_head":
        monkeypatch.setattr(flash_module, "ALL_HEADS_MAX_SCORES", 0)
        monkeypatch.setattr(flash_module, "BACKWARD_QUERY_BLOCK", BLOCKS["block_q"] // 2)
    return request.param


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_values_and_gradients_match_reference(is_causal, name, strategy):
    q, k, v = _qkv()
    kw = dict(_kwargs(name), is_causal=is_causal)
    got, grads = _output_and_gradients(flash_attention, q, k, v, **kw, **BLOCKS)
    want = flash_attention_reference(q, k, v, **kw)
    assert got.shape == (B, T, N, HV) and got.dtype == v.dtype
    assert jnp.allclose(got, want, atol=ATOL_F32)
    wants = jax.grad(lambda *a: _loss(flash_attention_reference, *a, **kw), (0, 1, 2))(q, k, v)
    for g, w in zip(grads, wants, strict=True):
        assert jnp.allclose(g, w, atol=ATOL_GRAD)


@pytest.mark.parametrize(
    "T_, S_, blocks",
    [(16, 16, dict(block_q=4, block_k=4)), (5, 17, dict(block_q=2, block_k=8))],
)
def test_shapes_and_blocks(T_, S_, blocks):
    q, k, v = _qkv(1, T=T_, S=S_)
    for is_causal in (False, True):
        got = jax.jit(partial(flash_attention, is_causal=is_causal, **blocks))(q, k, v)
        want = dot_product_attention(q, k, v, is_causal=is_causal)
        assert jnp.allclose(got, want, atol=ATOL_F32)


@pytest.mark.parametrize("blocks", [(16, 16), (4, 16), (16, 4)])  # one tile, one row, one column
def test_single_tiles_without_loops(blocks):
    q, k, v = _qkv(8)
    kw = dict(is_causal=True, key_lengths=jnp.array([0, 4]), query_lengths=jnp.array([13, 6]))
    got, grads = _output_and_gradients(flash_attention, q, k, v, **kw, block_q=blocks[0],
                                       block_k=blocks[1])
    assert jnp.allclose(got, flash_attention_reference(q, k, v, **kw), atol=ATOL_F32)
    wants = jax.grad(lambda *a: _loss(flash_attention_reference, *a, **kw), (0, 1, 2))(q, k, v)
    for g, w in zip(grads, wants, strict=True):
        assert jnp.allclose(g, w, atol=ATOL_GRAD)


def test_no_jit_unbatched_and_scale():
    q, k, v = _qkv(2)
    got = flash_attention(q[0], k[0], v[0], scale=0.2, key_lengths=jnp.array(7), **BLOCKS)
    mask = padding_mask(jnp.array([7]), max_len=S)[0]
    want = dot_product_attention(q[0], k[0], v[0], mask=mask, scale=0.2)
    assert jnp.allclose(got, want, atol=ATOL_F32)


def test_causality_through_gradients():
    """The output at t must not depend on keys or values after t."""
    q, k, v = _qkv(3, T=S)
    t = 5
    dk, dv = jax.grad(
        lambda k, v: flash_attention(q, k, v, is_causal=True, **BLOCKS)[:, t].sum(), (0, 1)
    )(k, v)
    assert bool(jnp.all(dk[:, t + 1 :] == 0)) and bool(jnp.all(dv[:, t + 1 :] == 0))
    assert bool(jnp.any(dk[:, : t + 1] != 0))


def test_fully_masked_rows_are_zero_with_zero_gradients():
    q, k, v = _qkv(4)
    lengths = jnp.array([0, 0])
    out = flash_attention(q, k, v, key_lengths=lengths, **BLOCKS)
    assert bool(jnp.all(out == 0))
    dq = jax.grad(lambda q: flash_attention(q, k, v, key_lengths=lengths, **BLOCKS).sum())(q)
    assert bool(jnp.all(dq == 0))


def test_bfloat16():
    q, k, v = _qkv(5, jnp.bfloat16)
    f32 = [x.astype(jnp.float32) for x in (q, k, v)]
    got = flash_attention(q, k, v, is_causal=True, **BLOCKS)
    assert got.dtype == jnp.bfloat16
    assert jnp.allclose(got, dot_product_attention(*f32, is_causal=True), atol=ATOL_BF16)
    grads = jax.jit(jax.grad(lambda *a: _loss(flash_attention, *a, is_causal=True, **BLOCKS),
                             (0, 1, 2)))(q, k, v)
    wants = jax.jit(jax.grad(lambda *a: _loss(dot_product_attention, *a, is_causal=True),
                             (0, 1, 2)))(*f32)
    for g, w in zip(grads, wants, strict=True):
        assert g.dtype == jnp.bfloat16
        assert jnp.allclose(g.astype(jnp.float32), w, atol=ATOL_BF16_GRAD)


def test_vmap():
    q, k, v = _qkv(6)
    got = jax.vmap(lambda q, k, v: flash_attention(q, k, v, is_causal=True, **BLOCKS))(q, k, v)
    assert jnp.allclose(got, dot_product_attention(q, k, v, is_causal=True), atol=ATOL_F32)


def test_causal_tiles_are_skipped():
    """Query block i visits key blocks 0..(last key it sees): the loop bound does the skipping."""
    lengths = jnp.array([64])
    tiling = _Tiling(None, lengths, lengths, Band(True, None, 1, 16, 8), 64, 64)
    assert [tuple(map(int, tiling.key_range(i))) for i in range(4)] == [
        (0, 2), (0, 4), (0, 6), (0, 8)]
    assert [tuple(map(int, tiling.query_range(j))) for j in (0, 3, 7)] == [(0, 4), (1, 4), (3, 4)]
    # Padding: key blocks past the longest key_lengths are skipped too.
    short = _Tiling(None, jnp.array([20]), lengths, Band(False, None, 1, 16, 8), 64, 64)
    assert tuple(map(int, short.key_range(0))) == (0, 3)
    assert _Tiling(None, None, None, Band(False, None, 1, 16, 8), 64, 64).masks_nothing
    assert not short.masks_nothing
    assert not _Tiling(None, None, None, Band(False, (1, 1), 1, 16, 8), 64, 64).masks_nothing


def _tiles_needed(T, S, band, key_length, query_length):
    """From the definitions, in NumPy: for each query block, the key blocks holding at least
    one entry that may attend (rows r are query head r % G at position r // G)."""
    G, bq, bk = band.group, band.bq, band.bk
    rows = np.arange(-(-T * G // bq) * bq)
    t = rows[:, None] // G
    s = np.arange(-(-S // bk) * bk)[None, :]
    ok = (s < key_length) & (t < query_length)
    if band.is_causal:
        ok &= s <= t
    if band.window is not None:
        ok &= (t - band.window[0] <= s) & (s <= t + band.window[1])
    tiles = ok.reshape(len(rows) // bq, bq, -1, bk).any(axis=(1, 3))
    return tiles


@pytest.mark.parametrize("band", [
    Band(True, (5, 0), 1, 4, 4), Band(False, (3, 6), 1, 8, 4), Band(True, (2, 0), 3, 4, 8),
    Band(False, (0, 2), 2, 6, 5), Band(True, None, 2, 4, 4),
])
def test_key_and_query_ranges_are_exactly_the_band(band):
    """Forward: key blocks [lo, hi) of query block i are exactly those meeting the band (it is
    contiguous); backward: query blocks [lo, hi) of key block j likewise."""
    T, S, key_length, query_length = 23, 29, 26, 21
    needed = _tiles_needed(T, S, band, key_length, query_length)
    for i, row in enumerate(needed):
        lo, hi = key_block_range(i, band, key_length, query_length)
        assert row[lo:hi].all() and not row[:lo].any() and not row[hi:].any(), (i, lo, hi)
    traced = jax.jit(key_block_range, static_argnums=1)  # as in the kernel's loop
    assert tuple(map(int, traced(3, band, key_length, query_length))) == key_block_range(
        3, band, key_length, query_length)
    for j, column in enumerate(needed.T):
        lo, hi = query_block_range(j, band, key_length, query_length)
        assert column[lo:hi].all() and not column[:lo].any() and not column[hi:].any(), (j,)


@pytest.mark.parametrize("group", [1, 4])
def test_window_tiles_grow_linearly_in_T(group):
    """For a fixed window the forward visits a fixed number of tiles per query block, and so
    does the backward per key block: the count is a T + c (each doubling of T adds twice what
    the one before added; edges make c), where causal alone grows as T^2 (x4)."""

    def visited(T, window):
        band = Band(True, window, group, 64, 64)
        tiling = _Tiling(None, None, None, band, T, T)
        forward = sum(int(hi - lo) for lo, hi in map(tiling.key_range, range(T * group // 64)))
        backward = sum(int(hi - lo) for lo, hi in map(tiling.query_range, range(T // 64)))
        return forward, backward

    lengths = [512, 1024, 2048]
    windowed = [visited(T, (100, 0)) for T in lengths]
    causal = [visited(T, None) for T in lengths]
    (f1, b1), (f2, b2), (f3, b3) = windowed
    assert f3 - f2 == 2 * (f2 - f1) and b3 - b2 == 2 * (b2 - b1)  # affine in T
    assert f3 / f2 < 2.1 and b3 / b2 < 2.1
    assert causal[-1][0] / causal[-2][0] > 3.8  # the quadratic count it is compared with
    assert windowed[-1][0] * 5 < causal[-1][0]


@pytest.mark.parametrize("case, K", VARIANT_PARAMS)
def test_grouped_query_lengths_windows_match_jax_nn(case, K):
    """block_q=4 divides none of the query rows T G = 7, 14, 42; block_k=4 does not divide 9."""
    q, k, v = grouped_qkv(2, 7, 9, 6, K, 5, seed=K)
    f = partial(flash_attention, block_q=4, block_k=4)
    check_parity_with_jax_nn(f, q, k, v, atol=ATOL_F32, atol_grad=ATOL_GRAD,
                             **VARIANT_CASES[case])


@pytest.mark.parametrize("mask_shape", [(2, 6, 7, 9), (2, 1, 7, 9), (7, 9)])
def test_grouped_query_window_mask_head_by_head(mask_shape, monkeypatch):
    """A mask over heads and queries is folded with the rows; the long-sequence path too."""
    monkeypatch.setattr(flash_module, "ALL_HEADS_MAX_SCORES", 0)
    monkeypatch.setattr(flash_module, "BACKWARD_QUERY_BLOCK", 2)
    q, k, v = grouped_qkv(2, 7, 9, 6, 2, 5, seed=5)
    mask = jax.random.bernoulli(jax.random.key(6), 0.8, mask_shape).at[..., 1].set(True)
    kw = dict(mask=mask, is_causal=True, local_window_size=(3, 0),
              key_value_seq_lengths=jnp.array([9, 7]))
    f = partial(flash_attention, block_q=4, block_k=3)
    check_parity_with_jax_nn(f, q, k, v, atol=ATOL_F32, atol_grad=ATOL_GRAD, **kw)


def test_traced_lengths_and_window_unbatched():
    q, k, v = grouped_qkv(1, 7, 9, 6, 3, 5, seed=7)
    f = jax.jit(lambda q, k, v, n, m: flash_attention(
        q, k, v, query_seq_lengths=n, key_value_seq_lengths=m, local_window_size=(1, 2),
        block_q=4, block_k=4))
    got = f(q[0], k[0], v[0], jnp.array(6), jnp.array(8))
    want = jax.nn.dot_product_attention(q, k, v, query_seq_lengths=jnp.array([6]),
                                        key_value_seq_lengths=jnp.array([8]),
                                        local_window_size=(1, 2))[0]
    assert got.shape == (7, 6, 5) and jnp.allclose(got, want, atol=ATOL_F32)
    twin = flash_attention_reference(q[0], k[0], v[0], query_seq_lengths=jnp.array(6),
                                     key_value_seq_lengths=jnp.array(8), local_window_size=(1, 2))
    assert jnp.allclose(twin, want, atol=ATOL_F32)


@pytest.mark.outside_annotations
def test_bad_variant_arguments():
    q, k, v = grouped_qkv(2, 7, 9, 6, 3, 5)
    with pytest.raises(ValueError, match=r"must divide query's head count N.*\(K=4\)"):
        flash_attention(q, jnp.ones((2, 9, 4, 5)), jnp.ones((2, 9, 4, 5)))
    with pytest.raises(TypeError, match="local_window_size must be None, a non-negative int"):
        flash_attention(q, k, v, local_window_size=[1, 2, 3])
    with pytest.raises(ValueError, match=r"key_value_seq_lengths must lie in 0..9"):
        flash_attention(q, k, v, key_value_seq_lengths=jnp.array([-1, 3]))
    with pytest.raises(ValueError, match="give query_seq_lengths= or its old name query_lengths="):
        flash_attention(q, k, v, query_lengths=jnp.array([1, 2]),
                        query_seq_lengths=jnp.array([1, 2]))


@pytest.mark.outside_annotations
def test_bias_is_refused():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="takes no bias.*fused_attention"):
        flash_attention(q, k, v, jnp.zeros((T, S)))


@pytest.mark.outside_annotations
@pytest.mark.parametrize("name, value, error", [
    ("block_q", 0, ValueError), ("block_k", -8, ValueError),
    ("block_k", 3.0, TypeError), ("block_q", None, TypeError), ("block_k", True, TypeError),
])
def test_bad_block_sizes(name, value, error):
    q, k, v = _qkv()
    with pytest.raises(error, match=rf"{name} must be a positive int, got {value!r}"):
        flash_attention(q, k, v, **{name: value})


@pytest.mark.outside_annotations
def test_bad_lengths():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"key_lengths must have shape \[2\].*got \[2, 1\]"):
        flash_attention(q, k, v, key_lengths=jnp.ones((2, 1), int))
    with pytest.raises(TypeError, match=r"query_lengths must have an integer dtype.*float32"):
        flash_attention(q, k, v, query_lengths=jnp.ones(2))
    with pytest.raises(TypeError, match="key_lengths must be an integer array, got list"):
        flash_attention(q, k, v, key_lengths=[3, 4])


@pytest.mark.outside_annotations
def test_bad_inputs_raise_like_the_reference():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="mask must be boolean"):
        flash_attention(q, k, v, mask=jnp.ones((T, S)))
    with pytest.raises(ValueError, match=r"mask of shape \[13, 5\] does not broadcast"):
        flash_attention(q, k, v, mask=jnp.ones((T, 5), bool))
    with pytest.raises(ValueError, match="same head dim H"):
        flash_attention(q, k[..., :2], v)


# ------------------------------------------- soft-capping and sink logits (steps 1a, 3a)

GB, GT, GS, GN, GK, GH = 2, 7, 9, 6, 2, 5  # grouped heads: G = 3 query heads per key head

SCORE_CASES = {
    "soft_cap": dict(soft_cap=1.5),
    "sinks": dict(sinks=True),
    "causal_window_lengths": dict(
        soft_cap=2.0, sinks=True, is_causal=True, local_window_size=(3, 1),
        key_value_seq_lengths=jnp.array([0, 7]), query_seq_lengths=jnp.array([7, 5])),
    "mask": dict(soft_cap=0.7, sinks=True, mask_seed=8),
}


def _score_inputs(case):
    q, k, v = grouped_qkv(GB, GT, GS, GN, GK, GH, seed=9)
    kw = dict(SCORE_CASES[case])
    sink = 1.5 * jax.random.normal(jax.random.key(10), (GN,)) if kw.pop("sinks", False) else None
    if "mask_seed" in kw:
        mask = jax.random.bernoulli(jax.random.key(kw.pop("mask_seed")), 0.6, (GB, GN, GT, GS))
        kw["mask"] = mask.at[1, 4, 2].set(False)  # one row with no key at all
    return 3 * q, k, v, sink, kw  # queries x3: scores well past the caps


def _score_loss(f, q, k, v, sink, **kw):
    return _weigh(f(q, k, v, sink_logits=sink, **kw))


@pytest.mark.parametrize("case, strategy", [
    ("soft_cap", "all_heads"), ("sinks", "all_heads"), ("causal_window_lengths", "all_heads"),
    ("mask", "head_by_head"),
], indirect=["strategy"])
def test_soft_cap_and_sinks_values_and_gradients_match_reference(case, strategy):
    q, k, v, sink, kw = _score_inputs(case)
    blocks = dict(block_q=4, block_k=2)  # rows T G = 21 and S = 9: neither a multiple
    argnums = (0, 1, 2, 3) if sink is not None else (0, 1, 2)
    got, grads = _output_and_gradients(
        lambda *a: flash_attention(*a[:3], sink_logits=a[3], **kw, **blocks), q, k, v, sink,
        argnums=argnums)
    want = flash_attention_reference(q, k, v, sink_logits=sink, **kw)
    assert jnp.allclose(got, want, atol=ATOL_F32)
    wants = jax.jit(jax.grad(
        lambda *a: _score_loss(flash_attention_reference, *a, **kw), argnums))(q, k, v, sink)
    for g, w in zip(grads, wants, strict=True):
        assert jnp.allclose(g, w, atol=ATOL_GRAD), float(jnp.abs(g - w).max())


def test_soft_cap_and_sinks_match_the_papers_formulas_in_numpy():
    """Independent of the package: Gemma 2's cap and gpt-oss's sink column, in float64."""
    q, k, v, sink, _ = _score_inputs("sinks")
    cap = 1.5
    got = flash_attention(q, k, v, is_causal=True, soft_cap=cap, sink_logits=sink,
                          block_q=4, block_k=2)
    q64, sink64 = np.asarray(q, np.float64), np.asarray(sink, np.float64)[:, None, None]
    k64, v64 = (np.repeat(np.asarray(a, np.float64), GN // GK, axis=2) for a in (k, v))
    z = np.einsum("btnh,bsnh->bnts", q64, k64) / np.sqrt(GH)
    x = np.where(np.tril(np.ones((GT, GS), bool)), cap * np.tanh(z / cap), -np.inf)
    m = np.maximum(x.max(-1, keepdims=True), sink64)
    e = np.exp(x - m)
    weights = e / (e.sum(-1, keepdims=True) + np.exp(sink64 - m))
    want = np.einsum("bnts,bsnh->btnh", weights, v64)
    np.testing.assert_allclose(got, want, atol=ATOL_F32)


def test_sink_gradient_matches_finite_differences():
    q, k, v, sink, _ = _score_inputs("sinks")
    kw = dict(is_causal=True, soft_cap=2.0, block_q=4, block_k=2)
    loss = jax.jit(lambda s: _score_loss(flash_attention, q, k, v, s, **kw))
    grad, eps = jax.grad(loss)(sink), 1e-2
    for n in (0, GN - 1):
        e = jnp.zeros(GN).at[n].set(eps)
        finite = (loss(sink + e) - loss(sink - e)) / (2 * eps)
        np.testing.assert_allclose(grad[n], finite, rtol=2e-2, atol=2e-3)


def test_causality_through_gradients_with_soft_cap_and_sinks():
    q, k, v, sink, _ = _score_inputs("sinks")
    t = 4
    dk, dv = jax.jit(jax.grad(lambda k, v: flash_attention(
        q, k, v, is_causal=True, soft_cap=1.0, sink_logits=sink, block_q=4, block_k=2
    )[:, t].sum(), (0, 1)))(k, v)
    assert bool(jnp.all(dk[:, t + 1:] == 0)) and bool(jnp.all(dv[:, t + 1:] == 0))
    assert bool(jnp.any(dk[:, : t + 1] != 0))


def test_fully_masked_rows_with_sinks_are_zero_and_give_the_sink_no_gradient():
    q, k, v, sink, _ = _score_inputs("sinks")
    kw = dict(key_value_seq_lengths=jnp.array([0, 0]), sink_logits=sink, block_q=4, block_k=2)
    assert bool(jnp.all(flash_attention(q, k, v, **kw) == 0))
    dsink = jax.jit(jax.grad(
        lambda s: flash_attention(q, k, v, **(kw | {"sink_logits": s})).sum()))(sink)
    assert bool(jnp.all(dsink == 0))


@pytest.mark.outside_annotations
def test_bad_soft_cap_and_sink_logits_are_named():
    q, k, v = grouped_qkv(GB, GT, GS, GN, GK, GH)
    for f in (flash_attention, flash_attention_reference):
        with pytest.raises(ValueError, match="soft_cap must be a positive finite number"):
            f(q, k, v, soft_cap=0.0)
        with pytest.raises(ValueError, match=r"sink_logits must be \[N\] = \[6\].*got \[2\]"):
            f(q, k, v, sink_logits=jnp.zeros(GK))


def test_soft_cap_and_sinks_unbatched_and_bfloat16():
    q, k, v, sink, _ = _score_inputs("sinks")
    kw = dict(is_causal=True, soft_cap=1.0, sink_logits=sink)
    got = flash_attention(q[0], k[0], v[0], **kw, block_q=4, block_k=2)
    assert got.shape == (GT, GN, GH)
    assert jnp.allclose(got, flash_attention_reference(q[0], k[0], v[0], **kw), atol=ATOL_F32)
    half = [x.astype(jnp.bfloat16) for x in (q, k, v)]
    got = flash_attention(*half, **kw, block_q=4, block_k=2)
    assert got.dtype == jnp.bfloat16
    assert jnp.allclose(got.astype(jnp.float32), flash_attention_reference(*half, **kw),
                        atol=ATOL_BF16)
