"""Tests for attention/_checks.py, the one home of the argument checks.

The rule: a wrong *type* (``True`` or ``2.0`` for a count, a list for an array) raises
``TypeError``; a right-typed value out of range or of the wrong shape raises ``ValueError``;
each message names the argument, what it got and what was expected. The last tests check that
the public entry points really go through these helpers: their errors are the helpers' errors,
word for word.
"""

import functools
import math
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention._checks import (
    accumulation_dtype,
    check_array,
    check_axis,
    check_broadcastable,
    check_cache_index,
    check_floating,
    check_int,
    check_int_scalar,
    check_integer,
    check_mask,
    check_mask_dtype,
    check_multi_head_args,
    check_non_negative_int,
    check_positive_int,
    check_processed_heads,
    check_qkv,
    check_rank,
    check_real,
    check_scale,
    check_split_heads,
    check_tokens,
    check_weighted_sum,
    is_int,
    is_traced,
    shape_str,
)
from attention.data.batching import Batcher
from attention.data.prefetching import prefetch
from attention.data.subword import train_subword
from attention.data.vocab import Vocabulary
from attention.kernels.blockwise import blockwise_attention
from attention.kernels.flash import flash_attention
from attention.kernels.pallas_flash import pallas_flash_attention
from attention.mechanism import kv_cache
from attention.mechanism.masks import causal_mask, padding_mask
from attention.mechanism.multi_head import MultiHeadAttention, split_heads
from attention.mechanism.softmax import masked_softmax
from attention.training.checkpoint import Checkpointer
from attention.training.loss import label_smoothed_cross_entropy, projected_cross_entropy
from attention.training.schedule import transformer_schedule
from attention.training.train import TrainConfig
from attention.vectors import cosine_top_k, normalize

# Every test here calls the checks with wrong types or values on purpose.
pytestmark = pytest.mark.outside_annotations

INTS = [3, np.int64(3), np.int32(3), np.uint8(3)]
NOT_INTS = [True, False, 3.0, 2.5, "3", None, [3], jnp.int32(3), np.float64(3.0)]

# --- small helpers ------------------------------------------------------------------------


def test_shape_str():
    assert shape_str((2, 3)) == "[2, 3]"
    assert shape_str(()) == "[]"
    assert shape_str(np.zeros((4, 1, 5)).shape) == "[4, 1, 5]"


@pytest.mark.parametrize("value", INTS)
def test_is_int_accepts_python_and_numpy_ints(value):
    assert is_int(value)


@pytest.mark.parametrize("value", NOT_INTS)
def test_is_int_rejects_bools_floats_strings_and_arrays(value):
    assert not is_int(value)


# --- check_int and its two forms ------------------------------------------------------------


@pytest.mark.parametrize("value", INTS)
def test_int_checks_accept_numpy_ints_and_return_python_ints(value):
    for check in (check_int, check_positive_int, check_non_negative_int):
        result = check("size", value)
        assert result == 3 and type(result) is int


@pytest.mark.parametrize("check, what", [
    (check_int, "an int"),
    (check_positive_int, "a positive int"),
    (check_non_negative_int, "a non-negative int"),
])
@pytest.mark.parametrize("value", [True, False, 3.0, 2.5, "3", None, jnp.int32(3)])
def test_int_checks_raise_type_error_naming_argument_value_and_type(check, what, value):
    with pytest.raises(TypeError) as info:
        check("num_heads", value)
    assert str(info.value) == (
        f"num_heads must be {what}, got {value!r} ({type(value).__name__})."
    )


@pytest.mark.parametrize("check, value, what", [
    (check_positive_int, 0, "a positive int"),
    (check_positive_int, -4, "a positive int"),
    (check_positive_int, np.int64(0), "a positive int"),
    (check_non_negative_int, -1, "a non-negative int"),
])
def test_int_checks_raise_value_error_out_of_range(check, value, what):
    with pytest.raises(ValueError) as info:
        check("max_len", value)
    assert str(info.value) == f"max_len must be {what}, got {value!r}."


