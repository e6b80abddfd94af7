"""Tests for attention/model/variants.py (step 13a) and the ``attention=`` switch of the config:
a tiny language model with each variant trains, its cache equals the full call and cached
generation equals uncached; maps; the config's named errors.

Sizes: V=13 tokens, D=16, N=2 heads (d_k = 8), F=24, L=2 layers, B=3, T=5.
"""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from attention.mechanism.differential import DifferentialAttention
from attention.mechanism.kv_cache import KVCache
from attention.mechanism.latent import LatentAttention, LatentCache
from attention.mechanism.linear import LinearAttention, LinearState
from attention.model.config import TransformerConfig
from attention.model.language_model import LanguageModel, language_model_attention_maps
from attention.model.sampling import generate
from attention.model.variants import make_self_attention_variant
from attention.training.train import train_step

V, D, N, F, L, B, T = 13, 16, 2, 24, 2, 3, 5

VARIANTS = {  # attention -> (overrides, module type, cache type)
    "mla": (dict(positional="rope", latent_dim=12), LatentAttention, LatentCache),
    "differential": (dict(positional="rope", num_kv_heads=1), DifferentialAttention, KVCache),
    "linear": (dict(positional="sinusoidal", linear_decay=0.9), LinearAttention, LinearState),
}


def config(attention, **overrides):
    fields = dict(vocab_size=V, d_model=D, num_heads=N, d_ff=F, num_layers=L, max_len=11,
                  dropout_rate=0.0, attention=attention)
    return TransformerConfig.language_model(**(fields | overrides))


def tokens(seed, shape=(B, T)):
    return jax.random.randint(jax.random.key(seed), shape, 3, V)


@pytest.mark.parametrize("attention", sorted(VARIANTS))
def test_variant_language_model_caches_trains_and_generates(attention):
    overrides, module_type, cache_type = VARIANTS[attention]
    # One layer keeps the compilations short; the maps test below has two.
    model = LanguageModel(config(attention, num_layers=1, **overrides), rngs=nnx.Rngs(0))
    assert all(isinstance(layer.self_attention, module_type) for layer in model.decoder.layers)

    cache = model.init_decode_cache(B, T)
    assert all(isinstance(c, cache_type) for c in cache.self_attention)

    # Cached generation (a prefill of two, then one position at a time, the variant's own
    # cache) draws the same tokens as recomputing the whole prefix at every step.
    prompt = tokens(2, (B, 3)).at[:, 0].set(1)
    cached, _ = generate(model, prompt, max_new_tokens=4, greedy=True, stop_at_eos=False)
    uncached, _ = generate(model, prompt, max_new_tokens=4, greedy=True, stop_at_eos=False,
                           use_cache=False)
    np.testing.assert_array_equal(cached, uncached)

    # A few updates on one repeated batch: the loss is finite and goes down.
    batch_tokens = tokens(3, (B, T + 1))
    batch = {"tgt_in": batch_tokens[:, :-1], "tgt_out": batch_tokens[:, 1:]}
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    losses = [float(train_step(model, optimizer, batch, label_smoothing=0.0, pad_id=0)["loss"])
              for _ in range(6)]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.1, losses


