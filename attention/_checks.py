"""The one home of the argument checks that every public function uses.

Every public function checks its arguments here, before any arithmetic, so that a wrong shape or
dtype is reported in the user's own words (argument name, shape received, shape expected)
rather than as a broadcasting surprise or an XLA error deep inside a compiled program. Shapes
and dtypes are static under ``jax.jit``, so these checks cost nothing at run time.

One rule everywhere: a wrong *type* (a float where an int is needed, ``True`` for a count, a
list where an array is needed) raises ``TypeError``; a value of the right type that is out of
range or of the wrong shape raises ``ValueError``. Each message names the argument, says what
it got and what was expected.

>>> check_positive_int("num_heads", 8)
8
>>> check_positive_int("num_heads", True)
Traceback (most recent call last):
...
TypeError: num_heads must be a positive int, got True (bool).
>>> check_positive_int("num_heads", 0)
Traceback (most recent call last):
...
ValueError: num_heads must be a positive int, got 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def shape_str(shape: Sequence[int]) -> str:
    """``(2, 3)`` -> ``"[2, 3]"``: shapes in messages look like the docstrings' shapes."""
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def is_int(value) -> bool:
    """A Python or NumPy integer, but not a bool (``True`` is an int in Python, never a count).

    ``numbers.Integral`` admits ``np.int64`` (from a shape or a sum), which is a count too.
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value, *, minimum: int | None = None, what: str = "an int") -> int:
    """Return ``int(value)``; ``TypeError`` unless an int, ``ValueError`` if below ``minimum``."""
    if not is_int(value):
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__}).")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    return int(value)


def check_positive_int(name: str, value) -> int:
    """Return ``int(value)`` for a count or a size: an int >= 1 (see :func:`check_int`)."""
    return check_int(name, value, minimum=1, what="a positive int")


def divisors(n: int) -> list[int]:
    """The positive divisors of ``n``, offered in messages as the values that would work."""
    return [d for d in range(1, n + 1) if n % d == 0]


def check_heads_divide_width(num_heads: int, width: int, *, width_name: str = "d_model") -> None:
    """N heads split a width D into equal heads of D / N (Vaswani et al. 2017, 3.2.2)."""
    if width % num_heads:
        raise ValueError(
            f"num_heads={num_heads} must divide {width_name}={width} into equal heads "
            f"(d_k = {width_name} / num_heads); choose num_heads among {divisors(width)}."
        )


def kv_heads_divide(num_kv_heads: int, num_heads: int) -> bool:
    """The grouped-query rule, written once: K key/value heads serve the N query heads in equal
    groups (K > 0 divides N)."""
    return num_kv_heads > 0 and num_heads % num_kv_heads == 0


def check_kv_heads_divide(num_kv_heads: int, num_heads: int) -> None:
    """K key/value heads serve the N query heads in equal groups: K divides N (grouped-query)."""
    if not kv_heads_divide(num_kv_heads, num_heads):
        raise ValueError(
            f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads}, so that each "
            f"key/value head serves num_heads / num_kv_heads query heads (grouped-query "
            f"attention); choose num_kv_heads among {divisors(num_heads)} (or None for "
            f"num_heads)."
        )


def check_non_negative_int(name: str, value) -> int:
    """Return ``int(value)`` for an int >= 0 (see :func:`check_int`)."""
    return check_int(name, value, minimum=0, what="a non-negative int")


def check_real(
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``float(value)`` for a real number in the given range.

    ``TypeError`` unless an int or float (not a bool); ``ValueError`` outside the range, with
    the range written the mathematical way (``[0, 1)``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    value = float(value)
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high or value != value:  # value != value: NaN
        left = "-inf" if low is None else f"{low:g}"
        right = "inf" if high is None else f"{high:g}"
        interval = (f"{'[' if low_inclusive and low is not None else '('}{left}, "
                    f"{right}{']' if high_inclusive and high is not None else ')'}")
        raise ValueError(f"{name} must be in {interval}, got {value!r}.")
    return value


def check_array(name: str, array, *, what: str = "a JAX or NumPy array") -> None:
    """``TypeError`` unless ``array`` has a ``shape`` and a ``dtype`` (a list is no array)."""
    if not hasattr(array, "dtype") or not hasattr(array, "shape"):
        raise TypeError(f"{name} must be {what}, got {type(array).__name__}.")


def check_rank(name: str, array, axes: str | Sequence[str], *, hint: str = "") -> None:
    """``ValueError`` unless ``array`` has one dimension per name in ``axes``.

    ``axes`` is the glossary letters of the expected shape, ``"BTD"`` or ``("B", "T", "D")``.
    """
    axes = list(axes)
    if array.ndim != len(axes):
        raise ValueError(
            f"{name} must have {len(axes)} dimension{'s' if len(axes) != 1 else ''} "
            f"[{', '.join(axes)}], got shape {shape_str(array.shape)}.{hint}"
        )


def check_axis(name: str, axis, array, *, array_name: str) -> int:
    """Return ``axis`` as an index ``0..ndim-1`` of ``array`` (negative axes count from the end).

    ``TypeError`` unless an int; ``ValueError`` outside ``-ndim..ndim-1``.

    >>> check_axis("axis", -1, np.zeros((2, 3)), array_name="scores")
    1
    >>> check_axis("axis", 2, np.zeros((2, 3)), array_name="scores")
    Traceback (most recent call last):
    ...
    ValueError: axis=2 is out of range for scores of shape [2, 3] (rank 2): use -2..1.
    """
    axis = check_int(name, axis)
    ndim = array.ndim
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}={axis} is out of range for {array_name} of shape {shape_str(array.shape)} "
            f"(rank {ndim}): use {-ndim}..{ndim - 1}."
        )
    return axis % ndim


def check_int_scalar(
    name: str, value, *, what: str = "an int or an integer scalar array"
) -> None:
    """``TypeError`` unless ``value`` is an int or a 0-d integer array (which may be traced).

    For positions and step counters that a decoding loop carries under ``jit``.
    """
    if is_int(value):
        return
    if hasattr(value, "dtype") and jnp.issubdtype(value.dtype, jnp.integer) and value.ndim == 0:
        return
    shape = f" with shape {shape_str(value.shape)}" if hasattr(value, "shape") else ""
    raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__}{shape}).")


def check_integer(name: str, array, *, axes: str | Sequence[str] | None = None) -> None:
    """``TypeError`` unless ``array`` is an array of an integer dtype (ids, lengths, positions);
    ``ValueError`` unless it has one dimension per name in ``axes``, if given.

    The integer twin of :func:`check_floating`: ``bool`` is not an integer dtype here.
    """
    _check_dtype_kind(name, array, jnp.integer, "an integer dtype (int32, int64, ...)",
                      "jnp.int32", axes, what="an integer array")


def check_index(name: str, value, size: int, axis: str, *, allow_none: bool = False):
    """``value`` as an index in ``0..size-1`` (negative counts from the end), or None."""
    if value is None and allow_none:
        return None
    value = check_int(name, value, what="an int or None" if allow_none else "an int")
    if not -size <= value < size:
        raise ValueError(f"{name}={value} is out of range for {axis}={size}.")
    return value % size


def is_traced(value) -> bool:
    """True under ``jax.jit`` / ``grad`` / ``vmap``: the value is abstract and cannot be read.

    Checks of the *values* of an array (token ids in range, lengths in bounds) run only when
    this is False; checks of shapes and dtypes always run, since those are static.
    """
    return isinstance(value, jax.core.Tracer)


def check_floating(name: str, array, *, axes: str | None = None) -> None:
    """Raise TypeError unless ``array`` has a floating dtype (and ``len(axes)`` dims if given)."""
    _check_dtype_kind(name, array, jnp.floating, "a floating dtype (float32, bfloat16, ...)",
                      "jnp.float32", axes)


def _check_dtype_kind(name, array, kind, kind_text, cast, axes, *, what="a JAX or NumPy array"):
    check_array(name, array, what=what)
    if not jnp.issubdtype(array.dtype, kind):
        raise TypeError(
            f"{name} must have {kind_text}, got {array.dtype} with shape "
            f"{shape_str(array.shape)}; convert it with {name}.astype({cast})."
        )
    if axes is not None:
        check_rank(name, array, axes)


def check_broadcastable(
    name: str, array, target_shape: Sequence[int], axes: str | None = None
) -> None:
    """Raise ValueError unless ``array`` broadcasts to ``target_shape`` without adding size.

    We accept the usual NumPy rule (missing leading axes, or size 1) and nothing else, so that
    a mask meant for ``[B, 1, 1, S]`` that arrives as ``[B, S]`` is an error, not a silent
    broadcast against the wrong axes.
    """
    shape = tuple(array.shape)
    target = tuple(target_shape)
    fits = len(shape) <= len(target) and all(
        d == 1 or d == t for d, t in zip(reversed(shape), reversed(target), strict=False)
    )
    if not fits:
        where = f"[{', '.join(axes)}] = {shape_str(target)}" if axes else shape_str(target)
        raise ValueError(
            f"{name} of shape {shape_str(shape)} does not broadcast to {where}; each axis "
            f"must be 1 or equal (for example [B, 1, 1, S] for key padding or [T, S] for a "
            f"causal mask)."
        )


def check_mask_dtype(name: str, mask) -> None:
    """Raise TypeError unless ``mask`` is a boolean array (True = may attend)."""
    check_array(name, mask, what="a boolean array")
    if mask.dtype != jnp.bool_:
        raise TypeError(
            f"{name} must be boolean (True = may attend), got dtype {mask.dtype} with shape "
            f"{shape_str(mask.shape)}. For an additive mask of 0 and -large values, pass it "
            f"as bias= instead."
        )


def check_mask(mask, target_shape: Sequence[int], axes: str | None = "BNTS") -> None:
    """A mask is boolean (True = may attend) and broadcasts to ``target_shape``."""
    check_mask_dtype("mask", mask)
    check_broadcastable("mask", mask, target_shape, axes)


def check_qkv(query, key, value=None) -> None:
    """Check that query ``[*B, T, N, H]``, key ``[*B, S, K, H]``, value ``[*B, S, K, Hv]`` agree.

    K, the number of key/value heads, must divide N (grouped-query attention); K = N is the
    ordinary case.
    """
    check_floating("query", query)
    check_floating("key", key)
    if value is not None:
        check_floating("value", value)
    if query.ndim not in (3, 4):
        raise ValueError(
            f"query must have shape [B, T, N, H] (or [T, N, H] unbatched), "
            f"got {shape_str(query.shape)}."
        )
    arrays = {"query": query, "key": key} | ({"value": value} if value is not None else {})
    for name, array in arrays.items():
        if array.ndim != query.ndim:
            raise ValueError(
                f"query, key and value must have the same rank; query has shape "
                f"{shape_str(query.shape)} but {name} has shape {shape_str(array.shape)}."
            )
    if key.shape[-1] != query.shape[-1]:
        raise ValueError(
            f"query and key must have the same head dim H (last axis) to take dot products; "
            f"got query {shape_str(query.shape)} and key {shape_str(key.shape)}."
        )
    num_kv_heads, num_heads = key.shape[-2], query.shape[-2]
    if not kv_heads_divide(num_kv_heads, num_heads):
        raise ValueError(
            f"key's head count K (axis -2) must divide query's head count N, so that each key "
            f"head serves N / K query heads (grouped-query attention; K = N is ordinary "
            f"multi-head, K = 1 multi-query); got query {shape_str(query.shape)} (N={num_heads}) "
            f"and key {shape_str(key.shape)} (K={num_kv_heads})."
        )
    if query.ndim == 4 and key.shape[0] != query.shape[0]:
        raise ValueError(
            f"query and key must have the same batch size B (axis 0); "
            f"got query {shape_str(query.shape)} and key {shape_str(key.shape)}."
        )
    if value is not None:
        if value.shape[:-1] != key.shape[:-1]:
            raise ValueError(
                f"key and value must agree on every axis but the head dim "
                f"([B, S, N] or [S, N]): one value per key; got key {shape_str(key.shape)} "
                f"and value {shape_str(value.shape)}."
            )


def check_scale(scale) -> None:
    if scale is None:
        return
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a Python float or None, got {type(scale).__name__}.")
    if not float(scale) > 0:
        raise ValueError(f"scale must be positive, got {scale}.")


def accumulation_dtype(dtype) -> jnp.dtype:
    """float32 for half-precision inputs (bfloat16, float16), else the input's own dtype."""
    return jnp.promote_types(dtype, jnp.float32)


