"""The whole transformer: parameter count, causality, padding, sharing, modes, maps, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.config import TransformerConfig
from attention.model.positional import sinusoidal_positions
from attention.model.transformer import Transformer, attention_maps, count_params

CFG = TransformerConfig(
    src_vocab_size=17, tgt_vocab_size=13, d_model=12, num_heads=3, d_ff=20, num_layers=2,
    max_len=10,
)
SRC = jnp.array([[5, 6, 7, 8, 2, 0, 0], [9, 3, 4, 2, 0, 0, 0]])  # padded with pad_id=0
TGT = jnp.array([[1, 4, 5, 6, 7], [1, 8, 9, 10, 0]])


@pytest.fixture(scope="module", params=[False, True], ids=["post_ln", "pre_ln"])
def model(request):
    """One small model per layer-norm placement, shared by the tests of this file."""
    return Transformer(CFG.replace(norm_first=request.param), rngs=nnx.Rngs(0))


def expected_param_count(vocab, d, f, n, *, shared, tgt_vocab=None, norm_first=False):
    """Count the paper's matrices by hand: 4 attention projections (with biases), two FFN
    layers, a LayerNorm (scale + bias) per residual block, embeddings, output projection."""
    attention = 4 * (d * d + d)
    ffn = (d * f + f) + (f * d + d)
    norm = 2 * d
    encoder_layer = attention + ffn + 2 * norm
    decoder_layer = 2 * attention + ffn + 3 * norm
    if shared:
        embeddings = vocab * d
    else:
        embeddings = vocab * d + tgt_vocab * d + d * tgt_vocab
    final_norms = 2 * norm if norm_first else 0
    return embeddings + n * (encoder_layer + decoder_layer) + final_norms


def test_base_model_has_about_65m_parameters():
    cfg = TransformerConfig.base(vocab_size=37000)
    abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))  # no memory used
    count = count_params(abstract)
    assert count == expected_param_count(37000, 512, 2048, 6, shared=True)
    assert 63_000_000 <= count <= 66_000_000  # Table 3: 65M


def test_small_model_parameter_count_unshared(model):
    assert count_params(model) == expected_param_count(
        17, 12, 20, 2, shared=False, tgt_vocab=13, norm_first=model.config.norm_first
    )


def test_shared_embeddings_are_one_array():
    cfg = CFG.replace(tgt_vocab_size=17, share_embeddings=True)
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    assert model.src_embed is model.tgt_embed and model.output is None
    assert model.encoder.embed is model.decoder.embed
    shapes = [x.shape for x in jax.tree.leaves(nnx.state(model, nnx.Param)) if x.shape == (17, 12)]
    assert shapes == [(17, 12)]
    # The tie survives split/merge (how optimisers and checkpoints see the model).
    merged = nnx.merge(*nnx.split(model))
    assert merged.src_embed is merged.tgt_embed
    # Logits are h E^T with the same matrix that embeds the tokens.
    model.src_embed.embedding[...] = model.src_embed.embedding[...] * 2
    hidden = jnp.ones((1, 12))
    np.testing.assert_allclose(model.logits(hidden), hidden @ model.tgt_embed.embedding[...].T,
                               rtol=1e-5, atol=1e-6)


def test_output_shape_dtype_and_decode_split(model):
    logits = model(SRC, TGT, deterministic=True)
    assert logits.shape == (2, 5, 13) and logits.dtype == jnp.float32
    memory = model.encode(SRC, deterministic=True)
    assert memory.shape == (2, 7, 12)
    np.testing.assert_allclose(model.decode(TGT, memory, SRC, deterministic=True), logits,
                               rtol=1e-6)
    np.testing.assert_allclose(
        model.decode(TGT, memory, src_mask=model.source_mask(SRC), deterministic=True), logits,
        rtol=1e-6,
    )
    jitted = nnx.jit(lambda m, s, t: m(s, t, deterministic=True))(model, SRC, TGT)
    np.testing.assert_allclose(jitted, logits, rtol=1e-5, atol=1e-5)


def test_bfloat16_computation_gives_float32_logits():
    model = Transformer(CFG.replace(dtype="bfloat16"), rngs=nnx.Rngs(0))
    logits = model(SRC, TGT, deterministic=True)
    assert logits.dtype == jnp.float32
    reference = Transformer(CFG, rngs=nnx.Rngs(0))(SRC, TGT, deterministic=True)
    np.testing.assert_allclose(logits, reference, atol=0.15)


class _AddDelta(nnx.Module):
    """Token embedding plus a differentiable offset, to take gradients w.r.t. embeddings."""

    def __init__(self, inner, delta):
        self.inner = inner
        self.delta = nnx.data(delta)

    def __call__(self, tokens):
        return self.inner(tokens) + self.delta


def _jacobians(model, src, tgt):
    graphdef, state = nnx.split(model)

    def logits(src_delta, tgt_delta):
        m = nnx.merge(graphdef, state)
        m.encoder.embed = _AddDelta(m.encoder.embed, src_delta)
        m.decoder.embed = _AddDelta(m.decoder.embed, tgt_delta)
        return m(src, tgt, deterministic=True)

    D = model.config.d_model
    zeros = (jnp.zeros((*src.shape, D)), jnp.zeros((*tgt.shape, D)))
    return jax.jit(jax.jacrev(logits, argnums=(0, 1)))(*zeros)  # each [B, T, V, B, S|T, D]


def test_causality_and_padding_through_gradients(model):
    _check_causality_and_padding(model)


def _check_causality_and_padding(model):
    jac_src, jac_tgt = _jacobians(model, SRC, TGT)
    # Sensitivity of logits[b, t] to the embedding at [b', position]: sum of |d logits / d x|.
    tgt_sens = np.abs(np.asarray(jac_tgt)).sum(axis=(2, 5))  # [B, T, B, T]
    src_sens = np.abs(np.asarray(jac_src)).sum(axis=(2, 5))  # [B, T, B, S]
    src_real = np.asarray(SRC != 0)
    for b in range(2):
        for t in range(5):
            for u in range(5):
                if u > t:  # the future never reaches position t
                    assert tgt_sens[b, t, b, u] == 0, (b, t, u)
                elif TGT[b, u] != 0:  # the real past always does
                    assert tgt_sens[b, t, b, u] > 0, (b, t, u)
            # every real source token matters, no padding token does
            assert np.all(src_sens[b, t, b][src_real[b]] > 0)
            assert np.all(src_sens[b, t, b][~src_real[b]] == 0)
            # examples in a batch are independent
            assert tgt_sens[b, t, 1 - b].sum() == 0 and src_sens[b, t, 1 - b].sum() == 0


# Positions inside self-attention (RoPE, ALiBi) and fewer key/value heads than query heads:
# D=24, N=4, H=6 and K=2 (grouped-query) or K=1 (multi-query), every axis a distinct size;
# one layer each, to keep the Jacobians cheap.
INSIDE = {
    "rope_gqa": dict(d_model=24, num_heads=4, positional="rope", num_kv_heads=2, num_layers=1),
    "alibi_mqa": dict(d_model=24, num_heads=4, positional="alibi", num_kv_heads=1,
                      norm_first=True, num_layers=1),
}


@pytest.mark.parametrize("name", list(INSIDE))
def test_rope_alibi_and_grouped_heads_are_causal_ignore_padding_and_see_order(name):
    cfg = CFG.replace(**INSIDE[name])
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    assert model.encoder.positions is None and model.decoder.positions is None
    # Fewer key/value heads: each W^K, W^V is [D, K*H] instead of [D, D].
    d, kh = 24, cfg.kv_heads * cfg.head_dim
    full_kv = 3 * 2 * (d * d + d)  # W^K and W^V (with biases) of 3 attentions, if K were N
    assert count_params(model) == expected_param_count(
        17, 24, 20, 1, shared=False, tgt_vocab=13, norm_first=cfg.norm_first
    ) - full_kv + 3 * 2 * (d * kh + kh)
    logits = model(SRC, TGT, deterministic=True)
    assert logits.shape == (2, 5, 13) and np.all(np.isfinite(logits))
    if cfg.positional == "alibi":  # the fused kernel takes ALiBi's bias and the K heads
        fused = Transformer(cfg.replace(attention_impl="fused"), rngs=nnx.Rngs(0))
        np.testing.assert_allclose(fused(SRC, TGT, deterministic=True), logits, rtol=1e-4,
                                   atol=1e-5)
    _check_causality_and_padding(model)
    # Without positions an encoder is permutation-equivariant: permuting the source tokens
    # permutes the memory rows. RoPE and ALiBi break that, though nothing is added to the
    # embeddings, because each score sees the distance between its two tokens.
    src, order = SRC[:1, :4], jnp.array([2, 0, 3, 1])  # [5, 6, 7, 8], no padding
    permuted = model.encode(src[:, order], deterministic=True)
    original = model.encode(src, deterministic=True)[:, order]
    assert np.abs(np.asarray(permuted - original)).max() > 1e-3


def test_padding_never_changes_real_positions(model):
    def run(src, tgt):
        return model(src, tgt, deterministic=True)

    base = run(SRC[:, :5], TGT[:, :4])
    more_src_padding = run(jnp.pad(SRC, ((0, 0), (0, 3))), TGT[:, :4])
    more_tgt_padding = run(SRC[:, :5], jnp.pad(TGT[:, :4], ((0, 0), (0, 4))))
    np.testing.assert_allclose(more_src_padding, base, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(more_tgt_padding[:, :4], base, rtol=1e-5, atol=1e-5)
    # A batch-mate's length does not matter either.
    alone = run(SRC[1:, :4], TGT[1:, :3])
    np.testing.assert_allclose(base[1:, :3], alone, rtol=1e-5, atol=1e-5)


def test_post_ln_and_pre_ln_differ_and_learned_positions_run():
    post = Transformer(CFG, rngs=nnx.Rngs(0))
    pre = Transformer(CFG.replace(norm_first=True), rngs=nnx.Rngs(0))
    learned = Transformer(CFG.replace(positional="learned"), rngs=nnx.Rngs(0))
    post_logits = post(SRC, TGT, deterministic=True)
    pre_logits = pre(SRC, TGT, deterministic=True)
    assert np.all(np.isfinite(pre_logits)) and not np.allclose(post_logits, pre_logits)
    assert learned(SRC, TGT, deterministic=True).shape == (2, 5, 13)
    assert count_params(learned) == count_params(post) + 2 * 10 * 12  # two [max_len, D] tables


def test_train_eval_and_deterministic_override():
    model = Transformer(CFG.replace(dropout_rate=0.3, attention_dropout_rate=0.2),
                        rngs=nnx.Rngs(params=0, dropout=1))
    clean = model(SRC, TGT, deterministic=True)
    assert not np.allclose(model(SRC, TGT), clean)  # training by default: dropout on
    model.eval()
    np.testing.assert_array_equal(model(SRC, TGT), clean)
    assert not np.allclose(model(SRC, TGT, deterministic=False), clean)
    model.train()
    a, b = model(SRC, TGT), model(SRC, TGT)
    assert not np.allclose(a, b)  # the dropout stream advances


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_attention_maps(model):
    maps = attention_maps(model, SRC, TGT)
    assert maps["encoder_self"].shape == (2, 2, 3, 7, 7)
    assert maps["decoder_self"].shape == (2, 2, 3, 5, 5)
    assert maps["decoder_cross"].shape == (2, 2, 3, 5, 7)
    np.testing.assert_allclose(maps["decoder_cross"].sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.asarray(maps["decoder_self"])[..., np.triu_indices(5, 1)[0],
                                                  np.triu_indices(5, 1)[1]] == 0)
    src_pad = np.asarray(SRC == 0)[None, :, None, None, :]
    assert np.all(np.where(src_pad, np.asarray(maps["decoder_cross"]), 0) == 0)
    assert np.all(np.where(src_pad, np.asarray(maps["encoder_self"]), 0) == 0)

    if model.config.norm_first:
        return
    # Layer 0 of the post-LN encoder (its input is not normalised), recomputed by hand in
    # NumPy from the model's own weights.
    attn = model.encoder.layers[0].self_attention
    x = (np.asarray(model.src_embed.embedding[...])[np.asarray(SRC)] * math.sqrt(12)
         + np.asarray(sinusoidal_positions(7, 12))[None])
    q = (x @ np.asarray(attn.query.kernel[...]) + np.asarray(attn.query.bias[...]))
    k = (x @ np.asarray(attn.key.kernel[...]) + np.asarray(attn.key.bias[...]))
    q, k = q.reshape(2, 7, 3, 4), k.reshape(2, 7, 3, 4)
    scores = np.einsum("btnh,bsnh->bnts", q, k) / 2.0
    scores = np.where(src_pad[0], -1e30, scores)
    np.testing.assert_allclose(maps["encoder_self"][0], _softmax(scores), rtol=1e-4, atol=1e-6)


def test_attention_kernel_gives_the_same_logits():
    pytest.importorskip("attention.kernels")
    reference = Transformer(CFG, rngs=nnx.Rngs(0))(SRC, TGT, deterministic=True)
    fused = Transformer(CFG.replace(attention_impl="fused"), rngs=nnx.Rngs(0))
    np.testing.assert_allclose(fused(SRC, TGT, deterministic=True), reference, rtol=1e-4,
                               atol=1e-5)


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    ("src", "tgt", "error", "message"),
    [
        (SRC.at[0, 0].set(17), TGT, ValueError,
         r"src_tokens holds token ids 0\.\.17 but the vocabulary has ids 0\.\.16"),
        (SRC, TGT.at[1, 1].set(-1), ValueError, r"tgt_tokens holds token ids -1\.\.10"),
        (SRC.astype(jnp.float32), TGT, TypeError, "src_tokens must hold integer token ids"),
        (jnp.ones((2, 11), jnp.int32), TGT, ValueError,
         r"src_tokens has length 11 \(shape \[2, 11\]\) but the model has max_len=10"),
        (SRC[:1], TGT, ValueError, r"src_tokens \[1, 7\] and tgt_tokens \[2, 5\] must have the "
                                   "same batch size"),
        (SRC[:, :0], TGT, ValueError, r"src_tokens is empty \(shape \[2, 0\]\)"),
        (SRC, TGT[:, :0], ValueError, r"tgt_tokens is empty"),
        (SRC[0], TGT, ValueError, r"src_tokens must have shape \[B, T\].*got \[7\]"),
        ([[5, 6]], TGT, TypeError, "src_tokens must be an integer array"),
    ],
)
def test_bad_inputs(src, tgt, error, message, model):
    with pytest.raises(error, match=message):
        model(src, tgt, deterministic=True)


@pytest.mark.outside_annotations
def test_bad_memory_and_config(model):
    memory = model.encode(SRC, deterministic=True)
    with pytest.raises(ValueError, match=r"memory .* and tgt_tokens have different batch sizes"):
        model.decode(TGT[:1], memory, SRC)
    with pytest.raises(ValueError, match=r"source mask must be \[B, 1, 1, S\] = \[2, 1, 1, 7\]"):
        model.decode(TGT, memory, src_mask=model.source_mask(SRC[:, :4]))
    with pytest.raises(TypeError, match="config must be a TransformerConfig"):
        Transformer({"d_model": 4}, rngs=nnx.Rngs(0))
