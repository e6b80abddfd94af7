"""Exercise 05, split / merge heads: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/05_split_and_merge_heads``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import numpy as np

import attention as ref
from attention.exercises._checking import (
    Exercise,
    as_array,
    call,
    check_jit_and_vmap,
    checker,
    compare,
    reject_package_function,
)
from attention.exercises._shared import (
    cases,
    normal,
)


@checker("split_merge_heads")
def check_split_merge_heads(split_heads, merge_heads) -> str:
    """``split_heads(x [B, T, D], num_heads) -> [B, T, N, H]`` and its inverse ``merge_heads``."""
    reject_package_function(split_heads, "split_heads")
    reject_package_function(merge_heads, "merge_heads")
    for sizes, seed in cases():
        B, T, N, H = sizes.B, sizes.T, sizes.N, sizes.H
        x = normal(seed, (B, T, N * H))
        inputs = {"x": x}
        expected = np.asarray(ref.split_heads(x, N))
        got = as_array(call(split_heads, "split_heads", inputs | {"num_heads": N}), "split_heads")
        compare(got, expected, axes="BTNH", name="split_heads", what="heads", inputs=inputs,
                variants=[
            (
                f"your heads are split along the wrong axis: your head n takes every N-th "
                f"feature (n, n+N, n+2N, ...). Head n must be the contiguous block of features "
                f"n*H .. (n+1)*H - 1: reshape [B, T, D] to [B, T, N, H] = "
                f"[{B}, {T}, {N}, {H}] directly.",
                lambda: x.reshape(B, T, H, N).swapaxes(-1, -2),
            ),
            (
                "you reshaped [B, T, D] to [B, N, T, H] and then moved the axes: that reshape "
                "mixes positions of the sequence into the heads. Reshape to [B, T, N, H].",
                lambda: x.reshape(B, N, T, H).transpose(0, 2, 1, 3),
            ),
        ])
        heads = ref.split_heads(x, N)
        merge_inputs = {"x": heads}
        got = as_array(call(merge_heads, "merge_heads", merge_inputs), "merge_heads")
        compare(got, np.asarray(x), axes="BTD", name="merge_heads", what="merged output",
                inputs=merge_inputs, variants=[
            (
                "your merge_heads interleaves the heads (features h*N + n) instead of putting "
                "head n's block at n*H .. (n+1)*H - 1: merge with a reshape [B, T, N, H] -> "
                "[B, T, N*H], without swapping the last two axes.",
                lambda: heads.swapaxes(-1, -2).reshape(B, T, N * H),
            ),
        ])
    x2 = normal(9, x.shape)
    check_jit_and_vmap(
        split_heads, "split_heads", inputs, {"x": x2}, expected, ref.split_heads(x2, N),
        static={"num_heads": N},
    )
    check_jit_and_vmap(
        merge_heads, "merge_heads", {"x": heads}, {"x": ref.split_heads(x2, N)}, x, x2
    )
    return (
        "split_heads and merge_heads match the package: [B, T, D] <-> [B, T, N, H] with head n "
        "holding the features n*H .. (n+1)*H - 1, each the inverse of the other, under "
        "jax.jit and jax.vmap too."
    )


EXERCISE = Exercise(
    name="split_merge_heads",
    title="Splitting and merging heads",
    notebook="05_split_and_merge_heads",
    names=("split_heads", "merge_heads"),
    check=check_split_merge_heads,
    minutes=15,
)