def check_tokens(name: str, tokens, *, vocab_size: int, max_len: int | None = None) -> None:
    """Raise a clear error for token ids that the model cannot embed.

    Checks: an array, an integer dtype, shape ``[B, T]`` with ``B, T >= 1``, ``T <= max_len``,
    and (when the values are concrete, i.e. not under ``jit``) every id in ``0..vocab_size-1``.
    Under ``jit`` the ids cannot be inspected: an out-of-range id then embeds as NaN
    (``jnp.take``'s fill mode) and the NaN shows up in the loss.

    Raises:
      TypeError: not an array, or not integer.
      ValueError: wrong rank, an empty axis, too long, ids outside the vocabulary.
    """
    check_array(name, tokens, what="an integer array [B, T]")
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise TypeError(
            f"{name} must hold integer token ids, got dtype {tokens.dtype} with shape "
            f"{shape_str(tokens.shape)}; convert it with {name}.astype(jnp.int32)."
        )
    if tokens.ndim != 2:
        raise ValueError(
            f"{name} must have shape [B, T] (batch, length), got {shape_str(tokens.shape)}; "
            f"add a batch axis with {name}[None] for one sentence."
        )
    if 0 in tokens.shape:
        raise ValueError(
            f"{name} is empty (shape {shape_str(tokens.shape)}); every sequence needs at least "
            f"one token (an empty source can be given as [eos] or [pad])."
        )
    if max_len is not None and tokens.shape[1] > max_len:
        raise ValueError(
            f"{name} has length {tokens.shape[1]} (shape {shape_str(tokens.shape)}) but the "
            f"model has max_len={max_len} positions; truncate it or build the model with a "
            f"larger max_len."
        )
    if is_traced(tokens):
        return
    # NumPy, not jnp: a concrete array closed over by a jitted function must stay concrete.
    values = np.asarray(tokens)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"{name} holds token ids {low}..{high} but the vocabulary has ids "
            f"0..{vocab_size - 1} (vocab size {vocab_size})."
        )


def check_local_window(local_window_size) -> tuple[int, int] | None:
    """``local_window_size`` as a ``(left, right)`` pair of non-negative ints, or None.

    The meaning of ``jax.nn.dot_product_attention``: query t may attend key s when
    ``t - left <= s <= t + right``; one int w means ``(w, w)``.

    >>> check_local_window(3), check_local_window((2, 0)), check_local_window(None)
    ((3, 3), (2, 0), None)
    """
    if local_window_size is None:
        return None
    what = "None, a non-negative int w (the window (w, w)) or a pair (left, right) of them"
    if is_int(local_window_size):
        pair = (local_window_size, local_window_size)
    elif isinstance(local_window_size, (tuple, list)) and len(local_window_size) == 2 and all(
        is_int(w) for w in local_window_size
    ):
        pair = tuple(local_window_size)
    else:
        raise TypeError(
            f"local_window_size must be {what}; got {local_window_size!r} "
            f"({type(local_window_size).__name__})."
        )
    left, right = (int(w) for w in pair)
    if left < 0 or right < 0:
        raise ValueError(
            f"local_window_size must be {what}; got {local_window_size!r}, which has a "
            f"negative side (keys t - left .. t + right are attended)."
        )
    return left, right


def check_seq_lengths(name: str, lengths, batch: int | None, max_len: int) -> None:
    """``lengths`` is an integer ``[B]`` array (``[]`` for unbatched inputs) in ``0..max_len``.

    The values are checked only when they are concrete (not traced under ``jit``).

    >>> check_seq_lengths("key_value_seq_lengths", jnp.array([3, 5]), 2, 4)
    Traceback (most recent call last):
    ...
    ValueError: key_value_seq_lengths must lie in 0..4 (the sequence length), got values 3..5.
    """
    check_integer(name, lengths)
    expected = () if batch is None else (batch,)
    if tuple(lengths.shape) != expected:
        raise ValueError(
            f"{name} must have shape {shape_str(expected)} (one length per sequence"
            f"{'' if batch is not None else ' of the unbatched input'}), got "
            f"{shape_str(lengths.shape)}."
        )
    if not is_traced(lengths) and lengths.size:
        # NumPy, not jnp: inside a jit trace a concrete (closed-over) array stays concrete
        # in NumPy, while jnp.min would stage a traced operation.
        values = np.asarray(lengths)
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > max_len:
            raise ValueError(
                f"{name} must lie in 0..{max_len} (the sequence length), got values "
                f"{low}..{high}."
            )


# ------------------------------------------------------------------ attention steps 1-7a


def check_repeat_kv_heads(x, num_heads) -> int:
    """Keys or values ``[*B, S, K, H]`` whose K heads divide ``num_heads`` N; returns N."""
    check_array("x", x)
    num_heads = check_positive_int("num_heads", num_heads)
    if x.ndim < 3:
        raise ValueError(
            f"x must be keys or values [B, S, K, H] (or [S, K, H]), got shape "
            f"{shape_str(x.shape)}."
        )
    num_kv_heads = x.shape[-2]
    if not kv_heads_divide(num_kv_heads, num_heads):
        raise ValueError(
            f"num_heads={num_heads} (query heads N) must be a multiple of the K={num_kv_heads} "
            f"key/value heads of x (shape {shape_str(x.shape)}, axis -2), so that each key head "
            f"serves N / K query heads."
        )
    return num_heads


def check_weighted_sum(weights, value) -> None:
    """Weights ``[*B, N, T, S]`` and values ``[*B, S, K, Hv]`` agree on B and S; K divides N."""
    check_floating("weights", weights)
    check_floating("value", value)
    if weights.ndim not in (3, 4) or value.ndim != weights.ndim:
        raise ValueError(
            f"weights must be [B, N, T, S] and value [B, S, N, Hv] (or both unbatched); got "
            f"weights {shape_str(weights.shape)} and value {shape_str(value.shape)}."
        )
    *batch_w, N, _, S = weights.shape
    *batch_v, S_v, N_v, _ = value.shape
    if (tuple(batch_w), S) != (tuple(batch_v), S_v) or not kv_heads_divide(N_v, N):
        raise ValueError(
            f"weights [B, N, T, S] = {shape_str(weights.shape)} and value [B, S, K, Hv] = "
            f"{shape_str(value.shape)} must agree on B and S, and the K={N_v} value heads "
            f"must divide the N={N} heads of the weights."
        )


def check_single_head(query, key, value, mask) -> None:
    """``single_head_attention``'s query ``[T, H]``, key ``[S, H]``, value ``[S, Hv]``, mask."""
    hint = (
        " single_head_attention takes one head of one sequence; use dot_product_attention "
        "for [B, T, N, H] inputs."
    )
    for name, array, axes in (
        ("query", query, "TH"), ("key", key, "SH"), ("value", value, ("S", "Hv"))
    ):
        check_floating(name, array)
        check_rank(name, array, axes, hint=hint)
    if key.shape[1] != query.shape[1]:
        raise ValueError(
            f"query [T, H] and key [S, H] must have the same head dim H; got query "
            f"{shape_str(query.shape)} and key {shape_str(key.shape)}."
        )
    if value.shape[0] != key.shape[0]:
        raise ValueError(
            f"key [S, H] and value [S, Hv] must have the same length S (one value per key); "
            f"got key {shape_str(key.shape)} and value {shape_str(value.shape)}."
        )
    if mask is not None:
        check_mask(mask, (query.shape[0], key.shape[0]), "TS")


def check_split_heads(x, num_heads) -> int:
    """The last axis of ``x`` splits into ``num_heads`` equal heads; returns ``int(num_heads)``."""
    num_heads = check_positive_int("num_heads", num_heads)
    if x.shape[-1] % num_heads:
        raise ValueError(
            f"the last axis of x (shape {shape_str(x.shape)}) must divide into "
            f"num_heads={num_heads} equal heads."
        )
    return num_heads


