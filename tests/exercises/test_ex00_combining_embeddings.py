"""Exercise 00's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex00_combining_embeddings.py)."""


import jax.numpy as jnp

from attention import exercises
from teachers import solutions

from ._helpers import fails


def test_combine_embeddings_mistakes():
    check = exercises.check_combine_embeddings
    fails(check(lambda u, v: (u * v, u - v, u + v), "c"), "your sum is u * v")
    fails(check(lambda u, v: (u + v, v - u, u * v), "c"), "v - u")
    fails(check(lambda u, v: (u + v, u - v, jnp.sum(u * v, -1)), "c"), "dot product")
    fails(check(lambda u, v: (u + v, u - v), "c"), "three arrays")
    fails(check(solutions.combine_embeddings, "a"), "the sum cannot", "w . u + w . v")
    fails(check(solutions.combine_embeddings, "difference"), "the difference cannot")
    fails(check(solutions.combine_embeddings, ""), "answer the question",
           status="not implemented")
    assert check(solutions.combine_embeddings, "(c) product").passed