def test_int_check_edges():
    assert check_non_negative_int("seed", 0) == 0
    assert check_positive_int("T", 1) == 1
    assert check_int("offset", -7) == -7  # no minimum: any int
    assert check_int("vocab_size", 5, minimum=5, what="an int > 4") == 5
    with pytest.raises(ValueError, match=r"^vocab_size must be an int > 4, got 4\.$"):
        check_int("vocab_size", 4, minimum=5, what="an int > 4")
    with pytest.raises(TypeError, match=r"^vocab_size must be an int > 4, got 5.0 \(float\)\.$"):
        check_int("vocab_size", 5.0, minimum=5, what="an int > 4")


# --- check_real -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.25), np.float64(0.0), np.int64(0)])
def test_check_real_accepts_ints_and_floats_and_returns_a_float(value):
    result = check_real("p", value, low=0.0, high=1.0)
    assert result == float(value) and type(result) is float


@pytest.mark.parametrize("value", [True, "0.5", None, [0.5], jnp.float32(0.5), 1j])
def test_check_real_raises_type_error_for_non_numbers(value):
    with pytest.raises(TypeError) as info:
        check_real("dropout_rate", value, low=0.0, high=1.0)
    assert str(info.value) == (
        f"dropout_rate must be a number, got {value!r} ({type(value).__name__})."
    )


@pytest.mark.parametrize("interval, inside, outside, written", [
    (dict(low=0.0, high=1.0), [0.0, 0.5, 1.0], [-0.1, 1.1], "[0, 1]"),
    (dict(low=0.0, high=1.0, high_inclusive=False), [0.0, 0.99], [1.0, -1e-9], "[0, 1)"),
    (dict(low=0.0, high=1.0, low_inclusive=False), [1e-9, 1.0], [0.0, 1.5], "(0, 1]"),
    (dict(low=0.0, low_inclusive=False), [1e-30, 1e30, math.inf], [0.0, -1.0], "(0, inf)"),
    (dict(low=0.0), [0.0, 7.0], [-1e-9, -math.inf], "[0, inf)"),
    (dict(high=2.0), [-math.inf, 2.0], [2.5, math.inf], "(-inf, 2]"),
    (dict(), [-math.inf, 0.0, math.inf], [], "(-inf, inf)"),
])
def test_check_real_intervals(interval, inside, outside, written):
    for value in inside:
        assert check_real("x", value, **interval) == value
    for value in [*outside, math.nan]:  # NaN lies in no interval
        with pytest.raises(ValueError) as info:
            check_real("x", value, **interval)
        assert str(info.value) == f"x must be in {written}, got {float(value)!r}."


def test_check_real_nan_message():
    with pytest.raises(ValueError, match=r"^label_smoothing must be in \[0, 1\), got nan\.$"):
        check_real("label_smoothing", float("nan"), low=0.0, high=1.0, high_inclusive=False)
    with pytest.raises(ValueError, match=r"got nan"):
        check_real("x", np.float32("nan"))


# --- arrays: check_array, check_rank, check_floating, check_integer ---------------------------


@pytest.mark.parametrize("array", [np.zeros(3), jnp.zeros((2, 2)), np.float32(1.0)])
def test_check_array_accepts_arrays(array):
    check_array("x", array)


@pytest.mark.parametrize("value", [[1.0, 2.0], (1, 2), 3.0, None, "abc"])
def test_check_array_rejects_non_arrays_with_type_error(value):
    with pytest.raises(TypeError) as info:
        check_array("query", value)
    assert str(info.value) == f"query must be a JAX or NumPy array, got {type(value).__name__}."
    with pytest.raises(TypeError, match=r"^mask must be a boolean array, got"):
        check_array("mask", value, what="a boolean array")


