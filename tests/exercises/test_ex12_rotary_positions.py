"""Exercise 12's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex12_rotary_positions.py)."""


import jax
import jax.numpy as jnp

from attention import exercises
from teachers import solutions

from ._helpers import fails


def _rope(*, layout="interleaved", exponent=2.0, sign=1.0, use_positions=True):
    """A student's apply_rope with one chosen mistake."""

    def apply_rope(x, positions, base=10000.0):
        T, H = x.shape[-3], x.shape[-1]
        pos = positions if use_positions else jnp.arange(T)
        theta = base ** (-exponent * jnp.arange(H // 2) / H)
        angle = sign * pos[:, None] * theta  # [T, H/2]
        cos, sin = jnp.cos(angle)[:, None, :], jnp.sin(angle)[:, None, :]
        if layout == "interleaved":
            a, b = x[..., 0::2], x[..., 1::2]
            return jnp.stack([a * cos - b * sin, a * sin + b * cos], -1).reshape(x.shape)
        a, b = x[..., : H // 2], x[..., H // 2:]
        return jnp.concatenate([a * cos - b * sin, a * sin + b * cos], -1)

    return apply_rope


def test_rotary_positions_mistakes():
    check = exercises.check_rotary_positions
    right = solutions.rope_attention
    fails(check(_rope(layout="half"), right), "(x_i, x_{i+H/2})", "(x_2i, x_2i+1)",
           "RoFormer")
    fails(check(_rope(exponent=1.0), right), "base^(-i/H)", "base^(-2i/H)")
    fails(check(_rope(sign=-1.0), right), "rotate by -angle")
    fails(check(_rope(use_positions=False), right), "instead of the `positions` argument")
    stretched = lambda x, positions: 2.0 * solutions.apply_rope(x, positions)
    fails(check(stretched, right), "changes the length of the pairs")

    def rotates_values(query, key, value, positions):
        rope = solutions.apply_rope
        return jax.nn.dot_product_attention(
            rope(query, positions), rope(key, positions), rope(value, positions))

    def rotates_queries_only(query, key, value, positions):
        return jax.nn.dot_product_attention(solutions.apply_rope(query, positions), key, value)

    fails(check(solutions.apply_rope, rotates_values), "you rotated the values too")
    fails(check(solutions.apply_rope, rotates_queries_only), "rotated only the queries")
    fails(exercises.EXERCISES["rotary_positions"].check_namespace(
        {"apply_rope": solutions.apply_rope}), "rope_attention not defined",
        status="not implemented")