@pytest.mark.parametrize("attention", ["mla", "differential"])
def test_attention_maps_are_causal(attention):
    overrides = VARIANTS[attention][0]
    model = LanguageModel(config(attention, **overrides), rngs=nnx.Rngs(1))
    maps = language_model_attention_maps(model, tokens(4))
    if attention == "differential":  # both softmax maps beside their difference
        assert set(maps) == {"decoder_self", "decoder_self_1", "decoder_self_2"}
        first, second = np.asarray(maps["decoder_self_1"]), np.asarray(maps["decoder_self_2"])
        np.testing.assert_allclose(first.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(second.sum(-1), 1.0, atol=1e-5)
        lambdas = np.array([float(layer.self_attention.lambda_())
                            for layer in model.decoder.layers])[:, None, None, None, None]
        np.testing.assert_allclose(maps["decoder_self"], first - lambdas * second, atol=1e-5)
    else:
        assert set(maps) == {"decoder_self"}
    weights = np.asarray(maps["decoder_self"])
    assert weights.shape == (L, B, N, T, T)
    np.testing.assert_array_equal(weights[..., np.triu_indices(T, 1)[0],
                                          np.triu_indices(T, 1)[1]], 0)
    if attention == "differential":  # the decoder numbers its layers 1, 2, ... for lambda_init
        assert [layer.self_attention.lambda_init for layer in model.decoder.layers] == [
            pytest.approx(0.8 - 0.6 * np.exp(-0.3 * i)) for i in range(L)]
    rows = weights.sum(-1)  # softmax rows sum to 1; a difference of maps to 1 - lambda
    expected = [1.0] * L if attention == "mla" else [
        1.0 - float(layer.self_attention.lambda_()) for layer in model.decoder.layers]
    np.testing.assert_allclose(rows, np.asarray(expected)[:, None, None, None]
                               * np.ones_like(rows), atol=1e-5)


def test_factory_builds_each_variant_with_the_models_positions():
    mla = make_self_attention_variant(config("mla", positional="rope"), rngs=nnx.Rngs(0),
                                      layer_index=0)
    assert (mla.latent_dim, mla.rope_head_dim, mla.process_heads.head_dim) == (4 * 8, 4, 4)
    differential = make_self_attention_variant(
        config("differential", positional="learned"), rngs=nnx.Rngs(0), layer_index=2)
    assert differential.head_dim == 4 and differential.process_heads is None
    assert differential.lambda_init == pytest.approx(0.8 - 0.6 * np.exp(-0.3 * 2))
    with pytest.raises(ValueError, match="make_attention builds 'standard'"):
        make_self_attention_variant(config("standard"), rngs=nnx.Rngs(0), layer_index=0)


def test_config_round_trips_and_defaults():
    cfg = config("mla", latent_dim=12, query_latent_dim=10)
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    assert config("standard").attention == "standard"
    assert config("mla").mla_latent_dim == 4 * 8 and config("mla").mla_rope_head_dim == 4


def test_linear_attention_has_no_maps():
    model = LanguageModel(config("linear", positional="learned"), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="attention='linear' never forms"):
        language_model_attention_maps(model, tokens(5))


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(attention="sparse"), "attention must be one of"),
    (dict(attention="mla", architecture="encoder_decoder", pad_id=0, bos_id=1, eos_id=2),
     "built for the decoder-only language model"),
    (dict(attention="linear", attention_impl="flash", positional="sinusoidal"),
     "use attention_impl='reference'"),
    (dict(attention="mla", attention_dropout_rate=0.1), "set attention_dropout_rate=0"),
    (dict(attention="differential", positional="alibi"), "takes no ALiBi bias"),
    (dict(attention="linear"), "attention='linear' has no rotary positions"),
    (dict(attention="mla", num_kv_heads=1), "leave num_kv_heads=None"),
    (dict(attention="standard", latent_dim=8), "set attention='mla' or leave latent_dim=None"),
    (dict(attention="mla", linear_decay=0.9), "set attention='linear' or leave linear_decay"),
    (dict(attention="linear", positional="learned", linear_decay=0.0),
     r"linear_decay must be in \(0, 1\]"),
    (dict(attention="mla", rope_head_dim=3), "rope_head_dim must be even, got 3"),
    (dict(attention="mla", query_latent_dim=0), "query_latent_dim must be a positive int"),
    (dict(attention="mla", qk_norm="rms", output_gate=True),
     r"qk_norm='rms', output_gate=True are options of the standard multi-head attention"),
    (dict(attention="linear", positional="learned", attn_soft_cap=30.0),
     "attn_soft_cap=30.0 is an option of the standard"),
    (dict(attention="differential", d_model=12, num_heads=2),
     "d_k = 6 into two halves, each rotated in pairs by RoPE"),
])
def test_config_errors_are_named(overrides, message):
    fields = dict(vocab_size=V, d_model=D, num_heads=N, d_ff=F, num_layers=L) | overrides
    with pytest.raises(ValueError, match=message):
        TransformerConfig.language_model(**fields)
