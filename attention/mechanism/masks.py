"""Step 2: masks, which keys each query may look at.

A mask is a boolean array that broadcasts to the scores ``[B, N, T, S]``; ``True`` means "may
attend", the convention of ``jax.nn.dot_product_attention`` and Flax. Two masks appear in the
transformer (Vaswani et al. 2017, section 3.2.3):

* the **causal mask**: in the decoder, position t must not see later positions (the words
  it has to predict), so query t may attend only keys s <= t;
* the **padding mask**: sentences of different lengths are padded to one length in a batch,
  and no query may attend a padding key.

Today's models add a third (Beltagy et al. 2020, "Longformer"; Mistral 7B, Jiang et al. 2023):

* the **local (sliding-window) mask**: query t attends only keys within a window
  ``t - left .. t + right`` (with a causal mask, the last ``left + 1`` tokens). Each layer
  then costs O(T w) instead of O(T^2), and information still travels further through depth:
  after L layers a token has seen ``L * left`` positions back.

:func:`seq_lengths_mask` is the padding mask in the form ``jax.nn.dot_product_attention``
takes it (``query_seq_lengths``, ``key_value_seq_lengths``). Masks are combined with a
logical AND.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Int

from attention._checks import (
    check_int_scalar,
    check_integer,
    check_local_window,
    check_mask_dtype,
    check_positive_int,
    check_seq_lengths,
    is_traced,
    shape_str,
)


def causal_mask(
    T: int, S: int | None = None, *, offset: int | Int[Array, ""] = 0
) -> Bool[Array, "T S"]:
    """Lower-triangular mask: query t may attend key s when ``s <= t + offset``.

    With the default ``offset=0`` and ``T != S`` this is the top-left aligned mask of
    ``jax.nn.dot_product_attention(is_causal=True)``. Incremental decoding with a key/value
    cache sets ``offset`` to the number of tokens already in the cache, so that the new
    queries sit at the end of the key sequence.

    Args:
      T: number of queries.
      S: number of keys; defaults to ``T``.
      offset: position of query 0 within the keys.

    Returns:
      Boolean ``[T, S]``; it broadcasts against scores ``[B, N, T, S]``.

    Raises:
      TypeError: ``T`` or ``S`` not an int (``True`` and ``2.0`` are not lengths); ``offset``
        not an integer (a Python int or an integer scalar array, which may be traced under
        ``jax.jit``).
      ValueError: ``T`` or ``S`` below 1.

    >>> causal_mask(3).astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    >>> causal_mask(2, 3, offset=1).astype(int).tolist()  # 2 new queries after 1 cached key
    [[1, 1, 0], [1, 1, 1]]
    """
    T = check_positive_int("T", T)
    S = T if S is None else check_positive_int("S", S)
    check_int_scalar(
        "offset", offset, what="an int or an integer scalar array (the number of cached keys)"
    )
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
    """Key-padding mask: no query may attend a padding key.

    Give either ``lengths`` (the number of real tokens of each sequence, which come first)
    with ``max_len``, or ``tokens`` with the ``pad_id`` that marks padding.

    Args:
      lengths: ``[B]`` integer lengths, each in ``0..max_len``.
      max_len: the padded length S.
      tokens: ``[B, S]`` integer token ids.
      pad_id: the id of the padding token in ``tokens``.

    Returns:
      Boolean ``[B, 1, 1, S]``: it broadcasts over heads N and queries T.

    Raises:
      TypeError: non-integer lengths or tokens; a ``max_len`` or ``pad_id`` that is not an int.
      ValueError: both or neither form given, a missing partner argument, wrong ranks, a
        ``max_len`` below 1, lengths out of range (checked when the lengths are concrete).

    >>> padding_mask(jnp.array([2, 3]), max_len=3)[:, 0, 0].astype(int).tolist()
    [[1, 1, 0], [1, 1, 1]]
    """
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
        return (tokens != pad_id)[:, None, None, :]
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
    return (jnp.arange(max_len)[None, :] < lengths[:, None])[:, None, None, :]


def local_window_mask(
    T: int,
    S: int | None = None,
    local_window_size: int | tuple[int, int] = 0,
    *,
    offset: int | Int[Array, ""] = 0,
) -> Bool[Array, "T S"]:
    """Sliding-window mask: query t may attend key s when ``t' - left <= s <= t' + right``,
    where ``t' = t + offset`` is the query's position among the keys.

    ``local_window_size`` has the meaning of ``jax.nn.dot_product_attention``: one int w is the
    window ``(w, w)``, a pair is ``(left, right)``. Combined with :func:`causal_mask` (or
    ``is_causal=True``), ``(w, 0)`` is the causal sliding window of Mistral: each token sees
    itself and the ``w`` before it. ``offset`` places the queries after cached keys, as in
    :func:`causal_mask`.

    Args:
      T: number of queries.
      S: number of keys (default ``T``).
      local_window_size: ``w`` or ``(left, right)``, non-negative ints.
      offset: position of query 0 within the keys.

    Returns:
      Boolean ``[T, S]``.

    Raises:
      TypeError: ``T`` or ``S`` not an int; a window that is not an int or a pair of ints
        (None among them); an ``offset`` that is not an integer.
      ValueError: ``T`` or ``S`` below 1; a negative window side.

    >>> local_window_mask(4, local_window_size=(1, 0)).astype(int).tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    T = check_positive_int("T", T)
    S = T if S is None else check_positive_int("S", S)
    window = check_local_window(local_window_size)
    if window is None:
        raise TypeError(
            "local_window_mask needs local_window_size=w or (left, right), got None (no "
            "window: attend every key, or leave the mask out)."
        )
    check_int_scalar(
        "offset", offset, what="an int or an integer scalar array (the number of cached keys)"
    )
    left, right = window
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
    """The padding mask given as sequence lengths, with ``jax.nn.dot_product_attention``'s names.

    Query t of sequence b is real when ``t < query_seq_lengths[b]``, key s when
    ``s < key_value_seq_lengths[b]``; an entry may attend when both are real. (Attention
    outputs of padding queries are set to zero by the functions that take these arguments.)

    Args:
      T, S: query and key lengths.
      query_seq_lengths: integer ``[B]`` in ``0..T``, or None (every query is real).
      key_value_seq_lengths: integer ``[B]`` in ``0..S``, or None (every key is real).

    Returns:
      Boolean ``[B, 1, T, S]`` (``[1, 1, T, S]`` for unbatched ``[]`` lengths), or None when
      both are None.

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
    for i, mask in enumerate(present):
        check_mask_dtype(f"mask {i} given to combine_masks", mask)
    try:
        shape = jnp.broadcast_shapes(*(m.shape for m in present))
    except ValueError:
        shapes = ", ".join(shape_str(m.shape) for m in present)
        raise ValueError(
            f"combine_masks got masks of shapes {shapes}, which do not broadcast together; "
            f"each axis must be 1 or equal, counting from the right."
        ) from None
    # Broadcast explicitly: [B, 1, 1, S] AND [T, S] is meant, and it must also work where
    # implicit rank promotion is disabled (jax_numpy_rank_promotion="raise").
    combined = jnp.broadcast_to(present[0], shape)
    for mask in present[1:]:
        combined = jnp.logical_and(combined, jnp.broadcast_to(mask, shape))
    return combined
