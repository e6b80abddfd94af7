"""Position-wise feed-forward network (section 3.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.feed_forward import (
    FeedForward,
    SwiGLUFeedForward,
    feed_forward,
    swiglu_feed_forward,
)


def numpy_ffn(x, w1, b1, w2, b2):
    return np.maximum(0.0, x @ w1 + b1) @ w2 + b2


def test_function_matches_the_formula():
    keys = jax.random.split(jax.random.key(0), 5)
    x = jax.random.normal(keys[0], (2, 3, 5))
    w1, b1 = jax.random.normal(keys[1], (5, 7)), jax.random.normal(keys[2], (7,))
    w2, b2 = jax.random.normal(keys[3], (7, 5)), jax.random.normal(keys[4], (5,))
    expected = numpy_ffn(*(np.asarray(a, np.float64) for a in (x, w1, b1, w2, b2)))
    np.testing.assert_allclose(feed_forward(x, w1, b1, w2, b2), expected, rtol=1e-4, atol=1e-4)


def test_module_is_the_function_with_its_weights():
    ffn = FeedForward(5, 11, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (3, 7, 5))
    weights = (ffn.linear1.kernel[...], ffn.linear1.bias[...], ffn.linear2.kernel[...],
               ffn.linear2.bias[...])
    assert [w.shape for w in weights] == [(5, 11), (11,), (11, 5), (5,)]
    np.testing.assert_allclose(ffn(x), feed_forward(x, *weights), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nnx.jit(lambda m, x: m(x))(ffn, x), ffn(x), rtol=1e-5, atol=1e-6)


def test_positions_are_transformed_independently():
    ffn = FeedForward(4, 8, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(2), (2, 6, 4))
    permutation = jnp.array([3, 0, 5, 1, 4, 2])
    np.testing.assert_allclose(ffn(x[:, permutation]), ffn(x)[:, permutation], rtol=1e-6)

    # The Jacobian between different positions is zero.
    def position_0(x):
        return ffn(x)[:, 0].sum()

    grad = jax.grad(position_0)(x)
    assert np.all(grad[:, 1:] == 0) and np.any(grad[:, 0] != 0)


def test_annotation_matches_the_shapes():
    from beartype import beartype
    from jaxtyping import TypeCheckError, jaxtyped

    checked = jaxtyped(typechecker=beartype)(feed_forward)
    x, w1, b1 = jnp.ones((2, 3, 5)), jnp.ones((5, 7)), jnp.ones(7)
    checked(x, w1, b1, jnp.ones((7, 5)), jnp.ones(5))
    with pytest.raises(TypeCheckError):
        checked(x, w1, b1, jnp.ones((6, 5)), jnp.ones(5))  # F disagrees


def numpy_gelu_tanh(z):
    return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))


def test_gelu_tanh_network_is_gpt2s():
    ffn = FeedForward(5, 11, activation="gelu_tanh", rngs=nnx.Rngs(0))
    x = np.asarray(jax.random.normal(jax.random.key(1), (3, 7, 5)), np.float64)
    w1, b1 = np.asarray(ffn.linear1.kernel[...]), np.asarray(ffn.linear1.bias[...])
    w2, b2 = np.asarray(ffn.linear2.kernel[...]), np.asarray(ffn.linear2.bias[...])
    expected = numpy_gelu_tanh(x @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(ffn(jnp.asarray(x, jnp.float32)), expected, atol=1e-5)


def test_without_biases():
    ffn = FeedForward(5, 11, use_bias=False, rngs=nnx.Rngs(0))
    assert ffn.linear1.bias is None and ffn.linear2.bias is None
    with pytest.raises(ValueError, match="activation must be one of"):
        FeedForward(5, 11, activation="tanh", rngs=nnx.Rngs(0))


def test_swiglu_function_and_module():
    keys = jax.random.split(jax.random.key(2), 4)
    x = jax.random.normal(keys[0], (2, 3, 5))
    wg, w1 = jax.random.normal(keys[1], (5, 7)), jax.random.normal(keys[2], (5, 7))
    w2 = jax.random.normal(keys[3], (7, 5))
    x64, wg64, w164, w264 = (np.asarray(a, np.float64) for a in (x, wg, w1, w2))
    gate = x64 @ wg64
    expected = (gate / (1 + np.exp(-gate)) * (x64 @ w164)) @ w264
    np.testing.assert_allclose(swiglu_feed_forward(x, wg, w1, w2), expected, rtol=1e-4, atol=1e-4)
    ffn = SwiGLUFeedForward(5, 7, rngs=nnx.Rngs(0))
    assert ffn.gate.bias is None and ffn.linear1.kernel.shape == (5, 7)
    np.testing.assert_allclose(
        ffn(x), swiglu_feed_forward(x, ffn.gate.kernel[...], ffn.linear1.kernel[...],
                                    ffn.linear2.kernel[...]), rtol=1e-5, atol=1e-5)