def check_multi_head_args(
    num_heads, in_features, qkv_features, out_features, num_kv_heads, in_kv_features, *,
    dropout_rate, process_heads, position_bias,
) -> tuple[int, int, int, int, int, int, float]:
    """``MultiHeadAttention``'s sizes (None defaults resolved) as ints, and its dropout rate:
    ``(num_heads, in_features, qkv_features, out_features, num_kv_heads, in_kv_features,
    dropout_rate)``."""
    num_heads = check_positive_int("num_heads", num_heads)
    in_features = check_positive_int("in_features", in_features)
    sizes = {"qkv_features": qkv_features, "out_features": out_features,
             "in_kv_features": in_kv_features}
    sizes = {name: check_positive_int(name, in_features if value is None else value)
             for name, value in sizes.items()}
    num_kv_heads = check_positive_int(
        "num_kv_heads", num_heads if num_kv_heads is None else num_kv_heads
    )
    check_heads_divide_width(num_heads, sizes["qkv_features"], width_name="qkv_features")
    check_kv_heads_divide(num_kv_heads, num_heads)
    for name, hook in (("process_heads", process_heads), ("position_bias", position_bias)):
        if hook is not None and not callable(hook):
            raise TypeError(
                f"{name} must be None or a callable, got {hook!r} ({type(hook).__name__})."
            )
    dropout_rate = check_real("dropout_rate", dropout_rate, low=0.0, high=1.0,
                              high_inclusive=False)
    return (num_heads, in_features, sizes["qkv_features"], sizes["out_features"], num_kv_heads,
            sizes["in_kv_features"], dropout_rate)


def check_width(name: str, x, width: int, attribute: str) -> None:
    """The last axis of the input ``x`` is the ``width`` a module was built with."""
    if x.shape[-1] != width:
        raise ValueError(
            f"{name} has width {x.shape[-1]} (shape {shape_str(x.shape)}) but this module "
            f"was built with {attribute}={width}."
        )


def check_multi_head_inputs(inputs_q, inputs_kv, in_features: int, in_kv_features: int) -> None:
    """``inputs_q [B, T, D]`` and ``inputs_kv [B, S, Dkv]`` (or both unbatched) of a module."""
    check_floating("inputs_q", inputs_q)
    check_floating("inputs_kv", inputs_kv)
    if inputs_q.ndim not in (2, 3) or inputs_kv.ndim != inputs_q.ndim:
        raise ValueError(
            f"inputs_q must be [B, T, D] and inputs_kv [B, S, Dkv] (or both unbatched); got "
            f"inputs_q {shape_str(inputs_q.shape)} and inputs_kv {shape_str(inputs_kv.shape)}."
        )
    check_width("inputs_q", inputs_q, in_features, "in_features")
    check_width("inputs_kv", inputs_kv, in_kv_features, "in_kv_features")
    if inputs_q.ndim == 3 and inputs_q.shape[0] != inputs_kv.shape[0]:
        raise ValueError(
            f"inputs_q {shape_str(inputs_q.shape)} and inputs_kv "
            f"{shape_str(inputs_kv.shape)} must have the same batch size B."
        )


def check_processed_heads(given, returned) -> None:
    """A ``process_heads`` hook returns (query, key, value) of the shapes it was given."""
    got = [getattr(x, "shape", type(x).__name__) for x in returned] if isinstance(
        returned, (tuple, list)) and len(returned) == 3 else None
    expected = [x.shape for x in given]
    if got != expected:
        names = ("query", "key", "value")
        shapes = ", ".join(f"{n} {shape_str(s)}" for n, s in zip(names, expected, strict=True))
        received = (", ".join(shape_str(s) if isinstance(s, tuple) else s for s in got)
                    if got is not None else type(returned).__name__)
        raise ValueError(
            f"process_heads(query, key, value, query_positions, key_positions) must return "
            f"(query, key, value) of the shapes it was given; for {shapes} it returned "
            f"{received}."
        )


def check_position_bias(bias, expected: Sequence[int]) -> None:
    """A ``position_bias`` hook returns a floating bias ``[N, T, S]``."""
    check_floating("position_bias(query_positions, key_positions)", bias)
    if tuple(bias.shape) != tuple(expected):
        raise ValueError(
            f"position_bias(query_positions, key_positions) must return a bias [N, T, S] = "
            f"{shape_str(expected)}, got {shape_str(bias.shape)}."
        )


def check_attention_fn_call(*, sow_weights: bool, dropout_rate: float, dropout_on: bool) -> None:
    """What a fused ``attention_fn`` cannot do: sow the weights or drop them out."""
    if sow_weights:
        raise ValueError(
            "sow_weights=True needs the weights, which a fused attention_fn never "
            "forms; build the module with attention_fn=None to plot them."
        )
    if dropout_rate > 0 and dropout_on:
        raise ValueError(
            f"dropout_rate={dropout_rate} on attention weights needs "
            "attention_fn=None (fused kernels never form the weights); set "
            "dropout_rate=0 or call with deterministic=True."
        )


def check_cache(cache, cache_type: type, inputs_q, module) -> None:
    """A key/value cache of ``cache_type`` whose ``[B, S, K, H]`` fits ``module`` and the
    batch of ``inputs_q [B, T, D]`` (which is checked first, as a module's input)."""
    check_floating("inputs_q", inputs_q, axes="BTD")
    check_width("inputs_q", inputs_q, module.in_features, "in_features")
    if not isinstance(cache, cache_type):
        raise TypeError(
            f"cache must be a KVCache (from init_cache or project_kv), got "
            f"{type(cache).__name__}."
        )
    expected = (inputs_q.shape[0], cache.key.shape[1], module.num_kv_heads, module.head_dim)
    if cache.key.shape != expected or cache.value.shape != expected:
        raise ValueError(
            f"cache key/value must be [B, S, K, H] = {shape_str(expected)} for inputs_q "
            f"{shape_str(inputs_q.shape)} and this module's num_kv_heads="
            f"{module.num_kv_heads} key/value heads of size {module.head_dim}; got key "
            f"{shape_str(cache.key.shape)} and value {shape_str(cache.value.shape)}."
        )


def check_cache_index(index, new: int, length: int) -> None:
    """``index`` (an int or integer scalar, maybe traced) leaves room for ``new`` positions in
    a cache of ``length``; a traced index is not checked (``dynamic_update_slice`` clamps it)."""
    check_int_scalar("index", index, what="an int or an integer scalar array (the step)")
    if is_traced(index):
        return
    if int(index) < 0:
        raise ValueError(f"index must be >= 0 (positions already cached), got {int(index)}.")
    if int(index) + new > length:
        raise ValueError(
            f"the cache holds S={length} positions but index={int(index)} plus {new} new "
            f"position(s) would need {int(index) + new}; make the cache longer."
        )


def check_self_attention_module(module, what: str) -> None:
    """Self-attention reads queries, keys and values from one input: one width."""
    if module.in_kv_features != module.in_features:
        raise ValueError(
            f"{what} is self-attention: it needs in_kv_features == in_features, "
            f"but this module has in_kv_features={module.in_kv_features} and "
            f"in_features={module.in_features}; use project_kv + attend_to_cache instead."
        )


def check_offset(offset) -> None:
    """A mask's ``offset``: an int or an integer scalar array (may be traced)."""
    check_int_scalar(
        "offset", offset, what="an int or an integer scalar array (the number of cached keys)"
    )


def check_window_given(local_window_size) -> tuple[int, int]:
    """:func:`check_local_window` for a window that must be given (not None)."""
    window = check_local_window(local_window_size)
    if window is None:
        raise TypeError(
            "local_window_mask needs local_window_size=w or (left, right), got None (no "
            "window: attend every key, or leave the mask out)."
        )
    return window


def check_padding_mask_args(lengths, max_len, tokens, pad_id):
    """``padding_mask``'s two forms: ``lengths`` with ``max_len``, or ``tokens`` with
    ``pad_id``. Returns ``(lengths as an array or None, max_len as an int or None)``."""
    if (lengths is None) == (tokens is None):
        raise ValueError(
            "padding_mask needs either lengths= (with max_len=) or tokens= (with pad_id=), "
            "not both and not neither."
        )
    if tokens is not None:
        if pad_id is None:
            raise ValueError("padding_mask(tokens=...) needs pad_id=, the id of the padding token.")
        check_int_scalar("pad_id", pad_id, what="an int (the id of the padding token)")
        check_integer("tokens", tokens, axes="BS")
        return None, None
    # A list of lengths is accepted and made an array: lengths are often written by hand.
    lengths = jnp.asarray(lengths)
    if max_len is None:
        raise ValueError("padding_mask(lengths=...) needs max_len=, the padded length S.")
    max_len = check_positive_int("max_len", max_len)
    check_integer("lengths", lengths, axes="B")
    # Under jit the values cannot be read, only the shape; an empty batch has no values.
    if not is_traced(lengths) and lengths.size:
        low, high = int(lengths.min()), int(lengths.max())
        if low < 0 or high > max_len:
            raise ValueError(
                f"lengths must lie in 0..max_len={max_len}, got values {low}..{high}."
            )
    return lengths, max_len


def check_masks_combine(masks) -> tuple[int, ...]:
    """Boolean masks whose shapes broadcast together; returns the broadcast shape."""
    for i, mask in enumerate(masks):
        check_mask_dtype(f"mask {i} given to combine_masks", mask)
    try:
        return jnp.broadcast_shapes(*(m.shape for m in masks))
    except ValueError:
        shapes = ", ".join(shape_str(m.shape) for m in masks)
        raise ValueError(
            f"combine_masks got masks of shapes {shapes}, which do not broadcast together; "
            f"each axis must be 1 or equal, counting from the right."
        ) from None


def check_softmax_args(scores, mask, axis) -> int:
    """Floating ``scores``, a boolean ``mask`` broadcasting to them, an ``axis`` of them;
    returns the axis as ``0..ndim-1``."""
    check_floating("scores", scores)
    axis = check_axis("axis", axis, scores, array_name="scores")
    if mask is not None:
        check_mask(mask, scores.shape, axes=None)
    return axis


# ------------------------------------------------------------------ positions (step 8)


def check_position_span(length: int, offset, max_len: int) -> None:
    """Positions ``offset .. offset+length-1`` fit a table of ``max_len`` rows (a traced
    ``offset`` is not checked: ``lax.dynamic_slice`` clamps it)."""
    check_positive_int("the sequence length", length)
    if is_traced(offset):
        if length > max_len:
            raise ValueError(
                f"a sequence of length {length} is longer than max_len={max_len} positions."
            )
        return
    if int(offset) < 0 or int(offset) + length > max_len:
        raise ValueError(
            f"positions {int(offset)}..{int(offset) + length - 1} are needed but the table "
            f"has max_len={max_len} positions (0..{max_len - 1}); shorten the sequence or "
            f"build the model with a larger max_len."
        )


