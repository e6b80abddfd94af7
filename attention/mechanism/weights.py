"""Step 4: attention weights, scores + masks + softmax.

    weights = softmax(Q K^T / sqrt(d_k) + bias, masked)       (Vaswani et al. 2017, eq. 1)

Row t of the weights says how much query t takes from each key s: a probability distribution
over the keys it may see. These are the numbers that attention plots show.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Shaped

from attention._checks import check_broadcastable, check_floating, check_mask
from attention.mechanism.masks import causal_mask, combine_masks
from attention.mechanism.scores import dot_product_scores
from attention.mechanism.softmax import masked_softmax


def attention_weights(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S N H"],
    mask: Bool[Array, "..."] | None = None,
    *,
    bias: Shaped[Array, "..."] | None = None,
    scale: float | None = None,
    is_causal: bool = False,
) -> Shaped[Array, "*B N T S"]:
    """Softmax over keys of the scaled dot-product scores, with masks and an additive bias.

    Args:
      query: ``[B, T, N, H]`` (or unbatched ``[T, N, H]``).
      key: ``[B, S, N, H]`` (or ``[S, N, H]``).
      mask: boolean, broadcastable to ``[B, N, T, S]`` (``[N, T, S]`` unbatched); True = may
        attend.
      bias: floating, broadcastable to the scores; added to them before the softmax (relative
        position biases, or an additive mask of 0 / large negative values).
      scale: default ``1 / sqrt(H)``.
      is_causal: also apply :func:`attention.causal_mask` (query t sees keys s <= t).

    Returns:
      Weights ``[B, N, T, S]`` in the dtype of ``query``: non-negative, each row summing to 1,
      except rows in which every key is masked, which are all zeros.

    Raises:
      TypeError, ValueError: as :func:`dot_product_scores`; a non-boolean mask; a mask or bias
        that does not broadcast to the scores.

    >>> import jax.numpy as jnp
    >>> q = k = jnp.ones((1, 3, 2, 4))
    >>> attention_weights(q, k, is_causal=True)[0, 0].tolist()
    [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.3333333432674408, 0.3333333432674408, 0.3333333432674408]]
    """
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
    if is_causal:
        T, S = scores_BNTS.shape[-2:]
        mask = combine_masks(mask, causal_mask(T, S))
    weights_BNTS = masked_softmax(scores_BNTS, mask)
    return weights_BNTS.astype(jnp.result_type(query, key))
