"""Layout helpers shared by the kernels: masks made rank 4, and the grouped-query view of a
mask over the heads.

The kernels' argument checks live in :mod:`attention._checks` (:func:`check_kernel_args`, one
call at the top of each kernel), in the words of :func:`attention.dot_product_attention`.
"""

from __future__ import annotations


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
