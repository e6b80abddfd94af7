"""Exercise 08, causal self-attention: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/08_causal_self_attention``; the model solution is in
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
    check_leak,
    mha_apply,
    mha_module,
    mha_variants,
    mha_weights,
    normal,
)


@checker("causal_self_attention")
def check_causal_self_attention(causal_self_attention) -> str:
    """``causal_self_attention(x [B, T, D], w_q, w_k, w_v, w_o, num_heads) -> [B, T, D]``.

    The reference is the decoder's first sub-layer: ``MultiHeadAttention(x, is_causal=True)``
    (without biases), as in :class:`attention.model.decoder.DecoderLayer`.
    """
    fn = causal_self_attention
    name = "causal_self_attention"
    reject_package_function(fn, name)
    for sizes, seed in cases():
        B, T, N, H = sizes.B, sizes.S, sizes.N, sizes.H  # S (5, 4) as the target length
        D = N * H
        mha = mha_module(seed, N, D)
        w = mha_weights(mha)
        x = normal(seed + 10, (B, T, D))
        inputs = {"x": x} | w
        expected = np.asarray(mha_apply(mha, x, is_causal=True))
        got = as_array(call(fn, name, inputs | {"num_heads": N}), name)
        check_shape(got, expected.shape, "BTD", name, "output")
        allowed = np.asarray(ref.causal_mask(T))
        variants = [] if close(got, expected) else [
            (
                "your mask has the wrong polarity: True must mean \"may attend\"; your position "
                "t attends only the positions after it.",
                lambda: mha_apply(mha, x, mask=jnp.asarray(~allowed)),
            ),
            (
                "your causal mask hides the diagonal: position t must attend itself (keys "
                "s <= t, not s < t).",
                lambda: mha_apply(mha, x, mask=jnp.asarray(np.tril(allowed, -1))),
            ),
        ]
        match_variant(got, variants)
        check_leak(fn, (x, *w.values(), N), 0, name, "input x")
        compare(got, expected, axes="BTD", name=name, what="output", inputs=inputs,
                variants=mha_variants(x, w, N, None, causal=True))
    x2 = normal(99, x.shape)
    check_jit_and_vmap(
        fn, name, inputs, {"x": x2} | w, expected, mha_apply(mha, x2, is_causal=True),
        static={"num_heads": N},
    )
    return (
        "your causal self-attention matches the decoder's masked self-attention "
        "(MultiHeadAttention with is_causal=True): no gradient flows from a later position, "
        "and it works under jax.jit and jax.vmap."
    )


EXERCISE = Exercise(
    name="causal_self_attention",
    title="The decoder's causal self-attention",
    notebook="08_causal_self_attention",
    names=("causal_self_attention",),
    check=check_causal_self_attention,
    minutes=30,
)
