"""Tests for attention/mechanism/masks.py against NumPy constructions (np.tril, comparisons)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention import causal_mask, combine_masks, dot_product_attention, padding_mask
from attention.mechanism.masks import local_window_mask, seq_lengths_mask

B, T, S = 2, 3, 5


@pytest.mark.parametrize("t, s, offset", [(3, 3, 0), (3, 5, 0), (5, 3, 0), (3, 7, 4), (2, 5, -1)])
def test_causal_mask_is_numpy_tril(t, s, offset):
    mask = causal_mask(t, s, offset=offset)
    assert mask.shape == (t, s) and mask.dtype == jnp.bool_
    np.testing.assert_array_equal(mask, np.tril(np.ones((t, s), bool), k=offset))


@pytest.mark.outside_annotations
def test_causal_mask_default_s_and_numpy_integers():
    np.testing.assert_array_equal(causal_mask(np.int64(T)), np.tril(np.ones((T, T), bool)))
    np.testing.assert_array_equal(causal_mask(T, np.int32(S)), causal_mask(T, S))


def test_causal_mask_with_traced_offset_under_jit():
    mask = jax.jit(lambda offset: causal_mask(T, S + 2, offset=offset))(jnp.int32(4))
    np.testing.assert_array_equal(mask, np.tril(np.ones((T, S + 2), bool), k=4))


def test_causal_mask_equals_is_causal_of_jax_nn():
    # [T, S] with T != S: top-left aligned, the convention of jax.nn.dot_product_attention.
    rng = np.random.default_rng(0)
    q, k = (jnp.asarray(rng.standard_normal((1, n, 1, 4)), jnp.float32) for n in (7, S))
    ours = dot_product_attention(q, k, k, mask=causal_mask(7, S))
    np.testing.assert_allclose(
        ours, jax.nn.dot_product_attention(q, k, k, is_causal=True), atol=1e-6
    )


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    "args, error, message",
    [
        # Right type, wrong value: ValueError.
        ((0,), ValueError, r"T must be a positive int, got 0\."),
        ((3, -1), ValueError, r"S must be a positive int, got -1\."),
        # Wrong type: TypeError, naming the type (True is an int in Python, never a length).
        ((2.5,), TypeError, r"T must be a positive int, got 2.5 \(float\)"),
        ((True,), TypeError, r"T must be a positive int, got True \(bool\)"),
        ((3, "5"), TypeError, r"S must be a positive int, got '5' \(str\)"),
        ((3, jnp.int32(5)), TypeError, r"S must be a positive int, got Array\(5"),
    ],
)
def test_causal_mask_bad_lengths(args, error, message):
    with pytest.raises(error, match=message):
        causal_mask(*args)


@pytest.mark.outside_annotations
def test_causal_mask_takes_numpy_ints():
    # A length computed from a shape or a sum is often np.int64: it is a length too.
    np.testing.assert_array_equal(causal_mask(np.int64(3), np.int32(4)), causal_mask(3, 4))


@pytest.mark.outside_annotations
def test_causal_mask_bad_offset():
    with pytest.raises(
        TypeError, match=r"offset must be an int or an integer scalar array.*got 1.5"
    ):
        causal_mask(T, S, offset=1.5)
    with pytest.raises(TypeError, match=r"offset must be an int.*with shape \[2\]"):
        causal_mask(T, S, offset=jnp.zeros(2, jnp.int32))
    with pytest.raises(TypeError, match=r"offset must be an int.*got True \(bool\)"):
        causal_mask(T, S, offset=True)
    # A traced scalar offset (a decoding step under jit) is accepted.
    traced = jax.jit(lambda o: causal_mask(T, S, offset=o))(jnp.int32(1))
    np.testing.assert_array_equal(traced, causal_mask(T, S, offset=1))


def test_padding_mask_from_lengths_matches_numpy():
    lengths = np.array([3, 0, 5, 1])
    mask = padding_mask(jnp.asarray(lengths), max_len=S)
    assert mask.shape == (4, 1, 1, S) and mask.dtype == jnp.bool_
    expected = np.array([[s < n for s in range(S)] for n in lengths])
    np.testing.assert_array_equal(mask[:, 0, 0], expected)
    traced = jax.jit(lambda n: padding_mask(n, max_len=S))(jnp.asarray(lengths))
    np.testing.assert_array_equal(traced, mask)


def test_padding_mask_from_tokens_matches_numpy():
    tokens = np.array([[5, 6, 0, 0, 0], [7, 0, 8, 9, 0]])
    mask = padding_mask(tokens=jnp.asarray(tokens), pad_id=0)
    assert mask.shape == (B, 1, 1, S)
    np.testing.assert_array_equal(mask[:, 0, 0], tokens != 0)


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(), ValueError, r"needs either lengths= .* or tokens="),
        (
            dict(lengths=jnp.array([1]), max_len=3, tokens=jnp.ones((1, 3), int), pad_id=0),
            ValueError,
            r"not both",
        ),
        (dict(tokens=jnp.ones((B, S), int)), ValueError, r"needs pad_id="),
        (
            dict(tokens=jnp.ones((B, S)), pad_id=0),
            TypeError,
            r"tokens must have an integer dtype.*got float32 with shape \[2, 5\]",
        ),
        (dict(tokens=[[5, 0]], pad_id=0), TypeError, r"tokens must be an integer array, got list"),
        (
            dict(tokens=jnp.ones((B, S), int), pad_id=0.0),
            TypeError,
            r"pad_id must be an int \(the id of the padding token\), got 0.0 \(float\)",
        ),
        (
            dict(tokens=jnp.ones(S, int), pad_id=0),
            ValueError,
            r"tokens must have 2 dimensions \[B, S\], got shape \[5\]",
        ),
        (dict(lengths=jnp.array([1, 2])), ValueError, r"needs max_len="),
        (
            dict(lengths=jnp.array([1, 2]), max_len=0),
            ValueError,
            r"max_len must be a positive int, got 0",
        ),
        (
            dict(lengths=jnp.array([1, 2]), max_len=5.0),
            TypeError,
            r"max_len must be a positive int, got 5.0 \(float\)",
        ),
        (
            dict(lengths=jnp.array([1.0, 2.0]), max_len=S),
            TypeError,
            r"lengths must have an integer dtype.*float32",
        ),
        (
            dict(lengths=jnp.ones((B, S), int), max_len=S),
            ValueError,
            r"lengths must have 1 dimension \[B\], got shape \[2, 5\]",
        ),
        (
            dict(lengths=jnp.array([2, 6]), max_len=S),
            ValueError,
            r"lengths must lie in 0..max_len=5, got values 2..6",
        ),
        (
            dict(lengths=jnp.array([-1, 3]), max_len=S),
            ValueError,
            r"lengths must lie in 0..max_len=5, got values -1..3",
        ),
    ],
)
def test_padding_mask_misuse(kwargs, error, message):
    with pytest.raises(error, match=message):
        padding_mask(**kwargs)


def test_combine_masks_is_broadcast_logical_and():
    assert combine_masks() is None and combine_masks(None, None) is None
    pad = padding_mask(jnp.array([4, 2]), max_len=S)  # [B, 1, 1, S]
    causal = causal_mask(T, S)  # [T, S]
    combined = combine_masks(pad, None, causal)
    assert combined.shape == (B, 1, T, S)
    np.testing.assert_array_equal(combined, np.asarray(pad) & np.asarray(causal))
    only = causal_mask(T)
    assert combine_masks(None, only) is only


@pytest.mark.outside_annotations
def test_combine_masks_bad_input():
    with pytest.raises(
        TypeError, match=r"mask 1 given to combine_masks must be boolean.*float32.*bias="
    ):
        combine_masks(causal_mask(T, S), jnp.zeros((T, S)))
    with pytest.raises(
        ValueError, match=r"shapes \[3, 5\], \[2, 1, 1, 4\], which do not broadcast"
    ):
        combine_masks(causal_mask(T, S), padding_mask(jnp.array([1, 2]), max_len=4))


# ------------------------------------------------------------ sliding window, lengths

WINDOWS = [0, 1, (2, 0), (0, 3), (1, 2), (9, 9)]


@pytest.mark.parametrize("t, s, offset", [(3, 5, 0), (5, 3, 0), (2, 7, 4), (4, 4, -1)])
@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_local_window_mask_is_a_band_of_numpy_triangles(t, s, offset, window):
    left, right = (window, window) if isinstance(window, int) else window
    # The band between two diagonals: np.tril keeps s <= t + offset + right, np.triu
    # keeps s >= t + offset - left.
    expected = np.tril(np.ones((t, s), bool), k=offset + right) & np.triu(
        np.ones((t, s), bool), k=offset - left
    )
    np.testing.assert_array_equal(local_window_mask(t, s, window, offset=offset), expected)


def test_local_window_mask_with_traced_offset_under_jit():
    fn = jax.jit(lambda offset: local_window_mask(2, 7, (1, 0), offset=offset))
    np.testing.assert_array_equal(fn(jnp.int32(4)), local_window_mask(2, 7, (1, 0), offset=4))


@pytest.mark.parametrize(
    "window, is_causal", [(1, False), ((2, 0), True), ((0, 1), False), ((1, 3), True)], ids=str
)
def test_local_window_mask_equals_local_window_size_of_jax_nn(window, is_causal):
    q, k, v = (jnp.asarray(np.random.default_rng(i).standard_normal((B, n, 2, 4)), jnp.float32)
               for i, n in ((0, T), (1, S), (2, S)))
    ours = dot_product_attention(
        q, k, v, mask=local_window_mask(T, S, window), is_causal=is_causal
    )
    theirs = jax.nn.dot_product_attention(
        q, k, v, local_window_size=window, is_causal=is_causal
    )
    np.testing.assert_allclose(ours, theirs, atol=2e-6)


def test_seq_lengths_mask_matches_numpy():
    q_lengths, kv_lengths = jnp.array([3, 1]), jnp.array([2, 5])
    mask = seq_lengths_mask(T, S, q_lengths, kv_lengths)
    assert mask.shape == (B, 1, T, S)
    real_query = np.arange(T)[None, :] < np.asarray(q_lengths)[:, None]   # [B, T]
    real_key = np.arange(S)[None, :] < np.asarray(kv_lengths)[:, None]    # [B, S]
    np.testing.assert_array_equal(mask[:, 0], real_query[:, :, None] & real_key[:, None, :])
    only_keys = seq_lengths_mask(T, S, key_value_seq_lengths=kv_lengths)
    np.testing.assert_array_equal(only_keys[:, 0], np.broadcast_to(real_key[:, None], (B, T, S)))
    assert seq_lengths_mask(T, S) is None
    unbatched = seq_lengths_mask(T, S, jnp.int32(2), jnp.int32(4))
    assert unbatched.shape == (1, 1, T, S)
    np.testing.assert_array_equal(
        unbatched[0, 0], (np.arange(T) < 2)[:, None] & (np.arange(S) < 4)[None, :]
    )


def test_seq_lengths_mask_under_jit_with_traced_lengths():
    fn = jax.jit(lambda q, kv: seq_lengths_mask(T, S, q, kv))
    q_lengths, kv_lengths = jnp.array([0, 3]), jnp.array([5, 1])
    np.testing.assert_array_equal(fn(q_lengths, kv_lengths),
                                  seq_lengths_mask(T, S, q_lengths, kv_lengths))


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: local_window_mask(T, S, -1), ValueError, r"local_window_size.*negative side"),
        (lambda: local_window_mask(T, S, (1, -1)), ValueError, r"got \(1, -1\), which has a neg"),
        (lambda: local_window_mask(T, S, 1.0), TypeError, r"local_window_size.*1.0 \(float\)"),
        (lambda: local_window_mask(T, S, False), TypeError, r"local_window_size.*False \(bool\)"),
        (lambda: local_window_mask(T, S, [1]), TypeError, r"local_window_size.*\[1\] \(list\)"),
        (lambda: local_window_mask(T, S, None), TypeError, r"local_window_mask needs .*got None"),
        (lambda: local_window_mask(0, S, 1), ValueError, r"T must be a positive int, got 0"),
        (lambda: local_window_mask(T, S, 1, offset=1.0), TypeError, r"offset must be an int"),
        (lambda: seq_lengths_mask(T, S, jnp.array([1, 2]), jnp.array([1, 2, 3])), ValueError,
         r"key_value_seq_lengths must have shape \[2\] \(one length per sequence\), got \[3\]"),
        (lambda: seq_lengths_mask(T, S, jnp.array([[1, 2]])), ValueError,
         r"query_seq_lengths must have shape \[\] \(one length per sequence of the unbatched "
         r"input\), got \[1, 2\]"),
        (lambda: seq_lengths_mask(T, S, jnp.array([1.0])), TypeError,
         r"query_seq_lengths must have an integer dtype.*float32"),
        (lambda: seq_lengths_mask(T, S, jnp.array([4])), ValueError,
         r"query_seq_lengths must lie in 0..3 \(the sequence length\), got values 4..4"),
        (lambda: seq_lengths_mask(T, S, None, jnp.array([-2, 5])), ValueError,
         r"key_value_seq_lengths must lie in 0..5.*got values -2..5"),
    ],
)
def test_window_and_lengths_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
