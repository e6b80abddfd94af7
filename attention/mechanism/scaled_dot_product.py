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
from jaxtyping import Array, Bool, Shaped

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
    key: Shaped[Array, "*B S N H"],
    value: Shaped[Array, "*B S N Hv"],
    bias: Shaped[Array, "..."] | None = None,
    mask: Bool[Array, "..."] | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
) -> Shaped[Array, "*B T N Hv"]:
    """Scaled dot-product attention, composed from the teaching steps.

    Formula::

        weights = softmax(scale * Q K^T + bias, where mask)      # attention_weights
        output  = weights V                                      # weighted_sum

    Axes (BTNH, as ``jax.nn.dot_product_attention``): batch B, query length T, key length S,
    heads N, head dim H (Hv for values).

    Args:
      query: ``[B, T, N, H]``, or unbatched ``[T, N, H]``.
      key: ``[B, S, N, H]``, or ``[S, N, H]``.
      value: ``[B, S, N, Hv]``, or ``[S, N, Hv]``.
      bias: optional floating array broadcastable to ``[B, N, T, S]`` (``[N, T, S]``
        unbatched), added to the scores.
      mask: optional boolean array broadcastable to ``[B, N, T, S]``; True = may attend.
      scale: default ``1 / sqrt(H)``.
      is_causal: apply a causal mask (query t sees keys s <= t, top-left aligned when T != S).

    Returns:
      ``[B, T, N, Hv]`` (``[T, N, Hv]`` unbatched) in the dtype of ``value``. A query whose
      keys are all masked gets a zero vector.

    Raises:
      TypeError: integer inputs, a non-boolean mask (use ``bias`` for additive masks).
      ValueError: head dims of query and key differ, key and value lengths differ, batch or
        head counts differ, a mask or bias that does not broadcast to the scores.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (2, 5, 4, 8))
    >>> dot_product_attention(q, q, q, is_causal=True).shape
    (2, 5, 4, 8)
    """
    check_qkv(query, key, value)
    weights_BNTS = attention_weights(
        query, key, mask, bias=bias, scale=scale, is_causal=is_causal
    )
    return weighted_sum(weights_BNTS, value)
