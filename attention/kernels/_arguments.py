"""Argument checks and layout helpers shared by the kernels.

The kernels take the arguments of :func:`attention.dot_product_attention` and check them with
the same helpers (``attention._checks``), so that a wrong shape gives the same message whichever
rung is used. What is kernel-specific lives here: block sizes, key/query lengths, and turning
an unbatched ``[T, N, H]`` call into a batched one.
"""

from __future__ import annotations

from attention._checks import (
    check_broadcastable,
    check_floating,
    check_integer,
    check_mask,
    check_positive_int,
    check_qkv,
    check_scale,
    shape_str,
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


def check_lengths(name: str, lengths, batch: int | None) -> None:
    """``lengths`` is an integer ``[B]`` array (``[]`` unbatched).

    The values are data (traced under jit) and are not checked; a length beyond the sequence
    means "all of it", a length of 0 or less means "none of it".
    """
    check_integer(name, lengths)
    expected = () if batch is None else (batch,)
    if tuple(lengths.shape) != expected:
        raise ValueError(
            f"{name} must have shape {shape_str(expected)} (one length per sequence), got "
            f"{shape_str(lengths.shape)}."
        )


def check_attention_args(
    query, key, value, bias, mask, scale, *, bias_ok: bool = True, kernel: str = "this kernel"
) -> None:
    """The checks of :func:`attention.dot_product_attention`, in the same words."""
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
                "to); give key padding as key_lengths= (or a boolean mask= to flash_attention), "
                "or use fused_attention / dot_product_attention for an additive bias."
            )
        check_floating("bias", bias)
        check_broadcastable("bias", bias, target, axes)


def as_rank4(mask):
    """Prepend size-1 axes so that a mask broadcastable to ``[B, N, T, S]`` has rank 4."""
    if mask is None:
        return None
    return mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple
