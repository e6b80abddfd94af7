"""Exercise 14's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex14_layer_norm.py)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attention import exercises
from attention.exercises import ex14_layer_norm
from teachers import solutions

from ._helpers import fails


def _norm(*, axis=-1, ddof=0, eps_outside=False, no_eps=False, swap=False, affine=True,
          centre=True, fixed_eps=None):
    def layer_norm(x, scale, bias, epsilon=1e-6):
        epsilon = epsilon if fixed_eps is None else fixed_eps
        mean = jnp.mean(x, axis=axis, keepdims=True)
        var = jnp.var(x, axis=axis, keepdims=True, ddof=ddof)
        top = x - mean if centre else x
        eps = 0.0 if no_eps else epsilon
        y = top / (jnp.sqrt(var) + eps) if eps_outside else top / jnp.sqrt(var + eps)
        if not affine:
            return y
        return y * bias + scale if swap else y * scale + bias

    return layer_norm


def test_the_checkers_reference_is_nnx_layer_norm():
    """The inputs the checker uses, normalised by flax.nnx.LayerNorm (an independent
    implementation), agree with the model solution."""
    inputs = ex14_layer_norm._inputs(0, 2, 3, 23)
    ln = nnx.LayerNorm(23, epsilon=ex14_layer_norm.EPSILON, rngs=nnx.Rngs(0))
    ln.scale[...] = inputs["scale"]
    ln.bias[...] = inputs["bias"]
    with jax.numpy_rank_promotion("allow"):  # a student's broadcasting, as the checker allows
        mine = solutions.layer_norm(**inputs, epsilon=ex14_layer_norm.EPSILON)
    np.testing.assert_allclose(
        np.asarray(ln(inputs["x"])), np.asarray(mine),
        rtol=1e-4, atol=1e-5,
    )


def test_layer_norm_mistakes():
    check = exercises.check_layer_norm
    assert check(solutions.layer_norm).passed

    def fast_variance(x, scale, bias, epsilon=1e-6):  # nnx.LayerNorm's E[x^2] - E[x]^2
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(x * x, axis=-1, keepdims=True) - mean * mean
        return scale * (x - mean) * jax.lax.rsqrt(var + epsilon) + bias

    assert check(fast_variance).passed
    fails(check(_norm(axis=-2)), "wrong axis", "positions T")
    fails(check(_norm(axis=None)), "wrong axis", "whole array")
    fails(check(_norm(ddof=1)), "unbiased variance", "D - 1")
    fails(check(_norm(eps_outside=True)), "epsilon outside the square root")
    fails(check(_norm(no_eps=True)), "left out epsilon")
    fails(check(_norm(swap=True)), "scale and bias are swapped")
    fails(check(_norm(affine=False)), "ignored scale and bias")
    fails(check(_norm(centre=False)), "did not subtract the mean")
    fails(check(_norm(axis=0)), "wrong axis")


def test_an_epsilon_written_in_place_of_the_argument_is_named():
    check = exercises.check_layer_norm
    fails(check(_norm(fixed_eps=1e-5)), "you used epsilon=1e-05 whatever the epsilon argument")
    fails(check(_norm(fixed_eps=ex14_layer_norm.EPSILONS[0])), "you used epsilon=0.01",
          "here 0.04")
