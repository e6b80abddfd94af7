"""Rung 2: fused attention, the whole formula as one expression.

    output = softmax(scale * Q K^T + bias, where mask) V        (Vaswani et al. 2017, eq. 1)

What changes from rung 1 (:func:`attention.dot_product_attention`): nothing in the
mathematics. The reference composes the teaching steps (scores, masks, softmax, weights,
weighted sum), each checking its inputs and materialising its result. Here the same arithmetic
is one expression that XLA compiles into few kernels, with three small savings:

* the scale multiplies the queries ``[B, T, N, H]`` once instead of the scores ``[B, N, T, S]``;
* the causal mask is two ``iota`` comparisons that XLA fuses into the softmax, never an array;
* the softmax is left unnormalised and the output ``[B, T, N, Hv]`` is divided by the row sums
  after the weighted sum, so the division touches ``T * Hv`` numbers instead of ``T * S``.

The cost is unchanged in kind: it still forms all ``B * N * T * S`` scores, so time and memory
grow as ``T * S``. Rungs 3 and 4 remove that.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Shaped

from attention._checks import accumulation_dtype
from attention.kernels._arguments import as_rank4, check_attention_args
from attention.mechanism.scores import default_scale


def fused_attention(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S N H"],
    value: Shaped[Array, "*B S N Hv"],
    bias: Shaped[Array, "..."] | None = None,
    mask: Bool[Array, "..."] | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
) -> Shaped[Array, "*B T N Hv"]:
    """Scaled dot-product attention as one fused expression; equals the reference.

    Formula, with ``m`` the row maximum over allowed keys::

        p[b, n, t, s] = mask * exp(scale * q_t . k_s + bias - m)
        output[b, t, n] = (sum_s p v_s) / (sum_s p)

    Args:
      query, key, value, bias, mask, scale, is_causal: as
        :func:`attention.dot_product_attention` (``[B, T, N, H]``, ``[B, S, N, H]``,
        ``[B, S, N, Hv]``, or unbatched without ``B``).

    Returns:
      ``[B, T, N, Hv]`` in the dtype of ``value``; computed in float32 for half precision. A
      query whose keys are all masked gets zeros.

    Raises:
      TypeError, ValueError: as :func:`attention.dot_product_attention`.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (2, 5, 3, 4))
    >>> from attention import dot_product_attention
    >>> bool(jnp.allclose(fused_attention(q, q, q), dot_product_attention(q, q, q), atol=1e-6))
    True
    """
    check_attention_args(query, key, value, bias, mask, scale)
    unbatched = query.ndim == 3
    if unbatched:
        query, key, value = query[None], key[None], value[None]
        mask, bias = as_rank4(mask), as_rank4(bias)
    acc = accumulation_dtype(jnp.result_type(query, key, value))
    scale = default_scale(query.shape[-1]) if scale is None else scale
    T, S = query.shape[1], key.shape[1]
    scores_BNTS = jnp.einsum(
        "BTNH,BSNH->BNTS", query.astype(acc) * jnp.asarray(scale, acc), key,
        preferred_element_type=acc,
    )
    if bias is not None:
        scores_BNTS = scores_BNTS + as_rank4(bias).astype(acc)
    allowed = None if mask is None else as_rank4(mask)
    if is_causal:
        causal_TS = jax.lax.broadcasted_iota(jnp.int32, (T, S), 1) <= (
            jax.lax.broadcasted_iota(jnp.int32, (T, S), 0)
        )
        allowed = causal_TS[None, None] if allowed is None else allowed & causal_TS[None, None]
    lowest = jnp.finfo(acc).min
    if allowed is not None:
        # A large finite negative, not -inf: a fully masked row must not compute -inf - -inf.
        scores_BNTS = jnp.where(allowed, scores_BNTS, lowest)
    row_max_BNT1 = jax.lax.stop_gradient(jnp.max(scores_BNTS, axis=-1, keepdims=True))
    p_BNTS = jnp.exp(scores_BNTS - row_max_BNT1)
    if allowed is not None:
        # In a fully masked row every score is `lowest`, so exp(0) = 1: zero them here.
        p_BNTS = jnp.where(allowed, p_BNTS, 0.0)
    total_BNT = jnp.sum(p_BNTS, axis=-1)
    output_BTNH = jnp.einsum(
        "BNTS,BSNH->BTNH", p_BNTS, value.astype(acc), preferred_element_type=acc
    )
    total_BTN1 = jnp.swapaxes(total_BNT, 1, 2)[..., None]
    output_BTNH = output_BTNH / jnp.where(total_BTN1 > 0, total_BTN1, 1.0)
    output_BTNH = output_BTNH.astype(value.dtype)
    return output_BTNH[0] if unbatched else output_BTNH
