"""Residual blocks (post-LN and pre-LN), encoder layer and encoder stack."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.mechanism.masks import padding_mask
from attention.model.config import TransformerConfig
from attention.model.embeddings import TokenEmbedding
from attention.model.encoder import Encoder, EncoderLayer, Residual

CFG = TransformerConfig(
    src_vocab_size=13, tgt_vocab_size=13, d_model=12, num_heads=3, d_ff=20, num_layers=2,
    max_len=16,
)


def layer_norm(x, scale, bias, eps=1e-6):
    x = np.asarray(x, np.float64)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * np.asarray(scale) + np.asarray(bias)


def perturbed_norm(residual, seed):
    k1, k2 = jax.random.split(jax.random.key(seed))
    residual.norm.scale[...] = 1 + 0.3 * jax.random.normal(k1, residual.norm.scale.shape)
    residual.norm.bias[...] = 0.3 * jax.random.normal(k2, residual.norm.bias.shape)
    return residual.norm.scale[...], residual.norm.bias[...]


@pytest.mark.parametrize("norm_first", [False, True])
def test_residual_formula(norm_first):
    residual = Residual(CFG.replace(norm_first=norm_first), rngs=nnx.Rngs(0))
    scale, bias = perturbed_norm(residual, 1)
    x = jax.random.normal(jax.random.key(2), (2, 5, 12))

    def sublayer(h):
        return jnp.tanh(3 * h) + 1

    got = residual(x, sublayer, deterministic=True)
    x64 = np.asarray(x, np.float64)
    if norm_first:  # x + Sublayer(LayerNorm(x))
        expected = x64 + np.tanh(3 * layer_norm(x64, scale, bias)) + 1
    else:  # LayerNorm(x + Sublayer(x)), the paper
        expected = layer_norm(x64 + np.tanh(3 * x64) + 1, scale, bias)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_residual_dropout_follows_train_and_eval():
    residual = Residual(CFG.replace(dropout_rate=0.5), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(2), (2, 5, 12))
    clean = residual(x, jnp.sin, deterministic=True)
    assert not np.allclose(residual(x, jnp.sin), clean)  # dropout on by default (training)
    residual.eval()
    np.testing.assert_array_equal(residual(x, jnp.sin), clean)
    assert not np.allclose(residual(x, jnp.sin, deterministic=False), clean)  # override


def test_residual_threads_an_aux_value():
    residual = Residual(CFG, rngs=nnx.Rngs(0))
    x = jnp.ones((1, 2, 12))
    y, aux = residual(x, lambda h: (2 * h, "cache"), deterministic=True, has_aux=True)
    assert aux == "cache"
    np.testing.assert_allclose(y, residual(x, lambda h: 2 * h, deterministic=True))


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
