"""Exercise 16's checker: a measurement that follows the notebook passes; a wrong measurement,
or reported numbers that are not what the function gives, fail with their explanation
(attention/exercises/ex16_scaling_experiment.py). The conclusion is never graded."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from attention import exercises
from attention.exercises import ex16_scaling_experiment as ex16
from teachers import solutions

from ._helpers import fails


def _entropy(*, bits=False, ignore_scale=False, by_d_k=False, over_queries=False):
    def attention_entropy(d_k, scaled, seed=0):
        key_q, key_k = jax.random.split(jax.random.key(seed))
        q = jax.random.normal(key_q, (512, d_k))
        k = jax.random.normal(key_k, (64, d_k))
        scores = q @ k.T
        if scaled and not ignore_scale:
            scores = scores / (d_k if by_d_k else jnp.sqrt(d_k))
        axis = 0 if over_queries else -1
        log_p = jax.nn.log_softmax(scores, axis=axis)
        h = -jnp.sum(jnp.exp(log_p) * log_p, axis=axis)
        return jnp.mean(h) / (math.log(2) if bits else 1.0)

    return attention_entropy


def test_reference_is_the_entropy_written_out():
    """The checker's NumPy experiment: uniform weights give log(S); a huge scale gives ~0."""
    assert math.isclose(ex16.entropy_reference(8, True, scale_by=1e12), math.log(64), rel_tol=1e-9)
    assert ex16.entropy_reference(1024, False) < 0.2
    rng = np.random.default_rng(1234)  # the same draws, entropy by scipy-free direct formula
    q, k = rng.standard_normal((512, 4)), rng.standard_normal((64, 4))
    p = np.exp(q @ k.T / 2)
    p /= p.sum(-1, keepdims=True)
    assert math.isclose(ex16.entropy_reference(4, True), float((-(p * np.log(p)).sum(-1)).mean()),
                        rel_tol=1e-9)


def test_scaling_experiment_mistakes():
    check = exercises.check_scaling_experiment
    report = solutions.my_measurements
    result = check(solutions.attention_entropy, report)
    assert result.passed, result
    assert "conclusion is not graded" in result.message
    fails(check(_entropy(bits=True), report), "in bits")
    fails(check(_entropy(ignore_scale=True), report), "equals the unscaled one")
    fails(check(_entropy(by_d_k=True), report), "divided the scores by d_k")
    fails(check(_entropy(over_queries=True), report), "runs over the 512 queries")

    def invented():  # numbers that are not what the function gives
        return ((4, 3.6405, 2.6616), (64, 3.6466, 0.1), (256, 3.6772, 0.01))

    fails(check(solutions.attention_entropy, invented), "your `attention_entropy(64, False")

    def too_few():
        return solutions.my_measurements()[:2]

    fails(check(solutions.attention_entropy, too_few), "at least three head dims")
