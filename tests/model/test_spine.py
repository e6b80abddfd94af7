"""What both model families share: output head, decode cache, sown attention maps
(attention.model.spine)."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.config import TransformerConfig
from attention.model.language_model import LanguageModel
from attention.model.spine import sown_attention_maps
from attention.model.transformer import Transformer

# D=16, N=2 heads, 3 layers, V=13; B=1, S=5, T=3: every axis a distinct size.
SMALL = dict(d_model=16, num_heads=2, d_ff=32, num_layers=3)
SRC = jnp.array([[5, 6, 7, 8, 2]])
TGT = jnp.array([[1, 9, 10]])


@pytest.fixture(scope="module")
def models():
    translation = Transformer(TransformerConfig.tiny(vocab_size=13, **SMALL), rngs=nnx.Rngs(0))
    lm_config = TransformerConfig.language_model(vocab_size=13, **SMALL)
    return translation, LanguageModel(lm_config, rngs=nnx.Rngs(1))


def test_maps_are_named_by_stack_and_kind_and_stacked_over_layers(models):
    translation, language_model = models
    maps = sown_attention_maps(translation, SRC, TGT)
    assert list(maps) == ["encoder_self", "decoder_self", "decoder_cross"]
    assert maps["encoder_self"].shape == (3, 1, 2, 5, 5)
    assert maps["decoder_self"].shape == (3, 1, 2, 3, 3)
    assert maps["decoder_cross"].shape == (3, 1, 2, 3, 5)
    for weights in maps.values():  # every row is a distribution over the keys
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    lm_maps = sown_attention_maps(language_model, TGT)
    assert list(lm_maps) == ["decoder_self"] and lm_maps["decoder_self"].shape == (3, 1, 2, 3, 3)


@pytest.mark.parametrize("share", [True, False])
def test_output_head_is_hidden_times_the_weight(share):
    config = TransformerConfig.tiny(vocab_size=13, share_embeddings=share, **SMALL)
    model = Transformer(config, rngs=nnx.Rngs(0))
    hidden = jnp.linspace(-1.0, 1.0, 2 * 16).reshape(2, 16)
    weight = model.output_weight()
    assert weight.shape == (13, 16)
    if share:
        np.testing.assert_array_equal(weight, model.src_embed.embedding[...])
    np.testing.assert_allclose(model.logits(hidden), hidden @ weight.T, rtol=1e-5, atol=1e-6)


def test_both_decode_caches_refuse_more_positions_than_the_model_has(models):
    translation, language_model = models
    memory = translation.encode(SRC, deterministic=True)
    message = r"max_len=257 decoding steps need 257 positions but the model has config.max_len"
    with pytest.raises(ValueError, match=message):
        translation.init_decode_cache(memory, 257)
    with pytest.raises(ValueError, match=r"config.max_len=128"):
        language_model.init_decode_cache(1, 129)
