"""Exercise 16, an open-ended experiment: what the 1/sqrt(d_k) scale does to the softmax.

The notebook is ``notebooks/exercises/16_scaling_experiment``; the model solution is in
``teachers/solutions.py``. The student measures the mean entropy of the attention weights of
random queries and keys with and without the scale, for several head dims, and reports the
numbers and a conclusion. The checker grades the *measurement*, never the conclusion:

1. ``attention_entropy(d_k, scaled, seed)`` must measure what the notebook defines: its value
   is compared, within a statistical tolerance, with the checker's own run of the same
   experiment on other random draws (written out in NumPy here);
2. the numbers the student reports (``my_measurements()``) must be the ones that function
   gives: each is recomputed by calling it, and must cover small and large head dims.
"""

from __future__ import annotations

import math

import numpy as np

from attention.exercises._checking import (
    Exercise,
    Mistake,
    as_array,
    call,
    checker,
    reject_package_function,
)

QUERIES, KEYS = 512, 64
CHECKED_DIMS = (4, 64, 256)
MAX_ENTROPY = math.log(KEYS)


def entropy_reference(d_k: int, scaled: bool, seed: int = 1234, *, base=math.e,
                      scale_by=None, over_queries=False) -> float:
    """The experiment, written out in NumPy (float64): mean over queries of the entropy of
    softmax over the keys of q . k (/ sqrt(d_k) when scaled), q and k standard normal."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((QUERIES, d_k))
    k = rng.standard_normal((KEYS, d_k))
    scores = q @ k.T
    if scaled:
        scores = scores / (scale_by if scale_by is not None else math.sqrt(d_k))
    axis = 0 if over_queries else -1
    shifted = scores - scores.max(axis=axis, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    entropy = -(np.exp(log_p) * log_p).sum(axis=axis) / math.log(base)
    return float(entropy.mean())


# How far one run (one draw of 512 queries and 64 keys) may fall from the mean over draws:
# about 4 standard deviations, measured over 60 seeds (the 64 shared keys dominate the
# spread; d_k = 4 unscaled spreads most, sd 0.11 nats). The mistakes the checker names move
# the result by more than these, at the first head dim where they are tried.
TOLERANCE = {(4, True): 0.2, (4, False): 0.45, (64, True): 0.06, (64, False): 0.12,
             (256, True): 0.04, (256, False): 0.08}
REFERENCE_SEEDS = range(1000, 1008)


def _expected(d_k: int, scaled: bool, **mistake) -> float:
    """The mean over 8 draws of the checker's own run (of a mistaken one with ``mistake``)."""
    return float(np.mean([entropy_reference(d_k, scaled, s, **mistake) for s in REFERENCE_SEEDS]))


def _number(fn, name, inputs) -> float:
    got = as_array(call(fn, name, inputs), name, "entropy")
    if got.shape != ():
        raise Mistake(
            f"`{name}` returned an array of shape {list(got.shape)}; it should return one "
            f"number, the mean entropy over the {QUERIES} queries."
        )
    value = float(got)
    if not math.isfinite(value):
        raise Mistake(
            f"`{name}` returned {value} for {inputs}: 0 * log(0) is NaN. Compute the entropy "
            f"from jax.nn.log_softmax (p * log_p, with log_p finite) rather than log(softmax)."
        )
    return value


