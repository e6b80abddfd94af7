"""Exercise 04, scaled dot-product: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/04_scaled_dot_product_attention``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import attention as ref
from attention.exercises._checking import (
    Exercise,
    Mistake,
    as_array,
    call,
    check_finite,
    check_jit_and_vmap,
    check_shape,
    checker,
    close,
    compare,
    match_variant,
    reject_package_function,
)
from attention.exercises._shared import (
    attention_reference,
    cases,
    check_leak,
    normal,
)


def _softmax_over_queries(q, k, v, mask=None):
    scores_BNTS = jnp.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(q.shape[-1])
    weights_BNTS = jax.nn.softmax(scores_BNTS, axis=-2)
    return jnp.einsum("bnts,bsnh->btnh", weights_BNTS, v)


@checker("scaled_dot_product_attention")
def check_scaled_dot_product_attention(scaled_dot_product_attention) -> str:
    """``scaled_dot_product_attention(query, key, value, mask=None) -> [B, T, N, H]``."""
    fn = scaled_dot_product_attention
    name = "scaled_dot_product_attention"
    reject_package_function(fn, name)
    for sizes, seed in cases():
        B, T, S, N, H = sizes.B, sizes.T, sizes.S, sizes.N, sizes.H
        q = normal(seed, (B, T, N, H))
        k = normal(seed + 10, (B, S, N, H))
        v = normal(seed + 20, (B, S, N, H))
        inputs = {"query": q, "key": k, "value": v}
        expected = np.asarray(attention_reference(q, k, v))
        got = as_array(call(fn, name, inputs), name)
        compare(got, expected, axes="BTNH", name=name, what="output", inputs=inputs, variants=[
            (
                f"your output equals attention without the 1/sqrt(d_k) scaling: divide the "
                f"scores by sqrt(d_k) = sqrt({H}) = {math.sqrt(H):.2f} before the softmax "
                f"(section 3.2.1).",
                lambda: attention_reference(q, k, v, scale=1.0),
            ),
            (
                f"you divided the scores by d_k = {H} instead of sqrt(d_k) = "
                f"{math.sqrt(H):.2f}.",
                lambda: attention_reference(q, k, v, scale=1.0 / H),
            ),
            (
                "your softmax normalises over the queries (axis T of the scores [B, N, T, S]); "
                "each query's weights must sum to one over the keys, the last axis.",
                lambda: _softmax_over_queries(q, k, v),
            ),
        ])
        # A causal mask: the future must not leak, checked through gradients.
        mask = ref.causal_mask(T, S)
        masked_inputs = inputs | {"mask": mask}
        expected_masked = np.asarray(attention_reference(q, k, v, mask=mask))
        got = as_array(call(fn, name, masked_inputs), name)
        check_shape(got, expected_masked.shape, "BTNH", name, "output")
        variants = [] if close(got, expected_masked) else [
            (
                "you ignored the mask: your output with a causal mask equals attention without "
                "one. Give the positions where mask is False weight 0.",
                lambda: expected,
            ),
            (
                "your mask has the wrong polarity: True must mean \"may attend\", but your "
                "output equals attention in which only the mask's False positions are seen.",
                lambda: attention_reference(q, k, v, mask=~mask),
            ),
        ]
        match_variant(got, variants)
        check_leak(fn, (q, k, v, mask), 2, name, "value")
        check_leak(fn, (q, k, v, mask), 1, name, "key")
        compare(got, expected_masked, axes="BTNH", name=name, what="output",
                inputs=masked_inputs)
        # Sequence 0 is all padding: its queries may attend nothing and get zero vectors.
        lengths = jnp.arange(B, dtype=jnp.int32) * S // max(B - 1, 1)
        pad = ref.padding_mask(lengths, S)
        pad_inputs = inputs | {"mask": pad}
        expected_pad = np.asarray(attention_reference(q, k, v, mask=pad))
        got = as_array(call(fn, name, pad_inputs), name)
        check_shape(got, expected_pad.shape, "BTNH", name, "output")
        check_finite(
            got, expected_pad, name,
            "for a sequence whose keys are all padding (sequence 0, length 0)",
            "A query whose keys are all masked must get a zero vector, not 0 / 0: use a large "
            "finite negative instead of -inf, and weights of 0 for such a row.",
        )
        if np.abs(got[0]).max() > 1e-5 and np.abs(expected_pad[0]).max() <= 1e-6:
            raise Mistake(
                "a query whose keys are all masked (sequence 0 has length 0) gets a non-zero "
                "output, probably the plain average of the values; the package's convention is "
                "a zero vector: such a row of weights is all zeros."
            )
        compare(got, expected_pad, axes="BTNH", name=name, what="output", inputs=pad_inputs)
        big = {"query": q * 30.0, "key": k * 30.0, "value": v}
        got = as_array(call(fn, name, big), name)
        want = np.asarray(attention_reference(q * 30.0, k * 30.0, v))
        check_shape(got, want.shape, "BTNH", name, "output")
        check_finite(
            got, want, name, "for large queries and keys (scores in the hundreds)",
            "exp of a large score overflows float32: subtract each row's maximum score before "
            "exp (softmax does not change).",
        )
    q2, k2, v2 = normal(31, q.shape), normal(32, k.shape), normal(33, v.shape)
    check_jit_and_vmap(
        fn, name, {"query": q, "key": k, "value": v, "mask": mask},
        {"query": q2, "key": k2, "value": v2, "mask": mask}, expected_masked,
        attention_reference(q2, k2, v2, mask=mask),
    )
    return (
        "your attention matches attention.dot_product_attention: output [B, T, N, H], scaled "
        "by 1/sqrt(d_k), masks respected (no future leaks, checked through gradients), zeros "
        "for fully masked queries, no NaN for large scores, and it works under jax.jit and "
        "jax.vmap."
    )


EXERCISE = Exercise(
    name="scaled_dot_product_attention",
    title="Scaled dot-product attention",
    notebook="04_scaled_dot_product_attention",
    names=("scaled_dot_product_attention",),
    check=check_scaled_dot_product_attention,
    minutes=30,
    forbidden=("jax.nn.dot_product_attention",),
    instead=(
        "write the formula yourself: scores Q K^T / sqrt(d_k), the mask, a softmax over the "
        "keys, then the weighted sum of the values"
    ),
)