def check_rope_base(base) -> float:
    """RoPE's frequency base, a number > 0."""
    return check_real("base", base, low=0.0, low_inclusive=False)


def check_rope_head_dim(head_dim) -> int:
    """RoPE rotates pairs of dimensions: a positive, even head dim."""
    head_dim = check_positive_int("head_dim", head_dim)
    if head_dim % 2:
        raise ValueError(
            f"RoPE rotates pairs of dimensions, so head_dim must be even, got {head_dim}."
        )
    return head_dim


def check_rope_args(x, positions, base, head_dim: int | None = None) -> float:
    """``apply_rope``'s floating ``x [*B, T, N, H]`` with H even (``head_dim`` if given),
    integer ``positions`` ``[T]`` or ``[*B, T]``, and ``base > 0``; returns the base."""
    check_floating("x", x)
    if head_dim is not None and (x.ndim < 1 or x.shape[-1] != head_dim):
        raise ValueError(
            f"x has head dim {x.shape[-1] if x.ndim else None} (shape {shape_str(x.shape)}) "
            f"but this RotaryEmbedding was built with head_dim={head_dim}."
        )
    if x.ndim < 3:
        raise ValueError(
            f"x must have shape [*B, T, N, H] (at least [T, N, H]), got {shape_str(x.shape)}."
        )
    if x.shape[-1] % 2:
        raise ValueError(
            f"RoPE rotates pairs of dimensions (x_2i, x_2i+1), so the head dim H must be even; "
            f"x has shape {shape_str(x.shape)} with H={x.shape[-1]}. Choose d_model / num_heads "
            f"even."
        )
    base = check_rope_base(base)
    check_integer("positions", positions)
    T, batch = x.shape[-3], tuple(x.shape[:-3])
    if tuple(positions.shape) not in ((T,), (*batch, T)):
        expected = f"[T] = {shape_str((T,))}" + (
            f" or [*B, T] = {shape_str((*batch, T))}" if batch else ""
        )
        raise ValueError(
            f"positions must give one position per row of x, {expected} for x of shape "
            f"{shape_str(x.shape)}, got {shape_str(positions.shape)}."
        )
    return base


# Checks moved from kernels/, training/, inspection/ and data/

# ---------------------------------------------------------------------------------------------
# Kernels (step 27..): one call, check_kernel_args, at the top of every attention kernel.


def check_block_size(name: str, value, *, multiple_of: int = 1) -> int:
    """Return ``value`` as an int: a positive int (``TypeError`` for a bool or a float,
    ``ValueError`` below 1) that is a multiple of ``multiple_of`` (``ValueError``)."""
    value = check_positive_int(name, value)
    if value % multiple_of:
        raise ValueError(
            f"{name} must be a multiple of {multiple_of} on this backend, got {value}; "
            f"try {max(multiple_of, value // multiple_of * multiple_of)}."
        )
    return value


def resolve_lengths(query_seq_lengths, key_value_seq_lengths, query_lengths, key_lengths):
    """``(query lengths, its name, key lengths, its name)`` from the new names and the old.

    ``query_lengths`` and ``key_lengths`` are the kernels' old names; they mean the same.
    Giving both forms of one is a ``ValueError`` (which one should win would be a guess).
    """
    resolved = []
    for new, old, new_name, old_name in (
        (query_seq_lengths, query_lengths, "query_seq_lengths", "query_lengths"),
        (key_value_seq_lengths, key_lengths, "key_value_seq_lengths", "key_lengths"),
    ):
        if new is not None and old is not None:
            raise ValueError(
                f"give {new_name}= or its old name {old_name}=, not both (they mean the same)."
            )
        resolved += [old, old_name] if old is not None else [new, new_name]
    return tuple(resolved)


def check_attention_args(
    query, key, value=None, *, mask=None, bias=None, scale=None, query_seq_lengths=None,
    key_value_seq_lengths=None, local_window_size=None, query_name="query_seq_lengths",
    key_value_name="key_value_seq_lengths", bias_ok: bool = True, kernel: str = "this kernel",
) -> tuple[int, int] | None:
    """The arguments of ``attention_weights`` / ``dot_product_attention`` and of every kernel.

    Returns the window as ``(left, right)`` (or None). The lengths are checked under the name
    the caller used (``key_lengths`` or ``key_value_seq_lengths``).
    """
    check_qkv(query, key, value)
    check_scale(scale)
    target = (*query.shape[:-3], query.shape[-2], query.shape[-3], key.shape[-3])
    axes = "BNTS" if query.ndim == 4 else "NTS"
    if mask is not None:
        check_mask(mask, target, axes)
    if bias is not None:
        if not bias_ok:
            raise ValueError(
                f"{kernel} takes no bias (it never forms the [B, N, T, S] scores to add it "
                "to); give key padding as key_value_seq_lengths= (or a boolean mask= to "
                "flash_attention), or use fused_attention / dot_product_attention for an "
                "additive bias."
            )
        check_floating("bias", bias)
        check_broadcastable("bias", bias, target, axes)
    batch = query.shape[0] if query.ndim == 4 else None
    # Lengths closed over by a jitted function are concrete, but a jnp reduction of them
    # inside the trace would be staged (a tracer that cannot be read): evaluate the range
    # check at trace time instead. Traced lengths skip it (check_seq_lengths tests that).
    with jax.ensure_compile_time_eval():
        if query_seq_lengths is not None:
            check_seq_lengths(query_name, query_seq_lengths, batch, query.shape[-3])
        if key_value_seq_lengths is not None:
            check_seq_lengths(key_value_name, key_value_seq_lengths, batch, key.shape[-3])
    return check_local_window(local_window_size)


def check_kernel_args(
    query, key, value, bias, mask, scale, *, query_seq_lengths=None,
    key_value_seq_lengths=None, query_lengths=None, key_lengths=None, local_window_size=None,
    kernel: str, bias_ok: bool = True, mask_ok: bool = True, block_sizes=None,
    block_multiple: int = 1,
):
    """Every check of an attention kernel's arguments; returns ``(window, ql, kl)``.

    ``window`` is ``(left, right)`` or None; ``ql``, ``kl``: the query and key/value lengths
    under either name (:func:`resolve_lengths`). ``block_sizes``: ``{"block_q": 64, ...}``,
    each checked by :func:`check_block_size` with ``block_multiple``.
    """
    ql, ql_name, kl, kl_name = resolve_lengths(
        query_seq_lengths, key_value_seq_lengths, query_lengths, key_lengths)
    window = check_attention_args(
        query, key, value, bias=bias, mask=mask if mask_ok else None, scale=scale,
        query_seq_lengths=ql,
        query_name=ql_name, key_value_seq_lengths=kl, key_value_name=kl_name,
        local_window_size=local_window_size, bias_ok=bias_ok, kernel=kernel,
    )
    if mask is not None and not mask_ok:
        raise ValueError(
            f"{kernel} takes no boolean mask=; give key padding as "
            "key_value_seq_lengths=[B] (and query padding as query_seq_lengths=), with "
            "is_causal= and local_window_size= for causal and sliding-window masking, or use "
            "flash_attention, which slices any mask broadcastable to [B, N, T, S]."
        )
    for name, size in (block_sizes or {}).items():
        check_block_size(name, size, multiple_of=block_multiple)
    return window, ql, kl


# ---------------------------------------------------------------------------------------------
# Training (steps 19-23).


def check_targets(name: str, layout: str, per_position, targets, pad_id) -> None:
    """``targets [B, T]``: integer ids, one per position of ``per_position [B, T, _]``."""
    check_integer("targets", targets)
    check_int_scalar("pad_id", pad_id, what="an int (the id of the padding token)")
    if per_position.shape[:-1] != targets.shape:
        raise ValueError(
            f"{name} {layout} = {shape_str(per_position.shape)} and targets [B, T] = "
            f"{shape_str(targets.shape)} must agree on B and T."
        )


def check_logits_targets(logits, targets, pad_id) -> None:
    """Float ``logits [B, T, V]`` and integer ``targets [B, T]``, an int ``pad_id``."""
    check_floating("logits", logits, axes="BTV")
    check_targets("logits", "[B, T, V]", logits, targets, pad_id)


def check_label_smoothing(label_smoothing) -> float:
    """epsilon_ls, a real number in [0, 1)."""
    return check_real("label_smoothing", label_smoothing, low=0.0, high=1.0,
                      high_inclusive=False)


def check_loss_args(logits, targets, pad_id, label_smoothing) -> float:
    """The checks of the label-smoothed loss; returns ``label_smoothing`` as a float."""
    check_logits_targets(logits, targets, pad_id)
    return check_label_smoothing(label_smoothing)


def check_projected_loss_args(hidden, weight, targets, pad_id, label_smoothing, chunk_tokens):
    """``hidden [B, T, D]``, ``weight [V, D]`` sharing D, targets as :func:`check_targets`;
    returns ``(label_smoothing, chunk_tokens)`` as a float and an int."""
    check_floating("hidden", hidden, axes="BTD")
    check_floating("weight", weight, axes="VD")
    if hidden.shape[-1] != weight.shape[-1]:
        raise ValueError(
            f"hidden [B, T, D] = {shape_str(hidden.shape)} and weight [V, D] = "
            f"{shape_str(weight.shape)} must have the same D."
        )
    check_targets("hidden", "[B, T, D]", hidden, targets, pad_id)
    return check_label_smoothing(label_smoothing), check_positive_int("chunk_tokens", chunk_tokens)


def check_shardable(name: str, array, num_devices: int) -> None:
    """An array with a batch axis (axis 0) that ``num_devices`` divide."""
    check_array(name, array)
    if array.ndim == 0:
        raise ValueError(
            f"{name} must have a batch axis (axis 0) to split across the "
            f"devices, got a scalar {array!r}."
        )
    if array.shape[0] % num_devices:
        raise ValueError(
            f"batch size {array.shape[0]} must be divisible by the {num_devices} devices "
            f"of the mesh; pick a batch size that is a multiple of {num_devices}."
        )


# ---------------------------------------------------------------------------------------------
# Data (step 18..).


