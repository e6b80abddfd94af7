"""Exercise 02's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex02_stable_softmax.py)."""


import jax.numpy as jnp

from attention import exercises

from ._helpers import fails


def test_stable_softmax_mistakes():
    check = exercises.check_stable_softmax
    naive = lambda x: jnp.exp(x) / jnp.sum(jnp.exp(x), axis=-1, keepdims=True)
    fails(check(naive), "for large scores", "Subtract each row's maximum")

    def global_max(x):
        e = jnp.exp(x - jnp.max(x))
        return e / jnp.sum(e, axis=-1, keepdims=True)

    fails(check(global_max), "rows sit at very different levels", "one maximum for the whole")

    def wrong_axis(x):
        e = jnp.exp(x - jnp.max(x, axis=-2, keepdims=True))
        return e / jnp.sum(e, axis=-2, keepdims=True)

    fails(check(wrong_axis), "sum to one over axis 2 (T)")
    fails(check(lambda x: jnp.exp(x - jnp.max(x, -1, keepdims=True))),
           "do not sum to one over the keys")
