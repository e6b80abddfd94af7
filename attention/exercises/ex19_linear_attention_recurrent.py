"""Exercise 19, the recurrent form of linear attention: the checker, its known mistakes and its
entry.

The notebook is ``notebooks/exercises/19_linear_attention_recurrent``; the model solution is in
``teachers/solutions.py``. One step of causal linear attention (Katharopoulos et al. 2020,
section 3.4), written out here in NumPy (float64) with ``phi(x) = elu(x) + 1`` (3.2.1)::

    S_t = S_{t-1} + phi(k_t) v_t^T    [H, Hv]        z_t = z_{t-1} + phi(k_t)    [H]
    out_t = phi(q_t) S_t / (phi(q_t) . z_t)          [Hv]

Then the student's step, run token by token from zeros, is compared with the package's
parallel form :func:`attention.mechanism.linear.linear_attention` with ``is_causal=True``.
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
    Mistake,
    as_array,
    call,
    check_shape,
    checker,
    close,
    compare,
    describe_inputs,
    explain_transform_error,
    first_difference,
    invoke,
    reject_package_function,
    shape_str,
)
from attention.exercises._shared import host_normal
from attention.exercises.remote import StudentError

# (H, Hv, T): head dim and value head dim different, so that a transposed state shows.
CASES = ((6, 4, 5), (3, 7, 4))
NAME = "linear_attention_step"
RETURNS = ("out", "S", "z")


def phi(x) -> np.ndarray:
    """``elu(x) + 1`` in float64: x + 1 for x > 0, exp(x) otherwise."""
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def step_reference(S, z, q, k, v, *, feature=phi, query_feature=None, before=False,
                   normalise=True):
    """``(out [Hv], S [H, Hv], z [H])`` of one step; the keyword arguments make the known
    wrong versions (``feature``: phi of the key, ``query_feature``: phi of the query,
    ``before``: the output read from the state before this token is added)."""
    S, z, v = (np.asarray(a, np.float64) for a in (S, z, v))
    phi_q = (query_feature or feature)(q)
    phi_k = feature(k)
    S_new, z_new = S + np.outer(phi_k, v), z + phi_k
    S_read, z_read = (S, z) if before else (S_new, z_new)
    out = phi_q @ S_read
    if normalise:
        out = out / (phi_q @ z_read)
    return out, S_new, z_new


def _identity(x):
    return np.asarray(x, np.float64)


def _relu(x):
    return np.maximum(np.asarray(x, np.float64), 0.0)


def _elu(x):
    return phi(x) - 1.0


def _exp(x):
    return np.exp(np.asarray(x, np.float64))


def _inputs(seed: int, H: int, Hv: int) -> dict:
    """A state built from three earlier tokens (so S and z agree), and one new token."""
    earlier_k, earlier_v = host_normal(seed, (3, H)), host_normal(seed + 1, (3, Hv))
    S = sum(np.outer(phi(earlier_k[i]), earlier_v[i]) for i in range(3)).astype(np.float32)
    z = phi(earlier_k).sum(axis=0).astype(np.float32)
    q, k, v = host_normal(seed + 2, (H,)), host_normal(seed + 3, (H,)), host_normal(seed + 4,
                                                                                     (Hv,))
    return {"S": S, "z": z, "q": np.asarray(q), "k": np.asarray(k), "v": np.asarray(v)}


def _feature_variants(what: str, inputs: dict, index: int) -> list:
    """The wrong feature maps of the key, seen in z (index 2) or S (index 1)."""
    def wrong(feature):
        return lambda: step_reference(**inputs, feature=feature)[index]

    return [
        (
            f"your {what} adds k itself: apply the feature map to the key first, phi(k) = "
            f"elu(k) + 1 (section 3.2.1), so that every similarity phi(q) . phi(k) is "
            f"positive.",
            wrong(_identity),
        ),
        (
            f"your {what} uses elu(k) without the + 1: phi(x) = elu(x) + 1 is positive, elu "
            f"alone is not (it goes down to -1).",
            wrong(_elu),
        ),
        (
            f"your {what} uses relu(k): the paper's feature map is phi(x) = elu(x) + 1, "
            f"positive everywhere (relu is zero for half the inputs, so whole rows vanish).",
            wrong(_relu),
        ),
        (
            f"your {what} uses exp(k), the softmax's kernel taken apart: the paper's feature "
            f"map is phi(x) = elu(x) + 1.",
            wrong(_exp),
        ),
    ]


def _unpack(got, H: int, Hv: int, inputs: dict) -> tuple:
    """The student's ``(out, S, z)`` as arrays, or a Mistake saying what came back instead."""
    if not isinstance(got, tuple | list) or len(got) != 3:
        if isinstance(got, tuple | list):
            what = f"a {type(got).__name__} of {len(got)} items"
        elif hasattr(got, "shape"):
            what = f"one array of shape {shape_str(got.shape)}"
        else:
            what = f"a {type(got).__name__}"
        raise Mistake(
            f"`{NAME}` returned {what}; it must return three things, (out, S, z): the "
            f"output [Hv] and the updated state S [H, Hv] and z [H]."
        )
    arrays = [as_array(g, NAME, f"item {i}") for i, g in enumerate(got)]
    shapes = [tuple(a.shape) for a in arrays]
    wanted = [(Hv,), (H, Hv), (H,)]
    if shapes != wanted and sorted(shapes) == sorted(wanted):
        order = ", ".join(RETURNS[wanted.index(s)] for s in shapes)
        raise Mistake(
            f"`{NAME}` returns ({order}) by their shapes; return them in the order "
            f"(out, S, z)."
        )
    out, S_new, z_new = arrays
    if S_new.shape == (Hv, H):
        raise Mistake(
            f"your updated state S has shape {shape_str(S_new.shape)} = [Hv, H]: the outer "
            f"product is transposed. S sums phi(k) v^T, [H, Hv] = {shape_str((H, Hv))} "
            f"(jnp.outer(phi_k, v)), so that phi(q) S gives the output [Hv]."
        )
    check_shape(S_new, (H, Hv), "HV", NAME, "state S")
    check_shape(z_new, (H,), "H", NAME, "normaliser z")
    check_shape(out, (Hv,), "V", NAME, "output")
    return out, S_new, z_new


