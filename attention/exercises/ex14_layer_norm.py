"""Exercise 14, layer normalisation: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/14_layer_norm``; the model solution is in
``teachers/solutions.py``. The reference is :func:`attention.model.layer_norm.layer_norm`
(held equal to ``flax.nnx.LayerNorm`` by the package's tests):
``scale * (x - mean) / sqrt(var + epsilon) + bias`` over the last axis, biased variance.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attention.exercises._checking import (
    Exercise,
    as_array,
    call,
    check_jit_and_vmap,
    checker,
    compare,
    reject_package_function,
)
from attention.exercises._shared import cases, host_normal
from attention.model.layer_norm import layer_norm as _package_layer_norm

# Large enough that where epsilon goes shows: some rows have a variance near epsilon. Each
# case of ``cases()`` has its own, so that a fixed epsilon cannot pass.
EPSILONS = (1e-2, 4e-2)
EPSILON = EPSILONS[0]
# Epsilons a student may write in place of the argument (nnx.LayerNorm's and torch's default).
FIXED_EPSILONS = (1e-5, 1e-3)

_reference = jax.jit(_package_layer_norm, static_argnames=("epsilon",))


def _inputs(seed: int, B: int, T: int, D: int) -> dict:
    """x with a non-zero mean and a different spread at every position, the smallest with a
    variance near EPSILON. The mean stays small: E[x^2] - E[x]^2 (what nnx.LayerNorm computes)
    loses float32 digits when the mean is large against the spread, and must pass too."""
    spread_BT1 = np.exp(np.linspace(np.log(0.1), np.log(3.0), B * T)).reshape(B, T, 1)
    x = host_normal(seed, (B, T, D)) * jnp.asarray(spread_BT1, jnp.float32) + 0.5
    scale = 1.0 + 0.5 * host_normal(seed + 1, (D,))
    bias = host_normal(seed + 2, (D,))
    return {"x": x, "scale": scale, "bias": bias}


def _normalise(x, axis=-1, ddof=0, eps_outside=False, eps=EPSILON, centre=True):
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True, ddof=ddof)
    top = x - mean if centre else x
    if eps_outside:
        return top / (np.sqrt(var) + eps)
    return top / np.sqrt(var + eps)


def _variants(x, scale, bias, eps=EPSILON) -> list:
    g, b = np.asarray(scale, np.float64), np.asarray(bias, np.float64)
    fixed = [e for e in (*FIXED_EPSILONS, *EPSILONS) if e != eps]
    return [
        (
            "you normalised over the wrong axis: over the positions T (axis -2) instead of the "
            "features D. Layer norm takes the mean and variance of each position's own D "
            "features (axis=-1, keepdims=True); nothing is shared between positions.",
            lambda: _normalise(x, axis=-2, eps=eps) * g + b,
        ),
        (
            "you normalised over the wrong axis: over the batch B (axis 0) instead of the "
            "features D. That is closer to batch norm; layer norm uses axis=-1 only.",
            lambda: _normalise(x, axis=0, eps=eps) * g + b,
        ),
        (
            "you normalised over the wrong axis: one mean and variance for the whole array. "
            "Layer norm takes them per position, over the last axis (axis=-1, keepdims=True).",
            lambda: _normalise(x, axis=None, eps=eps) * g + b,
        ),
        (
            "you used the unbiased variance (dividing by D - 1, as jnp.var(ddof=1) or "
            "torch.std's default); layer norm (nnx.LayerNorm, torch.nn.LayerNorm) uses the "
            "biased variance, mean((x - mean)^2), dividing by D.",
            lambda: _normalise(x, ddof=1, eps=eps) * g + b,
        ),
        (
            "you put epsilon outside the square root, (x - mean) / (sqrt(var) + eps); "
            "nnx.LayerNorm and the package add it to the variance: (x - mean) / sqrt(var + eps).",
            lambda: _normalise(x, eps_outside=True, eps=eps) * g + b,
        ),
        (
            "you left out epsilon: (x - mean) / sqrt(var). It keeps the division finite when a "
            "position's features are all (nearly) equal: use sqrt(var + epsilon).",
            lambda: _normalise(x, eps=0.0) * g + b,
        ),
        *[(
            f"you used epsilon={e:g} whatever the epsilon argument is (here {eps:g}): pass "
            f"the argument on, sqrt(var + epsilon).",
            lambda e=e: _normalise(x, eps=e) * g + b,
        ) for e in fixed],
        (
            "scale and bias are swapped: the normalised x is multiplied by scale (gamma) and "
            "then bias (beta) is added.",
            lambda: _normalise(x, eps=eps) * b + g,
        ),
        (
            "you ignored scale and bias: after normalising, multiply by scale (gamma) and add "
            "bias (beta), the learned per-feature vectors.",
            lambda: _normalise(x, eps=eps),
        ),
        (
            "you did not subtract the mean: layer norm centres each position first, "
            "(x - mean) / sqrt(var + eps). (Dividing by the root mean square without centring "
            "is RMSNorm, a different layer.)",
            lambda: _normalise(x, centre=False, eps=eps) * g + b,
        ),
        (
            "you divided by the variance instead of the standard deviation: use "
            "sqrt(var + epsilon).",
            lambda: (np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(-1, keepdims=True))
            / (np.asarray(x, np.float64).var(-1, keepdims=True) + eps) * g + b,
        ),
    ]


@checker("layer_norm")
def check_layer_norm(layer_norm) -> str:
    """``layer_norm(x [..., D], scale [D], bias [D], epsilon) -> [..., D]``."""
    fn = layer_norm
    name = "layer_norm"
    reject_package_function(fn, name)
    for (sizes, seed), eps in zip(cases(), EPSILONS, strict=True):
        B, T, D = sizes.B, sizes.T, sizes.N + sizes.H  # D = 23, then 14
        inputs = _inputs(seed, B, T, D)
        static = {"epsilon": eps}
        expected = np.asarray(_reference(**inputs, epsilon=eps))
        got = as_array(call(fn, name, inputs | static), name)
        compare(got, expected, axes="BTD", name=name, what="output", inputs=inputs | static,
                variants=_variants(**inputs, eps=eps))
    other = _inputs(seed + 7, B, T, D)
    other = {"x": other["x"], "scale": inputs["scale"], "bias": inputs["bias"]}
    check_jit_and_vmap(
        fn, name, inputs, other, expected, _reference(**other, epsilon=eps),
        static=static,
    )
    return (
        "your layer norm matches attention.model.layer_norm (and so nnx.LayerNorm): mean and "
        "biased variance over the last axis, epsilon inside the square root, then scale and "
        "bias; under jax.jit and jax.vmap too."
    )


EXERCISE = Exercise(
    name="layer_norm",
    title="Layer normalisation",
    notebook="14_layer_norm",
    names=("layer_norm",),
    check=check_layer_norm,
    minutes=20,
    forbidden=("flax.nnx.LayerNorm", "flax.linen.LayerNorm", "jax.nn.standardize"),
    instead=(
        "compute the mean and the variance over the last axis yourself, then normalise, scale"
        " and shift"
    ),
)
