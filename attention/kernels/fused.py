"""Step 27a: fused attention (rung 2), the whole formula as one expression.

    output = softmax(scale * Q K^T + bias, where mask) V        (Vaswani et al. 2017, eq. 1)

What changes from rung 1 (:func:`attention.dot_product_attention`): nothing in the
mathematics. The reference composes the teaching steps (scores, masks, softmax, weights,
weighted sum), each checking its inputs and materialising its result. Here the same arithmetic
is one expression that XLA compiles into few kernels, with three small savings:

* the scale multiplies the queries ``[B, T, N, H]`` once instead of the scores ``[B, N, T, S]``;
* the causal mask, the local window and the sequence lengths are ``iota`` comparisons that
  XLA fuses into the softmax, never ``[T, S]`` arrays in memory;
* the softmax is left unnormalised and the output ``[B, T, N, Hv]`` is divided by the row sums
  after the weighted sum, so the division touches ``T * Hv`` numbers instead of ``T * S``.

Grouped-query heads (see :func:`attention.mechanism.scores.repeat_kv_heads`) are an einsum
over the query heads viewed as ``[K, G]``, ``"BTKGH,BSKH->BKGTS"``: keys are never repeated.

The cost is unchanged in kind: it still forms all ``B * N * T * S`` scores, so time and memory
grow as ``T * S`` (a local window masks scores, it does not save computing them). Rungs 3 and
4 remove that.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Shaped

from attention._checks import accumulation_dtype, check_kernel_args, refuse_score_options
from attention.kernels._arguments import (
    as_rank4,
    split_heads,
)
from attention.mechanism.scores import default_scale


def position_mask(T: int, S: int, is_causal: bool, window, ql=None, kl=None):
    """Boolean ``[B or 1, 1, 1, T, S]`` from iota comparisons, or None if nothing is masked.

    ``is_causal``: ``s <= t``; ``window = (left, right)``: ``t - left <= s <= t + right``;
    ``ql``, ``kl`` (int ``[B]``): ``t < ql[b]`` and ``s < kl[b]``.
    """
    t_TS = jax.lax.broadcasted_iota(jnp.int32, (T, S), 0)
    s_TS = jax.lax.broadcasted_iota(jnp.int32, (T, S), 1)
    ok = None

    def both(a, b):
        if a is None:
            return b
        shape = jnp.broadcast_shapes(a.shape, b.shape)
        return jnp.broadcast_to(a, shape) & jnp.broadcast_to(b, shape)

    if is_causal:
        ok = both(ok, (s_TS <= t_TS)[None, None, None])
    if window is not None:
        left, right = window
        ok = both(ok, ((s_TS >= t_TS - left) & (s_TS <= t_TS + right))[None, None, None])
    if ql is not None:
        ok = both(ok, t_TS[None, None, None] < ql[:, None, None, None, None])
    if kl is not None:
        ok = both(ok, s_TS[None, None, None] < kl[:, None, None, None, None])
    return ok


def fused_attention(
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
) -> Shaped[Array, "*B T N Hv"]:
    """Scaled dot-product attention as one fused expression; equals the reference.

    Formula, with ``m`` the row maximum over allowed keys and ``k = n // (N / K)`` the
    key/value head of query head n::

        p[b, n, t, s] = allowed * exp(scale * q[b, t, n] . k[b, s, k] + bias - m)
        output[b, t, n] = (sum_s p v[b, s, k]) / (sum_s p)

    ``allowed`` is ``mask`` AND causal (``s <= t``) AND the window (``t - left <= s <= t +
    right``) AND the lengths (``t < query_seq_lengths[b]``, ``s < key_value_seq_lengths[b]``).

    Args:
      query: ``[B, T, N, H]`` (or unbatched ``[T, N, H]``).
      key: ``[B, S, K, H]``, K dividing N; value: ``[B, S, K, Hv]``.
      bias, mask, scale, is_causal: as :func:`attention.dot_product_attention`.
      query_seq_lengths, key_value_seq_lengths: optional int ``[B]`` (``[]`` unbatched), the
        names and meaning of ``jax.nn.dot_product_attention``; padding queries output zeros.
      local_window_size: None, an int w (the window ``(w, w)``) or a pair ``(left, right)``.
      query_lengths, key_lengths: the old names of the two lengths (give one form of each).
      soft_cap, sink_logits: must be None (a ValueError names the functions that take them).

    Returns:
      ``[B, T, N, Hv]`` in the dtype of ``value``; computed in float32 for half precision. A
      query whose keys are all masked gets zeros (``jax.nn`` gives the mean of the values).

    Raises:
      TypeError, ValueError: as :func:`attention.dot_product_attention` (K not dividing N, a
        bad window, lengths of the wrong dtype, shape or range); both an old and a new name of
        one length.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (2, 5, 4, 3))
    >>> kv = jax.random.normal(jax.random.key(1), (2, 6, 2, 3))  # K = 2 heads for N = 4
    >>> want = jax.nn.dot_product_attention(q, kv, kv, is_causal=True, local_window_size=(2, 0))
    >>> got = fused_attention(q, kv, kv, is_causal=True, local_window_size=(2, 0))
    >>> bool(jnp.allclose(got, want, atol=1e-6))
    True
    """
    refuse_score_options("fused_attention", soft_cap, sink_logits)
    window, ql, kl = check_kernel_args(
        query, key, value, bias, mask, scale, query_seq_lengths=query_seq_lengths,
        key_value_seq_lengths=key_value_seq_lengths, query_lengths=query_lengths,
        key_lengths=key_lengths, local_window_size=local_window_size,
        kernel="fused_attention",
    )
    unbatched = query.ndim == 3
    if unbatched:
        query, key, value = query[None], key[None], value[None]
        ql = None if ql is None else ql[None]
        kl = None if kl is None else kl[None]
    acc = accumulation_dtype(jnp.result_type(query, key, value))
    scale = default_scale(query.shape[-1]) if scale is None else scale
    B, T, N, H = query.shape
    S, K = key.shape[1], key.shape[2]
    query_BTKGH = query.reshape(B, T, K, N // K, H)
    scores_BKGTS = jnp.einsum(
        "BTKGH,BSKH->BKGTS", query_BTKGH.astype(acc) * jnp.asarray(scale, acc), key,
        preferred_element_type=acc,
    )
    if bias is not None:
        scores_BKGTS = scores_BKGTS + split_heads(as_rank4(bias), K).astype(acc)
    allowed = split_heads(as_rank4(mask), K)
    positions = position_mask(T, S, bool(is_causal), window, ql, kl)
    if positions is not None:
        allowed = positions if allowed is None else allowed & jnp.broadcast_to(
            positions, jnp.broadcast_shapes(positions.shape, allowed.shape))
    lowest = jnp.finfo(acc).min
    if allowed is not None:
        # A large finite negative, not -inf: a fully masked row must not compute -inf - -inf.
        allowed = jnp.broadcast_to(allowed, jnp.broadcast_shapes(allowed.shape,
                                                                 scores_BKGTS.shape))
        scores_BKGTS = jnp.where(allowed, scores_BKGTS, lowest)
    row_max = jax.lax.stop_gradient(jnp.max(scores_BKGTS, axis=-1, keepdims=True))
    p_BKGTS = jnp.exp(scores_BKGTS - row_max)
    if allowed is not None:
        # In a fully masked row every score is `lowest`, so exp(0) = 1: zero them here.
        p_BKGTS = jnp.where(allowed, p_BKGTS, 0.0)
    total_BKGT = jnp.sum(p_BKGTS, axis=-1)
    output_BTKGH = jnp.einsum(
        "BKGTS,BSKH->BTKGH", p_BKGTS, value.astype(acc), preferred_element_type=acc
    )
    total_BTKG1 = jnp.einsum("BKGT->BTKG", total_BKGT)[..., None]
    output_BTKGH = output_BTKGH / jnp.where(total_BTKG1 > 0, total_BTKG1, 1.0)
    output_BTNH = output_BTKGH.reshape(B, T, N, value.shape[-1]).astype(value.dtype)
    return output_BTNH[0] if unbatched else output_BTNH
