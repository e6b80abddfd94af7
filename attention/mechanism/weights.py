"""Step 4: attention weights, scores + masks + softmax (Vaswani et al. 2017, eq. 1).

Row t of the weights is how much query t takes from each key: the numbers attention plots
show. The keys it may see are the AND of every mask given, with ``jax.nn.dot_product_attention``'s
option names.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Shaped

from attention._checks import check_attention_args, check_score_options
from attention.mechanism.bounded_scores import soft_cap as cap_scores
from attention.mechanism.masks import (
    causal_mask,
    combine_masks,
    local_window_mask,
    seq_lengths_mask,
)
from attention.mechanism.scores import dot_product_scores
from attention.mechanism.sink_logits import softmax_with_sink
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
    soft_cap: float | None = None,
    sink_logits: Shaped[Array, " N"] | None = None,
) -> Shaped[Array, "*B N T S"]:
    """Softmax over keys of the scaled scores, with masks and an additive bias::

        weights[b, n, t] = softmax(scale q[b, t, n] . k[b, :, n // (N/K)] + bias, where allowed)
        allowed = mask AND causal (s <= t) AND window (t - left <= s <= t + right)
                  AND t < query_seq_lengths[b] AND s < key_value_seq_lengths[b]

    Options of today's models: ``soft_cap`` squashes the scores into ``(-cap, cap)`` before
    the bias and masks (step 1a, Gemma 2); ``sink_logits [N]`` adds a sink column per head to
    the softmax (step 3a, gpt-oss), so rows sum to less than one.

    ``query [B, T, N, H]``, ``key [B, S, K, H]`` (or unbatched; K divides N, step 1); ``mask``
    (boolean, True = may attend) and ``bias`` broadcast to ``[B, N, T, S]``; lengths are
    integer ``[B]``; ``local_window_size`` is ``w`` or ``(left, right)``. Returns
    ``[B, N, T, S]`` in the query's dtype; a row with every key masked is all zeros.

    Raises:
      TypeError, ValueError: as :func:`dot_product_scores`; a non-boolean mask; a mask or bias
        that does not broadcast; lengths not integer ``[B]`` in range; a bad window; a
        ``soft_cap`` that is not a positive number; ``sink_logits`` not floating ``[N]``.

    >>> q = k = jnp.ones((1, 3, 2, 4))
    >>> attention_weights(q, k, is_causal=True, local_window_size=(1, 0))[0, 0, 2].tolist()
    [0.0, 0.5, 0.5]
    """
    window = check_attention_args(
        query, key, mask=mask, bias=bias, scale=scale, query_seq_lengths=query_seq_lengths,
        key_value_seq_lengths=key_value_seq_lengths, local_window_size=local_window_size,
    )
    soft_cap = check_score_options(soft_cap, sink_logits, query.shape[-2])
    T, S = query.shape[-3], key.shape[-3]
    scores_BNTS = dot_product_scores(query, key, scale=scale)
    if soft_cap is not None:
        scores_BNTS = cap_scores(scores_BNTS, soft_cap)
    if bias is not None:
        # Broadcast explicitly so that a [T, S] bias works even with rank promotion disabled.
        scores_BNTS = scores_BNTS + jnp.broadcast_to(bias, scores_BNTS.shape).astype(
            scores_BNTS.dtype
        )
    lengths_B1TS = seq_lengths_mask(T, S, query_seq_lengths, key_value_seq_lengths)
    if lengths_B1TS is not None and query.ndim == 3:
        lengths_B1TS = lengths_B1TS[0]  # [1, T, S]: broadcasts over the N heads of [N, T, S]
    mask = combine_masks(
        mask,
        causal_mask(T, S) if is_causal else None,
        local_window_mask(T, S, window) if window is not None else None,
        lengths_B1TS,
    )
    if sink_logits is None:
        weights_BNTS = masked_softmax(scores_BNTS, mask)
    else:
        weights_BNTS = softmax_with_sink(scores_BNTS, sink_logits, mask)
    return weights_BNTS.astype(jnp.result_type(query, key))
