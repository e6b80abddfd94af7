"""Exercise 00, combining embeddings: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/00_combining_embeddings``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np

from attention.exercises._checking import (
    Exercise,
    Mistake,
    NotImplementedYet,
    as_array,
    call,
    check_shape,
    checker,
    close,
    first_difference,
    reject_package_function,
    shape_str,
)
from attention.exercises._shared import (
    cases,
    normal,
)

_INTERACTION_RIGHT = {"c", "product", "u * v", "u*v", "the product", "element-wise product",
                      "elementwise product", "the element-wise product", "hadamard product"}
_INTERACTION_WRONG = {
    "a": "sum", "sum": "sum", "u + v": "sum", "u+v": "sum", "the sum": "sum",
    "b": "difference", "difference": "difference", "u - v": "difference",
    "u-v": "difference", "the difference": "difference",
}


@checker("combine_embeddings")
def check_combine_embeddings(combine_embeddings, interaction_answer=None) -> str:
    """``combine_embeddings(u, v) -> (u + v, u - v, u * v)``, and which one is the interaction.

    ``interaction_answer``: the student's choice among (a) sum, (b) difference, (c) product.
    """
    name = "combine_embeddings"
    reject_package_function(combine_embeddings, name)
    for sizes, seed in cases():
        u = normal(seed, (sizes.B, sizes.D))
        v = normal(seed + 10, (sizes.B, sizes.D))
        inputs = {"u": u, "v": v}
        result = call(combine_embeddings, name, inputs)
        if not isinstance(result, tuple | list) or len(result) != 3:
            raise Mistake(
                f"`{name}` should return three arrays (sum, difference, product), got "
                f"{type(result).__name__}"
                + (f" of {len(result)} items" if isinstance(result, tuple | list) else "")
                + "."
            )
        expected = {"sum": u + v, "difference": u - v, "product": u * v}
        words = {"sum": "u + v", "difference": "u - v", "product": "u * v"}
        for got, (label, want) in zip(result, expected.items(), strict=True):
            got = as_array(got, name, f"{label}")
            if label == "product" and got.shape in ((sizes.B,), (sizes.B, 1)):
                if close(got.reshape(sizes.B), jnp.sum(u * v, axis=-1)):
                    raise Mistake(
                        "your product is the dot product u . v (summed over D, one number "
                        "per pair); the exercise asks for the element-wise product u * v, "
                        f"shape {shape_str(u.shape)}: its sum is the dot product."
                    )
            check_shape(got, want.shape, "BD", name, f"{label}")
            if close(got, want):
                continue
            for other, other_want in expected.items():
                if other != label and close(got, other_want):
                    raise Mistake(
                        f"your {label} is {words[other]}: return (u + v, u - v, u * v) in "
                        f"that order."
                    )
            if label == "difference" and close(got, v - u):
                raise Mistake("your difference is v - u; the exercise asks for u - v.")
            raise Mistake(first_difference(got, np.asarray(want), "BD", label) + ".")
    if interaction_answer is None or not str(interaction_answer).strip():
        raise NotImplementedYet(
            "not implemented yet: your three combinations are right; now answer the question "
            "by setting INTERACTION_ANSWER to 'a', 'b' or 'c'."
        )
    answer = " ".join(str(interaction_answer).strip().lower().rstrip(".").split())
    letter = re.match(r"^\(?([abc])\)?(\s|$)", answer)  # "c", "(c)", "c) the product"
    answer = letter.group(1) if letter else answer.strip("()")
    if answer in _INTERACTION_WRONG:
        which = _INTERACTION_WRONG[answer]
        if which == "sum":
            reason = (
                "the sum cannot: a linear model on it computes w . (u + v) = w . u + w . v, "
                "each vector contributing on its own whatever the other one is."
            )
        else:
            reason = (
                "the difference cannot: w . (u - v) = w . u - w . v is still one term for u "
                "plus one for v, with nothing that depends on both."
            )
        raise Mistake(
            f"the three combinations are right, but the interaction answer is not: {reason} "
            f"Which combination is large only when both are large, and has a sign that says "
            f"whether they agree?"
        )
    if answer not in _INTERACTION_RIGHT:
        raise Mistake(
            f"the three combinations are right, but the checker does not understand the "
            f"answer {interaction_answer!r}: set INTERACTION_ANSWER to 'a', 'b' or 'c'."
        )
    return (
        "the sum, the difference and the element-wise product are right, and so is the "
        "answer: only u * v has a term that depends on both vectors at once (an interaction); "
        "summed over D it is the dot product u . v that attention uses as a score."
    )


EXERCISE = Exercise(
    name="combine_embeddings",
    title="Combining two embeddings",
    notebook="00_combining_embeddings",
    names=("combine_embeddings", "INTERACTION_ANSWER"),
    check=check_combine_embeddings,
    minutes=15,
    optional=("INTERACTION_ANSWER",),
)
