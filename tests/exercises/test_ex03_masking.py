"""Exercise 03's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex03_masking.py)."""


import jax.numpy as jnp

from attention import exercises
from teachers import solutions

from ._helpers import fails


def _masking(causal=None, padding=None, softmax=None):
    return exercises.check_masking(causal or solutions.causal_mask,
                                   padding or solutions.padding_mask,
                                   softmax or solutions.masked_softmax)


def test_causal_mask_mistakes():
    flipped = lambda T, S: ~solutions.causal_mask(T, S)
    fails(_masking(causal=flipped), "wrong polarity", "True must mean \"may attend\"")
    upper = lambda T, S: jnp.arange(S)[None, :] >= jnp.arange(T)[:, None]
    fails(_masking(causal=upper), "see the future")
    strict = lambda T, S: jnp.arange(S)[None, :] < jnp.arange(T)[:, None]
    fails(_masking(causal=strict), "hides the diagonal")
    additive = lambda T, S: jnp.where(solutions.causal_mask(T, S), 0.0, -jnp.inf)
    fails(_masking(causal=additive), "additive mask", "boolean")
    transposed = lambda T, S: solutions.causal_mask(T, S).T
    fails(_masking(causal=transposed), "has shape [5, 3]; expected [3, 5]")


def test_bottom_right_alignment_is_accepted_with_a_note():
    """FlashAttention >= 2.1's alignment (queries are the last T of S keys) passes with a note;
    mixing the two alignments across shapes does not."""
    import numpy as np

    def bottom_right(T, S):
        return jnp.arange(S)[None, :] <= jnp.arange(T)[:, None] + (S - T)

    result = _masking(causal=bottom_right)
    assert result.passed, result
    assert "bottom-right" in result.message and "FlashAttention >= 2.1" in result.message
    assert "bottom-right" not in _masking().message
    # Written out with NumPy: the two alignments differ exactly when T != S.
    t, s = np.arange(3)[:, None], np.arange(5)[None, :]
    assert not np.array_equal(np.asarray(bottom_right(3, 5)), s <= t)

    def mixed(T, S):
        return bottom_right(T, S) if T < S else solutions.causal_mask(T, S)

    fails(_masking(causal=mixed), "for some shapes", "choose one convention")


def test_padding_mask_mistakes():
    flat = lambda lengths, S: jnp.arange(S)[None, :] < lengths[:, None]
    fails(_masking(padding=flat), "[B, 1, 1, S]", "mask[:, None, None, :]")
    flipped = lambda lengths, S: ~solutions.padding_mask(lengths, S)
    fails(_masking(padding=flipped), "padding mask has the wrong polarity")
    off = lambda lengths, S: (jnp.arange(S)[None, :] <= lengths[:, None])[:, None, None, :]
    fails(_masking(padding=off), "off by one")


def test_masked_softmax_mistakes():
    ignores_mask = lambda x, m: solutions.stable_softmax(x)
    fails(_masking(softmax=ignores_mask), "masked positions receive weight", "is False")
    flipped = lambda x, m: solutions.masked_softmax(x, ~m)
    fails(_masking(softmax=flipped), "wrong polarity")

    def minus_inf(x, m):
        x = jnp.where(m, x, -jnp.inf)
        e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))
        return e / jnp.sum(e, axis=-1, keepdims=True)

    fails(_masking(softmax=minus_inf), "fully masked row", "nan", "all-zero weights")

    def large_negative(x, m):
        return solutions.stable_softmax(jnp.where(m, x, -1e9))

    fails(_masking(softmax=large_negative), "fully masked row", "convention is all zeros")

    def boolean_indexing(x, m):
        if not bool(jnp.any(m)):
            return jnp.zeros_like(x)
        return solutions.masked_softmax(x, m)

    fails(_masking(softmax=boolean_indexing), "breaks under jax.jit",
           "Python control flow")
