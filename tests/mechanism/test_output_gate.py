"""Tests for attention/mechanism/output_gate.py (step 6a): output * sigmoid(gate).

Reference: NumPy float64 ``y / (1 + exp(-g))``, elementwise (Qiu et al. 2025).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention import gate_output

B, T, N, H = 2, 3, 5, 7


def normal(seed, shape, scale=1.0):
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_matches_numpy_elementwise(jit):
    output, gate = normal(0, (B, T, N, H)), normal(1, (B, T, N, H), 3.0)
    f = jax.jit(gate_output) if jit else gate_output
    got = f(output, gate)
    o, g = np.asarray(output, np.float64), np.asarray(gate, np.float64)
    np.testing.assert_allclose(got, o / (1 + np.exp(-g)), rtol=1e-6, atol=1e-7)


def test_gate_shuts_and_opens_heads():
    output = normal(2, (B, T, N, H))
    gate = jnp.zeros((B, T, N, H)).at[:, :, 0].set(-1e4).at[:, :, 1].set(1e4)
    got = gate_output(output, gate)
    assert bool(jnp.all(got[:, :, 0] == 0))
    np.testing.assert_allclose(got[:, :, 1], output[:, :, 1])
    np.testing.assert_allclose(got[:, :, 2:], output[:, :, 2:] / 2)


def test_gradients_of_both_inputs():
    output, gate = normal(3, (T, N, H)), normal(4, (T, N, H))
    d_out, d_gate = jax.grad(lambda o, g: jnp.sum(gate_output(o, g)), (0, 1))(output, gate)
    s = 1 / (1 + np.exp(-np.asarray(gate, np.float64)))
    np.testing.assert_allclose(d_out, s, rtol=1e-6)
    np.testing.assert_allclose(d_gate, np.asarray(output, np.float64) * s * (1 - s),
                               rtol=1e-5, atol=1e-7)


def test_keeps_the_output_dtype():
    output, gate = normal(5, (T, N, H)).astype(jnp.bfloat16), normal(6, (T, N, H))
    assert gate_output(output, gate).dtype == jnp.bfloat16


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    "output, gate, error, message",
    [
        (jnp.ones((T, N, H)), jnp.ones((T, N, H + 1)), ValueError,
         r"gate_logits must have the shape of output \[3, 5, 7\]"),
        (jnp.ones((T, N, H), jnp.int32), jnp.ones((T, N, H)), TypeError,
         "output must have a floating dtype"),
        (jnp.ones((T, N, H)), jnp.ones((T, N, H), bool), TypeError,
         "gate_logits must have a floating dtype"),
    ],
    ids=["shape", "int_output", "bool_gate"],
)
def test_bad_arguments_are_named(output, gate, error, message):
    with pytest.raises(error, match=message):
        gate_output(output, gate)
