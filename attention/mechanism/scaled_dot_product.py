"""Step 6: scaled dot-product attention, the steps composed.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V          (Vaswani et al. 2017, eq. 1)

Two versions of the same computation live here. ``single_head_attention`` is the one to read
first: one head, one sequence, plain matrix products. ``dot_product_attention`` is the batched,
multi-head version used everywhere else, with the signature of
``jax.nn.dot_product_attention``; ``jax.vmap`` of the first over batch and heads equals the
second (the tests check it).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Shaped

from attention._checks import (
    accumulation_dtype,
    check_floating,
    check_mask,
    check_qkv,
    check_rank,
    shape_str,
)
from attention.mechanism.softmax import masked_softmax
from attention.mechanism.weighted_sum import weighted_sum
from attention.mechanism.weights import attention_weights


def single_head_attention(
    query: Shaped[Array, "T H"],
    key: Shaped[Array, "S H"],
    value: Shaped[Array, "S Hv"],
    mask: Bool[Array, "T S"] | None = None,
) -> Shaped[Array, "T Hv"]:
    """Attention for one head of one sequence, written as the paper's matrix formula.

    This is the teaching version: no batch, no heads, just the formula
    ``softmax(Q K^T / sqrt(d_k)) V``. Use :func:`dot_product_attention` for real work.

    Args:
      query: ``[T, H]``; key: ``[S, H]``; value: ``[S, Hv]``.
      mask: boolean ``[T, S]``, True = may attend.

    Returns:
      ``[T, Hv]`` in the dtype of ``value`` (computed in float32 for half precision). A query
      whose keys are all masked gets a zero vector.

    Raises:
      TypeError: non-floating query, key or value; a non-boolean mask.
      ValueError: inputs that are not 2-D, H of query and key that differ, S of key and
        value that differ, a mask that is not ``[T, S]``.

    >>> import jax.numpy as jnp
    >>> single_head_attention(jnp.zeros((1, 2)), jnp.zeros((2, 2)), jnp.eye(2)).tolist()
    [[0.5, 0.5]]
    """
    _check_single_head(query, key, value, mask)
    # Half-precision products overflow easily (float16 stops at 65504), so the scores are
    # formed in float32.
    acc_dtype = accumulation_dtype(jnp.result_type(query, key, value))
    query, key = query.astype(acc_dtype), key.astype(acc_dtype)
    scores_TS = query @ key.T / jnp.sqrt(query.shape[-1]).astype(acc_dtype)
    weights_TS = masked_softmax(scores_TS, mask)
    return (weights_TS @ value.astype(acc_dtype)).astype(value.dtype)


def _check_single_head(query, key, value, mask) -> None:
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


def dot_product_attention(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S K H"],
    value: Shaped[Array, "*B S K Hv"],
    bias: Shaped[Array, "..."] | None = None,
    mask: Bool[Array, "..."] | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    query_seq_lengths: Int[Array, "*B"] | None = None,
    key_value_seq_lengths: Int[Array, "*B"] | None = None,
    local_window_size: int | tuple[int, int] | None = None,
) -> Shaped[Array, "*B T N Hv"]:
    """Scaled dot-product attention, composed from the teaching steps.

    Formula (Vaswani et al. 2017, eq. 1, with today's options)::

        weights = softmax(scale * Q K^T + bias, where allowed)   # attention_weights
        output  = weights V                                      # weighted_sum

    where ``allowed`` is the AND of ``mask``, the causal mask, the sliding window and the
    sequence lengths (see :func:`attention_weights`). Axes (BTNH, as
    ``jax.nn.dot_product_attention``): batch B, query length T, key length S, query heads N,
    key/value heads K, head dim H (Hv for values).

    The options are those of ``jax.nn.dot_product_attention``, with the same meanings:

    * **grouped-query / multi-query attention** (Ainslie et al. 2023; Shazeer 2019): key and
      value with K heads, K dividing N; query head n uses key/value head ``n // (N / K)``
      (here by repeating them, :func:`attention.mechanism.scores.repeat_kv_heads`);
    * **sequence lengths**: query t of sequence b is real iff ``t < query_seq_lengths[b]``,
      key s iff ``s < key_value_seq_lengths[b]``; padding queries output zeros;
    * **local (sliding-window) attention** (Beltagy et al. 2020; Jiang et al. 2023, Mistral):
      query t attends keys ``t - left .. t + right``, ``local_window_size = (left, right)``
      or one int ``w`` for ``(w, w)``; with ``is_causal=True``, ``(w, 0)`` keeps the last
      ``w + 1`` tokens.

    One difference from ``jax.nn``: a real query whose keys are all masked (a zero
    ``key_value_seq_lengths``, a window that misses every key) gets a **zero** vector here;
    ``jax.nn`` fills masked logits with a finite ``-0.7 * max`` and so returns the uniform
    average of all values for it.

    Args:
      query: ``[B, T, N, H]``, or unbatched ``[T, N, H]``.
      key: ``[B, S, K, H]``, or ``[S, K, H]``; K divides N.
      value: ``[B, S, K, Hv]``, or ``[S, K, Hv]``.
      bias: optional floating array broadcastable to ``[B, N, T, S]`` (``[N, T, S]``
        unbatched), added to the scores.
      mask: optional boolean array broadcastable to ``[B, N, T, S]``; True = may attend.
      scale: default ``1 / sqrt(H)``.
      is_causal: apply a causal mask (query t sees keys s <= t, top-left aligned when T != S).
      query_seq_lengths: optional integer ``[B]`` (``[]`` unbatched), values in ``0..T``.
      key_value_seq_lengths: optional integer ``[B]`` (``[]`` unbatched), values in ``0..S``.
      local_window_size: optional ``w`` or ``(left, right)``, non-negative ints.

    Returns:
      ``[B, T, N, Hv]`` (``[T, N, Hv]`` unbatched) in the dtype of ``value``. A query whose
      keys are all masked, and every padding query, gets a zero vector.

    Raises:
      TypeError: integer inputs, a non-boolean mask (use ``bias`` for additive masks),
        non-integer lengths, a window that is not an int or a pair of ints.
      ValueError: head dims of query and key differ, key and value lengths differ, batch
        sizes differ, K does not divide N, a mask or bias that does not broadcast to the
        scores, lengths not of shape ``[B]`` or (when concrete) outside ``0..T`` / ``0..S``,
        a negative window side.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (2, 5, 4, 8))
    >>> dot_product_attention(q, q, q, is_causal=True).shape
    (2, 5, 4, 8)
    >>> kv = q[:, :, :2]  # K = 2 key/value heads shared by the N = 4 query heads
    >>> out = dot_product_attention(q, kv, kv, is_causal=True, local_window_size=(2, 0),
    ...                             key_value_seq_lengths=jnp.array([5, 3]),
    ...                             query_seq_lengths=jnp.array([5, 3]))
    >>> out.shape, float(jnp.abs(out[1, 3:]).max())  # padding queries of sequence 1: zeros
    ((2, 5, 4, 8), 0.0)
    """
    check_qkv(query, key, value)
    # Padding queries get all-zero weights (every key of their row is masked), hence zero
    # outputs, the values jax.nn gives them by multiplying its outputs by the query mask.
    weights_BNTS = attention_weights(
        query, key, mask, bias=bias, scale=scale, is_causal=is_causal,
        query_seq_lengths=query_seq_lengths, key_value_seq_lengths=key_value_seq_lengths,
        local_window_size=local_window_size,
    )
    return weighted_sum(weights_BNTS, value)