def test_check_rank():
    check_rank("x", np.zeros((2, 3, 4)), "BTD")
    check_rank("x", np.zeros((2, 3)), ("S", "Hv"))
    with pytest.raises(ValueError) as info:
        check_rank("hidden", np.zeros((3, 5)), "BTD")
    assert str(info.value) == "hidden must have 3 dimensions [B, T, D], got shape [3, 5]."
    with pytest.raises(ValueError) as info:
        check_rank("lengths", np.zeros((2, 5)), "B", hint=" One length per sequence.")
    assert str(info.value) == (
        "lengths must have 1 dimension [B], got shape [2, 5]. One length per sequence."
    )
    with pytest.raises(ValueError, match=r"value must have 2 dimensions \[S, Hv\], got shape \[\]"):
        check_rank("value", np.float32(1.0), ("S", "Hv"))


def test_check_floating():
    check_floating("x", jnp.zeros((2, 3), jnp.bfloat16), axes="TD")
    with pytest.raises(TypeError) as info:
        check_floating("scores", jnp.zeros((2, 3), jnp.int32))
    assert str(info.value) == (
        "scores must have a floating dtype (float32, bfloat16, ...), got int32 with shape "
        "[2, 3]; convert it with scores.astype(jnp.float32)."
    )
    with pytest.raises(TypeError, match="scores must have a floating dtype.*got bool"):
        check_floating("scores", np.zeros(3, bool))
    with pytest.raises(TypeError, match="scores must be a JAX or NumPy array, got list"):
        check_floating("scores", [1.0])
    with pytest.raises(ValueError, match=r"x must have 3 dimensions \[B, T, D\], got shape \[2\]"):
        check_floating("x", jnp.zeros(2), axes="BTD")


def test_check_integer():
    check_integer("ids", np.zeros((2, 3), np.int64), axes="BT")
    check_integer("ids", jnp.zeros(2, jnp.uint8))
    with pytest.raises(TypeError) as info:
        check_integer("lengths", jnp.zeros(2))
    assert str(info.value) == (
        "lengths must have an integer dtype (int32, int64, ...), got float32 with shape [2]; "
        "convert it with lengths.astype(jnp.int32)."
    )
    with pytest.raises(TypeError, match="ids must have an integer dtype.*got bool"):
        check_integer("ids", np.ones(2, bool))  # a mask is not a list of ids
    with pytest.raises(TypeError, match="^ids must be an integer array, got list.$"):
        check_integer("ids", [1, 2])
    with pytest.raises(ValueError, match=r"ids must have 2 dimensions \[B, T\], got shape \[3\]"):
        check_integer("ids", np.zeros(3, int), axes="BT")


def test_check_axis():
    x = np.zeros((2, 3, 5))
    assert [check_axis("axis", a, x, array_name="x") for a in (0, 2, -1, -3)] == [0, 2, 2, 0]
    assert check_axis("axis", np.int64(-2), x, array_name="x") == 1
    with pytest.raises(ValueError) as info:
        check_axis("axis", 3, x, array_name="scores")
    assert str(info.value) == (
        "axis=3 is out of range for scores of shape [2, 3, 5] (rank 3): use -3..2."
    )
    with pytest.raises(ValueError, match="axis=-4 is out of range"):
        check_axis("axis", -4, x, array_name="scores")
    with pytest.raises(TypeError, match=r"^axis must be an int, got True \(bool\)\.$"):
        check_axis("axis", True, x, array_name="scores")


def test_check_int_scalar():
    for value in (0, -3, np.int64(2), jnp.int32(4), np.array(5)):
        check_int_scalar("offset", value)
    jax.jit(lambda i: check_int_scalar("offset", i) or i)(jnp.int32(1))  # traced: accepted
    for value in (True, 1.0, "1", None, jnp.float32(1.0), jnp.zeros(2, jnp.int32)):
        with pytest.raises(TypeError, match=r"^offset must be an int or an integer scalar array"):
            check_int_scalar("offset", value)
    with pytest.raises(TypeError, match=r"got Array\(\[0, 0\].*\(ArrayImpl with shape \[2\]\)"):
        check_int_scalar("offset", jnp.zeros(2, jnp.int32))
    with pytest.raises(TypeError, match=r"^pad_id must be an id, got 0.5 \(float\)\.$"):
        check_int_scalar("pad_id", 0.5, what="an id")


# --- traced or concrete ---------------------------------------------------------------------


