"""Exercise 17's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex17_qk_norm_soft_cap.py)."""

import math

import jax.numpy as jnp
import numpy as np

from attention import exercises
from attention.exercises import ex17_qk_norm_soft_cap as ex17
from attention.model.layer_norm import rms_norm
from teachers import solutions

from ._helpers import fails


def _student(*, axis=-1, centre=False, scale_first=False, eps_outside=False, no_eps=False,
             norm_key=True, cap_first=False, capping="tanh", scale=True,
             fixed_cap=None):
    """A student's qk_norm_scores with one chosen mistake."""

    def qk_norm_scores(query, key, q_scale, k_scale, cap, epsilon=1e-6):
        cap = cap if fixed_cap is None else fixed_cap
        eps = 0.0 if no_eps else epsilon

        def norm(x, g):
            if scale_first:
                x = x * g
            if centre:
                x = x - jnp.mean(x, axis=axis, keepdims=True)
            ms = jnp.mean(x * x, axis=axis, keepdims=True)
            y = x / (jnp.sqrt(ms) + eps) if eps_outside else x / jnp.sqrt(ms + eps)
            return y if scale_first else y * g

        q = norm(query, q_scale)
        k = norm(key, k_scale) if norm_key else key
        s = jnp.einsum("tnh,snh->nts", q, k)
        divide = math.sqrt(query.shape[-1]) if scale else 1.0
        if cap_first:
            return cap * jnp.tanh(s / cap) / divide
        s = s / divide
        return {"tanh": lambda: cap * jnp.tanh(s / cap), "times": lambda: jnp.tanh(s) * cap,
                "only": lambda: jnp.tanh(s / cap), "clip": lambda: jnp.clip(s, -cap, cap),
                "none": lambda: s}[capping]()

    return qk_norm_scores


def test_the_checkers_reference_is_the_packages_rms_norm():
    """The NumPy reference the checker grades with equals the package's rms_norm followed by
    the scores and cap * tanh(scores / cap), written out independently here."""
    T, S, N, H, cap, eps = ex17.CASES[1]
    inputs = ex17._inputs(0, T, S, N, H)
    q = np.asarray(rms_norm(inputs["query"], inputs["q_scale"], epsilon=eps), np.float64)
    k = np.asarray(rms_norm(inputs["key"], inputs["k_scale"], epsilon=eps), np.float64)
    scores = np.einsum("tnh,snh->nts", q, k) / math.sqrt(H)
    want = cap * np.tanh(scores / cap)
    got = ex17.qk_norm_scores_reference(**inputs, cap=cap, epsilon=eps)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.abs(got).max() < cap and np.abs(scores).max() > cap / 2  # the cap bends


def test_qk_norm_scores_mistakes():
    check = exercises.check_qk_norm_scores
    assert check(solutions.qk_norm_scores).passed
    assert check(_student()).passed
    fails(check(_student(axis=-2)), "wrong axis", "heads N")
    fails(check(_student(axis=0)), "wrong axis", "positions")
    fails(check(_student(centre=True)), "layer norm", "no centring")
    fails(check(_student(scale_first=True)), "scale before normalising")
    fails(check(_student(eps_outside=True)), "epsilon outside the square root")
    fails(check(_student(no_eps=True)), "left out epsilon")
    fails(check(_student(norm_key=False)), "not the keys")
    fails(check(_student(cap_first=True)), "capped the scores before dividing by sqrt(H)")
    fails(check(_student(capping="times")), "tanh(scores) * cap")
    fails(check(_student(capping="only")), "without multiplying by cap")
    fails(check(_student(capping="clip")), "clipped the scores")
    fails(check(_student(capping="none")), "did not cap")
    fails(check(_student(scale=False)), "miss the 1/sqrt(H) scaling", "sqrt(16)")

    def unnormalised(query, key, q_scale, k_scale, cap, epsilon=1e-6):
        scores = jnp.einsum("tnh,snh->nts", query, key) / math.sqrt(query.shape[-1])
        return cap * jnp.tanh(scores / cap)

    fails(check(unnormalised), "did not normalise the queries and keys")


def test_a_cap_written_in_place_of_the_argument_is_named():
    check = exercises.check_qk_norm_scores
    fails(check(_student(fixed_cap=50.0)), "you used cap=50 whatever the cap argument",
          f"here {ex17.CASES[0][4]:g}")
    fails(check(_student(fixed_cap=ex17.CASES[0][4])), f"you used cap={ex17.CASES[0][4]:g}",
          f"here {ex17.CASES[1][4]:g}")


def test_swapped_output_axes_are_named():
    def transposed(query, key, q_scale, k_scale, cap, epsilon=1e-6):
        return solutions.qk_norm_scores(query, key, q_scale, k_scale, cap, epsilon).swapaxes(1, 2)

    fails(exercises.check_qk_norm_scores(transposed), "axes 1 and 2 look swapped")
