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

import numbers
from collections.abc import Sequence

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


def check_kv_heads_divide(num_kv_heads: int, num_heads: int) -> None:
    """K key/value heads serve the N query heads in equal groups: K divides N (grouped-query)."""
    if num_heads % num_kv_heads:
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
    if num_kv_heads == 0 or num_heads % num_kv_heads:
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
    if num_kv_heads == 0 or num_heads % num_kv_heads:
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
    if (tuple(batch_w), S) != (tuple(batch_v), S_v) or N_v == 0 or N % N_v:
        raise ValueError(
            f"weights [B, N, T, S] = {shape_str(weights.shape)} and value [B, S, K, Hv] = "
            f"{shape_str(value.shape)} must agree on B and S, and the K={N_v} value heads "
            f"must divide the N={N} heads of the weights."
        )


def check_attention_args(query, key, value=None, *, mask=None, bias=None, scale=None,
                         query_seq_lengths=None, key_value_seq_lengths=None,
                         local_window_size=None) -> tuple[int, int] | None:
    """The arguments of ``attention_weights`` / ``dot_product_attention``; returns the window
    as ``(left, right)`` or None."""
    check_qkv(query, key, value)
    check_scale(scale)
    window = check_local_window(local_window_size)
    batch = query.shape[0] if query.ndim == 4 else None
    T, S = query.shape[-3], key.shape[-3]
    if query_seq_lengths is not None:
        check_seq_lengths("query_seq_lengths", query_seq_lengths, batch, T)
    if key_value_seq_lengths is not None:
        check_seq_lengths("key_value_seq_lengths", key_value_seq_lengths, batch, S)
    scores_shape = (*query.shape[:-3], query.shape[-2], T, S)  # [B, N, T, S]
    axes = "BNTS" if query.ndim == 4 else "NTS"
    if mask is not None:
        check_mask(mask, scores_shape, axes)
    if bias is not None:
        check_floating("bias", bias)
        check_broadcastable("bias", bias, scores_shape, axes)
    return window


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