def check_choice(name: str, value, choices, *, aliases=None):
    """Return ``value`` (an alias first replaced by its name) if it is one of ``choices``.

    >>> check_choice("split", "val", ("train", "valid"), aliases={"val": "valid"})
    'valid'
    >>> check_choice("split", "dev", ("train", "valid"))
    Traceback (most recent call last):
    ...
    ValueError: split must be one of ('train', 'valid'), got 'dev'.
    """
    if aliases:
        value = aliases.get(value, value)
    if value not in choices:
        also = f" (or {tuple(aliases)})" if aliases else ""
        raise ValueError(f"{name} must be one of {tuple(choices)}{also}, got {value!r}.")
    return value


def check_language_pair(source, target, languages) -> None:
    """``source`` and ``target`` two different languages of ``languages``."""
    for name, lang in (("source", source), ("target", target)):
        check_choice(name, lang, languages)
    if source == target:
        raise ValueError(f"source and target must differ, got {source!r} for both.")


def check_bucket_args(num_buckets, drop_remainder: bool, pad_remainder: bool) -> int | None:
    """The bucketing checks of :class:`attention.data.batching.Batcher`; returns ``num_buckets``
    as an int (or None)."""
    if drop_remainder and pad_remainder:
        raise ValueError(
            "give at most one of drop_remainder and pad_remainder (the last batch of a bucket "
            "is either dropped or filled), got both True."
        )
    return None if num_buckets is None else check_positive_int("num_buckets", num_buckets)


def check_batcher_args(batch_size, batch_tokens, max_len, overflow, overflows,
                       pad_to_multiple, seed, src_eos):
    """The checks of :class:`attention.data.batching.Batcher`; returns ``(batch_size,
    batch_tokens, max_len, pad_to_multiple, seed)`` as ints (or None where None)."""
    if (batch_size is None) == (batch_tokens is None):
        raise ValueError(
            f"give exactly one of batch_size and batch_tokens, got batch_size={batch_size!r} "
            f"and batch_tokens={batch_tokens!r}."
        )
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    if batch_tokens is not None:
        batch_tokens = check_positive_int("batch_tokens", batch_tokens)
    pad_to_multiple = check_positive_int("pad_to_multiple", pad_to_multiple)
    if max_len is not None:
        max_len = check_positive_int("max_len", max_len)
        if max_len < 1 + src_eos:
            raise ValueError(
                f"max_len must leave room for at least one token beside </s>, got {max_len}."
            )
    check_choice("overflow", overflow, overflows)
    seed = check_non_negative_int("seed", seed)
    return batch_size, batch_tokens, max_len, pad_to_multiple, seed


def check_epoch_args(epoch, start_step, steps: int) -> tuple[int, int]:
    """An ``epoch`` >= 0 and a ``start_step`` in ``0..steps``; returns them as ints."""
    epoch = check_non_negative_int("epoch", epoch)
    start_step = check_int("start_step", start_step)
    if not 0 <= start_step <= steps:
        raise ValueError(
            f"start_step must be in 0..{steps} (batches per epoch), got {start_step!r}."
        )
    return epoch, start_step


def check_repeats_args(num_docs, num_words, lengths, words):
    """The checks of :func:`attention.data.lm_corpus.make_repeats`; returns ``(num_docs,
    num_words, lengths)`` as ints."""
    num_docs = check_non_negative_int("num_docs", num_docs)
    num_words = check_positive_int("num_words", num_words)
    if isinstance(lengths, (str, int)) or len(lengths) == 0:
        raise ValueError(f"lengths must be a non-empty list of ints, got {lengths!r}.")
    lengths = [check_positive_int("lengths", L) for L in lengths]
    if max(lengths) > num_words:
        raise ValueError(f"lengths must be at most num_words={num_words}, got {max(lengths)}.")
    if len(words) < 2:
        raise ValueError(f"words must hold at least two words, got {len(words)}.")
    return num_docs, num_words, lengths


def check_task_args(name, num_examples, min_len, max_len, *, tasks, default_lengths,
                    svo_lengths):
    """The checks of :func:`attention.data.synthetic.make_task`; returns ``(num_examples,
    min_len, max_len)`` as ints, the lengths defaulted from ``default_lengths[name]`` (None
    for ``dates``, whose lengths are fixed)."""
    check_choice("name", name, tasks)
    num_examples = check_non_negative_int("num_examples", num_examples)
    if name == "dates":
        if min_len is not None or max_len is not None:
            raise ValueError(
                f"the dates task has fixed lengths (YYYY-MM-DD), so min_len and max_len must "
                f"be None, got min_len={min_len!r}, max_len={max_len!r}."
            )
        return num_examples, None, None
    default_min, default_max = default_lengths[name]
    min_len = default_min if min_len is None else min_len
    max_len = default_max if max_len is None else max_len
    min_len, max_len = check_int("min_len", min_len), check_int("max_len", max_len)
    low, high = svo_lengths
    if name == "svo_to_sov" and not low <= min_len <= max_len <= high:
        raise ValueError(
            f"svo_to_sov makes sentences of {low} to {high} words, so min_len and "
            f"max_len must satisfy {low} <= min_len <= max_len <= {high}, got "
            f"min_len={min_len}, max_len={max_len}."
        )
    if not 1 <= min_len <= max_len:
        raise ValueError(
            f"min_len and max_len must satisfy 1 <= min_len <= max_len, got min_len={min_len}, "
            f"max_len={max_len}."
        )
    return num_examples, min_len, max_len


# ---------------------------------------------------------------------------------------------
# Inspection (steps 24-26).

# The keys of the dict that the transformer's ``attention_maps`` returns, with their axes.
MAP_KINDS = {
    "encoder_self": "LBNSS",
    "decoder_self": "LBNTT",
    "decoder_cross": "LBNTS",
}


def check_token_labels(
    name: str, tokens, length: int, axis: str, shape
) -> list[str] | None:
    """The labels of one axis of attention weights: ``length`` token strings, or None.

    ``shape`` is that of the weights, for the message. Returns the labels as ``str``.

    >>> check_token_labels("key_tokens", ["the", "cat"], 2, "S", (3, 2))
    ['the', 'cat']
    """
    if tokens is None:
        return None
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"{name} must be a sequence of token strings, got {type(tokens).__name__}.")
    if len(tokens) != length:
        raise ValueError(
            f"{name} has {len(tokens)} tokens but the weights have {axis}={length} "
            f"(shape {shape_str(shape)}); pass one token per position, padding included."
        )
    return [str(t) for t in tokens]


def check_attention_maps(maps) -> tuple[int, int, int, int, int]:
    """Check the dict of ``attention_maps``; return its sizes ``(L, B, N, T, S)``.

    The dict must hold ``encoder_self`` ``[L, B, N, S, S]``, ``decoder_self``
    ``[L, B, N, T, T]`` and ``decoder_cross`` ``[L, B, N, T, S]`` (see :data:`MAP_KINDS`),
    floating, with each letter the same size in every entry. Other keys are ignored.

    Raises:
      TypeError: ``maps`` not a mapping, or an entry not a floating array.
      KeyError: a missing kind.
      ValueError: an entry of the wrong rank, or sizes that disagree between the kinds.

    >>> maps = {kind: np.zeros([dict(L=1, B=2, N=3, T=4, S=5)[a] for a in axes], np.float32)
    ...         for kind, axes in MAP_KINDS.items()}
    >>> check_attention_maps(maps)
    (1, 2, 3, 4, 5)
    """
    if not isinstance(maps, Mapping):
        raise TypeError(
            f"maps must be the dict returned by attention_maps (keys {', '.join(MAP_KINDS)}), "
            f"got {type(maps).__name__}."
        )
    sizes: dict[str, int] = {}
    for kind, axes in MAP_KINDS.items():
        if kind not in maps:
            raise KeyError(
                f"maps has no {kind!r} entry; expected the keys {', '.join(MAP_KINDS)}, "
                f"got {', '.join(map(str, maps))}."
            )
        array = maps[kind]
        if not hasattr(array, "shape"):
            array = np.asarray(array)
        check_floating(f"maps[{kind!r}]", array)
        if array.ndim != len(axes):
            raise ValueError(
                f"maps[{kind!r}] must have shape [{', '.join(axes)}], got {shape_str(array.shape)}."
            )
        for letter, size in zip(axes, array.shape, strict=True):
            if sizes.setdefault(letter, size) != size:
                raise ValueError(
                    f"maps[{kind!r}] has {letter}={size} (shape {shape_str(array.shape)}) "
                    f"but another entry has {letter}={sizes[letter]}."
                )
    return sizes["L"], sizes["B"], sizes["N"], sizes["T"], sizes["S"]


HISTORY_KEYS = ("step", "loss", "nll", "learning_rate")


def check_history(history) -> dict[str, np.ndarray]:
    """The four logged series of a training ``history`` (a list of dicts with the keys
    :data:`HISTORY_KEYS`) as float64 ``[steps]`` arrays."""
    if isinstance(history, str | Mapping) or not isinstance(history, Sequence):
        raise TypeError(
            f"history must be a list of dicts (FitResult.history), got {type(history).__name__}."
        )
    if not history:
        raise ValueError("history is empty; log at least one step (TrainConfig.log_every).")
    series: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
    for i, line in enumerate(history):
        if not isinstance(line, Mapping):
            raise TypeError(
                f"history[{i}] must be a dict with keys {', '.join(HISTORY_KEYS)}, got "
                f"{type(line).__name__}."
            )
        missing = [key for key in HISTORY_KEYS if key not in line]
        if missing:
            raise ValueError(
                f"history[{i}] has no {', '.join(map(repr, missing))}; each entry needs the "
                f"keys {', '.join(HISTORY_KEYS)}, got {', '.join(map(str, line))}."
            )
        for key in HISTORY_KEYS:
            series[key].append(check_real(f"history[{i}][{key!r}]", line[key]))
    return {key: np.asarray(values, dtype=np.float64) for key, values in series.items()}


