"""Argument checks and layout helpers shared by the kernels.

The kernels take the arguments of :func:`attention.dot_product_attention` and check them with
the same helpers (``attention._checks``), so that a wrong shape gives the same message whichever
rung is used. What is kernel-specific lives here: block sizes, the old names of the sequence
lengths (``key_lengths``, ``query_lengths``), and the layouts of grouped-query heads.
"""

from __future__ import annotations

import jax

from attention._checks import (
    check_broadcastable,
    check_floating,
    check_local_window,
    check_mask,
    check_positive_int,
    check_qkv,
    check_scale,
    check_seq_lengths,
)


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

    ``query_lengths`` and ``key_lengths`` are the kernels' names from before they followed
    ``jax.nn.dot_product_attention``; they mean the same. Giving both forms of one is a
    ``ValueError`` (which one should win would be a guess).
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
    query, key, value, bias, mask, scale, *, query_seq_lengths=None, query_name=
    "query_seq_lengths", key_value_seq_lengths=None, key_value_name="key_value_seq_lengths",
    local_window_size=None, bias_ok: bool = True, kernel: str = "this kernel",
) -> tuple[int, int] | None:
    """The checks of :func:`attention.dot_product_attention`, in the same words.

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


def as_rank4(mask):
    """Prepend size-1 axes so that a mask broadcastable to ``[B, N, T, S]`` has rank 4."""
    if mask is None:
        return None
    return mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))


def split_heads(array4, num_kv_heads: int):
    """``[B', N', T', S']`` (N' = N or 1) as ``[B', K', G', T', S']``: query head n = k G + g.

    A mask or bias over the query heads is viewed per key/value head k and group member g,
    the grouped-query layout of the scores; an axis of size 1 stays 1 (nothing is repeated).
    """
    if array4 is None:
        return None
    B_, N_, T_, S_ = array4.shape
    if N_ == 1:
        return array4[:, :, None]
    return array4.reshape(B_, num_kv_heads, N_ // num_kv_heads, T_, S_)


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple
