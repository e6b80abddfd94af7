"""The decoder-only language model: built from the decoder, causal, cached = uncached, maps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.config import TransformerConfig
from attention.model.decoder import DecoderLayer
from attention.model.language_model import LanguageModel, language_model_attention_maps
from attention.model.transformer import Transformer, attention_maps

V, D, N, F, L = 23, 24, 4, 40, 2  # distinct sizes: a swapped axis fails


def config(**overrides):
    return TransformerConfig.language_model(vocab_size=V, d_model=D, num_heads=N, d_ff=F,
                                            num_layers=L, max_len=19, dropout_rate=0.0,
                                            **overrides)


@pytest.fixture(scope="module")
def model():
    """One model with the default config, shared by the tests that need no other."""
    return LanguageModel(config(), rngs=nnx.Rngs(0))


def tokens(B=3, T=7, seed=0):
    return jax.random.randint(jax.random.key(seed), (B, T), 3, V)


def test_preset_is_gpt_shaped_and_round_trips():
    cfg = TransformerConfig.language_model(vocab_size=100)
    assert cfg.is_language_model and cfg.norm_first and cfg.share_embeddings
    assert cfg.positional == "rope" and cfg.vocab_size == 100
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    tiny = TransformerConfig.tiny(vocab_size=50, num_layers=3).as_language_model()
    assert tiny.architecture == "decoder_only" and tiny.num_layers == 3 and tiny.norm_first
    # A config saved before the field existed loads as the translation model it described.
    saved = TransformerConfig.tiny(vocab_size=50).to_dict()
    del saved["architecture"]
    assert TransformerConfig.from_dict(saved).architecture == "encoder_decoder"


def test_built_from_the_decoder_stack_without_cross_attention(model):
    assert all(isinstance(layer, DecoderLayer) for layer in model.decoder.layers)
    assert all(layer.cross_attention is None for layer in model.decoder.layers)
    assert model.decoder.embed is model.embed and model.output is None  # tied
    # Parameters: embedding V*D, per layer attention 4 D^2 + 4 D, FFN 2 D F + F + D, two
    # LayerNorms 4 D, plus the final LayerNorm 2 D: counted from the formula, not the code.
    per_layer = 4 * D * D + 4 * D + 2 * D * F + F + D + 4 * D
    count = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert count == V * D + L * per_layer + 2 * D


@pytest.mark.parametrize("positional", ["rope", "learned"])
def test_causal_through_gradients(positional):
    """d logits[t] / d embedding(token s) is zero for every s > t and nonzero for s <= t."""
    model = LanguageModel(config(positional=positional), rngs=nnx.Rngs(1))
    x = tokens(B=1, T=6)
    embedded = model.embed(x)

    def summed_logits_T(e):
        # Run the stack on given embeddings: the same path as the call, after the lookup.
        h = e if model.decoder.positions is None else e + model.decoder.positions(6)[None]
        from attention.model.decoder import target_mask

        mask = target_mask(x, model.config.pad_id)
        for layer in model.decoder.layers:
            h = layer(h, None, None, mask, deterministic=True)
        return model.logits(model.decoder.final_norm(h))[0].sum(-1)

    # One compiled Jacobian: row t is d logits[t].sum() / d embedding, the gradient per t.
    jacobian_TSD = jax.jit(jax.jacrev(summed_logits_T))(embedded)[:, 0]
    norms_TS = np.asarray(jnp.linalg.norm(jacobian_TSD, axis=-1))
    for t in range(6):
        assert np.all(norms_TS[t, t + 1:] == 0.0), (t, norms_TS[t])
        assert np.all(norms_TS[t, : t + 1] > 0.0), (t, norms_TS[t])


def test_padding_at_the_end_changes_no_real_position(model):
    x = tokens(B=2, T=5)
    padded = jnp.concatenate([x, jnp.zeros((2, 3), x.dtype)], axis=1)
    np.testing.assert_allclose(model(padded, deterministic=True)[:, :5],
                               model(x, deterministic=True), atol=1e-5)


@pytest.mark.parametrize("overrides", [dict(), dict(num_kv_heads=2), dict(num_kv_heads=1,
                                       positional="alibi"), dict(positional="learned")])
def test_prefill_and_steps_equal_the_full_call(model, overrides):
    if overrides:  # the default config reuses the module's model
        model = LanguageModel(config(**overrides), rngs=nnx.Rngs(3))
    x = tokens(B=3, T=9)
    full_BTV = model(x, deterministic=True)
    cache = model.init_decode_cache(3, 9)
    first, cache = model.prefill(x[:, :4], cache, 0)
    rows = [first]
    for t in range(4, 9):
        logits_BV, cache = model.decode_step(x[:, t], cache, t)
        rows.append(logits_BV[:, None])
    np.testing.assert_allclose(jnp.concatenate(rows, axis=1), full_BTV, atol=1e-4)
    if "num_kv_heads" in overrides:  # the cache holds K heads, not N
        assert cache.self_attention[0].key.shape == (3, 9, overrides["num_kv_heads"], D // N)


def test_untied_output_and_jit():
    model = LanguageModel(config(share_embeddings=False), rngs=nnx.Rngs(4))
    assert model.output is not None
    x = tokens()
    eager = model(x, deterministic=True)
    jitted = nnx.jit(lambda m, t: m(t, deterministic=True))(model, x)
    np.testing.assert_allclose(eager, jitted, atol=1e-5)
    np.testing.assert_allclose(model.logits(model.features(x, deterministic=True)), eager,
                               atol=1e-6)


def test_attention_maps_are_causal_distributions_and_match_the_function(model):
    x = tokens(B=2, T=6)
    maps = attention_maps(model, x)
    assert set(maps) == {"decoder_self"}
    w = np.asarray(maps["decoder_self"])
    assert w.shape == (L, 2, N, 6, 6)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(w, k=1) == 0.0)
    np.testing.assert_array_equal(w, language_model_attention_maps(model, x)["decoder_self"])


@pytest.mark.outside_annotations
def test_the_other_kind_of_model_is_refused_in_one_line(model):
    with pytest.raises(ValueError, match="architecture='decoder_only'"):
        LanguageModel(TransformerConfig.tiny(vocab_size=20), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="LanguageModel"):
        Transformer(config(), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="architecture must be one of"):
        TransformerConfig.language_model(vocab_size=20, architecture="encoder_only")
    with pytest.raises(ValueError, match="without tgt_tokens"):
        attention_maps(model, tokens(), tokens())
    with pytest.raises(ValueError, match="max_len"):
        model.init_decode_cache(2, 20)
    with pytest.raises(ValueError, match="tokens has length 20"):
        model(jnp.ones((1, 20), jnp.int32))


def test_without_a_pad_id_every_token_is_a_key_and_the_cache_agrees():
    """A loaded checkpoint's switches: no padding token, RMSNorm, SwiGLU, no biases, no
    sqrt(d_model) scale, grouped-query heads."""
    cfg = config(pad_id=None, bos_id=None, norm="rms_norm", feed_forward="swiglu",
                 use_bias=False, scale_embeddings=False, num_kv_heads=2)
    model = LanguageModel(cfg, rngs=nnx.Rngs(1))
    ids = tokens().at[:, 2].set(0)  # token 0 is no padding here
    maps = language_model_attention_maps(model, ids)["decoder_self"]
    assert np.all(np.asarray(maps[:, :, :, 3:, 2]) > 0)
    full = model(ids, deterministic=True)
    cache = model.init_decode_cache(3, 7)
    prefix, cache = model.prefill(ids[:, :4], cache, 0)
    steps = [model.decode_step(ids[:, t], cache, t) for t in (4,)]
    np.testing.assert_allclose(prefix, full[:, :4], atol=1e-5)
    np.testing.assert_allclose(steps[0][0], full[:, 4], atol=1e-5)
