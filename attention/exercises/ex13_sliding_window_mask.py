"""Exercise 13, sliding-window mask: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/13_sliding_window_mask``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import numpy as np

from attention.exercises._checking import (
    Exercise,
    Mistake,
    as_array,
    call,
    check_shape,
    checker,
    close,
    match_variant,
    reject_package_function,
)
from attention.exercises._shared import (
    check_boolean,
)


@checker("sliding_window_mask")
def check_sliding_window_mask(sliding_window_mask) -> str:
    """``sliding_window_mask(T, window) -> Bool[T, T]``: s <= t and t - s <= window.

    The reference is ``attention.mechanism.masks.local_window_mask(T, T, (window, 0))``, the
    window of ``jax.nn.dot_product_attention(local_window_size=(window, 0), is_causal=True)``.
    """
    from attention.mechanism.masks import local_window_mask

    fn = sliding_window_mask
    name = "sliding_window_mask"
    reject_package_function(fn, name)
    for T, window in ((7, 2), (6, 0), (8, 3), (5, 9)):
        inputs = {"T": T, "window": window}
        got = as_array(call(fn, name, inputs), name, "mask")
        check_shape(got, (T, T), "TS", name, "mask")
        check_boolean(got, name)
        expected = np.asarray(local_window_mask(T, T, (window, 0)))
        if close(got, expected):
            continue
        t, s = np.arange(T)[:, None], np.arange(T)[None, :]
        match_variant(got, [
            (
                f"your window is one token short: token t sees {window} tokens counting "
                f"itself. Here token t sees itself AND the `window` tokens before it (keys "
                f"t - window <= s <= t, window + 1 of them), as jax.nn's "
                f"local_window_size=(window, 0) with is_causal=True.",
                lambda: (s <= t) & (t - s < window),
            ),
            (
                "your window is one token too long: token t sees itself and the `window` "
                "tokens before it, keys t - window <= s <= t (use t - s <= window).",
                lambda: (s <= t) & (t - s <= window + 1),
            ),
            (
                "your band is symmetric (|t - s| <= window): it lets token t see the window "
                "tokens after it. A sliding window in a decoder is causal: also require s <= t.",
                lambda: np.abs(t - s) <= window,
            ),
            (
                "your mask lets token t see every later token: t - s <= window is only the "
                "left edge of the window; add the causal condition s <= t.",
                lambda: t - s <= window,
            ),
            (
                "your mask is the plain causal mask: the window is ignored. Token t sees only "
                "keys t - window <= s <= t.",
                lambda: s <= t,
            ),
            (
                "your mask has the wrong polarity: True must mean \"may attend\", and yours is "
                "True exactly outside the window.",
                lambda: ~expected,
            ),
            (
                "your mask hides the diagonal: token t must see itself (keys t - window <= "
                "s <= t, with s = t included).",
                lambda: (s < t) & (t - s <= window),
            ),
            (
                "your mask is transposed: rows are queries t, columns keys s, and query t sees "
                "the keys before it (s <= t), the lower triangle.",
                lambda: expected.T,
            ),
        ])
        index = [int(i) for i in np.argwhere(got != expected)[0]]
        raise Mistake(
            f"your mask for T={T}, window={window} is wrong at [t, s] = {index}: you have "
            f"{bool(got[tuple(index)])}, expected {bool(expected[tuple(index)])} (True when "
            f"t - window <= s <= t)."
        )
    return (
        "your sliding-window mask matches local_window_mask(T, T, (window, 0)): token t sees "
        "itself and the `window` tokens before it, the mask of jax.nn.dot_product_attention("
        "..., is_causal=True, local_window_size=(window, 0)) and of Mistral's sliding window."
    )


EXERCISE = Exercise(
    name="sliding_window_mask",
    title="A sliding-window mask",
    notebook="13_sliding_window_mask",
    names=("sliding_window_mask",),
    check=check_sliding_window_mask,
    minutes=15,
)
