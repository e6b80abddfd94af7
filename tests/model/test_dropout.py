"""Dropout with XLA's fast generator: its statistics, its scale, and its reproducibility."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.dropout import Dropout, dropout

N = 200_000


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_drops_rate_of_the_units_and_scales_the_rest_to_keep_the_mean(rate):
    x = jnp.ones(N)
    y = np.asarray(dropout(x, rate, jax.random.key(0)))
    dropped = float(np.mean(y == 0))
    sigma = np.sqrt(rate * (1 - rate) / N)  # binomial standard deviation of the fraction
    assert abs(dropped - rate) < 5 * sigma
    np.testing.assert_allclose(y[y != 0], 1 / (1 - rate), rtol=1e-6)
    assert abs(float(np.mean(y)) - 1.0) < 5 * np.sqrt(rate / (1 - rate) / N)


def test_a_mask_is_a_function_of_the_key():
    x = jnp.arange(1.0, 1001.0)
    first = dropout(x, 0.5, jax.random.key(3))
    assert np.array_equal(first, dropout(x, 0.5, jax.random.key(3)))
    assert np.array_equal(first, jax.jit(dropout, static_argnums=1)(x, 0.5, jax.random.key(3)))
    assert not np.array_equal(first, dropout(x, 0.5, jax.random.key(4)))
    # raw uint32[2] keys, as nnx streams may hold, give the same mask as the typed key
    assert np.array_equal(first, dropout(x, 0.5, jax.random.key_data(jax.random.key(3))))


def test_masks_of_neighbouring_keys_are_independent():
    a = np.asarray(dropout(jnp.ones(N), 0.5, jax.random.key(7)) == 0)
    b = np.asarray(dropout(jnp.ones(N), 0.5, jax.random.fold_in(jax.random.key(7), 1)) == 0)
    agreement = float(np.mean(a == b))  # 0.5 for independent masks
    assert abs(agreement - 0.5) < 5 * np.sqrt(0.25 / N)


def test_gradient_is_the_mask_times_the_scale():
    x = jnp.linspace(-1.0, 1.0, 500)
    key = jax.random.key(1)
    grad = jax.grad(lambda x: jnp.sum(dropout(x, 0.2, key)))(x)
    y = dropout(jnp.ones_like(x), 0.2, key)
    np.testing.assert_allclose(grad, y, rtol=1e-6)


def test_rate_zero_is_the_identity_and_bad_rates_are_named():
    x = jnp.ones(5)
    assert dropout(x, 0.0, jax.random.key(0)) is x
    for rate in (1.0, -0.1):
        with pytest.raises(ValueError, match="rate"):
            dropout(x, rate, jax.random.key(0))


def test_the_module_keeps_nnx_dropouts_state_and_switches():
    ours = Dropout(0.5, rngs=nnx.Rngs(dropout=0))
    theirs = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=0))
    assert jax.tree.structure(nnx.state(ours)) == jax.tree.structure(nnx.state(theirs))
    x = jnp.ones(1000)
    assert np.array_equal(ours(x, deterministic=True), x)
    a, b = ours(x), ours(x)  # the stream advances: two calls, two masks
    assert not np.array_equal(a, b)
    ours.eval()
    assert np.array_equal(ours(x), x)
