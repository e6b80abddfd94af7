"""Exercise 13's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex13_sliding_window_mask.py)."""


import jax.numpy as jnp

from attention import exercises

from ._helpers import fails


def _window(rule):
    def sliding_window_mask(T, window):
        t, s = jnp.arange(T)[:, None], jnp.arange(T)[None, :]
        return rule(t, s, window)

    return sliding_window_mask


def test_sliding_window_mask_mistakes():
    check = exercises.check_sliding_window_mask
    fails(check(_window(lambda t, s, w: (s <= t) & (t - s < w))), "one token short",
           "itself AND the `window` tokens before it", "local_window_size=(window, 0)")
    fails(check(_window(lambda t, s, w: jnp.abs(t - s) <= w)), "band is symmetric",
           "s <= t")
    fails(check(_window(lambda t, s, w: ((s <= t) & (t - s <= w)).astype(jnp.float32))),
           "dtype float32", "boolean")
    fails(check(_window(lambda t, s, w: s <= t)), "the window is ignored")
    fails(check(_window(lambda t, s, w: (s >= t) & (s - t <= w))), "transposed")
