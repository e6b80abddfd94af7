"""The encoder layer and the encoder stack."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.mechanism.masks import padding_mask
from attention.model.config import TransformerConfig
from attention.model.embeddings import TokenEmbedding
from attention.model.encoder import Encoder, EncoderLayer

CFG = TransformerConfig(
    src_vocab_size=13, tgt_vocab_size=13, d_model=12, num_heads=3, d_ff=20, num_layers=2,
    max_len=16,
)


def test_encoder_layer_is_permutation_equivariant():
    # Without positional encodings, self-attention and the FFN treat the sequence as a set.
    layer = EncoderLayer(CFG, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (2, 7, 12))
    permutation = jnp.array([4, 0, 6, 2, 1, 5, 3])
    np.testing.assert_allclose(
        layer(x[:, permutation], None, deterministic=True),
        layer(x, None, deterministic=True)[:, permutation],
        rtol=1e-5, atol=1e-5,
    )


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_ignores_padding(norm_first):
    cfg = CFG.replace(norm_first=norm_first)
    encoder = Encoder(cfg, TokenEmbedding(13, 12, rngs=nnx.Rngs(1)), rngs=nnx.Rngs(0))
    encoder.eval()
    src = jnp.array([[5, 6, 7, 8, 9], [3, 4, 5, 6, 7]])
    padded = jnp.array([[5, 6, 7, 8, 9, 0, 0], [3, 4, 5, 6, 7, 0, 0]])
    short = encoder(src, padding_mask(tokens=src, pad_id=0))
    long = encoder(padded, padding_mask(tokens=padded, pad_id=0))
    assert long.shape == (2, 7, 12)
    np.testing.assert_allclose(long[:, :5], short, rtol=1e-5, atol=1e-5)


def test_pre_ln_adds_a_final_norm():
    emb = TokenEmbedding(13, 12, rngs=nnx.Rngs(1))
    assert Encoder(CFG, emb, rngs=nnx.Rngs(0)).final_norm is None
    pre = Encoder(CFG.replace(norm_first=True), emb, rngs=nnx.Rngs(0))
    out = pre(jnp.array([[5, 6, 7]]), None, deterministic=True)
    # The final LayerNorm (scale 1, bias 0 at init) leaves each position with mean 0, var 1.
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(out.var(-1), 1, atol=1e-3)


def test_embedding_dropout_in_training():
    encoder = Encoder(CFG.replace(dropout_rate=0.3), TokenEmbedding(13, 12, rngs=nnx.Rngs(1)),
                      rngs=nnx.Rngs(0))
    src = jnp.array([[5, 6, 7]])
    a, b = encoder(src, None), encoder(src, None)
    assert not np.allclose(a, b)  # fresh dropout masks each call
    encoder.eval()
    np.testing.assert_array_equal(encoder(src, None), encoder(src, None, deterministic=True))
