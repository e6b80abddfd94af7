"""Exercise 18, the StreamingLLM cache: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/18_streaming_cache``; the model solution is in
``teachers/solutions.py``. The reference is the package's
:func:`attention.mechanism.streaming_cache.write_slots` and
:func:`~attention.mechanism.streaming_cache.cache_positions` (Xiao et al. 2023, sections
3.1-3.2), called here in the grader's process, never in the student's: the cache is one array
``[sinks | window]`` of ``n + w`` slots, text token p goes to sink slot p while p < n, then to
slot ``n + (p - n) mod w``; the cache position of a slot is its token's rank in the cache
(sinks first, then the window oldest first), -1 for a slot that holds no token yet.
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
    check_jit_and_vmap,
    check_shape,
    checker,
    close,
    match_variant,
    reject_package_function,
)
from attention.exercises._shared import seed_of

# (num_sinks, window): StreamingLLM's 4 sinks, the plain sliding window (no sinks), and a
# window shorter than the sinks; every case runs past two turns of the ring.
CASES = ((4, 6), (0, 3), (2, 7))


def _cases() -> tuple:
    """CASES, then one more drawn from the grading run's secret (``seed_of``), so that a table
    of the notebook's answers does not pass."""
    rng = np.random.default_rng(seed_of(18))
    return (*CASES, (int(rng.integers(1, 6)), int(rng.integers(2, 9))))


def slots_reference(num_sinks: int, window: int, positions) -> np.ndarray:
    """The slot of ``[sinks | window]`` of each text position (the package's write_slots)."""
    from attention.mechanism.streaming_cache import write_slots

    out = []
    for p in positions:
        sink_slot, window_slot = (int(s) for s in write_slots(num_sinks, window, int(p)))
        out.append(sink_slot if p < num_sinks else num_sinks + window_slot)
    return np.asarray(out)


def positions_reference(num_sinks: int, window: int, seen: int) -> np.ndarray:
    """``[n + w]``: each slot's cache position after ``seen`` tokens, -1 when empty (the
    package's cache_positions)."""
    from attention.mechanism.streaming_cache import cache_positions

    positions, valid = cache_positions(num_sinks, window, seen)
    return np.where(np.asarray(valid), np.asarray(positions), -1)


def _tokens_in_slots(n: int, w: int, seen: int) -> np.ndarray:
    """The text index of the token each slot holds after ``seen`` tokens, -1 when empty."""
    slots = slots_reference(n, w, range(seen))
    held = np.full(n + w, -1)
    for p, slot in enumerate(slots):
        held[slot] = p
    return held


def _slot_variants(n: int, w: int, p: np.ndarray) -> list:
    return [
        (
            f"your ring overwrites the sinks: token p goes to slot p mod (n + w), so once the "
            f"cache is full the first {n} tokens are evicted like any other. The sinks stay "
            f"for ever (that is the point of StreamingLLM, section 3.1); only the window "
            f"slots n .. n + w - 1 turn: slot n + (p - n) mod w.",
            lambda: p % (n + w),
        ),
        (
            "you counted the ring from the start of the text, n + p mod w: the window's first "
            "token, p = n, must land in the window's first slot n. Count from there: "
            "n + (p - n) mod w.",
            lambda: np.where(p < n, p, n + p % w),
        ),
        (
            "your ring is one slot ahead: token p = n must go to the window's first slot, n; "
            "use n + (p - n) mod w (not p - n + 1).",
            lambda: np.where(p < n, p, n + (p - n + 1) % w),
        ),
        (
            "your ring is one slot behind: token p = n must go to the window's first slot, n; "
            "use n + (p - n) mod w (not p - n - 1).",
            lambda: np.where(p < n, p, n + (p - n - 1) % w),
        ),
        (
            "your slots are counted inside the window only, (p - n) mod w: the cache is one "
            "array [sinks | window], so add num_sinks to a window slot.",
            lambda: np.where(p < n, p, (p - n) % w),
        ),
        (
            "you never write the sinks: the first num_sinks tokens (p < n) go to the sink "
            "slots 0 .. n - 1, and only the later ones to the ring.",
            lambda: n + (p - n) % w,
        ),
    ]


