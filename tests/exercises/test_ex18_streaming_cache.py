"""Exercise 18's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex18_streaming_cache.py)."""

import jax.numpy as jnp
import numpy as np

from attention import exercises
from attention.exercises import _shared
from attention.exercises import ex18_streaming_cache as ex18
from teachers import solutions

from ._helpers import fails


def _simulate(n, w, seen):
    """StreamingLLM by hand: write tokens one by one into n + w slots (a pointer that turns
    over the window slots), then rank the kept tokens in text order: (slot of each token,
    position of each slot, -1 for an empty slot)."""
    slot_of, held, pointer = [], [-1] * (n + w), n
    for p in range(seen):
        if p < n:
            slot = p
        else:
            slot, pointer = pointer, pointer + 1 if pointer + 1 < n + w else n
        slot_of.append(slot)
        held[slot] = p
    kept = sorted(p for p in held if p >= 0)
    return slot_of, [kept.index(p) if p >= 0 else -1 for p in held]


def test_the_checkers_reference_is_the_ring_written_by_hand():
    for n, w in ex18.CASES:
        seen = n + 2 * w + 2
        slots, _ = _simulate(n, w, seen)
        assert ex18.slots_reference(n, w, range(seen)).tolist() == slots
        for s in range(seen + 1):
            assert ex18.positions_reference(n, w, s).tolist() == _simulate(n, w, s)[1]


def test_one_case_is_drawn_from_the_grading_secret():
    """Under the grader's secret the last case changes, and the model solution still passes."""
    plain = ex18._cases()
    with _shared.secret_seed(2024):
        drawn = ex18._cases()
        assert exercises.check_streaming_cache(solutions.streaming_slot,
                                               solutions.streaming_positions).passed
    assert plain[:-1] == drawn[:-1] == ex18.CASES and plain[-1] != drawn[-1]


def _slot(rule):
    def streaming_slot(position, num_sinks, window):
        return jnp.where(position < num_sinks, position, rule(position, num_sinks, window))

    return streaming_slot


def _check_slot(slot_fn):
    return exercises.check_streaming_cache(slot_fn, solutions.streaming_positions)


def test_slot_mistakes():
    assert exercises.check_streaming_cache(solutions.streaming_slot,
                                           solutions.streaming_positions).passed
    fails(_check_slot(lambda p, n, w: p % (n + w)), "overwrites the sinks")
    fails(_check_slot(_slot(lambda p, n, w: n + p % w)), "from the start of the text")
    fails(_check_slot(_slot(lambda p, n, w: n + (p - n + 1) % w)), "one slot ahead")
    fails(_check_slot(_slot(lambda p, n, w: n + (p - n - 1) % w)), "one slot behind")
    fails(_check_slot(_slot(lambda p, n, w: (p - n) % w)), "inside the window only")
    fails(_check_slot(_slot(lambda p, n, w: n + (p - n))), "outside the cache",
          "forget to wrap")
    fails(_check_slot(lambda p, n, w: n + (p - n) % w), "never write the sinks")


def test_a_python_branch_is_named_under_jit():
    def streaming_slot(position, num_sinks, window):
        if position < num_sinks:
            return position
        return num_sinks + (position - num_sinks) % window

    fails(_check_slot(streaming_slot), "breaks under jax.jit", "Python control flow")


def _positions(change):
    """The model solution's positions, changed by ``change(positions, seen, n, w)``."""
    def streaming_positions(seen, num_sinks, window):
        right = np.asarray(solutions.streaming_positions(seen, num_sinks, window))
        return change(right, seen, num_sinks, window)

    return streaming_positions


def _check_positions(positions_fn):
    return exercises.check_streaming_cache(solutions.streaming_slot, positions_fn)


def _text_positions(seen, num_sinks, window):
    """The token's index in the text, -1 when empty: a natural wrong answer."""
    held = np.full(num_sinks + window, -1)
    for p in range(seen):
        held[p if p < num_sinks else num_sinks + (p - num_sinks) % window] = p
    return held


def test_positions_mistakes():
    # A Python list is read as an array (right values); what fails is jit, not the list.
    as_list = _positions(lambda r, s, n, w: [int(x) for x in r])
    fails(_check_positions(as_list), "breaks under jax.jit")
    fails(_check_positions(_text_positions), "places in the text, not in the cache")
    fails(_check_positions(_positions(lambda r, s, n, w: np.where(r >= 0, np.arange(n + w), -1))),
          "follow the slot order")
    fails(_check_positions(_positions(
        lambda r, s, n, w: np.where(r >= 0, r - np.where(np.arange(n + w) >= n,
                                                         min(s, n), 0), -1))),
          "start at 0, on top of the sinks")
    fails(_check_positions(_positions(lambda r, s, n, w: np.where(r >= 0, r + 1, -1))),
          "start at 1")
    fails(_check_positions(_positions(lambda r, s, n, w: np.maximum(r, 0))),
          "empty slot must be marked -1")

    def newest_first(r, s, n, w):
        sinks, window = min(s, n), int((r[n:] >= 0).sum())
        flipped = np.where(r >= 0, 2 * sinks + window - 1 - r, -1)
        return np.where(np.arange(n + w) < n, r, flipped)

    fails(_check_positions(_positions(newest_first)), "newest first")
