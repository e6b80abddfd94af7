"""Exercise 01, dot-product scores: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/01_dot_product_scores``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import numpy as np

from attention.exercises._checking import (
    Exercise,
    as_array,
    call,
    check_jit_and_vmap,
    checker,
    compare,
    reject_package_function,
    sqrt_hint,
)
from attention.exercises._shared import (
    cases,
    normal,
    scores_reference,
)


@checker("dot_product_scores")
def check_dot_product_scores(dot_product_scores) -> str:
    """``dot_product_scores(query [B, T, N, H], key [B, S, N, H]) -> [B, N, T, S]``."""
    name = "dot_product_scores"
    reject_package_function(dot_product_scores, name)
    for sizes, seed in cases():
        B, T, S, N, H = sizes.B, sizes.T, sizes.S, sizes.N, sizes.H
        q, k = normal(seed, (B, T, N, H)), normal(seed + 10, (B, S, N, H))
        inputs = {"query": q, "key": k}
        expected = np.asarray(scores_reference(q, k))
        got = as_array(call(dot_product_scores, name, inputs), name)
        compare(
            got, expected, axes="BNTS", name=name, what="scores", inputs=inputs,
            ratio_words=lambda c, H=H: sqrt_hint(c, H),
        )
    q2, k2 = normal(7, q.shape), normal(8, k.shape)
    check_jit_and_vmap(
        dot_product_scores, name, inputs, {"query": q2, "key": k2}, expected,
        scores_reference(q2, k2),
    )
    return (
        "your scores match attention.dot_product_scores: shape [B, N, T, S], scaled by "
        "1/sqrt(d_k), and they work under jax.jit and jax.vmap."
    )


EXERCISE = Exercise(
    name="dot_product_scores",
    title="Dot-product scores",
    notebook="01_dot_product_scores",
    names=("dot_product_scores",),
    check=check_dot_product_scores,
    minutes=20,
)
