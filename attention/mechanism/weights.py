"""Step 4: attention weights, scores + masks + softmax.

    weights = softmax(Q K^T / sqrt(d_k) + bias, masked)       (Vaswani et al. 2017, eq. 1)

Row t of the weights says how much query t takes from each key s: a probability distribution
over the keys it may see. These are the numbers that attention plots show.

Which keys a query may see is the AND of every mask that applies: a boolean ``mask``, the
causal mask (``is_causal``), a sliding window (``local_window_size``) and the padding given as
sequence lengths (``query_seq_lengths``, ``key_value_seq_lengths``), with the meanings of
``jax.nn.dot_product_attention``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Shaped

from attention._checks import (
    check_broadcastable,
    check_floating,
    check_local_window,
    check_mask,
    check_qkv,
    check_seq_lengths,
)
from attention.mechanism.masks import (
    causal_mask,
    combine_masks,
    local_window_mask,
    seq_lengths_mask,
)
from attention.mechanism.scores import dot_product_scores
from attention.mechanism.softmax import masked_softmax


def attention_weights(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S K H"],
    mask: Bool[Array, "..."] | None = None,
    *,
    bias: Shaped[Array, "..."] | None = None,
    scale: float | None = None,
    is_causal: bool = False,
    query_seq_lengths: Int[Array, "*B"] | None = None,
    key_value_seq_lengths: Int[Array, "*B"] | None = None,
    local_window_size: int | tuple[int, int] | None = None,
) -> Shaped[Array, "*B N T S"]:
    """Softmax over keys of the scaled dot-product scores, with masks and an additive bias.

    Formula::

        weights[b, n, t, :] = softmax(scale * q[b, t, n] . k[b, :, n // (N / K)] + bias,
                                      where allowed[b, n, t, :])
        allowed = mask AND causal (s <= t) AND window (t - left <= s <= t + right)
                  AND t < query_seq_lengths[b] AND s < key_value_seq_lengths[b]

    Args:
      query: ``[B, T, N, H]`` (or unbatched ``[T, N, H]``).
      key: ``[B, S, K, H]`` (or ``[S, K, H]``); K key heads, dividing N (grouped-query
        attention, Ainslie et al. 2023; see :func:`attention.mechanism.scores.repeat_kv_heads`).
      mask: boolean, broadcastable to ``[B, N, T, S]`` (``[N, T, S]`` unbatched); True = may
        attend.
      bias: floating, broadcastable to the scores; added to them before the softmax (relative
        position biases such as ALiBi, or an additive mask of 0 / large negative values).
      scale: default ``1 / sqrt(H)``.
      is_causal: also apply :func:`attention.causal_mask` (query t sees keys s <= t, top-left
        aligned when T != S).
      query_seq_lengths: integer ``[B]`` (``[]`` unbatched) in ``0..T``: queries at and after
        the length are padding and get all-zero weights.
      key_value_seq_lengths: integer ``[B]`` (``[]``) in ``0..S``: keys at and after the
        length are padding and are never attended.
      local_window_size: ``w`` (= ``(w, w)``) or ``(left, right)``: query t sees only keys
        ``t - left .. t + right`` (:func:`attention.mechanism.masks.local_window_mask`).

    Returns:
      Weights ``[B, N, T, S]`` in the dtype of ``query``: non-negative, each row summing to 1,
      except rows in which every key is masked (padding queries among them), which are all
      zeros.

    Raises:
      TypeError, ValueError: as :func:`dot_product_scores`; a non-boolean mask; a mask or bias
        that does not broadcast to the scores; lengths that are not integer ``[B]`` arrays in
        range; a window that is not a non-negative int or pair of them.

    >>> import jax.numpy as jnp
    >>> q = k = jnp.ones((1, 3, 2, 4))
    >>> attention_weights(q, k, is_causal=True)[0, 0].tolist()
    [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.3333333432674408, 0.3333333432674408, 0.3333333432674408]]
    >>> attention_weights(q, k, is_causal=True, local_window_size=(1, 0))[0, 0, 2].tolist()
    [0.0, 0.5, 0.5]
    """
    check_qkv(query, key)
    window = check_local_window(local_window_size)
    batch = query.shape[0] if query.ndim == 4 else None
    T, S = query.shape[-3], key.shape[-3]
    # Checked here against the query's batch, not only against each other.
    if query_seq_lengths is not None:
        check_seq_lengths("query_seq_lengths", query_seq_lengths, batch, T)
    if key_value_seq_lengths is not None:
        check_seq_lengths("key_value_seq_lengths", key_value_seq_lengths, batch, S)
    scores_BNTS = dot_product_scores(query, key, scale=scale)
    axes = "BNTS" if query.ndim == 4 else "NTS"
    if mask is not None:
        check_mask(mask, scores_BNTS.shape, axes)
    if bias is not None:
        check_floating("bias", bias)
        check_broadcastable("bias", bias, scores_BNTS.shape, axes)
        # Broadcast explicitly so that a [T, S] bias works even with rank promotion disabled.
        scores_BNTS = scores_BNTS + jnp.broadcast_to(bias, scores_BNTS.shape).astype(
            scores_BNTS.dtype
        )
    lengths_B1TS = seq_lengths_mask(T, S, query_seq_lengths, key_value_seq_lengths)
    if lengths_B1TS is not None and batch is None:
        lengths_B1TS = lengths_B1TS[0]  # [1, T, S]: broadcasts over the N heads of [N, T, S]
    mask = combine_masks(
        mask,
        causal_mask(T, S) if is_causal else None,
        local_window_mask(T, S, window) if window is not None else None,
        lengths_B1TS,
    )
    weights_BNTS = masked_softmax(scores_BNTS, mask)
    return weights_BNTS.astype(jnp.result_type(query, key))
