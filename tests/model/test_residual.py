"""Residual blocks around a sub-layer: post-LN (the paper) and pre-LN, with dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.config import TransformerConfig
from attention.model.residual import Residual, make_layer_norm

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


def test_layer_norm_follows_the_config():
    norm = make_layer_norm(CFG.replace(layer_norm_epsilon=1e-3), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(4), (3, 12))
    np.testing.assert_allclose(norm(x), layer_norm(x, norm.scale[...], norm.bias[...], 1e-3),
                               rtol=1e-5, atol=1e-5)