def check_explorer_example(i: int, example) -> dict:
    """``examples[i]`` of the explorer: its tokens, maps, index and sizes ``(L, B, N, T, S)``."""
    where = f"examples[{i}]"
    if not isinstance(example, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(example).__name__}.")
    for key in ("source_tokens", "target_tokens", "attention_maps"):
        if key not in example:
            raise KeyError(
                f"{where} has no {key!r}; each example needs source_tokens, target_tokens "
                f"and attention_maps."
            )
    try:
        L, B, N, T, S = check_attention_maps(example["attention_maps"])
    except (TypeError, KeyError, ValueError) as error:
        message = error.args[0] if error.args else str(error)
        raise type(error)(f"{where}['attention_maps']: {message}") from None
    expected = f"an int in 0..{B - 1} (B={B})"
    index = check_int(f"{where}['index']", example.get("index", 0), minimum=0, what=expected)
    if index >= B:
        raise ValueError(f"{where}['index'] must be {expected}, got {index!r}.")
    cross_shape = example["attention_maps"]["decoder_cross"].shape
    tokens = {
        key: check_token_labels(f"{where}[{key!r}]", example[key], length, axis, cross_shape)
        for key, length, axis in (("source_tokens", S, "S"), ("target_tokens", T, "T"))
    }
    return {
        **tokens,
        "attention_maps": example["attention_maps"],
        "index": index,
        "sizes": (L, B, N, T, S),
    }


def check_beam_step(i: int, step, source_length: int | None) -> dict:
    """``beam_steps[i]`` of the explorer: ``{"step", "beams", "cross_attention"}``."""
    where = f"beam_steps[{i}]"
    if not isinstance(step, Mapping) or "beams" not in step:
        raise TypeError(f"{where} must be a dict with a 'beams' list of (tokens, score) pairs.")
    beams = []
    for j, beam in enumerate(step["beams"]):
        if not (isinstance(beam, Sequence) and len(beam) == 2):
            raise ValueError(f"{where}['beams'][{j}] must be a (tokens, score) pair, got {beam!r}.")
        tokens, score = beam
        if isinstance(tokens, str):
            tokens = tokens.split()
        beams.append(([str(t) for t in tokens], float(score)))
    if not beams:
        raise ValueError(f"{where}['beams'] is empty; a step needs at least one beam.")
    cross = step.get("cross_attention")
    if cross is not None:
        cross = cross if hasattr(cross, "shape") else np.asarray(cross)
        check_floating(f"{where}['cross_attention']", cross)
        if cross.ndim != 2 or cross.shape[0] != len(beams):
            raise ValueError(
                f"{where}['cross_attention'] must have shape [K, S] with K={len(beams)} "
                f"beams, got {shape_str(cross.shape)}."
            )
        if source_length is not None and cross.shape[1] != source_length:
            raise ValueError(
                f"{where}['cross_attention'] has S={cross.shape[1]} but beam_source_tokens "
                f"has {source_length} tokens."
            )
        cross = np.asarray(cross, dtype=np.float32)
    return {"step": step.get("step", i), "beams": beams, "cross_attention": cross}


def check_explorer_args(examples, max_labels, beam_steps, beam_source_tokens):
    """The checks of :class:`attention.inspection.explorer.AttentionExplorer`; returns
    ``(examples, max_labels, beam_steps)`` normalised (``beam_steps`` ``[]`` for None)."""
    if isinstance(examples, Mapping) or not isinstance(examples, Sequence) or not examples:
        raise ValueError(
            "examples must be a non-empty list of dicts with source_tokens, target_tokens "
            f"and attention_maps, got {type(examples).__name__} "
            f"{'(empty)' if not examples else ''}".rstrip()
            + "."
        )
    examples = [check_explorer_example(i, example) for i, example in enumerate(examples)]
    max_labels = check_positive_int("max_labels", max_labels)
    if beam_steps is None:
        return examples, max_labels, []
    source_length = None if beam_source_tokens is None else len(beam_source_tokens)
    steps = [check_beam_step(i, step, source_length) for i, step in enumerate(beam_steps)]
    if not steps:
        raise ValueError("beam_steps is empty; pass None for no beam search.")
    return examples, max_labels, steps


WEIGHT_TOLERANCE = 1e-3  # float32 softmax rows may overshoot 1 by rounding, never by more.


def check_attention_layers(name: str, layers) -> np.ndarray:
    """``layers`` (a list of L ``[N, T, S]`` arrays, or one ``[L, N, T, S]`` array) as float32
    ``[L, N, T, S]``, or a one-line TypeError/ValueError naming the shapes."""
    if hasattr(layers, "shape"):
        check_floating(name, layers)
        if layers.ndim != 4:
            hint = (" Pick one sentence of a batch first, e.g. maps['decoder_cross'][:, b]."
                    if layers.ndim == 5 else
                    " A single layer is layers[None]; a single head is layers[None, None].")
            raise ValueError(
                f"{name} must have shape [L, N, T, S] (layers, heads, queries, keys) or be a "
                f"list of L arrays [N, T, S], got shape {shape_str(layers.shape)}.{hint}"
            )
        stacked = np.asarray(layers, dtype=np.float32)
    else:
        if isinstance(layers, (str, bytes, Mapping)) or not isinstance(layers, Sequence):
            raise TypeError(
                f"{name} must be a list of L arrays [N, T, S] or one array [L, N, T, S], "
                f"got {type(layers).__name__}."
            )
        if len(layers) == 0:
            raise ValueError(f"{name} is empty; give at least one layer of [N, T, S] weights.")
        for i, layer in enumerate(layers):
            check_floating(f"{name}[{i}]", layer)
            if layer.ndim != 3:
                hint = (" Pick one sentence of the batch first, e.g. layer[b]."
                        if layer.ndim == 4 else "")
                raise ValueError(
                    f"{name}[{i}] must have shape [N, T, S] (heads, queries, keys), got "
                    f"{shape_str(layer.shape)}.{hint}"
                )
            if layer.shape != layers[0].shape:
                raise ValueError(
                    f"{name}[{i}] has shape {shape_str(layer.shape)} but {name}[0] has "
                    f"{shape_str(layers[0].shape)}; every layer must have the same [N, T, S]."
                )
        stacked = np.stack([np.asarray(layer, dtype=np.float32) for layer in layers])
    if stacked.size == 0:
        raise ValueError(f"{name} has an empty axis: shape {shape_str(stacked.shape)}.")
    finite = np.isfinite(stacked)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{name} (shape [L, N, T, S] = {shape_str(stacked.shape)}) holds "
            f"{int((~finite).sum())} NaN or infinite weight(s), the first at [l, n, t, s] = "
            f"{list(where)}; weights must be finite (did a fully masked row use -inf?)."
        )
    low, high = float(stacked.min()), float(stacked.max())
    if low < -WEIGHT_TOLERANCE or high > 1 + WEIGHT_TOLERANCE:
        raise ValueError(
            f"{name} (shape {shape_str(stacked.shape)}) must hold attention weights in [0, 1], "
            f"got values from {low:.4g} to {high:.4g}; pass softmax weights, not scores."
        )
    return np.clip(stacked, 0.0, 1.0)


def check_section_args(layers, query_tokens, key_tokens, mask, causal):
    """The checks of :func:`attention.inspection.views.attention_section`; returns
    ``(weights [L, N, T, S] float32, query labels, key labels)`` (keys = queries if None)."""
    weights_LNTS = check_attention_layers("layers", layers)
    _, _, T, S = shape = weights_LNTS.shape
    if query_tokens is None:
        raise TypeError("query_tokens must be a sequence of T token strings, got None.")
    query = check_token_labels("query_tokens", query_tokens, T, "T", shape)
    if key_tokens is None:
        if S != T:
            raise ValueError(
                f"key_tokens is None (self-attention) but the weights have T={T} queries and "
                f"S={S} keys (shape {shape_str(shape)}); pass key_tokens for cross-attention."
            )
        key = list(query)
    else:
        key = check_token_labels("key_tokens", key_tokens, S, "S", shape)
    if mask is not None:
        check_mask(mask if hasattr(mask, "dtype") else np.asarray(mask), (T, S), "TS")
    if causal and S != T:
        raise ValueError(
            f"causal=True needs square weights (S = T), got T={T}, S={S} "
            f"(shape {shape_str(shape)})."
        )
    return weights_LNTS, query, key


def check_translation_view_args(maps, source_tokens, target_tokens, example) -> None:
    """The checks of :func:`attention.inspection.views.translation_view`."""
    _, B, _, T, S = check_attention_maps(maps)
    if not (is_int(example) and 0 <= example < B):
        raise ValueError(f"example must be an int in 0..{B - 1} (B={B}), got {example!r}.")
    cross_shape = maps["decoder_cross"].shape
    for name, tokens, length, axis in (("source_tokens", source_tokens, S, "S"),
                                       ("target_tokens", target_tokens, T, "T")):
        if tokens is None:
            raise TypeError(f"{name} must be a sequence of {axis}={length} token strings, "
                            f"got None.")
        check_token_labels(name, tokens, length, axis, cross_shape)


def check_weights_and_labels(weights, axes: str, query_tokens, key_tokens, *,
                             names=("query_tokens", "key_tokens"), max_labels=None):
    """Attention ``weights`` of axes ``axes`` (ending in ``TS``) and the labels of T and S.

    Returns ``(weights as float32 NumPy, query labels, key labels)`` (labels None if None);
    ``max_labels``, when given, must be a positive int.
    """
    if not hasattr(weights, "shape"):
        weights = np.asarray(weights)
    check_floating("weights", weights)
    hint = (" Select one slice first, e.g. maps['decoder_cross'][layer, batch, head]."
            if weights.ndim > len(axes) else "")
    check_rank("weights", weights, axes, hint=hint)
    weights = np.asarray(weights, dtype=np.float32)
    T, S = weights.shape[-2:]
    query = check_token_labels(names[0], query_tokens, T, "T", weights.shape)
    key = check_token_labels(names[1], key_tokens, S, "S", weights.shape)
    if max_labels is not None:
        check_positive_int("max_labels", max_labels)
    return weights, query, key


def check_maps_and_labels(maps, layer, source_tokens, target_tokens):
    """``attention_maps``, a ``layer`` index and the labels of S and T; returns
    ``((L, B, N, T, S), layer index, source labels, target labels)``."""
    L, B, N, T, S = sizes = check_attention_maps(maps)
    layer_index = check_index("layer", layer, L, "L")
    shape = maps["decoder_cross"].shape
    source = check_token_labels("source_tokens", source_tokens, S, "S", shape)
    target = check_token_labels("target_tokens", target_tokens, T, "T", shape)
    return sizes, layer_index, source, target


