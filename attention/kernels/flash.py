"""Rung 4: flash attention, tiled over queries and keys, with a memory-light backward pass.

What changes from rung 3 (:func:`attention.kernels.blockwise_attention`):

* **Tiles, not rows of blocks.** The queries are cut into blocks of ``block_q`` too, and each
  query block runs its own online softmax over the key blocks (Dao et al. 2022,
  "FlashAttention", algorithm 1; FlashAttention-2, Dao 2023, puts the query loop outside, as
  here). Every step is a ``[block_q, H] x [H, block_k]`` matrix product whose scores fit in
  cache.
* **Skipped tiles.** With ``is_causal`` the tiles above the diagonal are all masked; the key
  loop of query block i stops at the diagonal (a ``jax.lax.fori_loop`` with a computed upper
  bound), so about half the work is never done. The same bound skips key blocks that are
  padding in every sequence (``key_lengths``), and query blocks past every ``query_lengths``.
  Masking is a few integer comparisons that XLA fuses into the max and exp reading the
  scores; with no mask, lengths or causality it is left out of the program altogether.
* **A custom backward pass** (``jax.custom_vjp``, FlashAttention-2 section 3.1.2). The forward
  saves only the output and the log-sum-exp ``lse = m + log(l)`` of each query row. The
  backward recomputes each tile's weights as ``p = exp(s - lse)`` and accumulates::

      dV_j += p^T dO_i          dP = dO_i V_j^T          dS = p * (dP - rowsum(dO * O))
      dK_j += dS^T Q_i          dQ_i += dS K_j

  so training memory, like inference memory, grows linearly in T (autodiff through rung 3
  stores every block's weights: quadratic).
* **Any length**: T and S are padded up to the block sizes and the padding masked.
* **One head at a time** for long sequences: each tile is then one large matrix product
  rather than a batch of small ones (short sequences keep all heads together, where per-head
  products would be too small), and the backward cuts query blocks shorter than the
  forward's, as FlashAttention-2 tunes its backward tiles separately.

Masks: a boolean ``mask`` broadcastable to ``[B, N, T, S]`` is sliced tile by tile (so a
``[B, 1, 1, S]`` padding mask never grows), but forces masking of every tile; key padding is
cheaper given as ``key_lengths`` ``[B]`` (keys ``s >= key_lengths[b]`` are masked), which also
lets whole padding tiles be skipped. ``query_lengths`` ``[B]`` masks queries
``t >= query_lengths[b]`` (they output zeros). An additive ``bias`` is not supported: it is a
``[B, N, T, S]`` array, exactly what this kernel avoids; use :func:`fused_attention`.

Float32 accumulation for half-precision inputs; the output has the dtype of ``value``; a query
whose keys are all masked outputs zeros, as in the reference.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Shaped

from attention._checks import accumulation_dtype
from attention.kernels._arguments import (
    as_rank4,
    check_attention_args,
    check_block_size,
    check_lengths,
    round_up,
)
from attention.mechanism.masks import combine_masks
from attention.mechanism.scaled_dot_product import dot_product_attention
from attention.mechanism.scores import default_scale


def _cdiv(a, b):
    return (a + b - 1) // b


def _tile(array, axis: int, index, size: int):
    """Block ``index`` of ``size`` along ``axis``, or the whole axis if it has size 1."""
    if array.shape[axis] == 1:
        return array
    return jax.lax.dynamic_slice_in_dim(array, index * size, size, axis)


class _Tiling:
    """Which tiles to visit and which need masking; shared by the forward and backward."""

    def __init__(self, mask, key_lengths, query_lengths, is_causal, block_q, block_k, T, S):
        # key_lengths / query_lengths are None when nothing along that axis is masked: then no
        # tile pays for comparing positions with them.
        self.mask, self.kl, self.ql = mask, key_lengths, query_lengths
        self.is_causal, self.bq, self.bk = is_causal, block_q, block_k
        self.masks_nothing = mask is None and key_lengths is None and query_lengths is None and (
            not is_causal)
        self.max_kl, self.min_kl = (S, S) if key_lengths is None else (
            jnp.max(key_lengths), jnp.min(key_lengths))
        self.max_ql, self.min_ql = (T, T) if query_lengths is None else (
            jnp.max(query_lengths), jnp.min(query_lengths))

    def key_range(self, i):
        """Key blocks [0, hi) that query block i must visit."""
        hi = _cdiv(self.max_kl, self.bk)
        if self.is_causal:  # query t sees keys s <= t; the last query of block i is bq(i+1)-1.
            hi = jnp.minimum(hi, _cdiv((i + 1) * self.bq, self.bk))
        return jnp.where(i * self.bq < self.max_ql, hi, 0)

    def query_range(self, j):
        """Query blocks [lo, hi) that key block j must visit (the backward's inner loop)."""
        lo = (j * self.bk) // self.bq if self.is_causal else 0
        hi = jnp.where(j * self.bk < self.max_kl, _cdiv(self.max_ql, self.bq), lo)
        return lo, hi

    def allowed(self, i, j):
        """Boolean ``[B or 1, N or 1, bq, bk]``: which entries of tile (i, j) may attend."""
        q_pos_q1 = i * self.bq + jnp.arange(self.bq)[:, None]
        k_pos_1k = j * self.bk + jnp.arange(self.bk)[None, :]
        ok = jnp.ones((1, 1, 1, 1), bool)
        if self.kl is not None:
            ok = ok & (k_pos_1k[None, None] < self.kl[:, None, None, None])
        if self.ql is not None:
            ok = ok & (q_pos_q1[None, None] < self.ql[:, None, None, None])
        if self.is_causal:
            ok = ok & (k_pos_1k <= q_pos_q1)[None, None]
        if self.mask is not None:
            ok = ok & _tile(_tile(self.mask, 2, i, self.bq), 3, j, self.bk)
        return ok

    def scores(self, q_BNqH, k_BNkH, i, j, *, transposed=False):
        """Scores of tile (i, j) as ``[B, N, bq, bk]`` (``[B, N, bk, bq]`` if ``transposed``,
        as the backward wants them), masked entries set to the lowest finite value."""
        if transposed:
            s = jnp.einsum("BNkH,BNqH->BNkq", k_BNkH, q_BNqH)
        else:
            s = jnp.einsum("BNqH,BNkH->BNqk", q_BNqH, k_BNkH)
        if self.masks_nothing:
            return s
        # Always masked, also inside the diagonal: the comparisons are of iotas and fuse into
        # the max and exp that read the scores, which costs less than branching per tile.
        allowed = self.allowed(i, j)
        if transposed:
            allowed = jnp.swapaxes(allowed, -1, -2)
        return jnp.where(allowed, s, jnp.finfo(s.dtype).min)


def _forward_tiles(q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, is_causal, bq, bk):
    """Output ``[B, N, T, Hv]`` and log-sum-exp ``[B, N, T]`` (0 for fully masked rows)."""
    B, N, T, _ = q_BNTH.shape
    tiling = _Tiling(mask, kl, ql, is_causal, bq, bk, T, k_BNSH.shape[2])
    Hv = v_BNSH.shape[-1]
    lowest = jnp.finfo(q_BNTH.dtype).min

    def query_block(i):
        q_BNqH = jax.lax.dynamic_slice_in_dim(q_BNTH, i * bq, bq, 2)

        def key_step(j, carry):
            m_BNq, l_BNq, acc_BNqH = carry
            k_BNkH = jax.lax.dynamic_slice_in_dim(k_BNSH, j * bk, bk, 2)
            v_BNkH = jax.lax.dynamic_slice_in_dim(v_BNSH, j * bk, bk, 2)
            s_BNqk = tiling.scores(q_BNqH, k_BNkH, i, j)
            m_new_BNq = jnp.maximum(m_BNq, jnp.max(s_BNqk, axis=-1))
            alpha_BNq = jnp.exp(m_BNq - m_new_BNq)
            # Masked entries give exp(lowest - m_new) = 0 once the row has an allowed key;
            # before that (m_new = lowest) they give 1, wiped by alpha = 0 at the first
            # allowed key, or by the `seen` test below if none ever comes.
            p_BNqk = jnp.exp(s_BNqk - m_new_BNq[..., None])
            l_BNq = alpha_BNq * l_BNq + jnp.sum(p_BNqk, axis=-1)
            acc_BNqH = alpha_BNq[..., None] * acc_BNqH + jnp.einsum(
                "BNqk,BNkH->BNqH", p_BNqk, v_BNkH
            )
            return m_new_BNq, l_BNq, acc_BNqH

        init = (
            jnp.full((B, N, bq), lowest, q_BNTH.dtype),
            jnp.zeros((B, N, bq), q_BNTH.dtype),
            jnp.zeros((B, N, bq, Hv), q_BNTH.dtype),
        )
        if n_key_blocks == 1:
            # One key block: no loop. Visiting a block the bound would skip is harmless (all
            # its entries are masked), and short sequences avoid the loop's overhead.
            m_BNq, l_BNq, acc_BNqH = key_step(0, init)
        else:
            m_BNq, l_BNq, acc_BNqH = jax.lax.fori_loop(0, tiling.key_range(i), key_step, init)
        seen_BNq = m_BNq > lowest
        l_BNq = jnp.where(seen_BNq, l_BNq, 1.0)
        out_BNqH = jnp.where(seen_BNq[..., None], acc_BNqH / l_BNq[..., None], 0.0)
        lse_BNq = jnp.where(seen_BNq, m_BNq + jnp.log(l_BNq), 0.0)
        return out_BNqH, lse_BNq

    n_key_blocks = k_BNSH.shape[2] // bk
    if T == bq:
        out_QBNqH, lse_QBNq = jax.tree.map(lambda x: x[None], query_block(0))
    else:
        out_QBNqH, lse_QBNq = jax.lax.map(query_block, jnp.arange(T // bq))
    out_BNTH = jnp.einsum("QBNqH->BNQqH", out_QBNqH).reshape(B, N, T, Hv)
    lse_BNT = jnp.einsum("QBNq->BNQq", lse_QBNq).reshape(B, N, T)
    return out_BNTH, lse_BNT


def _backward_tiles(q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, out_BNTH, lse_BNT, dout_BNTH,
                   is_causal, bq, bk):
    """Gradients for q, k, v, recomputing each tile's weights from ``lse``."""
    S = k_BNSH.shape[2]
    tiling = _Tiling(mask, kl, ql, is_causal, bq, bk, q_BNTH.shape[2], S)
    delta_BNT = jnp.sum(dout_BNTH * out_BNTH, axis=-1)  # rowsum(dO * O), FA-2 eq. (D_i)

    def key_block(dq_BNTH, j):
        k_BNkH = jax.lax.dynamic_slice_in_dim(k_BNSH, j * bk, bk, 2)
        v_BNkH = jax.lax.dynamic_slice_in_dim(v_BNSH, j * bk, bk, 2)

        def query_step(i, carry):
            dk_BNkH, dv_BNkH, dq_BNTH = carry
            q_BNqH = jax.lax.dynamic_slice_in_dim(q_BNTH, i * bq, bq, 2)
            do_BNqH = jax.lax.dynamic_slice_in_dim(dout_BNTH, i * bq, bq, 2)
            lse_BNq = jax.lax.dynamic_slice_in_dim(lse_BNT, i * bq, bq, 2)
            delta_BNq = jax.lax.dynamic_slice_in_dim(delta_BNT, i * bq, bq, 2)
            # Tiles are computed transposed, [k, q], so that three of the four products
            # below contract over their operands' last or first axes without a transpose.
            sT_BNkq = tiling.scores(q_BNqH, k_BNkH, i, j, transposed=True)
            pT_BNkq = jnp.exp(sT_BNkq - lse_BNq[..., None, :])  # masked: exp(lowest - lse) = 0
            dv_BNkH = dv_BNkH + jnp.einsum("BNkq,BNqH->BNkH", pT_BNkq, do_BNqH)
            dpT_BNkq = jnp.einsum("BNkH,BNqH->BNkq", v_BNkH, do_BNqH)
            dsT_BNkq = pT_BNkq * (dpT_BNkq - delta_BNq[..., None, :])
            dk_BNkH = dk_BNkH + jnp.einsum("BNkq,BNqH->BNkH", dsT_BNkq, q_BNqH)
            dq_BNqH = jax.lax.dynamic_slice_in_dim(dq_BNTH, i * bq, bq, 2) + jnp.einsum(
                "BNkq,BNkH->BNqH", dsT_BNkq, k_BNkH
            )
            dq_BNTH = jax.lax.dynamic_update_slice_in_dim(dq_BNTH, dq_BNqH, i * bq, 2)
            return dk_BNkH, dv_BNkH, dq_BNTH

        init = (jnp.zeros_like(k_BNkH), jnp.zeros_like(v_BNkH), dq_BNTH)
        if q_BNTH.shape[2] == bq:  # one query block: no loop (see `_forward`)
            dk_BNkH, dv_BNkH, dq_BNTH = query_step(0, init)
        else:
            lo, hi = tiling.query_range(j)
            dk_BNkH, dv_BNkH, dq_BNTH = jax.lax.fori_loop(lo, hi, query_step, init)
        return dq_BNTH, (dk_BNkH, dv_BNkH)

    if S == bk:
        dq_BNTH, (dk_KBNkH, dv_KBNkH) = key_block(jnp.zeros_like(q_BNTH), 0)
        dk_KBNkH, dv_KBNkH = dk_KBNkH[None], dv_KBNkH[None]
    else:
        dq_BNTH, (dk_KBNkH, dv_KBNkH) = jax.lax.scan(
            key_block, jnp.zeros_like(q_BNTH), jnp.arange(S // bk)
        )
    B, N = k_BNSH.shape[:2]
    dk_BNSH = jnp.einsum("KBNkH->BNKkH", dk_KBNkH).reshape(k_BNSH.shape)
    dv_BNSH = jnp.einsum("KBNkH->BNKkH", dv_KBNkH).reshape(B, N, S, v_BNSH.shape[-1])
    return dq_BNTH, dk_BNSH, dv_BNSH


def _head_by_head(kernel, arrays_BN, mask, kl, ql):
    """``kernel(*arrays, mask, kl, ql)`` run on one (batch, head) pair at a time.

    Why: one head's tile is one large matrix product that keeps both cores busy, where a tile
    batched over all heads is many smaller ones, and its scores stay in cache between the
    product, the max and the exp that read them (measured on a 2-core CPU at T=8192: about
    1.2x faster). ``arrays_BN`` are ``[B, N, ...]``; so are the results.
    """
    B, N = arrays_BN[0].shape[:2]

    def one_head(bn):
        b, n = bn // N, bn % N

        def pick(x, b=b, n=n):  # [B or 1, N or 1, ...] -> [1, 1, ...] at (b, n)
            start = (b * (x.shape[0] > 1), n * (x.shape[1] > 1)) + (0,) * (x.ndim - 2)
            return jax.lax.dynamic_slice(x, start, (1, 1) + x.shape[2:])

        def pick_b(lengths):
            return None if lengths is None else jax.lax.dynamic_slice(lengths, (b,), (1,))

        results = kernel(*map(pick, arrays_BN), None if mask is None else pick(mask),
                         pick_b(kl), pick_b(ql))
        return jax.tree.map(lambda y: y[0, 0], results)

    results = jax.lax.map(one_head, jnp.arange(B * N))
    return jax.tree.map(lambda y: y.reshape(B, N, *y.shape[1:]), results)


# Up to this many scores per head, all heads go through the tiles together (short sequences,
# where per-head products would be too small to keep both cores busy); above it, one head at
# a time (measured at T=1024 on a 2-core CPU: 43 ms all at once, 19 ms head by head).
ALL_HEADS_MAX_SCORES = 512 * 512


def _all_heads_at_once(q_BNTH, k_BNSH):
    return q_BNTH.shape[2] * k_BNSH.shape[2] <= ALL_HEADS_MAX_SCORES


def _forward(q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, is_causal, bq, bk):
    """As :func:`_forward_tiles`; head by head for long sequences."""
    if _all_heads_at_once(q_BNTH, k_BNSH):
        return _forward_tiles(q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, is_causal, bq, bk)
    kernel = partial(_forward_tiles, is_causal=is_causal, bq=bq, bk=bk)
    return _head_by_head(kernel, (q_BNTH, k_BNSH, v_BNSH), mask, kl, ql)


# The backward does five products per tile, not two, and carries dK, dV and a slice of dQ:
# its best tile is shorter along the queries than the forward's (measured at T=8192, head
# dim 64, on a 2-core CPU: query blocks of 256 took 2.4 s where 1024 took 3.1 s). It cuts
# each forward query block into the largest equal parts of at most this many queries.
BACKWARD_QUERY_BLOCK = 256


def _backward(q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, out_BNTH, lse_BNT, dout_BNTH,
              is_causal, bq, bk):
    """As :func:`_backward_tiles`; head by head, in shorter query blocks, for long sequences."""
    if _all_heads_at_once(q_BNTH, k_BNSH):
        return _backward_tiles(q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, out_BNTH, lse_BNT,
                               dout_BNTH, is_causal, bq, bk)
    bq_backward = max(d for d in range(1, min(bq, BACKWARD_QUERY_BLOCK) + 1) if bq % d == 0)

    def kernel(q, k, v, out, lse, dout, mask, kl, ql):
        return _backward_tiles(q, k, v, mask, kl, ql, out, lse, dout, is_causal,
                               bq_backward, bk)

    return _head_by_head(kernel, (q_BNTH, k_BNSH, v_BNSH, out_BNTH, lse_BNT, dout_BNTH),
                         mask, kl, ql)


@partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _flash(q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, is_causal, bq, bk):
    return _forward(q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, is_causal, bq, bk)[0]


def _flash_fwd(q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, is_causal, bq, bk):
    out_BNTH, lse_BNT = _forward(q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, is_causal, bq, bk)
    return out_BNTH, (q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, out_BNTH, lse_BNT)


def _flash_bwd(is_causal, bq, bk, residuals, dout_BNTH):
    q, k, v, mask, kl, ql, out, lse = residuals
    dq, dk, dv = _backward(q, k, v, mask, kl, ql, out, lse, dout_BNTH, is_causal, bq, bk)
    return dq, dk, dv, None, None, None


_flash.defvjp(_flash_fwd, _flash_bwd)


def prepare_flash_inputs(query, key, value, mask, key_lengths, query_lengths, scale,
                         block_q, block_k, *, block_multiple: int = 1):
    """Check the arguments and bring them to the kernels' padded ``BNTH`` layout.

    Shared with the Pallas kernel. Returns ``(q_BNTH, k_BNSH, v_BNSH, mask, kl, ql, bq, bk)``
    with T and S padded to multiples of the (possibly shrunk) block sizes ``bq``, ``bk``; the
    scale is folded into ``q``; lengths are int32 ``[B]`` clipped to ``0..T`` / ``0..S`` (the
    real lengths if there is padding), or None when nothing is masked along that axis.
    """
    check_block_size("block_q", block_q, multiple_of=block_multiple)
    check_block_size("block_k", block_k, multiple_of=block_multiple)
    batch = query.shape[0] if query.ndim == 4 else None
    if key_lengths is not None:
        check_lengths("key_lengths", key_lengths, batch)
    if query_lengths is not None:
        check_lengths("query_lengths", query_lengths, batch)
    if query.ndim == 3:
        query, key, value = query[None], key[None], value[None]
        key_lengths = None if key_lengths is None else key_lengths[None]
        query_lengths = None if query_lengths is None else query_lengths[None]
    acc = accumulation_dtype(jnp.result_type(query, key, value))
    scale = default_scale(query.shape[-1]) if scale is None else scale
    B, T, _, _ = query.shape
    S = key.shape[1]
    # A block never exceeds the (padded) length. And when the whole score matrix is no
    # larger than one tile, it is one tile: short sequences then run with no loop at all.
    bq = min(block_q, round_up(T, block_multiple))
    bk = min(block_k, round_up(S, block_multiple))
    if round_up(T, block_multiple) * round_up(S, block_multiple) <= block_q * block_k:
        bq, bk = round_up(T, block_multiple), round_up(S, block_multiple)
    T_pad, S_pad = round_up(T, bq), round_up(S, bk)

    def to_bnth(x, length, padded):
        x = jnp.einsum("BTNH->BNTH", x.astype(acc))
        return jnp.pad(x, ((0, 0), (0, 0), (0, padded - length), (0, 0)))

    q_BNTH = to_bnth(query * jnp.asarray(scale, query.dtype).astype(acc), T, T_pad)
    k_BNSH, v_BNSH = to_bnth(key, S, S_pad), to_bnth(value, S, S_pad)
    mask = as_rank4(mask)
    if mask is not None:
        pad = [(0, 0), (0, 0)] + [
            (0, (padded - length) * (size != 1))
            for size, length, padded in ((mask.shape[2], T, T_pad), (mask.shape[3], S, S_pad))
        ]
        mask = jnp.pad(mask, pad, constant_values=False)

    def lengths(given, full, padded):
        if given is None:  # None: nothing to mask along this axis
            return None if padded == full else jnp.full((B,), full, jnp.int32)
        return jnp.clip(given.astype(jnp.int32), 0, full)

    return (q_BNTH, k_BNSH, v_BNSH, mask, lengths(key_lengths, S, S_pad),
            lengths(query_lengths, T, T_pad), bq, bk)


def flash_attention(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S N H"],
    value: Shaped[Array, "*B S N Hv"],
    bias: None = None,
    mask: Bool[Array, "..."] | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    key_lengths: Int[Array, "*B"] | None = None,
    query_lengths: Int[Array, "*B"] | None = None,
    block_q: int = 1024,
    block_k: int = 1024,
) -> Shaped[Array, "*B T N Hv"]:
    """Flash attention: tiled online softmax, causal tile skipping, recomputing backward.

    Equals :func:`attention.dot_product_attention` with the mask ``mask & causal &
    (s < key_lengths[b]) & (t < query_lengths[b])``; see the module docstring for the
    algorithm.

    Args:
      query: ``[B, T, N, H]`` (or unbatched ``[T, N, H]``).
      key: ``[B, S, N, H]``; value: ``[B, S, N, Hv]``.
      bias: must be None (raises otherwise); present so the signature matches the reference.
      mask: optional boolean, broadcastable to ``[B, N, T, S]``; True = may attend.
      scale: default ``1 / sqrt(H)``.
      is_causal: query t sees keys s <= t (top-left aligned when T != S); tiles entirely above
        the diagonal are skipped.
      key_lengths: optional int ``[B]``: sequence b has ``key_lengths[b]`` real keys, then
        padding.
      query_lengths: optional int ``[B]``: queries ``t >= query_lengths[b]`` output zeros.
      block_q, block_k: tile sizes (positive ints); shrunk to T or S when those are shorter,
        and one tile when T x S is no larger than one. For long sequences (run head by
        head) the backward cuts each query block into parts of at most
        ``BACKWARD_QUERY_BLOCK`` (256) queries. The defaults were the
        fastest measured on a 2-core CPU at head dim 64 (``benchmarks/attention.py``).

    Returns:
      ``[B, T, N, Hv]`` in the dtype of ``value``, accumulated in float32 for half precision;
      zeros for a query whose keys are all masked.

    Raises:
      TypeError, ValueError: as :func:`attention.dot_product_attention`; a ``bias``; block
        sizes that are not positive ints; lengths that are not integer ``[B]`` arrays.

    >>> import jax, jax.numpy as jnp
    >>> from attention import dot_product_attention
    >>> q = jax.random.normal(jax.random.key(0), (1, 7, 2, 4))
    >>> out = flash_attention(q, q, q, is_causal=True, block_q=4, block_k=2)
    >>> bool(jnp.allclose(out, dot_product_attention(q, q, q, is_causal=True), atol=1e-6))
    True
    """
    check_attention_args(
        query, key, value, bias, mask, scale, bias_ok=False, kernel="flash_attention"
    )
    q, k, v, mask4, kl, ql, bq, bk = prepare_flash_inputs(
        query, key, value, mask, key_lengths, query_lengths, scale, block_q, block_k
    )
    out_BNTH = _flash(q, k, v, mask4, kl, ql, bool(is_causal), bq, bk)
    T = query.shape[-3]
    output_BTNH = jnp.einsum("BNTH->BTNH", out_BNTH[:, :, :T]).astype(value.dtype)
    return output_BTNH[0] if query.ndim == 3 else output_BTNH


def lengths_to_mask(
    key_lengths: Int[Array, " B"] | None, query_lengths: Int[Array, " B"] | None, T: int, S: int
) -> Bool[Array, "B 1 T S"] | None:
    """The boolean mask that ``key_lengths`` and ``query_lengths`` stand for."""
    key_ok = None if key_lengths is None else (
        jnp.arange(S)[None, :] < key_lengths[:, None]
    )[:, None, None, :]
    query_ok = None if query_lengths is None else (
        jnp.arange(T)[None, :] < query_lengths[:, None]
    )[:, None, :, None]
    return combine_masks(key_ok, query_ok)


def flash_attention_reference(
    query: Shaped[Array, "B T N H"],
    key: Shaped[Array, "B S N H"],
    value: Shaped[Array, "B S N Hv"],
    bias: None = None,
    mask: Bool[Array, "..."] | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    key_lengths: Int[Array, " B"] | None = None,
    query_lengths: Int[Array, " B"] | None = None,
    block_q: int = 1024,
    block_k: int = 1024,
) -> Shaped[Array, "B T N Hv"]:
    """What :func:`flash_attention` computes, in plain jnp: lengths become a mask for the
    reference :func:`attention.dot_product_attention` (block sizes are ignored). Batched only.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (2, 5, 1, 4))
    >>> n = jnp.array([3, 5])
    >>> a = flash_attention_reference(q, q, q, key_lengths=n)
    >>> bool(jnp.allclose(a, flash_attention(q, q, q, key_lengths=n), atol=1e-6))
    True
    """
    del block_q, block_k
    T, S = query.shape[1], key.shape[1]
    mask = combine_masks(mask, lengths_to_mask(key_lengths, query_lengths, T, S))
    return dot_product_attention(query, key, value, bias, mask, scale=scale, is_causal=is_causal)