def test_is_traced_inside_jit_grad_and_vmap_only():
    x = jnp.ones(3)
    assert not is_traced(x)
    assert not is_traced(np.ones(3))
    assert not is_traced(3)
    seen = []

    def record(y):
        seen.append(is_traced(y))
        return jnp.sum(y)

    jax.jit(record)(x)
    jax.grad(record)(x)
    jax.vmap(record)(x[:, None])
    assert seen == [True, True, True]


def test_is_traced_is_false_for_a_concrete_array_closed_over_by_jit():
    x = jnp.ones(3)
    seen = []

    @jax.jit
    def f(y):
        seen.append((is_traced(x), is_traced(y)))
        return x + y

    f(jnp.ones(3))
    assert seen == [(False, True)]


# --- masks, attention inputs, scale -----------------------------------------------------------


def test_check_broadcastable():
    check_broadcastable("mask", np.ones((2, 1, 1, 5)), (2, 7, 3, 5))
    check_broadcastable("mask", np.ones((3, 5)), (2, 7, 3, 5))
    check_broadcastable("mask", np.ones(()), (2, 7, 3, 5))
    with pytest.raises(ValueError) as info:
        check_broadcastable("mask", np.ones((2, 5)), (2, 7, 3, 5), axes="BNTS")
    assert str(info.value).startswith(
        "mask of shape [2, 5] does not broadcast to [B, N, T, S] = [2, 7, 3, 5]; each axis"
    )
    with pytest.raises(ValueError, match=r"^bias of shape \[1, 2, 7, 3, 5\] does not broadcast "
                                         r"to \[2, 7, 3, 5\]"):
        check_broadcastable("bias", np.ones((1, 2, 7, 3, 5)), (2, 7, 3, 5))


def test_check_mask_dtype_and_check_mask():
    check_mask_dtype("mask", np.ones((3, 5), bool))
    with pytest.raises(TypeError, match=r"^mask must be boolean \(True = may attend\), got dtype "
                                        r"float32 with shape \[3, 5\].*bias= instead\.$"):
        check_mask_dtype("mask", np.ones((3, 5), np.float32))
    with pytest.raises(TypeError, match="^mask must be a boolean array, got list"):
        check_mask_dtype("mask", [[True]])
    check_mask(np.ones((3, 5), bool), (2, 7, 3, 5))
    with pytest.raises(ValueError, match=r"mask of shape \[5, 3\] does not broadcast to "
                                         r"\[B, N, T, S\] = \[2, 7, 3, 5\]"):
        check_mask(np.ones((5, 3), bool), (2, 7, 3, 5))
    with pytest.raises(TypeError, match="mask must be boolean"):
        check_mask(np.ones((3, 5), int), (2, 7, 3, 5))