def _position_variants(n: int, w: int, seen: int, expected: np.ndarray) -> list:
    held = _tokens_in_slots(n, w, seen)
    slot = np.arange(n + w)
    filled = expected >= 0
    kept_sinks = min(seen, n)
    return [
        (
            "your positions are the tokens' places in the text, not in the cache: after "
            "the ring has turned a token keeps only its rank in the cache (sinks at 0 .. "
            "n - 1, then the window oldest first), so no position ever exceeds n + w - 1 "
            "(section 3.2). That is what lets the model run past its training length.",
            lambda: held,
        ),
        (
            "your positions follow the slot order, but a ring's slots are not in age order "
            "once it has turned: the window's oldest token sits in the slot the next write "
            "will overwrite. Give each window token kept_sinks + (its rank by age, oldest "
            "first).",
            lambda: np.where(filled, slot, -1),
        ),
        (
            "your window positions run newest first: the oldest kept token of the window gets "
            "the smallest position, right after the sinks, and the newest token the largest "
            "(it is the query).",
            lambda: np.where(slot < n, expected,
                             np.where(filled, 2 * kept_sinks + int(filled[n:].sum()) - 1
                                      - expected, -1)),
        ),
        (
            "your window positions start at 0, on top of the sinks' positions: the window "
            "comes after the sinks in the cache, so its oldest token is at position "
            "min(seen, num_sinks).",
            lambda: np.where(slot < n, expected, np.where(filled, expected - kept_sinks, -1)),
        ),
        (
            "your positions start at 1: the first cache position is 0, like the text's.",
            lambda: np.where(filled, expected + 1, -1),
        ),
        (
            "an empty slot must be marked -1: yours gives it a position although no token "
            "has been written there yet.",
            lambda: np.where(filled, expected, 0),
        ),
    ]


@checker("streaming_cache")
def check_streaming_cache(streaming_slot, streaming_positions) -> str:
    """``streaming_slot(position, num_sinks, window) -> slot`` and
    ``streaming_positions(seen, num_sinks, window) -> [n + w]`` positions (-1: empty)."""
    reject_package_function(streaming_slot, "streaming_slot")
    reject_package_function(streaming_positions, "streaming_positions")
    cases = _cases()
    for n, w in cases:
        name = "streaming_slot"
        p = np.arange(n + 2 * w + 2)
        expected = slots_reference(n, w, p)
        got = []
        for position in p:
            inputs = {"position": int(position), "num_sinks": n, "window": w}
            value = as_array(call(streaming_slot, name, inputs), name, "slot")
            check_shape(value, (), "", name, "slot")
            got.append(value)
        got = np.asarray(got)
        if close(got, expected):
            continue
        if (got >= n + w).any() or (got < 0).any():
            bad = int(np.argwhere((got >= n + w) | (got < 0))[0, 0])
            raise Mistake(
                f"`{name}` writes token p={bad} to slot {got[bad]}, outside the cache of "
                f"num_sinks + window = {n} + {w} = {n + w} slots: did you forget to wrap "
                f"the ring around (mod window)?"
            )
        match_variant(got, _slot_variants(n, w, p))
        bad = int(np.argwhere(got != expected)[0, 0])
        raise Mistake(
            f"with num_sinks={n}, window={w}, your slots for tokens p = 0, 1, ... are "
            f"{got.tolist()}; token p={bad} should go to slot {expected[bad]} (p < num_sinks: "
            f"slot p; then num_sinks + (p - num_sinks) mod window)."
        )
    check_jit_and_vmap(
        streaming_slot, "streaming_slot", {"position": np.int32(9)},
        {"position": np.int32(5)}, slots_reference(n, w, [9])[0],
        slots_reference(n, w, [5])[0], static={"num_sinks": n, "window": w},
    )
    for n, w in cases:
        name = "streaming_positions"
        for seen in range(n + 2 * w + 2):
            inputs = {"seen": seen, "num_sinks": n, "window": w}
            got = call(streaming_positions, name, inputs)
            got = as_array(np.asarray(got) if isinstance(got, list) else got, name, "positions")
            expected = positions_reference(n, w, seen)
            check_shape(got, expected.shape, "S", name, "positions")
            if close(got, expected):
                continue
            match_variant(got, _position_variants(n, w, seen, expected))
            raise Mistake(
                f"with num_sinks={n}, window={w} and seen={seen} tokens your positions of the "
                f"slots [sinks | window] are {got.tolist()}, expected {expected.tolist()} "
                f"(slot {int(np.argwhere(got != expected)[0, 0])} first differs): "
                f"sinks at 0 .. n - 1, then the window's tokens oldest first, -1 for an empty "
                f"slot."
            )
    check_jit_and_vmap(
        streaming_positions, "streaming_positions", {"seen": np.int32(12)},
        {"seen": np.int32(4)}, positions_reference(n, w, 12), positions_reference(n, w, 4),
        static={"num_sinks": n, "window": w},
    )
    return (
        "your StreamingLLM cache matches the package's (attention.mechanism.streaming_cache): "
        "the sinks are written once and kept, the window turns as a ring over slots n .. "
        "n + w - 1, and each slot's position is its rank in the cache, never its place in "
        "the text; under jax.jit and jax.vmap too."
    )


EXERCISE = Exercise(
    name="streaming_cache",
    title="The StreamingLLM cache",
    notebook="18_streaming_cache",
    names=("streaming_slot", "streaming_positions"),
    check=check_streaming_cache,
    minutes=30,
)
