"""Exercise 04's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex04_scaled_dot_product_attention.py)."""

import math

import jax
import jax.numpy as jnp

from attention import exercises
from teachers import solutions

from ._helpers import fails


def _attention_from(weights_fn):
    def attention(q, k, v, mask=None):
        s = jnp.einsum("btnh,bsnh->bnts", q, k)
        return jnp.einsum("bnts,bsnh->btnh", weights_fn(s, q.shape[-1], mask), v)

    return attention


def test_scaled_dot_product_attention_mistakes():
    check = exercises.check_scaled_dot_product_attention
    good = lambda s, H, m: solutions.masked_softmax(s / math.sqrt(H), True if m is None else m)
    fails(check(_attention_from(lambda s, H, m: good(s * math.sqrt(H), H, m))),
           "without the 1/sqrt(d_k) scaling", "sqrt(16) = 4.00")
    fails(check(_attention_from(lambda s, H, m: good(s / math.sqrt(H), H, m))),
           "divided the scores by d_k = 16")
    fails(check(_attention_from(lambda s, H, m: good(s, H, None))), "you ignored the mask")
    fails(check(_attention_from(lambda s, H, m: good(s, H, None if m is None else ~m))),
           "wrong polarity")

    def leaky(s, H, m):  # a soft mask: -3 instead of a large negative lets the future in
        s = s / math.sqrt(H)
        return jax.nn.softmax(s if m is None else jnp.where(m, s, s - 3.0), axis=-1)

    fails(check(_attention_from(leaky)), "future tokens leak", "d out[0] / d value[1]")

    def nan_when_empty(s, H, m):
        s = s / math.sqrt(H)
        return jax.nn.softmax(s if m is None else jnp.where(m, s, -jnp.inf), axis=-1)

    fails(check(_attention_from(nan_when_empty)), "all padding", "nan")

    def average_when_empty(s, H, m):
        s = s / math.sqrt(H)
        return jax.nn.softmax(s if m is None else jnp.where(m, s, -1e9), axis=-1)

    fails(check(_attention_from(average_when_empty)), "plain average of the values")

    def swapped(q, k, v, mask=None):
        return jnp.swapaxes(solutions.scaled_dot_product_attention(q, k, v, mask), 1, 2)

    fails(check(swapped), "expected [2, 3, 7, 16] ([B, T, N, H]): axes 1 and 2 look swapped")