def test_check_qkv():
    q, k, v = jnp.ones((2, 3, 7, 11)), jnp.ones((2, 5, 7, 11)), jnp.ones((2, 5, 7, 13))
    check_qkv(q, k, v)
    check_qkv(q[0], k[0])  # unbatched, no value
    cases = [
        ((q.astype(jnp.int32), k, v), TypeError, r"query must have a floating dtype"),
        ((q, [1.0], v), TypeError, r"key must be a JAX or NumPy array, got list"),
        ((q[0, 0], k[0, 0]), ValueError, r"query must have shape \[B, T, N, H\] .*got \[7, 11\]"),
        ((q, k[0], v), ValueError, r"same rank; query has shape \[2, 3, 7, 11\] but key"),
        ((q, k[..., :4], v), ValueError, r"same head dim H.*key \[2, 5, 7, 4\]"),
        ((q, k[:, :, :3], v), ValueError, r"divide query's head count N.*\(K=3\)"),
        ((q, k[:1], v[:1]), ValueError, r"same batch size B.*key \[1, 5, 7, 11\]"),
        ((q, k, v[:, :4]), ValueError, r"key and value must agree.*value \[2, 4, 7, 13\]"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            check_qkv(*args)


def test_check_scale():
    for scale in (None, 0.125, 2, np.float32(0.5)):
        check_scale(scale)
    for scale in (True, "0.1", jnp.float32(0.5)):
        with pytest.raises(TypeError, match="^scale must be a Python float or None, got"):
            check_scale(scale)
    for scale in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="^scale must be positive, got"):
            check_scale(scale)


def test_accumulation_dtype():
    assert accumulation_dtype(jnp.bfloat16) == jnp.float32
    assert accumulation_dtype(jnp.float16) == jnp.float32
    assert accumulation_dtype(jnp.float32) == jnp.float32


# --- check_tokens ---------------------------------------------------------------------------


def test_check_tokens_accepts_good_ids():
    check_tokens("src_tokens", jnp.array([[0, 4, 6], [1, 2, 3]]), vocab_size=7, max_len=3)
    check_tokens("src_tokens", np.array([[6]], np.int64), vocab_size=7)


@pytest.mark.parametrize("tokens, error, message", [
    ([[1, 2]], TypeError, r"^src_tokens must be an integer array \[B, T\], got list\.$"),
    (jnp.ones((2, 3)), TypeError, r"^src_tokens must hold integer token ids, got dtype float32 "
                                  r"with shape \[2, 3\]; convert it"),
    (jnp.ones((2, 3), bool), TypeError, r"src_tokens must hold integer token ids, got dtype bool"),
    (jnp.ones(3, int), ValueError, r"^src_tokens must have shape \[B, T\] \(batch, length\), got "
                                   r"\[3\]; add a batch axis with src_tokens\[None\]"),
    (jnp.ones((1, 2, 3), int), ValueError, r"must have shape \[B, T\].*got \[1, 2, 3\]"),
    (jnp.ones((2, 0), int), ValueError, r"^src_tokens is empty \(shape \[2, 0\]\)"),
    (jnp.ones((0, 3), int), ValueError, r"^src_tokens is empty \(shape \[0, 3\]\)"),
    (jnp.ones((2, 6), int), ValueError, r"^src_tokens has length 6 \(shape \[2, 6\]\) but the "
                                        r"model has max_len=5 positions"),
    (jnp.array([[1, 7]]), ValueError, r"^src_tokens holds token ids 1..7 but the vocabulary has "
                                      r"ids 0..6 \(vocab size 7\)\.$"),
    (jnp.array([[-1, 2]]), ValueError, r"holds token ids -1..2 but the vocabulary has ids 0..6"),
])
def test_check_tokens_errors(tokens, error, message):
    with pytest.raises(error, match=message):
        check_tokens("src_tokens", tokens, vocab_size=7, max_len=5)


def test_check_tokens_under_jit_checks_shapes_but_not_the_traced_values():
    out_of_vocab = jnp.array([[1, 99]])

    @jax.jit
    def embed(tokens):
        check_tokens("tokens", tokens, vocab_size=7, max_len=5)
        return tokens + 1

    np.testing.assert_array_equal(embed(out_of_vocab), out_of_vocab + 1)  # values unseen
    with pytest.raises(ValueError, match="tokens has length 6"):  # shapes are static
        embed(jnp.ones((1, 6), jnp.int32))
    with pytest.raises(TypeError, match="tokens must hold integer token ids"):
        embed(jnp.ones((1, 2)))

    # A concrete array closed over by a jitted function is still concrete: it is checked.
    @jax.jit
    def closed_over(x):
        check_tokens("tokens", out_of_vocab, vocab_size=7)
        return x

    with pytest.raises(ValueError, match="tokens holds token ids 1..99"):
        closed_over(jnp.ones(2))


# --- the checks of the attention steps (1-7a) ------------------------------------------------


def test_check_split_heads_and_the_head_rules_of_multi_head_attention():
    assert check_split_heads(jnp.ones((2, 6)), np.int64(3)) == 3
    with pytest.raises(ValueError, match=r"last axis of x \(shape \[2, 6\]\) must divide into "
                                         r"num_heads=4 equal heads"):
        check_split_heads(jnp.ones((2, 6)), 4)
    sizes = dict(dropout_rate=0.0, process_heads=None, position_bias=None)
    assert check_multi_head_args(4, 8, None, None, None, None, **sizes) == (4, 8, 8, 8, 4, 8, 0.0)
    assert check_multi_head_args(4, 8, 12, 5, 2, 3, **sizes) == (4, 8, 12, 5, 2, 3, 0.0)
    with pytest.raises(ValueError, match=r"num_heads=5 must divide qkv_features=12 into equal "
                                         r"heads.*among \[1, 2, 3, 4, 6, 12\]"):
        check_multi_head_args(5, 8, 12, None, None, None, **sizes)
    with pytest.raises(ValueError, match=r"num_kv_heads=3 must divide num_heads=4"):
        check_multi_head_args(4, 8, None, None, 3, None, **sizes)
    with pytest.raises(TypeError, match=r"position_bias must be None or a callable, got 3 \(int"):
        check_multi_head_args(4, 8, None, None, None, None, **(sizes | {"position_bias": 3}))


def test_check_weighted_sum():
    check_weighted_sum(jnp.ones((2, 6, 3, 5)), jnp.ones((2, 5, 3, 7)))
    with pytest.raises(ValueError, match=r"must agree on B and S, and the K=4 value heads must "
                                         r"divide the N=6 heads"):
        check_weighted_sum(jnp.ones((2, 6, 3, 5)), jnp.ones((2, 5, 4, 7)))
    with pytest.raises(TypeError, match=r"value must have a floating dtype"):
        check_weighted_sum(jnp.ones((2, 6, 3, 5)), jnp.ones((2, 5, 3, 7), jnp.int32))


def test_check_cache_index():
    check_cache_index(3, 2, 5)
    check_cache_index(jnp.int32(3), 2, 5)
    jax.jit(lambda i: check_cache_index(i, 9, 5))(jnp.int32(7))  # traced: not checked
    with pytest.raises(TypeError, match=r"index must be an int or an integer scalar array"):
        check_cache_index(jnp.ones(()), 1, 5)
    with pytest.raises(ValueError, match=r"index must be >= 0 .*got -1"):
        check_cache_index(-1, 1, 5)
    with pytest.raises(ValueError, match=r"holds S=5 positions but index=4 plus 2 new "
                                         r"position\(s\) would need 6"):
        check_cache_index(4, 2, 5)


def test_check_processed_heads():
    given = (jnp.ones((2, 3, 4, 6)), jnp.ones((2, 5, 2, 6)), jnp.ones((2, 5, 2, 7)))
    check_processed_heads(given, given)
    check_processed_heads(given, list(given))
    with pytest.raises(ValueError, match=r"for query \[2, 3, 4, 6\], key \[2, 5, 2, 6\], value "
                                         r"\[2, 5, 2, 7\] it returned \[2, 3, 4, 6\], "
                                         r"\[2, 5, 2, 6\], \[2, 5, 2, 6\]"):
        check_processed_heads(given, (given[0], given[1], given[1]))
    with pytest.raises(ValueError, match=r"it returned tuple\."):
        check_processed_heads(given, given[:2])


# --- the public entry points use these helpers ----------------------------------------------

_Q = jnp.ones((1, 8, 2, 8))
_NOWHERE = pathlib.Path(tempfile.gettempdir()) / "attention-test-checks-never-created"
_HIDDEN, _WEIGHT, _TARGETS = jnp.ones((2, 3, 4)), jnp.ones((7, 4)), jnp.ones((2, 3), jnp.int32)

# (name the error uses, a call with the bad value, the helper that words the error)
INT_ENTRY_POINTS = {
    "causal_mask(T)": ("T", lambda v: causal_mask(v), check_positive_int),
    "causal_mask(S)": ("S", lambda v: causal_mask(3, v), check_positive_int),
    "padding_mask(max_len)": (
        "max_len", lambda v: padding_mask(jnp.array([1, 2]), max_len=v), check_positive_int),
    "split_heads(num_heads)": (
        "num_heads", lambda v: split_heads(jnp.ones((2, 6)), v), check_positive_int),
    "MultiHeadAttention(num_heads)": (
        "num_heads", lambda v: MultiHeadAttention(num_heads=v, in_features=8, rngs=nnx.Rngs(0)),
        check_positive_int),
    "MultiHeadAttention(in_features)": (
        "in_features", lambda v: MultiHeadAttention(2, v, rngs=nnx.Rngs(0)), check_positive_int),
    "kv_cache.init_cache(max_len)": (
        "max_len", lambda v: kv_cache.init_cache(MultiHeadAttention(2, 8, rngs=nnx.Rngs(0)), 1, v),
        check_positive_int),
    "kv_cache.init_cache(batch_size)": (
        "batch_size", lambda v: kv_cache.init_cache(MultiHeadAttention(2, 8, rngs=nnx.Rngs(0)),
                                                    v, 3), check_positive_int),
    "cosine_top_k(chunk_size)": (
        "chunk_size", lambda v: cosine_top_k(jnp.ones(3), jnp.ones((5, 3)), 2, chunk_size=v),
        check_positive_int),
    "normalize(axis)": ("axis", lambda v: normalize(jnp.ones((2, 3)), axis=v), check_int),
    "flash_attention(block_q)": (
        "block_q", lambda v: flash_attention(_Q, _Q, _Q, block_q=v), check_positive_int),
    "flash_attention(block_k)": (
        "block_k", lambda v: flash_attention(_Q, _Q, _Q, block_k=v), check_positive_int),
    "blockwise_attention(block_k)": (
        "block_k", lambda v: blockwise_attention(_Q, _Q, _Q, block_k=v), check_positive_int),
    "pallas_flash_attention(block_q)": (
        "block_q",
        lambda v: pallas_flash_attention(_Q, _Q, _Q, block_q=v, block_k=8, interpret=True),
        check_positive_int),
    "projected_cross_entropy(chunk_tokens)": (
        "chunk_tokens",
        lambda v: projected_cross_entropy(_HIDDEN, _WEIGHT, _TARGETS, chunk_tokens=v),
        check_positive_int),
    "transformer_schedule(d_model)": (
        "d_model", lambda v: transformer_schedule(v), check_positive_int),
    "transformer_schedule(warmup_steps)": (
        "warmup_steps", lambda v: transformer_schedule(64, v), check_positive_int),
    "TrainConfig(steps)": ("TrainConfig.steps", lambda v: TrainConfig(steps=v), check_positive_int),
    "TrainConfig(batch_size)": (
        "TrainConfig.batch_size", lambda v: TrainConfig(batch_size=v), check_positive_int),
    "TrainConfig(checkpoint_every)": (
        "TrainConfig.checkpoint_every", lambda v: TrainConfig(checkpoint_every=v),
        check_non_negative_int),
    "Checkpointer(max_to_keep)": (
        "max_to_keep", lambda v: Checkpointer(_NOWHERE, max_to_keep=v), check_positive_int),
    "Batcher(batch_size)": (
        "batch_size", lambda v: Batcher([([5], [6])], batch_size=v), check_positive_int),
    "Batcher.epoch(epoch)": (
        "epoch", lambda v: Batcher([([5], [6])], batch_size=1).epoch(v), check_non_negative_int),
    "prefetch(size)": ("size", lambda v: prefetch([], size=v), check_positive_int),
    "Vocabulary.build(min_count)": (
        "min_count", lambda v: Vocabulary.build(["a b"], min_count=v), check_positive_int),
    "train_subword(vocab_size)": (
        "vocab_size", lambda v: train_subword(["a b"], vocab_size=v),
        functools.partial(check_int, minimum=5, what="an int > 4")),
}


def _helper_error(helper, name, value) -> BaseException:
    try:
        helper(name, value)
    except (TypeError, ValueError) as error:
        return error
    raise AssertionError(f"{helper} accepted {value!r}")


@pytest.mark.parametrize("entry", list(INT_ENTRY_POINTS))
@pytest.mark.parametrize("value", [True, 2.0, "3", np.float32(4.0)])
def test_int_arguments_of_entry_points_raise_the_helpers_type_error(entry, value):
    name, call, helper = INT_ENTRY_POINTS[entry]
    expected = _helper_error(helper, name, value)
    assert isinstance(expected, TypeError)
    with pytest.raises(TypeError) as info:
        call(value)
    assert str(info.value) == str(expected)
    assert name in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize("entry", [e for e in INT_ENTRY_POINTS if e != "normalize(axis)"])
def test_int_arguments_of_entry_points_raise_the_helpers_value_error(entry):
    # normalize's axis has its own range (see test_check_axis); -1 is a valid axis.
    name, call, helper = INT_ENTRY_POINTS[entry]
    value = 4 if entry == "train_subword(vocab_size)" else -1
    expected = _helper_error(helper, name, value)
    assert isinstance(expected, ValueError)
    with pytest.raises(ValueError) as info:
        call(value)
    assert str(info.value) == str(expected)


# (name, a call with the bad value, the interval of check_real)
_UNIT = dict(low=0.0, high=1.0, high_inclusive=False)
_POSITIVE = dict(low=0.0, low_inclusive=False)
REAL_ENTRY_POINTS = {
    "MultiHeadAttention(dropout_rate)": (
        "dropout_rate",
        lambda v: MultiHeadAttention(2, 8, dropout_rate=v, rngs=nnx.Rngs(0)), _UNIT, 1.0),
    "label_smoothed_cross_entropy(label_smoothing)": (
        "label_smoothing",
        lambda v: label_smoothed_cross_entropy(
            jnp.zeros((2, 3, 5)), _TARGETS, label_smoothing=v), _UNIT, 1.0),
    "projected_cross_entropy(label_smoothing)": (
        "label_smoothing",
        lambda v: projected_cross_entropy(_HIDDEN, _WEIGHT, _TARGETS, label_smoothing=v), _UNIT,
        -0.5),
    "normalize(eps)": ("eps", lambda v: normalize(jnp.ones(3), eps=v), _POSITIVE, 0.0),
    "transformer_schedule(scale)": (
        "scale", lambda v: transformer_schedule(64, 10, scale=v), _POSITIVE, 0.0),
    "TrainConfig(label_smoothing)": (
        "TrainConfig.label_smoothing", lambda v: TrainConfig(label_smoothing=v), _UNIT, 1.0),
    "TrainConfig(lr_scale)": ("TrainConfig.lr_scale", lambda v: TrainConfig(lr_scale=v),
                              _POSITIVE, -1.0),
    "train_subword(character_coverage)": (
        "character_coverage", lambda v: train_subword(["a b"], character_coverage=v),
        dict(low=0.0, high=1.0, low_inclusive=False), 0.0),
}


def _real_error(name, value, interval) -> BaseException:
    try:
        check_real(name, value, **interval)
    except (TypeError, ValueError) as error:
        return error
    raise AssertionError(f"check_real accepted {value!r}")


@pytest.mark.parametrize("entry", list(REAL_ENTRY_POINTS))
def test_real_arguments_of_entry_points_raise_the_helpers_errors(entry):
    name, call, interval, out_of_range = REAL_ENTRY_POINTS[entry]
    for value, error in ((True, TypeError), ("0.1", TypeError), (out_of_range, ValueError),
                         (math.nan, ValueError)):
        expected = _real_error(name, value, interval)
        assert isinstance(expected, error)
        with pytest.raises(error) as info:
            call(value)
        assert str(info.value) == str(expected), (entry, value)


def test_masked_softmax_axis_uses_check_axis():
    scores = jnp.zeros((2, 3))
    with pytest.raises(ValueError) as info:
        masked_softmax(scores, axis=2)
    with pytest.raises(ValueError) as expected:
        check_axis("axis", 2, scores, array_name="scores")
    assert str(info.value) == str(expected.value)
    with pytest.raises(TypeError, match=r"^axis must be an int, got True \(bool\)\.$"):
        masked_softmax(scores, axis=True)


def test_checkpointer_checks_before_touching_the_disk():
    with pytest.raises(ValueError):
        Checkpointer(_NOWHERE, max_to_keep=0)
    assert not _NOWHERE.exists()
