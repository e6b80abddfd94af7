"""Exercise 06, multi-head attention: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/06_multi_head_attention``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import attention as ref
from attention.exercises._checking import (
    Exercise,
    as_array,
    call,
    check_jit_and_vmap,
    check_shape,
    checker,
    close,
    compare,
    match_variant,
    reject_package_function,
)
from attention.exercises._shared import (
    cases,
    mha_apply,
    mha_module,
    mha_variants,
    mha_weights,
    normal,
)


@checker("multi_head_attention")
def check_multi_head_attention(multi_head_attention) -> str:
    """``multi_head_attention(x [B, T, D], w_q, w_k, w_v, w_o, num_heads, mask=None)``."""
    fn = multi_head_attention
    name = "multi_head_attention"
    reject_package_function(fn, name)
    for sizes, seed in cases():
        B, T, N, H = sizes.B, sizes.T, sizes.N, sizes.H
        D = N * H
        mha = mha_module(seed, N, D)
        w = mha_weights(mha)
        x = normal(seed + 10, (B, T, D))
        inputs = {"x": x} | w
        expected = np.asarray(mha_apply(mha, x))
        got = as_array(call(fn, name, inputs | {"num_heads": N}), name)
        compare(got, expected, axes="BTD", name=name, what="output", inputs=inputs,
                variants=mha_variants(x, w, N, None))
        lengths = jnp.arange(1, B + 1, dtype=jnp.int32) * T // B
        pad = ref.padding_mask(lengths, T)
        masked = inputs | {"mask": pad}
        expected_masked = np.asarray(mha_apply(mha, x, mask=pad))
        got = as_array(call(fn, name, inputs | {"num_heads": N}, mask=pad), name)
        check_shape(got, expected_masked.shape, "BTD", name, "output")
        variants = [] if close(got, expected_masked) else [
            (
                "you ignored the mask: your output with a padding mask equals the output "
                "without one. Positions where mask is False must get weight 0.",
                lambda: expected,
            ),
            (
                "your mask has the wrong polarity: True must mean \"may attend\".",
                lambda: mha_apply(mha, x, mask=~pad),
            ),
        ]
        match_variant(got, variants)
        compare(got, expected_masked, axes="BTD", name=name, what="output",
                inputs=masked | {"num_heads": N}, variants=mha_variants(x, w, N, pad))
    x2 = normal(99, x.shape)
    check_jit_and_vmap(
        fn, name, inputs, {"x": x2} | w, expected, mha_apply(mha, x2), static={"num_heads": N}
    )
    return (
        "your multi-head attention matches attention.MultiHeadAttention (without biases): "
        "project, split into heads of size d_k = d_model / h, attend with 1/sqrt(d_k), merge, "
        "project with W^O; masks respected, under jax.jit and jax.vmap too."
    )


EXERCISE = Exercise(
    name="multi_head_attention",
    title="Multi-head attention",
    notebook="06_multi_head_attention",
    names=("multi_head_attention",),
    check=check_multi_head_attention,
    minutes=35,
    forbidden=(
        "flax.nnx.MultiHeadAttention",
        "flax.linen.MultiHeadDotProductAttention",
        "flax.linen.MultiHeadAttention",
    ),
    instead=(
        "write the steps yourself from the given weights: project, split the heads, attend, "
        "merge, project"
    ),
)
