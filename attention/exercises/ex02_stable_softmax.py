"""Exercise 02, stable softmax: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/02_stable_softmax``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from attention.exercises._checking import (
    Exercise,
    Mistake,
    as_array,
    call,
    check_finite,
    check_jit_and_vmap,
    check_shape,
    checker,
    compare,
    describe_inputs,
    reject_package_function,
)
from attention.exercises._shared import (
    cases,
    masked_softmax_reference,
    normal,
)


@checker("stable_softmax")
def check_stable_softmax(stable_softmax) -> str:
    """``stable_softmax(scores [..., S]) -> weights``, over the last axis, never NaN."""
    name = "stable_softmax"
    reject_package_function(stable_softmax, name)
    axes = "BNTS"
    for sizes, seed in cases():
        B, T, S, N = sizes.B, sizes.T, sizes.S, sizes.N
        x = normal(seed, (B, N, T, S), scale=2.0)
        inputs = {"scores": x}
        expected = np.asarray(masked_softmax_reference(x))
        got = as_array(call(stable_softmax, name, inputs), name)
        check_shape(got, expected.shape, axes, name, "weights")
        check_finite(got, expected, name, f"on inputs {describe_inputs(inputs)}", "")
        if (got < -1e-6).any():
            raise Mistake(
                "some of your weights are negative; exp makes every weight positive. Apply "
                "exp to the (shifted) scores before normalising."
            )
        sums = got.sum(axis=-1)
        if not np.allclose(sums, 1.0, atol=1e-4):
            for axis in range(got.ndim - 1):
                if np.allclose(got.sum(axis=axis), 1.0, atol=1e-4):
                    raise Mistake(
                        f"your weights sum to one over axis {axis} ({axes[axis]}) instead of "
                        f"the last axis (S, the keys): use axis=-1 in both the max and the sum."
                    )
            index = tuple(int(i) for i in np.argwhere(~np.isclose(sums, 1.0, atol=1e-4))[0])
            raise Mistake(
                f"your weights do not sum to one over the keys (the last axis): the row at "
                f"[b, n, t] = {list(index)} sums to {float(sums[index]):.4g}. Divide the "
                f"exponentials by their sum over the same row (axis=-1, keepdims=True)."
            )
        compare(got, expected, axes=axes, name=name, what="weights", inputs=inputs)
        stability = [
            (
                x * 5.0 + 1000.0,
                "for large scores (a row near 1000)",
                "exp(1000) overflows float32 (it stops near exp(88)) and inf / inf = NaN. "
                "Subtract each row's maximum before exp: softmax(x) = softmax(x - max(x)).",
            ),
            (
                x * 5.0 - 1000.0,
                "for very negative scores (a row near -1000)",
                "every exp underflows to 0 and you divide 0 by 0. Subtract each row's maximum "
                "before exp, so that the largest exponent is exp(0) = 1.",
            ),
            (
                x + jnp.linspace(-2000.0, 2000.0, T)[:, None],
                "when the rows sit at very different levels (rows from -2000 to 2000)",
                "you subtracted one maximum for the whole array, so rows far below it "
                "underflow to 0 / 0. Subtract each row's own maximum: "
                "jnp.max(x, axis=-1, keepdims=True).",
            ),
        ]
        for hard, situation, hint in stability:
            hard_inputs = {"scores": hard}
            got_hard = as_array(call(stable_softmax, name, hard_inputs), name)
            want_hard = np.asarray(masked_softmax_reference(hard))
            check_shape(got_hard, want_hard.shape, axes, name, "weights")
            check_finite(got_hard, want_hard, name, situation, hint)
            compare(got_hard, want_hard, axes=axes, name=name, what="weights", inputs=hard_inputs)
    x2 = normal(9, x.shape)
    check_jit_and_vmap(
        stable_softmax, name, inputs, {"scores": x2}, expected, masked_softmax_reference(x2)
    )
    return (
        "your softmax matches the package's: rows sum to one over the keys, no NaN for scores "
        "near +-1000, and it works under jax.jit and jax.vmap."
    )


EXERCISE = Exercise(
    name="stable_softmax",
    title="A numerically stable softmax",
    notebook="02_stable_softmax",
    names=("stable_softmax",),
    check=check_stable_softmax,
    minutes=20,
    forbidden=("jax.nn.softmax", "jax.scipy.special.softmax"),
    instead=(
        "write the softmax yourself: subtract each row's maximum, exponentiate, divide by the"
        " sum"
    ),
)
