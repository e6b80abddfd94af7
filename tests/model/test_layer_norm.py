"""layer_norm by hand against flax.nnx.LayerNorm and against NumPy written out."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.layer_norm import layer_norm, rms_norm


def _inputs(shape=(3, 5, 7)):
    keys = jax.random.split(jax.random.key(0), 3)
    x = 3.0 * jax.random.normal(keys[0], shape) + 2.0
    scale = jax.random.normal(keys[1], shape[-1:])
    bias = jax.random.normal(keys[2], shape[-1:])
    return x, scale, bias


@pytest.mark.parametrize("jit", [False, True])
def test_matches_nnx_layer_norm(jit):
    x, scale, bias = _inputs()
    module = nnx.LayerNorm(7, epsilon=1e-5, rngs=nnx.Rngs(0))
    module.scale[...] = scale
    module.bias[...] = bias
    f = jax.jit(layer_norm, static_argnames="epsilon") if jit else layer_norm
    np.testing.assert_allclose(f(x, scale, bias, epsilon=1e-5), module(x), atol=1e-5)


def test_matches_numpy_written_out():
    x, scale, bias = (np.asarray(a, np.float64) for a in _inputs((11, 7)))
    mean = x.sum(-1, keepdims=True) / x.shape[-1]
    var = ((x - mean) ** 2).sum(-1, keepdims=True) / x.shape[-1]
    expected = scale * (x - mean) / np.sqrt(var + 1e-6) + bias
    got = layer_norm(jnp.asarray(x, jnp.float32), jnp.asarray(scale, jnp.float32),
                     jnp.asarray(bias, jnp.float32))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_without_scale_and_bias_rows_have_mean_0_and_variance_1():
    x, _, _ = _inputs()
    y = layer_norm(x, epsilon=1e-12)
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1.0, atol=1e-4)


def test_bfloat16_keeps_its_dtype():
    x, scale, bias = _inputs()
    y = layer_norm(x.astype(jnp.bfloat16), scale, bias)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(y.astype(jnp.float32), layer_norm(x, scale, bias), atol=0.05)


@pytest.mark.outside_annotations
def test_bad_arguments():
    x, scale, _ = _inputs()
    with pytest.raises(TypeError, match="x"):
        layer_norm(jnp.ones((2, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"scale must be \[D\] = \[7\]"):
        layer_norm(x, scale[:5])
    with pytest.raises(ValueError, match="epsilon"):
        layer_norm(x, epsilon=0.0)


@pytest.mark.parametrize("jit", [False, True])
def test_rms_norm_matches_nnx_and_numpy(jit):
    x, scale, _ = _inputs()
    norm = nnx.RMSNorm(7, epsilon=1e-5, rngs=nnx.Rngs(0))
    norm.scale[...] = scale
    fn = jax.jit(rms_norm, static_argnames="epsilon") if jit else rms_norm
    x64 = np.asarray(x, np.float64)
    expected = x64 / np.sqrt(np.mean(x64**2, axis=-1, keepdims=True) + 1e-5) * np.asarray(scale)
    np.testing.assert_allclose(fn(x, scale, epsilon=1e-5), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.outside_annotations
def test_rms_norm_bad_scale():
    x, scale, _ = _inputs()
    with pytest.raises(ValueError, match=r"scale must be \[D\] = \[7\]"):
        rms_norm(x, scale[:3])
