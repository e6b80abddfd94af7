"""Exercise 07, sinusoidal positions: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/07_sinusoidal_positions``; the model solution is in
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
    checker,
    compare,
    reject_package_function,
)


@checker("sinusoidal_positions")
def check_sinusoidal_positions(sinusoidal_positions) -> str:
    """``sinusoidal_positions(max_len, d_model) -> [max_len, d_model]``."""
    fn = sinusoidal_positions
    name = "sinusoidal_positions"
    reject_package_function(fn, name)
    for L, D in ((7, 12), (50, 16)):
        inputs = {"max_len": L, "d_model": D}
        expected = np.asarray(ref.sinusoidal_positions(L, D))
        got = as_array(call(fn, name, inputs), name, "table")
        pos = np.arange(L, dtype=np.float64)[:, None]
        i = np.arange(D // 2, dtype=np.float64)[None, :]
        angle_pairs = pos / 10000.0 ** (2 * i / D)  # [L, D/2]

        def interleave(even, odd):
            return np.stack([even, odd], axis=-1).reshape(L, D)

        j = np.arange(D, dtype=np.float64)[None, :]
        compare(got, expected, axes="LD", name=name, what="table", inputs=inputs, variants=[
            (
                "sine and cosine are swapped: even dimensions 2i hold sin(pos / 10000^(2i/d)) "
                "and odd dimensions 2i+1 hold the cos of the same angle.",
                lambda: interleave(np.cos(angle_pairs), np.sin(angle_pairs)),
            ),
            (
                "your table puts all the sines first and all the cosines after; the paper "
                "interleaves them: dimension 2i is a sine and 2i+1 the cosine of the same "
                "angle.",
                lambda: np.concatenate([np.sin(angle_pairs), np.cos(angle_pairs)], axis=-1),
            ),
            (
                "the frequencies are off: the exponent uses the dimension index j, but both "
                "dimensions of a pair (2i, 2i+1) share the angle pos / 10000^(2i/d_model). Use "
                "2i = j - j % 2 (j // 2 * 2), not j.",
                lambda: np.where(j % 2 == 0, np.sin(pos / 10000.0 ** (j / D)),
                                 np.cos(pos / 10000.0 ** (j / D))),
            ),
            (
                "the frequencies are off: the exponent should be 2i/d_model with i the pair "
                "index (0, 0, 1, 1, 2, 2, ... doubled: 0, 0, 2, 2, 4, 4, ...); you used i/d_model.",
                lambda: interleave(np.sin(pos / 10000.0 ** (i / D)),
                                   np.cos(pos / 10000.0 ** (i / D))),
            ),
            (
                "your positions start at 1; the first row is position 0 (sin 0 = 0, cos 0 = 1).",
                lambda: interleave(np.sin((pos + 1) / 10000.0 ** (2 * i / D)),
                                   np.cos((pos + 1) / 10000.0 ** (2 * i / D))),
            ),
        ])
    return (
        "your table matches attention.sinusoidal_positions: [max_len, d_model], sin on even "
        "and cos on odd dimensions with wavelengths from 2 pi to 10000 * 2 pi."
    )


EXERCISE = Exercise(
    name="sinusoidal_positions",
    title="Sinusoidal positional encoding",
    notebook="07_sinusoidal_positions",
    names=("sinusoidal_positions",),
    check=check_sinusoidal_positions,
    minutes=20,
)