def check_head_summary_args(weights, mask):
    """Floating weights ``[L, N, T, S]`` or ``[N, T, S]`` and a mask for the latter;
    returns them as ``[L, N, T, S]`` float32 and ``[1, N, T, S]`` (or the mask as given)."""
    if not hasattr(weights, "shape"):
        weights = np.asarray(weights)
    check_floating("weights", weights)
    if weights.ndim not in (3, 4):
        raise ValueError(
            f"weights must have shape [L, N, T, S] (or [N, T, S]), got {shape_str(weights.shape)}."
        )
    weights_LNTS = np.asarray(weights, dtype=np.float32)
    if weights.ndim == 3:
        if mask is not None:
            mask = np.asarray(mask)
            check_mask(mask, weights.shape, "NTS")
            mask = np.broadcast_to(mask, weights.shape)[None]
        weights_LNTS = weights_LNTS[None]
    return weights_LNTS, mask


def check_select_map_args(maps, kind, example, layer, head):
    """The checks of :func:`attention.inspection.analysis.select_map`; returns
    ``(example, layer, head)`` as indices (``head`` may be None)."""
    L, B, N, _, _ = check_attention_maps(maps)
    if kind not in MAP_KINDS:
        raise ValueError(f"kind must be one of {', '.join(MAP_KINDS)}, got {kind!r}.")
    example = check_index("example", example, B, "B")
    layer = check_index("layer", layer, L, "L")
    head = check_index("head", head, N, "N", allow_none=True)
    return example, layer, head


def check_head_stats_args(weights, mask, base=None):
    """Floating ``weights [..., N, T, S]``, a boolean ``mask`` broadcastable to them and a
    logarithm ``base > 1`` (when given); returns them as float32, a NumPy mask, a float."""
    if base is not None:
        base = check_real("base", base, low=1.0, low_inclusive=False)
    if not hasattr(weights, "shape"):
        weights = np.asarray(weights)
    check_floating("weights", weights)
    if weights.ndim < 3:
        raise ValueError(
            f"weights must have shape [..., N, T, S] (at least heads, queries, keys), got "
            f"{shape_str(weights.shape)}; for a single head pass weights[None]."
        )
    weights = np.asarray(weights, dtype=np.float32)
    if mask is not None:
        if not hasattr(mask, "dtype"):
            mask = np.asarray(mask)
        check_mask(mask, weights.shape, None)
        mask = np.asarray(mask)
    return weights, mask, base


def _is_sequence(value) -> bool:
    # A string is a Sequence too, but never a list of rows or positions.
    return isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes)


def check_alignments(cross, alignments) -> list[tuple[int, int, list[int]]]:
    """Cross-attention ``[L, B, N, T, S]`` and its true ``alignments`` (see
    :func:`attention.inspection.analysis.alignment_accuracy`); returns the scored rows as
    ``(b, t, source positions)``, at least one."""
    if not hasattr(cross, "shape"):
        cross = np.asarray(cross)
    check_floating("cross", cross)
    check_rank(
        "cross", cross, "LBNTS", hint=' Pass all of attention_maps(...)["decoder_cross"].'
    )
    L, B, N, T, S = cross.shape
    if not _is_sequence(alignments):
        raise TypeError(
            f"alignments must be a sequence of B={B} per-sentence alignments, got "
            f"{type(alignments).__name__}."
        )
    if len(alignments) != B:
        raise ValueError(
            f"alignments has {len(alignments)} sentences but cross has B={B} "
            f"(shape {shape_str(cross.shape)}); pass one alignment per sentence of the batch."
        )
    scored = []
    for b, rows in enumerate(alignments):
        if not _is_sequence(rows):
            raise TypeError(
                f"alignments[{b}] must be a sequence over decoder rows, got {type(rows).__name__}."
            )
        if len(rows) > T:
            raise ValueError(
                f"alignments[{b}] has {len(rows)} rows but cross has T={T} decoder rows "
                f"(shape {shape_str(cross.shape)})."
            )
        for t, truth in enumerate(rows):
            if truth is None:
                continue
            if not _is_sequence(truth):
                raise TypeError(
                    f"alignments[{b}][{t}] must be a sequence of source positions or None, "
                    f"got {truth!r} ({type(truth).__name__})."
                )
            positions = [
                check_int(f"alignments[{b}][{t}][{i}]", p, what="an int source position")
                for i, p in enumerate(truth)
            ]
            for i, p in enumerate(positions):
                if not 0 <= p < S:
                    raise ValueError(
                        f"alignments[{b}][{t}][{i}]={p} is outside the source positions "
                        f"0..{S - 1} (S={S})."
                    )
            if positions:
                scored.append((b, t, positions))
    if not scored:
        raise ValueError(
            "alignments has no scored row: every row is None or empty, so there is nothing "
            "to measure the heads against."
        )
    return scored


# ---------------------------------------------------------------------------------------------
# Vectors (steps 0-0j): the searches and the word vectors.


# Row indices named in an error about bad rows; the message gives the count of the rest.
_ROWS_NAMED = 10


def bad_rows_message(name: str, bad_rows: np.ndarray, what: str, total: int) -> str:
    named = ", ".join(str(int(m)) for m in bad_rows[:_ROWS_NAMED])
    more = f" and {len(bad_rows) - _ROWS_NAMED} more" if len(bad_rows) > _ROWS_NAMED else ""
    return (
        f"{name} has {len(bad_rows)} of {total} rows with {what} (rows {named}{more}); "
        f"drop or repair them before searching: a NaN has no cosine with anything."
    )


def check_finite_rows(name: str, array) -> None:
    """ValueError naming the rows of a concrete ``[R, D]`` array that hold a NaN or infinity.

    Skipped under ``jit``, where the values cannot be read. It reads the array once: cheap for
    queries, and a one-time cost for a database being quantized.
    """
    if is_traced(array):
        return
    finite_R = np.asarray(jnp.all(jnp.isfinite(array), axis=-1)).reshape(-1)
    if not finite_R.all():
        raise ValueError(
            bad_rows_message(name, np.flatnonzero(~finite_R), "a NaN or infinity",
                              finite_R.size)
        )


def check_database(database) -> None:
    """A floating ``[M, D]`` database with ``M, D >= 1``: what every index is built from."""
    check_floating("database", database)
    check_rank("database", database, "MD", hint=" The database holds one row per vector.")
    if 0 in database.shape:
        raise ValueError(
            f"database must have at least one row and one column, got shape "
            f"{shape_str(database.shape)}."
        )


def check_counts(counts) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size == 0 or not np.all(counts > 0):
        raise ValueError(
            f"counts must be a non-empty [V] array of positive counts, got shape "
            f"{list(counts.shape)}{'' if counts.size == 0 else f' with minimum {counts.min()}'}."
        )
    return counts


def check_same_width(name_a: str, a, name_b: str, b) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same width D (last axis); got {name_a} "
            f"{shape_str(a.shape)} and {name_b} {shape_str(b.shape)}."
        )


def check_queries_and_k(queries, k, M: int, D: int, searched: str, described: str) -> int:
    """``queries`` ``[Q, D]`` or ``[D]`` of the database's width, ``1 <= k <= M``; returns k.

    Shared by every search. ``searched`` names the argument searched and ``described`` says
    what it holds, for the messages.
    """
    if queries.ndim not in (1, 2):
        raise ValueError(
            f"queries must have shape [Q, D] (or [D] for one query), "
            f"got {shape_str(queries.shape)}."
        )
    if queries.shape[-1] != D:
        raise ValueError(
            f"queries and {searched} must have the same width D (last axis); got queries "
            f"{shape_str(queries.shape)} and {described}."
        )
    k = check_int("k", k)
    if not 1 <= k <= M:
        raise ValueError(f"k must lie in 1..M={M} (the number of database rows), got k={k}.")
    return k


# ---------------------------------------------------------------------------------------------
# Decoding and sampling (steps 17-17c).


def check_beam_search(vocab_size: int, beam_size, length_penalty) -> None:
    """The checks of :func:`beam_search`'s knobs (the command line checks with them too).

    Raises:
      TypeError: a ``beam_size`` that is not an int, a ``length_penalty`` not a number.
      ValueError: ``beam_size`` outside ``1..vocab_size - 2``, ``length_penalty < 0``.
    """
    check_positive_int("beam_size", beam_size)
    if beam_size > vocab_size - 2:
        raise ValueError(
            f"beam_size={beam_size} exceeds the {vocab_size - 2} tokens that can be generated "
            f"(tgt_vocab_size={vocab_size} minus pad and bos)."
        )
    check_real("length_penalty (alpha)", length_penalty, low=0.0)


def check_sampling(vocab_size: int, temperature, top_k, top_p) -> None:
    """The checks of the sampling knobs, with one wording everywhere (CLI included).

    Raises:
      TypeError: a temperature or top_p that is not a number, a top_k that is not an int.
      ValueError: ``temperature <= 0`` (use greedy instead), ``top_k`` outside
        ``1..vocab_size``, ``top_p`` outside ``(0, 1]``.
    """
    # Traced values (inside jit) cannot be inspected; the public functions check before.
    if not is_traced(temperature) and not check_real("temperature", temperature) > 0:
        raise ValueError(
            f"temperature must be > 0, got {temperature}; for the most probable token at "
            f"every step use greedy decoding (greedy=True, or --greedy) instead of "
            f"temperature 0."
        )
    if top_k is not None and not is_traced(top_k):
        check_int("top_k", top_k, what=f"an int in 1..{vocab_size} (the vocabulary size)")
        if not 1 <= top_k <= vocab_size:
            raise ValueError(
                f"top_k must be an int in 1..{vocab_size} (the vocabulary size), got {top_k}."
            )
    if top_p is not None and not is_traced(top_p):
        check_real("top_p", top_p, low=0.0, high=1.0, low_inclusive=False)


def check_head_detector_args(weights, tokens=None, *, axes: str | None = None):
    """Causal maps ``[..., T, T]`` (``axes``: exactly these, e.g. ``"LBNTT"``) and, when
    given, integer tokens ``[T]`` (``[B, T]`` for ``"LBNTT"``); returns them as NumPy float32
    and int arrays (or the maps alone without tokens)."""
    if not hasattr(weights, "shape"):
        weights = np.asarray(weights)
    check_floating("weights", weights)
    if axes is not None:
        check_rank("weights", weights, axes)
    if weights.ndim < 2 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(
            f"weights must be causal self-attention maps [..., T, T] (queries and keys of one "
            f"sequence), got shape {shape_str(weights.shape)}."
        )
    weights = np.asarray(weights, np.float32)
    if tokens is None:
        return weights
    if not hasattr(tokens, "shape"):
        tokens = np.asarray(tokens)
    check_integer("tokens", tokens)
    expected = (weights.shape[1], weights.shape[-1]) if axes == "LBNTT" else weights.shape[-1:]
    if tuple(tokens.shape) != tuple(expected):
        raise ValueError(
            f"tokens must be {shape_str(expected)} for weights of shape "
            f"{shape_str(weights.shape)}, got {shape_str(tokens.shape)}."
        )
    return weights, np.asarray(tokens)


