"""Step 27b: blockwise attention (rung 3), an online softmax over blocks of keys.

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

Grouped-query heads (see :func:`attention.mechanism.scores.repeat_kv_heads`) are an einsum
over the queries viewed as ``[B, K, G, T, H]``, ``"BKGTH,BKbH->BKGTb"``: keys are never
repeated. Causality, a local window (``local_window_size``) and the sequence lengths are
position comparisons made block by block; every block is still visited (skipping the blocks
outside a window's band is rung 4's).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Shaped

from attention._checks import accumulation_dtype, check_kernel_args, refuse_score_options
from attention.kernels._arguments import (
    as_rank4,
    round_up,
    split_heads,
)
from attention.mechanism.masks import (
    causal_mask,
    combine_masks,
    local_window_mask,
    seq_lengths_mask,
)
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
    soft_cap: None = None,
    sink_logits: None = None,
    query_lengths: Int[Array, "*B"] | None = None,
    key_lengths: Int[Array, "*B"] | None = None,
    block_k: int = 512,
) -> Shaped[Array, "*B T N Hv"]:
    """Attention with an online softmax over key blocks; equals the reference.

    Args:
      query: ``[B, T, N, H]`` (or unbatched ``[T, N, H]``).
      key: ``[B, S, K, H]``, K dividing N (query head n uses key head ``n // (N / K)``);
        value: ``[B, S, K, Hv]``.
      bias, mask, scale, is_causal: as :func:`attention.dot_product_attention`.
      query_seq_lengths, key_value_seq_lengths: optional int ``[B]`` (``[]`` unbatched), as in
        ``jax.nn.dot_product_attention``; padding queries output zeros.
      local_window_size: None, w, or ``(left, right)``: query t sees keys t - left .. t + right.
      query_lengths, key_lengths: the old names of the two lengths (give one form of each).
      soft_cap, sink_logits: must be None (a ValueError names the functions that take them).
      block_k: keys per block. S need not be a multiple of it: the last block is padded
        and its padding masked.

    Returns:
      ``[B, T, N, Hv]`` in the dtype of ``value``, accumulated in float32 for half precision;
      zeros for a query whose keys are all masked (``jax.nn`` gives the values' mean).

    Raises:
      TypeError, ValueError: as :func:`attention.dot_product_attention` (K not dividing N, a
        bad window, lengths of the wrong dtype, shape or range); ``block_k`` not a positive
        int; both an old and a new name of one length.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (1, 7, 2, 4))
    >>> kv = jax.random.normal(jax.random.key(1), (1, 7, 1, 4))  # multi-query: K = 1
    >>> out = blockwise_attention(q, kv, kv, local_window_size=(2, 1), block_k=3)
    >>> want = jax.nn.dot_product_attention(q, kv, kv, local_window_size=(2, 1))
    >>> bool(jnp.allclose(out, want, atol=1e-6))
    True
    """
    refuse_score_options("blockwise_attention", soft_cap, sink_logits)
    window, ql, kl = check_kernel_args(
        query, key, value, bias, mask, scale, query_seq_lengths=query_seq_lengths,
        key_value_seq_lengths=key_value_seq_lengths, query_lengths=query_lengths,
        key_lengths=key_lengths, local_window_size=local_window_size,
        kernel="blockwise_attention", block_sizes={"block_k": block_k},
    )
    unbatched = query.ndim == 3
    if unbatched:
        query, key, value = query[None], key[None], value[None]
        ql = None if ql is None else ql[None]
        kl = None if kl is None else kl[None]
    acc = accumulation_dtype(jnp.result_type(query, key, value))
    scale = default_scale(query.shape[-1]) if scale is None else scale
    B, T, N, H = query.shape
    S, K, Hv = key.shape[1], key.shape[2], value.shape[-1]
    G = N // K
    block_k = min(block_k, S)
    S_pad = round_up(S, block_k)

    query_BKGTH = jnp.einsum(
        "BTKGH->BKGTH", (query.astype(acc) * jnp.asarray(scale, acc)).reshape(B, T, K, G, H))
    key_JBKbH = _key_blocks(jnp.einsum("BSKH->BKSH", key), 2, S, S_pad, block_k, 0)
    value_JBKbH = _key_blocks(jnp.einsum("BSKH->BKSH", value), 2, S, S_pad, block_k, 0)
    # Padded keys are masked through their position, so masks need no padding of their own
    # beyond False (which `_key_blocks` writes) for a mask that runs along S.
    mask5 = split_heads(as_rank4(mask), K)
    bias5 = split_heads(as_rank4(bias), K)
    mask_blocks = None if mask5 is None else _key_blocks(mask5, 4, S, S_pad, block_k, False)
    bias_blocks = None if bias5 is None else _key_blocks(bias5, 4, S, S_pad, block_k, 0)
    query_position_T1 = jnp.arange(T)[:, None]
    lowest = jnp.finfo(acc).min

    def step(carry, block):
        m_BKGT, l_BKGT, acc_BKGTH = carry
        j, key_BKbH, value_BKbH, mask_b, bias_b = block
        s_BKGTb = jnp.einsum("BKGTH,BKbH->BKGTb", query_BKGTH, key_BKbH,
                             preferred_element_type=acc)
        if bias_b is not None:
            s_BKGTb = s_BKGTb + bias_b.astype(acc)
        key_position_1b = j * block_k + jnp.arange(block_k)[None, :]
        allowed_Tb = jnp.broadcast_to(key_position_1b < S, (T, block_k))
        if is_causal:
            allowed_Tb = allowed_Tb & (key_position_1b <= query_position_T1)
        if window is not None:
            left, right = window
            allowed_Tb = allowed_Tb & (key_position_1b >= query_position_T1 - left) & (
                key_position_1b <= query_position_T1 + right)
        allowed = allowed_Tb[None, None, None]
        if kl is not None:
            allowed = allowed & (key_position_1b[None, None, None] < kl[:, None, None, None, None])
        if ql is not None:
            allowed = allowed & (query_position_T1[None, None, None]
                                 < ql[:, None, None, None, None])
        if mask_b is not None:
            allowed = allowed & mask_b
        s_BKGTb = jnp.where(allowed, s_BKGTb, lowest)
        m_new_BKGT = jnp.maximum(m_BKGT, jnp.max(s_BKGTb, axis=-1))
        alpha_BKGT = jnp.exp(m_BKGT - m_new_BKGT)
        # Masked entries get exp(lowest - m_new) = 0 once any key of the row is allowed. While
        # none is, m_new = lowest and they get exp(0) = 1: harmless, because the first allowed
        # key sets alpha = exp(lowest - m_real) = 0 and wipes them; a row that never sees one
        # is set to zero at the end.
        p_BKGTb = jnp.exp(s_BKGTb - m_new_BKGT[..., None])
        l_BKGT = alpha_BKGT * l_BKGT + jnp.sum(p_BKGTb, axis=-1)
        acc_BKGTH = alpha_BKGT[..., None] * acc_BKGTH + jnp.einsum(
            "BKGTb,BKbH->BKGTH", p_BKGTb, value_BKbH.astype(acc), preferred_element_type=acc
        )
        return (m_new_BKGT, l_BKGT, acc_BKGTH), None

    init = (
        jnp.full((B, K, G, T), lowest, acc),
        jnp.zeros((B, K, G, T), acc),
        jnp.zeros((B, K, G, T, Hv), acc),
    )
    blocks = (jnp.arange(S_pad // block_k), key_JBKbH, value_JBKbH, mask_blocks, bias_blocks)
    (m_BKGT, l_BKGT, acc_BKGTH), _ = jax.lax.scan(step, init, blocks)
    seen_BKGT = m_BKGT > lowest
    output_BKGTH = jnp.where(
        seen_BKGT[..., None], acc_BKGTH / jnp.where(seen_BKGT, l_BKGT, 1.0)[..., None], 0.0
    )
    output_BTNH = jnp.einsum("BKGTH->BTKGH", output_BKGTH).reshape(B, T, N, Hv)
    output_BTNH = output_BTNH.astype(value.dtype)
    return output_BTNH[0] if unbatched else output_BTNH


def blockwise_attention_reference(
    query: Shaped[Array, "B T N H"],
    key: Shaped[Array, "B S K H"],
    value: Shaped[Array, "B S K Hv"],
    bias: None = None,
    mask: Bool[Array, "..."] | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    query_seq_lengths: Int[Array, " B"] | None = None,
    key_value_seq_lengths: Int[Array, " B"] | None = None,
    local_window_size: int | tuple[int, int] | None = None,
    soft_cap: None = None,
    sink_logits: None = None,
    query_lengths: Int[Array, " B"] | None = None,
    key_lengths: Int[Array, " B"] | None = None,
    block_k: int = 512,
) -> Shaped[Array, "B T N Hv"]:
    """The same online softmax as a plain Python loop over key blocks, to read beside it.

    Python unrolls the loop, so each length compiles a new program of ``S / block_k`` steps;
    that is why :func:`blockwise_attention` uses ``jax.lax.scan``. Float32 inputs, batched
    only, no bias; to keep the loop short, the key/value heads are repeated to N (the
    teaching view, ``jnp.repeat``) and the mask is formed in full (``[B, N, T, S]``) from the
    causal, window and length masks of :mod:`attention.mechanism.masks`.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (1, 5, 2, 4))
    >>> kv = jax.random.normal(jax.random.key(1), (1, 5, 1, 4))
    >>> a = blockwise_attention_reference(q, kv, kv, local_window_size=1, block_k=2)
    >>> b = blockwise_attention(q, kv, kv, local_window_size=1, block_k=2)
    >>> bool(jnp.allclose(a, b, atol=1e-6))
    True
    """
    refuse_score_options("blockwise_attention_reference", soft_cap, sink_logits)
    window, ql, kl = check_kernel_args(
        query, key, value, bias, mask, scale, query_seq_lengths=query_seq_lengths,
        key_value_seq_lengths=key_value_seq_lengths, query_lengths=query_lengths,
        key_lengths=key_lengths, local_window_size=local_window_size,
        kernel="blockwise_attention_reference", bias_ok=False,
    )
    T, N, S = query.shape[1], query.shape[2], key.shape[1]
    G = N // key.shape[2]
    key, value = jnp.repeat(key, G, axis=2), jnp.repeat(value, G, axis=2)
    scale = default_scale(query.shape[-1]) if scale is None else scale
    scores_BNTS = jnp.einsum("BTNH,BSNH->BNTS", query, key) * scale
    allowed_BNTS = jnp.broadcast_to(
        combine_masks(
            mask, causal_mask(T, S) if is_causal else None,
            None if window is None else local_window_mask(T, S, window),
            seq_lengths_mask(T, S, ql, kl), jnp.ones((), bool),
        ),
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
