"""Input checks shared by the public functions.

Every public function checks its arguments here, before any arithmetic, so that a wrong shape or
dtype is reported in the user's own words (argument name, shape received, shape expected)
rather than as a broadcasting surprise or an XLA error deep inside a compiled program. Shapes
and dtypes are static under ``jax.jit``, so these checks cost nothing at run time.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import jax.numpy as jnp


def shape_str(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_floating(name: str, array, *, axes: str | None = None) -> None:
    """Raise TypeError unless ``array`` has a floating dtype (and ``len(axes)`` dims if given)."""
    if not hasattr(array, "dtype") or not hasattr(array, "shape"):
        raise TypeError(f"{name} must be a JAX or NumPy array, got {type(array).__name__}.")
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(
            f"{name} must have a floating dtype (float32, bfloat16, ...), got {array.dtype} "
            f"with shape {shape_str(array.shape)}; convert it with {name}.astype(jnp.float32)."
        )
    if axes is not None and array.ndim != len(axes):
        raise ValueError(
            f"{name} must have {len(axes)} dimensions [{', '.join(axes)}], "
            f"got shape {shape_str(array.shape)}."
        )


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
    if not hasattr(mask, "dtype") or not hasattr(mask, "shape"):
        raise TypeError(f"{name} must be a boolean array, got {type(mask).__name__}.")
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
    """Check that query ``[*B, T, N, H]``, key ``[*B, S, N, H]``, value ``[*B, S, N, Hv]`` agree."""
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
    if key.shape[-2] != query.shape[-2]:
        raise ValueError(
            f"query and key must have the same number of heads N (axis -2); "
            f"got query {shape_str(query.shape)} and key {shape_str(key.shape)}."
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
