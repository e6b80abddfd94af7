"""Exercise 07's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex07_sinusoidal_positions.py)."""


import jax.numpy as jnp

from attention import exercises

from ._helpers import fails


def test_sinusoidal_positions_mistakes():
    check = exercises.check_sinusoidal_positions

    def table(max_len, d, *, swap=False, concat=False, start=0, exponent="2i"):
        pos = jnp.arange(start, start + max_len, dtype=jnp.float32)[:, None]
        i = jnp.arange(d // 2, dtype=jnp.float32)[None, :]
        angle = pos / 10000.0 ** ((2 * i if exponent == "2i" else i) / d)
        sin, cos = jnp.sin(angle), jnp.cos(angle)
        if swap:
            sin, cos = cos, sin
        if concat:
            return jnp.concatenate([sin, cos], axis=-1)
        return jnp.stack([sin, cos], axis=-1).reshape(max_len, d)

    assert check(table).passed
    fails(check(lambda L, d: table(L, d, swap=True)), "sine and cosine are swapped")
    fails(check(lambda L, d: table(L, d, concat=True)), "sines first")
    fails(check(lambda L, d: table(L, d, start=1)), "start at 1")
    fails(check(lambda L, d: table(L, d, exponent="i")), "frequencies are off")
    fails(check(lambda L, d: table(L, d).T), "has shape [12, 7]; expected [7, 12]")
