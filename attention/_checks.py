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
