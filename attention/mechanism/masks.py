"""Step 2: masks, which keys each query may look at (Vaswani et al. 2017, 3.2.3).

A mask is boolean and broadcasts to the scores ``[B, N, T, S]``; True means "may attend", as in
``jax.nn.dot_product_attention`` and Flax. The causal mask hides later positions from the
decoder, the padding mask hides padding keys, and the sliding-window mask of today's models
(Beltagy et al. 2020; Mistral, Jiang et al. 2023) keeps keys ``t - left .. t + right``. Masks
combine with a logical AND.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Int

from attention._checks import (
    check_masks_combine,
    check_offset,
    check_padding_mask_args,
    check_positive_int,
    check_seq_lengths,
    check_window_given,
)


def causal_mask(
    T: int, S: int | None = None, *, offset: int | Int[Array, ""] = 0
) -> Bool[Array, "T S"]:
    """Lower-triangular ``[T, S]`` mask: query t may attend key s when ``s <= t + offset``.

    ``offset=0`` is ``jax.nn.dot_product_attention(is_causal=True)`` (top-left aligned when
    T != S); with a key/value cache, ``offset`` is the number of keys already cached.

    Raises:
      TypeError: ``T`` or ``S`` not an int; ``offset`` not an int or integer scalar array.
      ValueError: ``T`` or ``S`` below 1.

    >>> causal_mask(2, 3, offset=1).astype(int).tolist()  # 2 new queries after 1 cached key
    [[1, 1, 0], [1, 1, 1]]
    """
    T = check_positive_int("T", T)
    S = T if S is None else check_positive_int("S", S)
    check_offset(offset)
    query_position_T1 = jnp.arange(T)[:, None] + offset
    key_position_1S = jnp.arange(S)[None, :]
    return key_position_1S <= query_position_T1


def padding_mask(
    lengths: Int[Array, " B"] | None = None,
    max_len: int | None = None,
    *,
    tokens: Int[Array, "B S"] | None = None,
    pad_id: int | None = None,
) -> Bool[Array, "B 1 1 S"]:
    """Key-padding mask ``[B, 1, 1, S]``: no query may attend a padding key.

    Give ``lengths [B]`` (real tokens first) with ``max_len``, or ``tokens [B, S]`` with the
    ``pad_id`` that marks padding.

    Raises:
      TypeError: non-integer lengths or tokens; a ``max_len`` or ``pad_id`` that is not an int.
      ValueError: both or neither form, a missing partner argument, wrong ranks, a ``max_len``
        below 1, concrete lengths outside ``0..max_len``.

    >>> padding_mask(jnp.array([2, 3]), max_len=3)[:, 0, 0].astype(int).tolist()
    [[1, 1, 0], [1, 1, 1]]
    """
    lengths, max_len = check_padding_mask_args(lengths, max_len, tokens, pad_id)
    if tokens is not None:
        return (tokens != pad_id)[:, None, None, :]
    return (jnp.arange(max_len)[None, :] < lengths[:, None])[:, None, None, :]


def local_window_mask(
    T: int,
    S: int | None = None,
    local_window_size: int | tuple[int, int] = 0,
    *,
    offset: int | Int[Array, ""] = 0,
) -> Bool[Array, "T S"]:
    """Sliding-window ``[T, S]`` mask: query t may attend key s when ``t + offset - left <= s
    <= t + offset + right``.

    ``local_window_size`` is ``w`` for ``(w, w)`` or ``(left, right)``, as in
    ``jax.nn.dot_product_attention``; with a causal mask, ``(w, 0)`` is Mistral's window.

    Raises:
      TypeError: ``T`` or ``S`` not an int; a window that is not an int or a pair of ints;
        an ``offset`` that is not an integer.
      ValueError: ``T`` or ``S`` below 1; a negative window side.

    >>> local_window_mask(4, local_window_size=(1, 0)).astype(int).tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    T = check_positive_int("T", T)
    S = T if S is None else check_positive_int("S", S)
    left, right = check_window_given(local_window_size)
    check_offset(offset)
    query_position_T1 = jnp.arange(T)[:, None] + offset
    key_position_1S = jnp.arange(S)[None, :]
    return (key_position_1S >= query_position_T1 - left) & (
        key_position_1S <= query_position_T1 + right
    )


def seq_lengths_mask(
    T: int,
    S: int,
    query_seq_lengths: Int[Array, "*B"] | None = None,
    key_value_seq_lengths: Int[Array, "*B"] | None = None,
) -> Bool[Array, "b 1 T S"] | None:
    """The padding mask ``[B, 1, T, S]`` from sequence lengths, as ``jax.nn`` takes them.

    Query t of sequence b is real when ``t < query_seq_lengths[b]``, key s when ``s <
    key_value_seq_lengths[b]``; both must be real. None when both lengths are None.

    Raises:
      TypeError: non-integer lengths; ``T`` or ``S`` not an int.
      ValueError: lengths that are not ``[B]`` or disagree on B; concrete values out of range.

    >>> seq_lengths_mask(2, 3, None, jnp.array([2]))[0, 0].astype(int).tolist()
    [[1, 1, 0], [1, 1, 0]]
    """
    T = check_positive_int("T", T)
    S = check_positive_int("S", S)
    if query_seq_lengths is None and key_value_seq_lengths is None:
        return None
    given = [x for x in (query_seq_lengths, key_value_seq_lengths) if x is not None]
    batch = given[0].shape[0] if getattr(given[0], "ndim", 0) == 1 else None
    ok_BTS = jnp.ones((1, T, S), bool)
    if query_seq_lengths is not None:
        check_seq_lengths("query_seq_lengths", query_seq_lengths, batch, T)
        query_seq_lengths = jnp.reshape(query_seq_lengths, (-1,))  # [] (unbatched) -> [1]
        ok_BTS = ok_BTS & (jnp.arange(T)[None, :, None] < query_seq_lengths[:, None, None])
    if key_value_seq_lengths is not None:
        check_seq_lengths("key_value_seq_lengths", key_value_seq_lengths, batch, S)
        key_value_seq_lengths = jnp.reshape(key_value_seq_lengths, (-1,))
        ok_BTS = ok_BTS & (jnp.arange(S)[None, None, :] < key_value_seq_lengths[:, None, None])
    return ok_BTS[:, None]


def combine_masks(*masks: Bool[Array, "..."] | None) -> Bool[Array, "..."] | None:
    """Logical AND of the masks that are not None (None if all are), broadcasting them.

    A padding mask ``[B, 1, 1, S]`` and a causal mask ``[T, S]`` combine into ``[B, 1, T, S]``.

    Raises:
      TypeError: a mask that is not boolean (an additive mask belongs in ``bias=``).
      ValueError: masks whose shapes do not broadcast together.

    >>> combine_masks(None, causal_mask(2), None).astype(int).tolist()
    [[1, 0], [1, 1]]
    """
    present = [m for m in masks if m is not None]
    if not present:
        return None
    shape = check_masks_combine(present)
    # Broadcast explicitly: [B, 1, 1, S] AND [T, S] is meant, and it must also work where
    # implicit rank promotion is disabled (jax_numpy_rank_promotion="raise").
    combined = jnp.broadcast_to(present[0], shape)
    for mask in present[1:]:
        combined = jnp.logical_and(combined, jnp.broadcast_to(mask, shape))
    return combined