def check_rope_scaling(scaling) -> tuple[float, float, float, float] | None:
    """Llama 3's rope scaling ``(factor, low_freq_factor, high_freq_factor,
    original_max_position_embeddings)``: four numbers, ``factor >= 1``, ``0 < low < high``,
    ``original > 0``; returned as a tuple of floats (None stays None)."""
    if scaling is None:
        return None
    if isinstance(scaling, (str, bytes)) or not isinstance(scaling, Sequence) or len(scaling) != 4:
        raise TypeError(
            f"rope_scaling must be None or (factor, low_freq_factor, high_freq_factor, "
            f"original_max_position_embeddings), got {scaling!r}."
        )
    factor, low, high, original = (check_real(name, value) for name, value in zip(
        ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
        scaling, strict=True))
    if not (factor >= 1 and 0 < low < high and original > 0):
        raise ValueError(
            f"rope_scaling={tuple(scaling)} needs factor >= 1, 0 < low_freq_factor < "
            f"high_freq_factor and original_max_position_embeddings > 0."
        )
    return (factor, low, high, original)


# ---------------------------------------------------------------------------------------------
# Bounded scores, sink logits, output gate (steps 1a, 3a, 6a) and their options (4, 6, 7, 27c).

HEAD_NORMS = ("rms", "layer")
"""The kinds of :func:`attention.mechanism.bounded_scores.head_norm`: RMS norm or layer norm."""


def check_soft_cap(name: str, cap) -> float:
    """A soft-cap: a positive, finite number (``cap * tanh(s / cap)`` bounds s to (-cap, cap))."""
    if isinstance(cap, bool) or not isinstance(cap, numbers.Real):
        raise TypeError(
            f"{name} must be a positive number (scores are squashed into (-{name}, {name})), "
            f"got {cap!r} ({type(cap).__name__}).")
    if not (math.isfinite(cap) and cap > 0):
        raise ValueError(
            f"{name} must be a positive finite number (scores are squashed into (-{name}, "
            f"{name}); Gemma 2 uses 50.0), got {cap!r}.")
    return float(cap)


def check_head_norm_args(x, scale, kind, epsilon) -> float:
    """``head_norm``'s floating ``x [..., H]``, ``scale [H]``, ``kind``, ``epsilon > 0``."""
    check_floating("x", x)
    check_choice("kind", kind, HEAD_NORMS)
    epsilon = check_real("epsilon", epsilon, low=0.0, low_inclusive=False)
    check_floating("scale", scale)
    if tuple(scale.shape) != (x.shape[-1],):
        raise ValueError(
            f"scale must be [H] = [{x.shape[-1]}] for x [..., H] = {shape_str(x.shape)}; got "
            f"{shape_str(scale.shape)}.")
    return epsilon


def check_sink_logits(sink_logits, num_heads: int, what: str = "scores") -> None:
    """``sink_logits``: a floating ``[N]``, one learned logit per query head."""
    check_floating("sink_logits", sink_logits)
    if tuple(sink_logits.shape) != (num_heads,):
        raise ValueError(
            f"sink_logits must be [N] = [{num_heads}], one logit per head of the {what}; got "
            f"{shape_str(sink_logits.shape)}.")


def check_sink_softmax_args(scores, sink_logits, mask) -> None:
    """``softmax_with_sink``: floating ``scores [..., N, T, S]``, ``sink_logits [N]``, a mask."""
    check_floating("scores", scores)
    if scores.ndim < 3:
        raise ValueError(
            f"scores must be [..., N, T, S] (heads third from the end), got "
            f"{shape_str(scores.shape)}.")
    check_sink_logits(sink_logits, scores.shape[-3], f"scores {shape_str(scores.shape)}")
    if mask is not None:
        check_mask(mask, scores.shape, axes=None)


def check_score_options(soft_cap, sink_logits, num_heads: int) -> float | None:
    """The options ``soft_cap=`` (None or positive) and ``sink_logits=`` (None or ``[N]``) of
    the attention functions; returns the cap as a float (or None)."""
    if sink_logits is not None:
        check_sink_logits(sink_logits, num_heads, "query")
    return None if soft_cap is None else check_soft_cap("soft_cap", soft_cap)


SCORE_OPTION_KERNELS = ("dot_product_attention", "flash_attention", "flash_attention_reference")
"""The attention functions that take ``soft_cap=`` and ``sink_logits=``."""


def refuse_score_options(kernel: str, soft_cap, sink_logits) -> None:
    """A kernel without soft-capping or sink logits names the ones that have them."""
    given = [name for name, value in (("soft_cap", soft_cap), ("sink_logits", sink_logits))
             if value is not None]
    if given:
        raise ValueError(
            f"{kernel} takes no {' or '.join(f'{g}=' for g in given)}; use one of "
            f"{', '.join(SCORE_OPTION_KERNELS)} (attention_impl 'reference', 'flash' or "
            f"'auto').")


def check_output_gate_args(output, gate_logits) -> None:
    """``gate_output``'s floating ``output`` and ``gate_logits`` of one shape."""
    check_floating("output", output)
    check_floating("gate_logits", gate_logits)
    if output.shape != gate_logits.shape:
        raise ValueError(
            f"gate_logits must have the shape of output {shape_str(output.shape)} (one gate "
            f"per head dim, [B, T, N, H]); got {shape_str(gate_logits.shape)}.")


def check_attention_options(qk_norm, soft_cap, sink_logits, output_gate, *,
                            soft_cap_name: str = "soft_cap",
                            sink_logits_name: str = "sink_logits") -> float | None:
    """``MultiHeadAttention``'s and the config's switches of today's models (under the
    caller's names); returns the cap as a float (or None)."""
    if qk_norm is not None and qk_norm not in HEAD_NORMS:
        raise ValueError(f"qk_norm must be None, 'rms' or 'layer', got {qk_norm!r}.")
    for name, value in ((sink_logits_name, sink_logits), ("output_gate", output_gate)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r} "
                            f"({type(value).__name__}).")
    return None if soft_cap is None else check_soft_cap(soft_cap_name, soft_cap)


def check_attention_variant(config, attentions: tuple[str, ...], mla_sizes: tuple[str, ...]):
    """The rules of ``TransformerConfig.attention`` (step 13a) and its sizes, each refusal
    saying what is supported; ``config`` is the :class:`TransformerConfig` being built."""
    if config.attention not in attentions:
        raise ValueError(f"attention must be one of {attentions}, got {config.attention!r}.")
    for name in mla_sizes:
        if getattr(config, name) is None:
            continue
        if config.attention != "mla":
            raise ValueError(
                f"{name}={getattr(config, name)} is a size of multi-head latent attention; "
                f"set attention='mla' or leave {name}=None (attention={config.attention!r})."
            )
        check_positive_int(name, getattr(config, name))
    if config.linear_decay is not None:
        if config.attention != "linear":
            raise ValueError(
                f"linear_decay={config.linear_decay} is the decay of gated linear attention; "
                f"set attention='linear' or leave linear_decay=None (attention="
                f"{config.attention!r})."
            )
        check_real("linear_decay", config.linear_decay, low=0.0, high=1.0,
                   low_inclusive=False)
    if config.attention == "standard":
        return
    what = f"attention={config.attention!r}"
    if not config.is_language_model:
        raise ValueError(
            f"{what} is built for the decoder-only language model (architecture="
            f"'decoder_only'); the encoder-decoder model supports attention='standard' only."
        )
    if config.attention_impl != "reference":
        raise ValueError(
            f"{what} has its own arithmetic, which the kernel attention_impl="
            f"{config.attention_impl!r} (softmax(QK^T)V) does not compute; use "
            f"attention_impl='reference'."
        )
    if config.attention_dropout_rate > 0:
        raise ValueError(
            f"{what} has no dropout on attention weights; set attention_dropout_rate=0 "
            f"(got {config.attention_dropout_rate}) or use attention='standard'."
        )
    switches = {"qk_norm": config.qk_norm, "attn_soft_cap": config.attn_soft_cap,
                "attention_sinks": config.attention_sinks, "output_gate": config.output_gate}
    used = [f"{name}={value!r}" for name, value in switches.items() if value]
    if used:
        raise ValueError(
            f"{', '.join(used)} {'is an option' if len(used) == 1 else 'are options'} of "
            f"the standard multi-head attention (steps 1a-6a), which {what} does not "
            f"use; use attention='standard' with them, or leave them off."
        )
    if config.positional == "alibi":
        raise ValueError(
            f"{what} takes no ALiBi bias; use positional='rope', 'sinusoidal' or "
            f"'learned'."
        )
    if config.attention == "linear" and config.positional == "rope":
        raise ValueError(
            "attention='linear' has no rotary positions (a rotation would break the "
            "positive features phi(q) . phi(k)); use positional='sinusoidal' or 'learned'."
        )
    if config.attention == "mla" and config.num_kv_heads is not None:
        raise ValueError(
            f"attention='mla' caches one latent per token, not key/value heads; leave "
            f"num_kv_heads=None (got {config.num_kv_heads}) and size the cache with "
            f"latent_dim."
        )
    rotary = config.positional == "rope"
    if config.attention == "mla" and rotary and config.mla_rope_head_dim % 2:
        raise ValueError(
            f"positional='rope' rotates pairs of dims, so MLA's rope_head_dim must be even, "
            f"got {config.mla_rope_head_dim} (d_k / 2 by default); set rope_head_dim."
        )
    if config.attention == "differential" and config.head_dim % (4 if rotary else 2):
        raise ValueError(
            f"attention='differential' splits each head of d_k = {config.head_dim} into two "
            f"halves{', each rotated in pairs by RoPE' if rotary else ''}, so d_k must be a "
            f"multiple of {4 if rotary else 2}; change d_model or num_heads."
        )