def _check_transforms(fn, inputs: dict, expected: tuple, other: dict, other_expected: tuple):
    """The three results under jax.jit, then under jax.vmap over two stacked steps."""
    for transform, words, args, want in (
        ("jit", "jax.jit", tuple(inputs.values()), expected),
        ("vmap", "jax.vmap", tuple(np.stack([a, b]) for a, b in
                                   zip(inputs.values(), other.values(), strict=True)),
         tuple(np.stack([a, b]) for a, b in zip(expected, other_expected, strict=True))),
    ):
        try:
            got = invoke(fn, transform, args)
        except StudentError as e:
            raise Mistake(explain_transform_error(e, words, NAME, inputs)) from None
        if not isinstance(got, tuple | list) or len(got) != 3 or not all(
            close(as_array(g, NAME), w, rtol=1e-3, atol=1e-4)
            for g, w in zip(got, want, strict=True)
        ):
            raise Mistake(
                f"`{NAME}` gives different results under {words} than without it on inputs "
                f"{describe_inputs(inputs)}: does it depend on Python-side state or on a "
                f"hard-coded axis counted from the left?"
            )


def _parallel_form(q_TH, k_TH, v_TE) -> np.ndarray:
    """The package's causal linear attention in parallel, one head: ``[T, Hv]``."""
    return np.asarray(_parallel_one_head(q_TH, k_TH, v_TE))


@jax.jit  # one compilation per shape instead of one per operation
def _parallel_one_head(q_TH, k_TH, v_TE):
    from attention.mechanism.linear import linear_attention

    def heads(x):
        return jnp.asarray(x)[None, :, None, :]

    return linear_attention(heads(q_TH), heads(k_TH), heads(v_TE), is_causal=True)[0, :, 0, :]


