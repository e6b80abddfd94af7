"""Rung 3: blockwise attention, an online softmax over blocks of keys.

What changes from rung 2 (:func:`attention.kernels.fused_attention`): the keys are read in
blocks of ``block_k`` and the ``[B, N, T, S]`` scores are never formed. Each block updates,
for every query, a running maximum ``m``, a running sum ``l`` of ``exp(score - m)`` and a
running unnormalised output ``acc``; when a later block raises the maximum, what was summed so
far is rescaled by ``exp(m_old - m_new)`` (the *online softmax*, Milakov & Gimelshein 2018).
Rabe & Staats (2021, "Self-attention does not need O(n^2) memory") use it for attention::

    for each key block j:
        s     = scale * Q K_j^T                   [B, N, T, block_k]
        m_new = max(m, rowmax(s))
        alpha = exp(m - m_new)                    rescales what was summed before
        p     = exp(s - m_new)
        l     = alpha * l + rowsum(p)
        acc   = alpha * acc + p V_j
        m     = m_new
    output = acc / l

The loop is a ``jax.lax.scan``, so it compiles once whatever the number of blocks, and the
forward pass needs memory ``O(T * block_k)`` instead of ``O(T * S)``. Two things are left to
rung 4 (:func:`attention.kernels.flash_attention`): differentiating through the scan makes JAX
store every block's weights for the backward pass (so training memory is quadratic again),
and with causal masking the blocks above the diagonal are still computed, then masked.

Masks of any broadcastable form are sliced block by block along S, never broadcast to the full
``[B, N, T, S]``; so is an additive ``bias``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Shaped

from attention._checks import accumulation_dtype
from attention.kernels._arguments import (
    as_rank4,
    check_attention_args,
    check_block_size,
    round_up,
)
from attention.mechanism.masks import causal_mask, combine_masks
from attention.mechanism.scores import default_scale


def _key_blocks(array, axis: int, S: int, S_pad: int, block_k: int, fill):
    """Pad ``axis`` (of size S) to S_pad and split it into a leading axis of blocks.

    An axis of size 1 (a mask broadcast over keys) is left as it is and repeated per block.
    """
    n_blocks = S_pad // block_k
    if array.shape[axis] == 1:
        return jnp.broadcast_to(array[None], (n_blocks, *array.shape))
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, S_pad - S)
    array = jnp.pad(array, pad, constant_values=fill)
    shape = array.shape[:axis] + (n_blocks, block_k) + array.shape[axis + 1 :]
    return jnp.moveaxis(array.reshape(shape), axis, 0)


def blockwise_attention(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S N H"],
    value: Shaped[Array, "*B S N Hv"],
    bias: Shaped[Array, "..."] | None = None,
    mask: Bool[Array, "..."] | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    block_k: int = 512,
) -> Shaped[Array, "*B T N Hv"]:
    """Attention with an online softmax over key blocks; equals the reference.

    Args:
      query, key, value, bias, mask, scale, is_causal: as
        :func:`attention.dot_product_attention`.
      block_k: keys per block. S need not be a multiple of it: the last block is padded
        and its padding masked.

    Returns:
      ``[B, T, N, Hv]`` in the dtype of ``value``, accumulated in float32 for half precision;
      zeros for a query whose keys are all masked.

    Raises:
      TypeError, ValueError: as :func:`attention.dot_product_attention`; ``block_k`` not a
        positive int.

    >>> import jax, jax.numpy as jnp
    >>> from attention import dot_product_attention
    >>> q = jax.random.normal(jax.random.key(0), (1, 7, 2, 4))
    >>> out = blockwise_attention(q, q, q, is_causal=True, block_k=3)
    >>> bool(jnp.allclose(out, dot_product_attention(q, q, q, is_causal=True), atol=1e-6))
    True
    """
    check_attention_args(query, key, value, bias, mask, scale)
    check_block_size("block_k", block_k)
    unbatched = query.ndim == 3
    if unbatched:
        query, key, value = query[None], key[None], value[None]
    mask, bias = as_rank4(mask), as_rank4(bias)
    acc = accumulation_dtype(jnp.result_type(query, key, value))
    scale = default_scale(query.shape[-1]) if scale is None else scale
    B, T, N, _ = query.shape
    S, Hv = key.shape[1], value.shape[-1]
    block_k = min(block_k, S)
    S_pad = round_up(S, block_k)

    query_BNTH = jnp.einsum("BTNH->BNTH", query.astype(acc) * jnp.asarray(scale, acc))
    key_KBNbH = _key_blocks(jnp.einsum("BSNH->BNSH", key), 2, S, S_pad, block_k, 0)
    value_KBNbH = _key_blocks(jnp.einsum("BSNH->BNSH", value), 2, S, S_pad, block_k, 0)
    # Padded keys are masked through their position, so masks need no padding of their own
    # beyond False (which `_key_blocks` writes) for a mask that runs along S.
    mask_blocks = None if mask is None else _key_blocks(mask, 3, S, S_pad, block_k, False)
    bias_blocks = None if bias is None else _key_blocks(bias, 3, S, S_pad, block_k, 0)
    query_position_T1 = jnp.arange(T)[:, None]
    lowest = jnp.finfo(acc).min

    def step(carry, block):
        m_BNT, l_BNT, acc_BNTH = carry
        j, key_BNbH, value_BNbH, mask_b, bias_b = block
        s_BNTb = jnp.einsum("BNTH,BNbH->BNTb", query_BNTH, key_BNbH, preferred_element_type=acc)
        if bias_b is not None:
            s_BNTb = s_BNTb + bias_b.astype(acc)
        key_position_1b = j * block_k + jnp.arange(block_k)[None, :]
        allowed = (key_position_1b < S)[None, None]
        if is_causal:
            allowed = allowed & (key_position_1b <= query_position_T1)[None, None]
        if mask_b is not None:
            allowed = allowed & mask_b
        s_BNTb = jnp.where(allowed, s_BNTb, lowest)
        m_new_BNT = jnp.maximum(m_BNT, jnp.max(s_BNTb, axis=-1))
        alpha_BNT = jnp.exp(m_BNT - m_new_BNT)
        # Masked entries get exp(lowest - m_new) = 0 once any key of the row is allowed. While
        # none is, m_new = lowest and they get exp(0) = 1: harmless, because the first allowed
        # key sets alpha = exp(lowest - m_real) = 0 and wipes them; a row that never sees one
        # is set to zero at the end.
        p_BNTb = jnp.exp(s_BNTb - m_new_BNT[..., None])
        l_BNT = alpha_BNT * l_BNT + jnp.sum(p_BNTb, axis=-1)
        acc_BNTH = alpha_BNT[..., None] * acc_BNTH + jnp.einsum(
            "BNTb,BNbH->BNTH", p_BNTb, value_BNbH.astype(acc), preferred_element_type=acc
        )
        return (m_new_BNT, l_BNT, acc_BNTH), None

    init = (
        jnp.full((B, N, T), lowest, acc),
        jnp.zeros((B, N, T), acc),
        jnp.zeros((B, N, T, Hv), acc),
    )
    blocks = (jnp.arange(S_pad // block_k), key_KBNbH, value_KBNbH, mask_blocks, bias_blocks)
    (m_BNT, l_BNT, acc_BNTH), _ = jax.lax.scan(step, init, blocks)
    seen_BNT = m_BNT > lowest
    output_BNTH = jnp.where(
        seen_BNT[..., None], acc_BNTH / jnp.where(seen_BNT, l_BNT, 1.0)[..., None], 0.0
    )
    output_BTNH = jnp.einsum("BNTH->BTNH", output_BNTH).astype(value.dtype)
    return output_BTNH[0] if unbatched else output_BTNH


def blockwise_attention_reference(
    query: Shaped[Array, "B T N H"],
    key: Shaped[Array, "B S N H"],
    value: Shaped[Array, "B S N Hv"],
    mask: Bool[Array, "..."] | None = None,
    *,
    is_causal: bool = False,
    block_k: int = 512,
) -> Shaped[Array, "B T N Hv"]:
    """The same online softmax as a plain Python loop over key blocks, to read beside it.

    Python unrolls the loop, so each length compiles a new program of ``S / block_k`` steps;
    that is why :func:`blockwise_attention` uses ``jax.lax.scan``. Float32 inputs, batched
    only; the mask is formed in full (``[B, N, T, S]``) to keep the loop short.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (1, 5, 2, 4))
    >>> a = blockwise_attention_reference(q, q, q, block_k=2)
    >>> bool(jnp.allclose(a, blockwise_attention(q, q, q, block_k=2), atol=1e-6))
    True
    """
    T, S = query.shape[1], key.shape[1]
    scores_BNTS = jnp.einsum("BTNH,BSNH->BNTS", query, key) * default_scale(query.shape[-1])
    allowed_BNTS = jnp.broadcast_to(
        combine_masks(mask, causal_mask(T, S) if is_causal else None, jnp.ones((), bool)),
        scores_BNTS.shape,
    )
    lowest = jnp.finfo(scores_BNTS.dtype).min
    m = jnp.full(scores_BNTS.shape[:-1], lowest)
    total = jnp.zeros(scores_BNTS.shape[:-1])
    acc = jnp.zeros((*scores_BNTS.shape[:-1], value.shape[-1]))
    for start in range(0, S, block_k):
        ok = allowed_BNTS[..., start : start + block_k]
        s = jnp.where(ok, scores_BNTS[..., start : start + block_k], lowest)
        v_BNbH = jnp.einsum("BSNH->BNSH", value[:, start : start + block_k])
        m_new = jnp.maximum(m, jnp.max(s, axis=-1))
        p = jnp.where(ok, jnp.exp(s - m_new[..., None]), 0.0)
        alpha = jnp.exp(m - m_new)
        total = alpha * total + p.sum(-1)
        acc = alpha[..., None] * acc + p @ v_BNbH
        m = m_new
    output_BNTH = acc / jnp.where(total > 0, total, 1.0)[..., None]
    return jnp.einsum("BNTH->BTNH", output_BNTH)
