"""Exercise 12, rotary positions: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/12_rotary_positions``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from attention.exercises._checking import (
    Exercise,
    Mistake,
    NotImplementedYet,
    as_array,
    call,
    check_finite,
    check_jit_and_vmap,
    check_shape,
    checker,
    close,
    compare,
    describe_inputs,
    first_difference,
    match_variant,
    reject_package_function,
)
from attention.exercises._shared import (
    host_normal,
    nn_attention,
)


def _rope_numpy(x, positions, base: float = 10000.0, *, layout: str = "interleaved",
                exponent: str = "2i/H", sign: float = 1.0) -> np.ndarray:
    """RoPE as complex multiplication (Su et al. 2021, section 3.2), with deliberate mistakes.

    The pair i of a head, ``z_i = x_2i + j x_2i+1``, is multiplied by ``exp(j pos theta_i)``
    with ``theta_i = base^(-2i/H)``. ``layout="half"`` pairs ``(x_i, x_i+H/2)`` instead,
    ``exponent`` picks the frequency formula, ``sign=-1`` rotates the other way.
    """
    x = np.asarray(x, np.float64)
    H = x.shape[-1]
    i = np.arange(H // 2, dtype=np.float64)
    theta = {
        "2i/H": base ** (-2 * i / H),
        "i/H": base ** (-i / H),
        "+2i/H": base ** (2 * i / H),
    }[exponent]
    angle_TP = np.asarray(positions, np.float64)[:, None] * theta[None, :]
    rotation_T1P = np.exp(1j * sign * angle_TP)[:, None, :]  # broadcasts over the heads N
    if layout == "interleaved":
        z = (x[..., 0::2] + 1j * x[..., 1::2]) * rotation_T1P
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = z.real, z.imag
        return out
    z = (x[..., : H // 2] + 1j * x[..., H // 2:]) * rotation_T1P
    return np.concatenate([z.real, z.imag], axis=-1)


def _pair_norms(x, *, half: bool = False) -> np.ndarray:
    """|(x_2i, x_2i+1)| for each pair (or |(x_i, x_i+H/2)|): what a rotation keeps."""
    x = np.asarray(x, np.float64)
    if half:
        H = x.shape[-1]
        return np.hypot(x[..., : H // 2], x[..., H // 2:])
    return np.hypot(x[..., 0::2], x[..., 1::2])


def _rope_variants(x, positions):
    T = x.shape[-3]
    return [
        (
            "you rotated the pairs (x_i, x_{i+H/2}), the 'rotate-half' layout of GPT-NeoX and "
            "of Hugging Face's Llama; this exercise and the package follow the RoFormer paper "
            "(Su et al. 2021): pair i is the two neighbouring features (x_2i, x_2i+1), i.e. "
            "x[..., 0::2] and x[..., 1::2].",
            lambda: _rope_numpy(x, positions, layout="half"),
        ),
        (
            "the frequencies are off: you used theta_i = base^(-i/H) with i the pair index; "
            "the paper's theta_i = base^(-2i/H) (i = 0 .. H/2 - 1: exponents 0, 2/H, 4/H, ...), "
            "the wavelengths of the sinusoidal positions.",
            lambda: _rope_numpy(x, positions, exponent="i/H"),
        ),
        (
            "the frequencies are off: theta_i = base^(+2i/H) grows with i; it must shrink, "
            "theta_i = base^(-2i/H) (from 1 radian per position down to about 1/base).",
            lambda: _rope_numpy(x, positions, exponent="+2i/H"),
        ),
        (
            "you rotate by -angle: the rotation by angle a = pos * theta_i is "
            "(x_2i cos a - x_2i+1 sin a, x_2i sin a + x_2i+1 cos a); yours has the signs of the "
            "sin terms swapped.",
            lambda: _rope_numpy(x, positions, sign=-1.0),
        ),
        (
            "you rotated pairs (x_i, x_{i+H/2}) and by -angle: pair i is (x_2i, x_2i+1) and the "
            "rotation is (x_2i cos a - x_2i+1 sin a, x_2i sin a + x_2i+1 cos a).",
            lambda: _rope_numpy(x, positions, layout="half", sign=-1.0),
        ),
        (
            "you used the positions 0, 1, ..., T-1 (jnp.arange(T)) instead of the `positions` "
            "argument: with a cache, new tokens sit at positions that do not start at 0.",
            lambda: _rope_numpy(x, np.arange(T)),
        ),
    ]


def _check_apply_rope(apply_rope) -> tuple[dict, np.ndarray]:
    name = "apply_rope"
    # Unbatched [T, N, H], then batched [B, T, N, H]; positions in no particular order.
    cases = (
        ((5, 3, 8), np.array([4, 0, 9, 2, 7], np.int32)),
        ((2, 7, 3, 10), np.array([30, 1, 12, 5, 0, 21, 3], np.int32)),
    )
    for seed, (shape, positions) in enumerate(cases):
        x = host_normal(seed, shape)
        pos = jnp.asarray(positions)
        inputs = {"x": x, "positions": pos}
        expected = _rope_numpy(x, positions)
        got = as_array(call(apply_rope, name, inputs), name)
        axes = "TNH" if len(shape) == 3 else "BTNH"
        check_shape(got, expected.shape, axes, name, "result")
        check_finite(got, expected, name, f"on inputs {describe_inputs(inputs)}", "")
        if close(got, expected):
            continue
        match_variant(got, _rope_variants(x, positions))
        keeps_pairs = np.allclose(_pair_norms(got), _pair_norms(x), rtol=1e-3, atol=1e-4)
        keeps_halves = np.allclose(_pair_norms(got, half=True), _pair_norms(x, half=True),
                                   rtol=1e-3, atol=1e-4)
        if not keeps_pairs and not keeps_halves:
            raise Mistake(
                "your result changes the length of the pairs (x_2i, x_2i+1): a rotation keeps "
                "it. Pair i becomes (x_2i cos a - x_2i+1 sin a, x_2i sin a + x_2i+1 cos a) with "
                "a = position * base^(-2i/H): the same angle a for both of its features."
            )
        raise Mistake(
            first_difference(got, expected, axes, "result")
            + f" on inputs {describe_inputs(inputs)}."
        )
    return inputs, expected


def _check_rope_transforms(apply_rope, inputs, expected) -> None:
    x, positions = inputs["x"], np.asarray(inputs["positions"])
    x2, pos2 = host_normal(9, x.shape), positions[::-1].copy()
    check_jit_and_vmap(
        apply_rope, "apply_rope", inputs, {"x": x2, "positions": jnp.asarray(pos2)}, expected,
        _rope_numpy(x2, pos2),
    )


def _check_rope_attention(rope_attention) -> None:
    name = "rope_attention"
    B, T, N, H = 2, 5, 3, 8
    positions = np.array([2, 3, 4, 5, 6], np.int32)
    q, k, v = (host_normal(seed, (B, T, N, H)) for seed in (3, 4, 5))
    inputs = {"query": q, "key": k, "value": v, "positions": jnp.asarray(positions)}

    def attend(q_, k_, v_):
        return np.asarray(nn_attention(jnp.asarray(q_, jnp.float32),
                                        jnp.asarray(k_, jnp.float32),
                                        jnp.asarray(v_, jnp.float32)))

    def rope(x):
        return _rope_numpy(x, positions)

    expected = attend(rope(q), rope(k), v)
    got = as_array(call(rope_attention, name, inputs), name)
    compare(got, expected, axes="BTNH", name=name, what="output", inputs=inputs, variants=[
        (
            "you rotated the values too: RoPE rotates only the queries and the keys, so that "
            "their dot product depends on the distance between positions; the values are "
            "averaged as they are (a rotated value would carry its absolute position into "
            "the output).",
            lambda: attend(rope(q), rope(k), rope(v)),
        ),
        (
            "you rotated only the queries: rotate the keys with their positions too (the "
            "score q_m . k_n depends on m - n only when both are rotated).",
            lambda: attend(rope(q), k, v),
        ),
        (
            "you rotated only the keys: rotate the queries with their positions too.",
            lambda: attend(q, rope(k), v),
        ),
        (
            "you rotated the output of attention; RoPE is applied to the queries and keys "
            "before the scores, not to the result.",
            lambda: rope(attend(q, k, v)),
        ),
        (
            "your output equals attention without RoPE: apply apply_rope to the query and the "
            "key (with `positions`) before attending.",
            lambda: attend(q, k, v),
        ),
        (
            f"you forgot the 1/sqrt(d_k) scaling: divide the scores of the rotated queries and "
            f"keys by sqrt(H) = sqrt({H}).",
            lambda: np.asarray(nn_attention(jnp.asarray(rope(q), jnp.float32),
                                             jnp.asarray(rope(k), jnp.float32), v, scale=1.0)),
        ),
    ])


@checker("rotary_positions")
def check_rotary_positions(apply_rope, rope_attention=None) -> str:
    """``apply_rope(x [*B, T, N, H], positions [T])`` and ``rope_attention(q, k, v, positions)``.

    The reference is RoPE written with complex numbers in NumPy (Su et al. 2021, eq. 34):
    pair ``(x_2i, x_2i+1)`` as ``x_2i + j x_2i+1``, times ``exp(j pos base^(-2i/H))``.
    """
    reject_package_function(apply_rope, "apply_rope")
    last_inputs, last_expected = _check_apply_rope(apply_rope)
    if rope_attention is None:
        raise NotImplementedYet(
            "not implemented yet: apply_rope is right; now write rope_attention."
        )
    reject_package_function(rope_attention, "rope_attention")
    _check_rope_attention(rope_attention)
    _check_rope_transforms(apply_rope, last_inputs, last_expected)
    return (
        "apply_rope matches the complex-number formula (pairs (x_2i, x_2i+1) rotated by "
        "pos * 10000^(-2i/H)) for [T, N, H] and [B, T, N, H], under jax.jit and jax.vmap, and "
        "rope_attention rotates the queries and keys, never the values."
    )


EXERCISE = Exercise(
    name="rotary_positions",
    title="Rotary position embeddings (RoPE)",
    notebook="12_rotary_positions",
    names=("apply_rope", "rope_attention"),
    check=check_rotary_positions,
    minutes=35,
)
