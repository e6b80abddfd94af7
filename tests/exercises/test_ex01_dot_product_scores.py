"""Exercise 01's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex01_dot_product_scores.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from attention import exercises

from ._helpers import fails


def test_dot_product_scores_mistakes():
    check = exercises.check_dot_product_scores
    unscaled = lambda q, k: jnp.einsum("btnh,bsnh->bnts", q, k)
    fails(check(unscaled), "sqrt(d_k)=4.00 times too large")
    by_dk = lambda q, k: jnp.einsum("btnh,bsnh->bnts", q, k) / q.shape[-1]
    fails(check(by_dk), "sqrt(d_k)=4.00 times too small", "not by d_k")
    swapped = lambda q, k: jnp.einsum("btnh,bsnh->btns", q, k) / math.sqrt(q.shape[-1])
    fails(check(swapped), "your scores have shape [2, 3, 7, 5]; expected [2, 7, 3, 5]",
           "axes 1 and 2 look swapped")

    def python_if(q, k):
        scores = jnp.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(q.shape[-1])
        if scores.max() > 100:  # Python control flow on a traced value
            scores = scores / 2
        return scores

    fails(check(python_if), "breaks under jax.jit", "TracerBoolConversionError",
           "jnp.where")

    def numpy_inside(q, k):
        return np.einsum("btnh,bsnh->bnts", np.asarray(q), np.asarray(k)) / 4.0 * (
            4.0 / math.sqrt(q.shape[-1]))

    fails(check(numpy_inside), "breaks under jax.jit", "converted to NumPy")

    def host_callback(q, k):  # fine eagerly and under jit; pure_callback cannot be vmapped
        s = jnp.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(q.shape[-1])
        return jax.pure_callback(np.asarray, jax.ShapeDtypeStruct(s.shape, s.dtype), s)

    fails(check(host_callback), "breaks under jax.vmap")