@checker("linear_attention_recurrent")
def check_linear_attention_step(linear_attention_step) -> str:
    """``linear_attention_step(S [H, Hv], z [H], q [H], k [H], v [Hv]) -> (out, S, z)``."""
    fn = linear_attention_step
    reject_package_function(fn, NAME)
    for seed, (H, Hv, T) in enumerate(CASES):
        inputs = _inputs(10 * seed, H, Hv)
        expected = step_reference(**inputs)
        out, S_new, z_new = _unpack(call(fn, NAME, inputs), H, Hv, inputs)
        compare(z_new, expected[2], axes="H", name=NAME, what="normaliser z", inputs=inputs,
                variants=[
                    (
                        "your normaliser z is not updated: add this token's phi(k) to it, "
                        "z_t = z_{t-1} + phi(k_t), as you add phi(k_t) v_t^T to S.",
                        lambda: inputs["z"],
                    ),
                    *_feature_variants("normaliser z", inputs, 2),
                ])
        compare(S_new, expected[1], axes="HV", name=NAME, what="state S", inputs=inputs,
                variants=[
                    (
                        "your state S is not updated: add this token's outer product, "
                        "S_t = S_{t-1} + phi(k_t) v_t^T.",
                        lambda: inputs["S"],
                    ),
                    *_feature_variants("state S", inputs, 1),
                ])
        compare(out, expected[0], axes="V", name=NAME, what="output", inputs=inputs,
                variants=[
                    (
                        "your output is read from the state before this token is added: "
                        "update S and z first, then out_t = phi(q_t) S_t / (phi(q_t) . z_t). "
                        "Causal attention lets query t attend its own key (s <= t), and the "
                        "parallel form does.",
                        lambda: step_reference(**inputs, before=True)[0],
                    ),
                    (
                        "your output misses the normaliser: divide phi(q) S by phi(q) . z "
                        "(eq. 5's denominator, which makes the weights of the values sum to "
                        "one, as the softmax does).",
                        lambda: step_reference(**inputs, normalise=False)[0],
                    ),
                    (
                        "your output uses q itself: apply the feature map to the query too, "
                        "phi(q) = elu(q) + 1, in the numerator and the denominator.",
                        lambda: step_reference(**inputs, query_feature=_identity)[0],
                    ),
                    (
                        "your output uses relu(q): the feature map of the query is the key's, "
                        "phi(q) = elu(q) + 1.",
                        lambda: step_reference(**inputs, query_feature=_relu)[0],
                    ),
                    (
                        "your output uses elu(q) without the + 1: phi(x) = elu(x) + 1.",
                        lambda: step_reference(**inputs, query_feature=_elu)[0],
                    ),
                    (
                        "you applied a softmax to phi(q) S: linear attention has no softmax; "
                        "it divides phi(q) S by phi(q) . z.",
                        lambda: _softmax(phi(inputs["q"]) @ expected[1]),
                    ),
                ])
        # The whole causal sequence, token by token from zeros, against the parallel form.
        q_TH = np.asarray(host_normal(10 * seed + 5, (T, H)))
        k_TH = np.asarray(host_normal(10 * seed + 6, (T, H)))
        v_TE = np.asarray(host_normal(10 * seed + 7, (T, Hv)))
        want_TE = _parallel_form(q_TH, k_TH, v_TE)
        state = (np.zeros((H, Hv), np.float32), np.zeros(H, np.float32))
        outputs = []
        for t in range(T):
            step = {"S": state[0], "z": state[1], "q": q_TH[t], "k": k_TH[t], "v": v_TE[t]}
            out_t, S_t, z_t = _unpack(call(fn, NAME, step), H, Hv, step)
            outputs.append(out_t)
            state = (S_t, z_t)
        got_TE = np.stack(outputs)
        if not close(got_TE, want_TE):
            raise Mistake(
                f"one step is right, but run token by token from S = 0, z = 0 over T={T} "
                f"tokens, " + first_difference(got_TE, want_TE, "TV", "outputs")
                + " compared with the parallel form linear_attention(..., is_causal=True): "
                "does your function use anything but its arguments (a global state)?"
            )
    other = _inputs(10 * seed + 3, H, Hv)
    _check_transforms(fn, inputs, expected, other, step_reference(**other))
    return (
        "your step matches section 3.4: S and z take this token's phi(k) v^T and phi(k) "
        "first, then out = phi(q) S / (phi(q) . z); run over a sequence from zeros it equals "
        "the parallel causal linear attention (attention.mechanism.linear); under jax.jit and "
        "jax.vmap too."
    )


def _softmax(x) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / e.sum()


EXERCISE = Exercise(
    name="linear_attention_recurrent",
    title="The recurrent form of linear attention",
    notebook="19_linear_attention_recurrent",
    names=("linear_attention_step",),
    check=check_linear_attention_step,
    minutes=25,
)
