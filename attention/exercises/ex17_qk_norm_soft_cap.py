"""Exercise 17, QK-norm and soft-capping: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/17_qk_norm_soft_cap``; the model solution is in
``teachers/solutions.py``. The reference is written out here in NumPy (float64): RMS norm of
each query and key head vector over its H features with a learned scale (QK-norm: Dehghani et
al. 2023, section 2; per head as in Gemma 3 and Qwen3), the scores ``q . k / sqrt(H)``, then
Gemma 2's soft-capping ``cap * tanh(scores / cap)`` (Gemma Team 2024, section 2). The tests hold its
norm equal to :func:`attention.model.layer_norm.rms_norm`.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import math

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
from attention.exercises._shared import host_normal

# (T, S, N, H, cap, epsilon): every axis a different size; small caps, so that tanh bends the
# scores, and a large epsilon, so that where it goes shows. Each case has its own cap and
# epsilon: a number written in place of the argument cannot pass.
CASES = ((3, 5, 7, 16, 2.0, 1e-2), (6, 4, 5, 9, 3.5, 4e-2))
# Caps a student may write in place of the argument: Gemma 2's attention cap (50) and its
# final-logit cap (30).
FIXED_CAPS = (50.0, 30.0)


def _inputs(seed: int, T: int, S: int, N: int, H: int) -> dict:
    """query and key with a non-zero mean and a different spread at every position (the
    smallest with a mean square near epsilon), and scales around 1.5."""
    spread_T11 = np.exp(np.linspace(np.log(0.08), np.log(3.0), T)).reshape(T, 1, 1)
    spread_S11 = np.exp(np.linspace(np.log(2.5), np.log(0.1), S)).reshape(S, 1, 1)
    query = host_normal(seed, (T, N, H)) * jnp.asarray(spread_T11, jnp.float32) + 0.3
    key = host_normal(seed + 1, (S, N, H)) * jnp.asarray(spread_S11, jnp.float32) - 0.2
    q_scale = 1.5 + 0.4 * host_normal(seed + 2, (H,))
    k_scale = 1.5 + 0.4 * host_normal(seed + 3, (H,))
    return {"query": query, "key": key, "q_scale": q_scale, "k_scale": k_scale}


def _norm(x, scale, eps, *, axis=-1, centre=False, eps_outside=False, scale_first=False):
    """RMS norm over ``axis`` times ``scale`` (float64), or one of its wrong versions."""
    x, g = np.asarray(x, np.float64), np.asarray(scale, np.float64)
    if scale_first:
        x = x * g
    if centre:
        x = x - x.mean(axis=axis, keepdims=True)
    mean_square = np.mean(x * x, axis=axis, keepdims=True)
    y = x / (np.sqrt(mean_square) + eps) if eps_outside else x / np.sqrt(mean_square + eps)
    return y if scale_first else y * g


def qk_norm_scores_reference(query, key, q_scale, k_scale, cap, epsilon, *, norm=None,
                             scale=True, capping="tanh", cap_first=False, norm_key=True):
    """``cap * tanh(rms(q) . rms(k) / sqrt(H) / cap)`` ``[N, T, S]`` in float64; the keyword
    arguments make the known wrong versions (``norm``: ``_norm``'s options)."""
    norm = norm or {}
    H = np.shape(query)[-1]
    q = _norm(query, q_scale, epsilon, **norm)
    k = _norm(key, k_scale, epsilon, **norm) if norm_key else np.asarray(key, np.float64)
    scores_NTS = np.einsum("TNH,SNH->NTS", q, k)
    divide = math.sqrt(H) if scale else 1.0
    if cap_first:
        return cap * np.tanh(scores_NTS / cap) / divide
    scores_NTS = scores_NTS / divide
    if capping == "tanh":
        return cap * np.tanh(scores_NTS / cap)
    if capping == "tanh times cap":
        return np.tanh(scores_NTS) * cap
    if capping == "tanh only":
        return np.tanh(scores_NTS / cap)
    if capping == "clip":
        return np.clip(scores_NTS, -cap, cap)
    return scores_NTS  # "none"


def _variants(inputs: dict, cap: float, epsilon: float, other_cap: float) -> list:
    def wrong(**options):
        return lambda: qk_norm_scores_reference(**inputs, cap=cap, epsilon=epsilon, **options)

    fixed = [c for c in (*FIXED_CAPS, other_cap) if c != cap]
    return [
        (
            "you normalised over the wrong axis: over the heads N (axis -2) instead of each "
            "head's own H features. Here QK-norm normalises every query and key vector of "
            "every head on its own, as Gemma 3 and Qwen3 do: the mean square over the last "
            "axis (axis=-1, keepdims=True).",
            wrong(norm={"axis": -2}),
        ),
        (
            "you normalised over the wrong axis: over the positions (axis 0) instead of each "
            "head's own H features. Nothing is shared between positions: the mean square is "
            "taken over the last axis (axis=-1, keepdims=True).",
            wrong(norm={"axis": 0}),
        ),
        (
            "you used layer norm (you subtracted the mean): QK-norm in Gemma 3, Qwen3 and "
            "OLMo 2 is an RMS norm, x / sqrt(mean(x^2) + epsilon) with no centring.",
            wrong(norm={"centre": True}),
        ),
        (
            "you multiplied by the scale before normalising, so the norm undid it: normalise "
            "first, x / sqrt(mean(x^2) + epsilon), then multiply by the learned scale.",
            wrong(norm={"scale_first": True}),
        ),
        (
            "you put epsilon outside the square root, x / (sqrt(mean(x^2)) + epsilon); RMS "
            "norm adds it to the mean square: x / sqrt(mean(x^2) + epsilon).",
            wrong(norm={"eps_outside": True}),
        ),
        (
            "you left out epsilon: x / sqrt(mean(x^2)). It keeps the division finite for a "
            "vector that is (nearly) zero: use sqrt(mean(x^2) + epsilon) with the epsilon "
            "argument.",
            lambda: qk_norm_scores_reference(**inputs, cap=cap, epsilon=0.0),
        ),
        (
            "you normalised the queries but not the keys: QK-norm normalises both, the query "
            "with q_scale and the key with k_scale.",
            wrong(norm_key=False),
        ),
        (
            "you capped the scores before dividing by sqrt(H): the cap bounds the scores "
            "the softmax sees, so compute q . k / sqrt(H) first, then cap * tanh(scores / "
            "cap).",
            wrong(cap_first=True),
        ),
        (
            "you wrote tanh(scores) * cap: without dividing by cap inside, every score above "
            "about 2 is flattened to cap. Soft-capping is cap * tanh(scores / cap): about the "
            "identity for small scores, bounded by cap for large ones.",
            wrong(capping="tanh times cap"),
        ),
        (
            "you wrote tanh(scores / cap) without multiplying by cap: your scores lie in "
            "(-1, 1). Soft-capping is cap * tanh(scores / cap), bounded by cap.",
            wrong(capping="tanh only"),
        ),
        (
            "you clipped the scores to [-cap, cap] (a hard cap, jnp.clip): Gemma 2's "
            "soft-capping is smooth, cap * tanh(scores / cap), so that the gradient never "
            "drops to zero.",
            wrong(capping="clip"),
        ),
        *[(
            f"you used cap={c:g} whatever the cap argument is (here {cap:g}): pass the "
            f"argument on, cap * tanh(scores / cap).",
            lambda c=c: qk_norm_scores_reference(**inputs, cap=c, epsilon=epsilon),
        ) for c in fixed],
        (
            "you did not cap the scores: after q . k / sqrt(H), apply cap * tanh(scores / "
            "cap).",
            wrong(capping="none"),
        ),
        (
            f"your scores miss the 1/sqrt(H) scaling: after QK-norm the dot products are "
            f"still divided by sqrt(H) = sqrt({np.shape(inputs['query'])[-1]}), then capped.",
            wrong(scale=False),
        ),
        (
            "you did not normalise the queries and keys: QK-norm applies an RMS norm with a "
            "learned scale to each query and key vector before the dot product.",
            lambda: _unnormalised(inputs, cap),
        ),
    ]


def _unnormalised(inputs: dict, cap: float):
    """Soft-capped q . k / sqrt(H) of the raw query and key."""
    q, k = np.asarray(inputs["query"], np.float64), np.asarray(inputs["key"], np.float64)
    scores_NTS = np.einsum("TNH,SNH->NTS", q, k) / math.sqrt(q.shape[-1])
    return cap * np.tanh(scores_NTS / cap)


@checker("qk_norm_scores")
def check_qk_norm_scores(qk_norm_scores) -> str:
    """``qk_norm_scores(query [T, N, H], key [S, N, H], q_scale [H], k_scale [H], cap,
    epsilon) -> [N, T, S]``."""
    fn = qk_norm_scores
    name = "qk_norm_scores"
    reject_package_function(fn, name)
    caps = [case[4] for case in CASES]
    for seed, (T, S, N, H, cap, eps) in enumerate(CASES):
        inputs = _inputs(seed, T, S, N, H)
        static = {"cap": cap, "epsilon": eps}
        expected = qk_norm_scores_reference(**inputs, cap=cap, epsilon=eps)
        got = as_array(call(fn, name, inputs | static), name, "scores")
        other_cap = caps[1 - seed]
        compare(got, expected, axes="NTS", name=name, what="scores", inputs=inputs | static,
                variants=_variants(inputs, cap, eps, other_cap))
    other = _inputs(seed + 7, T, S, N, H)
    check_jit_and_vmap(
        fn, name, inputs, other, expected,
        qk_norm_scores_reference(**other, cap=cap, epsilon=eps), static=static,
    )
    return (
        "your QK-norm and soft-capping match: an RMS norm of each query and key head vector "
        "over its H features with its learned scale, epsilon inside the root, the scores "
        "q . k / sqrt(H), then cap * tanh(scores / cap); under jax.jit and jax.vmap too."
    )


EXERCISE = Exercise(
    name="qk_norm_scores",
    title="QK-norm and soft-capping",
    notebook="17_qk_norm_soft_cap",
    names=("qk_norm_scores",),
    check=check_qk_norm_scores,
    minutes=25,
    forbidden=("flax.nnx.RMSNorm", "flax.linen.RMSNorm", "jax.nn.dot_product_attention"),
    instead=(
        "compute the mean square over the last axis yourself, normalise and scale, then the "
        "scores and cap * tanh(scores / cap)"
    ),
)