def _check_measurement(fn, name) -> None:
    for d_k in CHECKED_DIMS:
        for scaled in (True, False):
            inputs = {"d_k": d_k, "scaled": scaled, "seed": 0}
            got = _number(fn, name, inputs)
            want, tolerance = _expected(d_k, scaled), TOLERANCE[d_k, scaled]
            if abs(got - want) <= tolerance:
                continue
            if got > MAX_ENTROPY + 1e-3:
                if abs(got - _expected(d_k, scaled, over_queries=True)) <= 2 * tolerance:
                    raise Mistake(
                        f"your entropy for d_k={d_k} is {got:.3f} nats, more than log({KEYS}) "
                        f"= {MAX_ENTROPY:.3f}, the most possible over {KEYS} keys: your softmax "
                        f"runs over the {QUERIES} queries. Each query's weights are a softmax "
                        f"over the keys (the last axis of the [{QUERIES}, {KEYS}] scores)."
                    )
            bits = _expected(d_k, scaled, base=2)
            if abs(got - bits) <= tolerance / math.log(2):
                raise Mistake(
                    f"your entropy for d_k={d_k} ({got:.3f}) is in bits (log base 2); the "
                    f"notebook measures it in nats (natural log, as jax.nn.log_softmax gives), "
                    f"{want:.3f} here."
                )
            if scaled and abs(got - _expected(d_k, False)) <= TOLERANCE[d_k, False]:
                raise Mistake(
                    f"with scaled=True your measurement for d_k={d_k} equals the unscaled one "
                    f"({got:.3f} nats): divide the scores by sqrt(d_k) when scaled is True."
                )
            over_d = _expected(d_k, scaled, scale_by=d_k)
            if scaled and abs(got - over_d) <= tolerance:
                raise Mistake(
                    f"with scaled=True you divided the scores by d_k = {d_k}, not by "
                    f"sqrt(d_k) = {math.sqrt(d_k):g} ({got:.3f} nats; expected about "
                    f"{want:.3f})."
                )
            raise Mistake(
                f"your measurement for d_k={d_k}, scaled={scaled} is {got:.3f} nats; the "
                f"checker's own run of the experiment ({QUERIES} queries, {KEYS} keys, q and k "
                f"standard normal, other random draws) gives {want:.3f} (tolerance "
                f"{tolerance:.2f}). Check the sizes, the distribution of q and k, and "
                f"that you average the entropy of each query's weights over the keys."
            )


def _check_report(fn, report, name, report_name) -> int:
    rows = call(report, report_name, {})
    if not isinstance(rows, list | tuple) or not rows:
        raise Mistake(
            f"`{report_name}()` should return your measurements, a tuple of "
            f"(d_k, entropy_scaled, entropy_unscaled) rows; got {type(rows).__name__}."
        )
    dims = []
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) != 3:
            raise Mistake(
                f"each row of `{report_name}()` should be (d_k, entropy_scaled, "
                f"entropy_unscaled); got {row!r:.80}."
            )
        d_k, *reported = (float(np.asarray(v)) for v in row)
        if d_k != int(d_k) or d_k < 1:
            raise Mistake(f"`{report_name}()` reports d_k={d_k}: a head dim is a positive int.")
        d_k = int(d_k)
        dims.append(d_k)
        for scaled, value in zip((True, False), reported, strict=True):
            again = _number(fn, name, {"d_k": d_k, "scaled": scaled, "seed": 0})
            if not math.isclose(value, again, rel_tol=1e-3, abs_tol=1e-4):
                raise Mistake(
                    f"you report {value:.4f} nats for d_k={d_k}, scaled={scaled}, but your "
                    f"`{name}({d_k}, {scaled}, seed=0)` gives {again:.4f}: report the numbers "
                    f"your function measures (run it with seed=0, and draw the random numbers "
                    f"from that seed)."
                )
    if len(set(dims)) < 3 or min(dims) > 16 or max(dims) < 256:
        raise Mistake(
            f"you report d_k = {sorted(set(dims))}; measure at least three head dims, from "
            f"16 or less to 256 or more, so that the trend with d_k shows."
        )
    return len(set(dims))


@checker("scaling_experiment")
def check_scaling_experiment(attention_entropy, my_measurements) -> str:
    """``attention_entropy(d_k, scaled, seed) -> float`` and ``my_measurements() -> rows``."""
    name, report_name = "attention_entropy", "my_measurements"
    reject_package_function(attention_entropy, name)
    reject_package_function(my_measurements, report_name)
    _check_measurement(attention_entropy, name)
    count = _check_report(attention_entropy, my_measurements, name, report_name)
    return (
        f"your measurement agrees with the checker's own run of the experiment (for d_k = "
        f"{', '.join(map(str, CHECKED_DIMS))}, scaled and not), and the numbers you report "
        f"for {count} head dims are the ones your function gives. Your conclusion is not "
        f"graded: discuss it in class."
    )


EXERCISE = Exercise(
    name="scaling_experiment",
    title="Experiment: what 1/sqrt(d_k) does to the attention weights",
    notebook="16_scaling_experiment",
    names=("attention_entropy", "my_measurements"),
    check=check_scaling_experiment,
    minutes=40,
)
