"""Step 27c: flash attention (rung 4), tiled over queries and keys, with a memory-light backward.

Changes from rung 3 (:func:`attention.kernels.blockwise_attention`), taught in notebook 10:

* **Tiles**: queries are cut into blocks of ``block_q`` too, each running its own online
  softmax over the key blocks (Dao et al. 2022, "FlashAttention", algorithm 1; query loop
  outside, as FlashAttention-2, Dao 2023).
* **Skipped tiles**: the key loop of query block i runs over computed bounds ``[lo, hi)``
  (:func:`key_block_range`): up to the diagonal with ``is_causal``, over the band of a local
  window (cost linear in T), up to the longest ``key_value_seq_lengths``. The backward skips
  the same tiles (:func:`query_block_range`).
* **A custom backward** (``jax.custom_vjp``, FlashAttention-2 section 3.1.2): the forward saves
  the output and ``lse = m + log(l)`` per row; the backward recomputes ``p = exp(s - lse)``::

      dV_j += p^T dO_i          dP = dO_i V_j^T          dS = p * (dP - rowsum(dO * O))
      dK_j += dS^T Q_i          dQ_i += dS K_j

  so training memory grows linearly in T.
* **Grouped-query heads** (see :func:`attention.mechanism.scores.repeat_kv_heads`) without
  repeating keys: the G = N / K query heads of key head k are folded into the rows,
  ``[B, T, N, H]`` -> ``[B, K, T G, H]`` (:func:`fold_query`); ``block_q`` counts rows.
* **Any length** (padded to the blocks, padding masked); **one head at a time** for long
  sequences (:data:`ALL_HEADS_MAX_SCORES`).
* **Soft-capping** (step 1a): each tile's scores become ``s = cap tanh(z / cap)``, and the
  backward multiplies dS by ``ds/dz = 1 - (s / cap)^2``. **Sink logits** (step 3a): each
  row's running maximum and sum start at the sink instead of at ``(-inf, 0)``, ``m = sink,
  l = exp(sink - m) = 1``, with nothing added to the output (the sink has no value); ``lse``
  then counts it, and its gradient, the sink column's ``dS``, needs no tile::

      p_sink = exp(sink - lse)     d sink_n = sum over the rows of head n of -p_sink D_i

  (``D_i = rowsum(dO * O)``, as the value of the sink column is zero).

A boolean ``mask`` broadcastable to ``[B, N, T, S]`` is sliced tile by tile; key padding is
cheaper as ``key_value_seq_lengths`` (whole padding tiles are skipped). No additive ``bias``
(it is the ``[B, N, T, S]`` array this kernel avoids; use :func:`fused_attention`). Float32
accumulation; output in the dtype of ``value``; a fully masked query outputs zeros.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Shaped

from attention._checks import accumulation_dtype, check_kernel_args, check_score_options
from attention.kernels._arguments import (
    as_rank4,
    round_up,
)
from attention.mechanism.bounded_scores import soft_cap as cap_scores
from attention.mechanism.masks import combine_masks, local_window_mask, seq_lengths_mask
from attention.mechanism.scaled_dot_product import dot_product_attention
from attention.mechanism.scores import default_scale


def _cdiv(a, b):
    return (a + b - 1) // b


class Band(NamedTuple):
    """The static description of which entries a tile may attend (hashable, for ``jit``).

    ``group`` is G = N / K, the query heads per key/value head: query row r is at position
    ``r // group``. ``window`` is ``(left, right)`` or None. ``bq``, ``bk``: tile sizes (rows,
    keys). ``soft_cap``: the scores' cap (step 1a), or None.
    """

    is_causal: bool
    window: tuple[int, int] | None
    group: int
    bq: int
    bk: int
    soft_cap: float | None = None


def row_position(rows, group: int):
    """Position ``r // group`` of query rows ``r`` (a shift when the group is a power of 2)."""
    if group == 1:
        return rows
    if group & (group - 1) == 0:
        return jax.lax.shift_right_logical(rows, jnp.asarray(group.bit_length() - 1, rows.dtype))
    return rows // group


def _ops(*values):
    """``minimum, maximum, where``: Python's for ints (a tile count read in a test, at once),
    jnp's for arrays (the traced block index of a loop)."""
    if all(isinstance(v, int) for v in values):
        return min, max, lambda condition, a, b: a if condition else b
    return jnp.minimum, jnp.maximum, jnp.where


def key_block_range(i, band: Band, key_length, query_length):
    """Key blocks ``[lo, hi)`` that query block i must visit.

    ``key_length``: keys past it are padding (the longest length in the batch); queries at
    positions ``>= query_length`` are padding. Shared by the pure-JAX and Pallas kernels.
    The number of tiles the forward computes is the sum of ``hi - lo`` over the blocks.
    """
    minimum, maximum, where = _ops(i, key_length, query_length)
    G, bq, bk = band.group, band.bq, band.bk
    first, last = (i * bq) // G, ((i + 1) * bq - 1) // G  # positions of the block's rows
    hi_key = key_length  # one past the last key any query of the block may see
    lo = 0
    if band.is_causal:  # query t sees keys s <= t
        hi_key = minimum(hi_key, last + 1)
    if band.window is not None:  # query t sees keys t - left .. t + right
        left, right = band.window
        hi_key = minimum(hi_key, last + right + 1)
        lo = maximum(first - left, 0) // bk
    hi = _cdiv(hi_key, bk)
    hi = where(i * bq < query_length * G, hi, lo)  # a block of padding queries: nothing
    return lo, maximum(hi, lo)


def query_block_range(j, band: Band, key_length, query_length):
    """Query blocks ``[lo, hi)`` that key block j must visit (the backward's inner loop)."""
    minimum, maximum, where = _ops(j, key_length, query_length)
    G, bq, bk = band.group, band.bq, band.bk
    first, last = j * bk, (j + 1) * bk - 1  # the block's keys
    lo_pos, hi_pos = 0, query_length  # query positions [lo_pos, hi_pos) that may see them
    if band.is_causal:
        lo_pos = first
    if band.window is not None:  # key s is seen by queries s - right .. s + left
        left, right = band.window
        lo_pos = maximum(lo_pos, first - right)
        hi_pos = minimum(hi_pos, last + left + 1)
    lo = (lo_pos * G) // bq
    hi = where(first < key_length, _cdiv(hi_pos * G, bq), lo)
    return lo, maximum(hi, lo)


def band_allowed(q_pos, k_pos, band: Band):
    """Boolean of the broadcast shape of the positions: causal and window conditions, or None."""
    ok = None
    if band.is_causal:
        ok = k_pos <= q_pos
    if band.window is not None:
        left, right = band.window
        inside = (k_pos >= q_pos - left) & (k_pos <= q_pos + right)
        ok = inside if ok is None else ok & inside
    return ok


def _tile(array, axis: int, index, size: int):
    """Block ``index`` of ``size`` along ``axis``, or the whole axis if it has size 1."""
    if array.shape[axis] == 1:
        return array
    return jax.lax.dynamic_slice_in_dim(array, index * size, size, axis)


class _Tiling:
    """Which tiles to visit and which need masking; shared by the forward and backward.

    ``mask`` is in the folded layout ``[B or 1, K or 1, rows or 1, S or 1]``; ``kl``, ``ql``
    (int ``[B]``, positions) are None when nothing along that axis is masked.
    """

    def __init__(self, mask, key_lengths, query_lengths, band: Band, T: int, S: int):
        self.mask, self.kl, self.ql, self.band = mask, key_lengths, query_lengths, band
        self.masks_nothing = (mask is None and key_lengths is None and query_lengths is None
                              and not band.is_causal and band.window is None)
        self.max_kl = S if key_lengths is None else jnp.max(key_lengths)
        self.max_ql = T if query_lengths is None else jnp.max(query_lengths)

    def key_range(self, i):
        """Key blocks ``[lo, hi)`` that query block i must visit."""
        return key_block_range(i, self.band, self.max_kl, self.max_ql)

    def query_range(self, j):
        """Query blocks ``[lo, hi)`` that key block j must visit (the backward's inner loop)."""
        return query_block_range(j, self.band, self.max_kl, self.max_ql)

    def allowed(self, i, j):
        """Boolean ``[B or 1, K or 1, bq, bk]``: which entries of tile (i, j) may attend."""
        bq, bk = self.band.bq, self.band.bk
        q_pos_q1 = row_position(i * bq + jnp.arange(bq)[:, None], self.band.group)
        k_pos_1k = j * bk + jnp.arange(bk)[None, :]
        ok = jnp.ones((1, 1, 1, 1), bool)
        if self.kl is not None:
            ok = ok & (k_pos_1k[None, None] < self.kl[:, None, None, None])
        if self.ql is not None:
            ok = ok & (q_pos_q1[None, None] < self.ql[:, None, None, None])
        band = band_allowed(q_pos_q1, k_pos_1k, self.band)
        if band is not None:
            ok = ok & band[None, None]
        if self.mask is not None:
            ok = ok & _tile(_tile(self.mask, 2, i, bq), 3, j, bk)
        return ok

    def scores(self, q_BKqH, k_BKkH, i, j, *, transposed=False):
        """Scores of tile (i, j) as ``[B, K, bq, bk]`` (``[B, K, bk, bq]`` if ``transposed``,
        as the backward wants them), masked entries set to the lowest finite value."""
        if transposed:
            s = jnp.einsum("BKkH,BKqH->BKkq", k_BKkH, q_BKqH)
        else:
            s = jnp.einsum("BKqH,BKkH->BKqk", q_BKqH, k_BKkH)
        if self.band.soft_cap is not None:
            s = cap_scores(s, self.band.soft_cap)
        if self.masks_nothing:
            return s
        # Always masked, also inside the band: the comparisons are of iotas and fuse into
        # the max and exp that read the scores, which costs less than branching per tile.
        allowed = self.allowed(i, j)
        if transposed:
            allowed = jnp.swapaxes(allowed, -1, -2)
        return jnp.where(allowed, s, jnp.finfo(s.dtype).min)


def _forward_tiles(q_BKRH, k_BKSH, v_BKSH, sink_1KR, mask, kl, ql, band: Band, T: int):
    """Output ``[B, K, R, Hv]`` and log-sum-exp ``[B, K, R]`` (0 for fully masked rows).

    ``R`` = padded query rows (T G); ``T`` = the number of real positions. ``sink_1KR``:
    each row's sink logit, or None.
    """
    B, K, R, _ = q_BKRH.shape
    bq, bk = band.bq, band.bk
    tiling = _Tiling(mask, kl, ql, band, T, k_BKSH.shape[2])
    Hv = v_BKSH.shape[-1]
    lowest = jnp.finfo(q_BKRH.dtype).min

    def query_block(i):
        q_BKqH = jax.lax.dynamic_slice_in_dim(q_BKRH, i * bq, bq, 2)

        def key_step(j, carry):
            m_BKq, l_BKq, acc_BKqH = carry
            k_BKkH = jax.lax.dynamic_slice_in_dim(k_BKSH, j * bk, bk, 2)
            v_BKkH = jax.lax.dynamic_slice_in_dim(v_BKSH, j * bk, bk, 2)
            s_BKqk = tiling.scores(q_BKqH, k_BKkH, i, j)
            m_new_BKq = jnp.maximum(m_BKq, jnp.max(s_BKqk, axis=-1))
            alpha_BKq = jnp.exp(m_BKq - m_new_BKq)
            # Masked entries give exp(lowest - m_new) = 0 once the row has an allowed key;
            # before that (m_new = lowest) they give 1, wiped by alpha = 0 at the first
            # allowed key, or by the `seen` test below if none ever comes.
            p_BKqk = jnp.exp(s_BKqk - m_new_BKq[..., None])
            l_BKq = alpha_BKq * l_BKq + jnp.sum(p_BKqk, axis=-1)
            acc_BKqH = alpha_BKq[..., None] * acc_BKqH + jnp.einsum(
                "BKqk,BKkH->BKqH", p_BKqk, v_BKkH
            )
            return m_new_BKq, l_BKq, acc_BKqH

        init = (
            jnp.full((B, K, bq), lowest, q_BKRH.dtype),
            jnp.zeros((B, K, bq), q_BKRH.dtype),
            jnp.zeros((B, K, bq, Hv), q_BKRH.dtype),
        )
        if sink_1KR is not None:  # the sink column, seen first: m = sink, l = exp(0) = 1
            sink_BKq = jnp.broadcast_to(
                jax.lax.dynamic_slice_in_dim(sink_1KR, i * bq, bq, 2), (B, K, bq))
            init = (sink_BKq, jnp.ones((B, K, bq), q_BKRH.dtype), init[2])
        if n_key_blocks == 1:
            # One key block: no loop. Visiting a block the bounds would skip is harmless (all
            # its entries are masked), and short sequences avoid the loop's overhead.
            m_BKq, l_BKq, acc_BKqH = key_step(0, init)
        else:
            lo, hi = tiling.key_range(i)
            m_BKq, l_BKq, acc_BKqH = jax.lax.fori_loop(lo, hi, key_step, init)
        seen_BKq = m_BKq > lowest
        l_BKq = jnp.where(seen_BKq, l_BKq, 1.0)
        out_BKqH = jnp.where(seen_BKq[..., None], acc_BKqH / l_BKq[..., None], 0.0)
        lse_BKq = jnp.where(seen_BKq, m_BKq + jnp.log(l_BKq), 0.0)
        return out_BKqH, lse_BKq

    n_key_blocks = k_BKSH.shape[2] // bk
    if R == bq:
        out_QBKqH, lse_QBKq = jax.tree.map(lambda x: x[None], query_block(0))
    else:
        out_QBKqH, lse_QBKq = jax.lax.map(query_block, jnp.arange(R // bq))
    out_BKRH = jnp.einsum("QBKqH->BKQqH", out_QBKqH).reshape(B, K, R, Hv)
    lse_BKR = jnp.einsum("QBKq->BKQq", lse_QBKq).reshape(B, K, R)
    return out_BKRH, lse_BKR


def _backward_tiles(q_BKRH, k_BKSH, v_BKSH, mask, kl, ql, out_BKRH, lse_BKR, dout_BKRH,
                    band: Band, T: int):
    """Gradients for q, k, v, recomputing each tile's weights from ``lse``."""
    S = k_BKSH.shape[2]
    bq, bk = band.bq, band.bk
    tiling = _Tiling(mask, kl, ql, band, T, S)
    delta_BKR = jnp.sum(dout_BKRH * out_BKRH, axis=-1)  # rowsum(dO * O), FA-2 eq. (D_i)

    def key_block(dq_BKRH, j):
        k_BKkH = jax.lax.dynamic_slice_in_dim(k_BKSH, j * bk, bk, 2)
        v_BKkH = jax.lax.dynamic_slice_in_dim(v_BKSH, j * bk, bk, 2)

        def query_step(i, carry):
            dk_BKkH, dv_BKkH, dq_BKRH = carry
            q_BKqH = jax.lax.dynamic_slice_in_dim(q_BKRH, i * bq, bq, 2)
            do_BKqH = jax.lax.dynamic_slice_in_dim(dout_BKRH, i * bq, bq, 2)
            lse_BKq = jax.lax.dynamic_slice_in_dim(lse_BKR, i * bq, bq, 2)
            delta_BKq = jax.lax.dynamic_slice_in_dim(delta_BKR, i * bq, bq, 2)
            # Tiles are computed transposed, [k, q], so that three of the four products
            # below contract over their operands' last or first axes without a transpose.
            sT_BKkq = tiling.scores(q_BKqH, k_BKkH, i, j, transposed=True)
            pT_BKkq = jnp.exp(sT_BKkq - lse_BKq[..., None, :])  # masked: exp(lowest - lse) = 0
            dv_BKkH = dv_BKkH + jnp.einsum("BKkq,BKqH->BKkH", pT_BKkq, do_BKqH)
            dpT_BKkq = jnp.einsum("BKkH,BKqH->BKkq", v_BKkH, do_BKqH)
            dsT_BKkq = pT_BKkq * (dpT_BKkq - delta_BKq[..., None, :])
            if band.soft_cap is not None:  # through s = cap tanh(z / cap): ds/dz = 1 - tanh^2
                # Masked entries hold the lowest float, clipped to tanh = -1: p = 0 there anyway.
                tanh_BKkq = jnp.clip(sT_BKkq / band.soft_cap, -1.0, 1.0)
                dsT_BKkq = dsT_BKkq * (1.0 - jnp.square(tanh_BKkq))
            dk_BKkH = dk_BKkH + jnp.einsum("BKkq,BKqH->BKkH", dsT_BKkq, q_BKqH)
            dq_BKqH = jax.lax.dynamic_slice_in_dim(dq_BKRH, i * bq, bq, 2) + jnp.einsum(
                "BKkq,BKkH->BKqH", dsT_BKkq, k_BKkH
            )
            dq_BKRH = jax.lax.dynamic_update_slice_in_dim(dq_BKRH, dq_BKqH, i * bq, 2)
            return dk_BKkH, dv_BKkH, dq_BKRH

        init = (jnp.zeros_like(k_BKkH), jnp.zeros_like(v_BKkH), dq_BKRH)
        if q_BKRH.shape[2] == bq:  # one query block: no loop (see `_forward_tiles`)
            dk_BKkH, dv_BKkH, dq_BKRH = query_step(0, init)
        else:
            lo, hi = tiling.query_range(j)
            dk_BKkH, dv_BKkH, dq_BKRH = jax.lax.fori_loop(lo, hi, query_step, init)
        return dq_BKRH, (dk_BKkH, dv_BKkH)

    if S == bk:
        dq_BKRH, (dk_JBKkH, dv_JBKkH) = key_block(jnp.zeros_like(q_BKRH), 0)
        dk_JBKkH, dv_JBKkH = dk_JBKkH[None], dv_JBKkH[None]
    else:
        dq_BKRH, (dk_JBKkH, dv_JBKkH) = jax.lax.scan(
            key_block, jnp.zeros_like(q_BKRH), jnp.arange(S // bk)
        )
    B, K = k_BKSH.shape[:2]
    dk_BKSH = jnp.einsum("JBKkH->BKJkH", dk_JBKkH).reshape(k_BKSH.shape)
    dv_BKSH = jnp.einsum("JBKkH->BKJkH", dv_JBKkH).reshape(B, K, S, v_BKSH.shape[-1])
    return dq_BKRH, dk_BKSH, dv_BKSH


def _head_by_head(kernel, arrays_BK, mask, kl, ql):
    """``kernel(*arrays, mask, kl, ql)`` run on one (batch, key head) pair at a time.

    Why: one head's tile is one large matrix product that keeps both cores busy, where a tile
    batched over all heads is many smaller ones, and its scores stay in cache between the
    product, the max and the exp that read them (measured on a 2-core CPU at T=8192: about
    1.2x faster). ``arrays_BK`` are ``[B, K, ...]``; so are the results.
    """
    B, K = arrays_BK[0].shape[:2]

    def one_head(bk):
        b, k = bk // K, bk % K

        def pick(x, b=b, k=k):  # [B or 1, K or 1, ...] -> [1, 1, ...] at (b, k)
            start = (b * (x.shape[0] > 1), k * (x.shape[1] > 1)) + (0,) * (x.ndim - 2)
            return jax.lax.dynamic_slice(x, start, (1, 1) + x.shape[2:])

        def pick_b(lengths):
            return None if lengths is None else jax.lax.dynamic_slice(lengths, (b,), (1,))

        results = kernel(*map(pick, arrays_BK), None if mask is None else pick(mask),
                         pick_b(kl), pick_b(ql))
        return jax.tree.map(lambda y: y[0, 0], results)

    results = jax.lax.map(one_head, jnp.arange(B * K))
    return jax.tree.map(lambda y: y.reshape(B, K, *y.shape[1:]), results)


# Up to this many scores per head, all heads go through the tiles together (short sequences,
# where per-head products would be too small to keep both cores busy); above it, one head at
# a time (measured at T=1024 on a 2-core CPU: 43 ms all at once, 19 ms head by head).
ALL_HEADS_MAX_SCORES = 512 * 512


def _all_heads_at_once(q_BKRH, k_BKSH):
    return q_BKRH.shape[2] * k_BKSH.shape[2] <= ALL_HEADS_MAX_SCORES


def _forward(q_BKRH, k_BKSH, v_BKSH, sink_1KR, mask, kl, ql, band: Band, T: int):
    """As :func:`_forward_tiles`; head by head for long sequences."""
    if _all_heads_at_once(q_BKRH, k_BKSH):
        return _forward_tiles(q_BKRH, k_BKSH, v_BKSH, sink_1KR, mask, kl, ql, band, T)
    if sink_1KR is None:
        def kernel(q, k, v, mask, kl, ql):
            return _forward_tiles(q, k, v, None, mask, kl, ql, band, T)
        return _head_by_head(kernel, (q_BKRH, k_BKSH, v_BKSH), mask, kl, ql)
    kernel = partial(_forward_tiles, band=band, T=T)
    return _head_by_head(kernel, (q_BKRH, k_BKSH, v_BKSH, sink_1KR), mask, kl, ql)


# The backward does five products per tile, not two, and carries dK, dV and a slice of dQ:
# its best tile is shorter along the queries than the forward's (measured at T=8192, head
# dim 64, on a 2-core CPU: query blocks of 256 took 2.4 s where 1024 took 3.1 s). It cuts
# each forward query block into the largest equal parts of at most this many queries.
BACKWARD_QUERY_BLOCK = 256


def _backward(q_BKRH, k_BKSH, v_BKSH, mask, kl, ql, out_BKRH, lse_BKR, dout_BKRH,
              band: Band, T: int):
    """As :func:`_backward_tiles`; head by head, in shorter query blocks, for long sequences."""
    if _all_heads_at_once(q_BKRH, k_BKSH):
        return _backward_tiles(q_BKRH, k_BKSH, v_BKSH, mask, kl, ql, out_BKRH, lse_BKR,
                               dout_BKRH, band, T)
    bq = band.bq
    band = band._replace(
        bq=max(d for d in range(1, min(bq, BACKWARD_QUERY_BLOCK) + 1) if bq % d == 0))

    def kernel(q, k, v, out, lse, dout, mask, kl, ql):
        return _backward_tiles(q, k, v, mask, kl, ql, out, lse, dout, band, T)

    return _head_by_head(kernel, (q_BKRH, k_BKSH, v_BKSH, out_BKRH, lse_BKR, dout_BKRH),
                         mask, kl, ql)


@partial(jax.custom_vjp, nondiff_argnums=(7, 8))
def _flash(q_BKRH, k_BKSH, v_BKSH, sink_1KR, mask, kl, ql, band, T):
    return _forward(q_BKRH, k_BKSH, v_BKSH, sink_1KR, mask, kl, ql, band, T)[0]


def _flash_fwd(q_BKRH, k_BKSH, v_BKSH, sink_1KR, mask, kl, ql, band, T):
    out_BKRH, lse_BKR = _forward(q_BKRH, k_BKSH, v_BKSH, sink_1KR, mask, kl, ql, band, T)
    return out_BKRH, (q_BKRH, k_BKSH, v_BKSH, sink_1KR, mask, kl, ql, out_BKRH, lse_BKR)


def _flash_bwd(band, T, residuals, dout_BKRH):
    q, k, v, sink_1KR, mask, kl, ql, out, lse = residuals
    dq, dk, dv = _backward(q, k, v, mask, kl, ql, out, lse, dout_BKRH, band, T)
    dsink_1KR = None
    if sink_1KR is not None:  # the sink column's dS: p_sink (0 - D_i), summed over the batch
        delta_BKR = jnp.sum(dout_BKRH * out, axis=-1)
        dsink_1KR = -jnp.sum(jnp.exp(sink_1KR - lse) * delta_BKR, axis=0, keepdims=True)
    return dq, dk, dv, dsink_1KR, None, None, None


_flash.defvjp(_flash_fwd, _flash_bwd)


def _fold_mask(mask4, K: int, G: int, T: int, R_pad: int, S: int, S_pad: int):
    """A mask ``[B', N', T', S']`` in the folded layout ``[B', K', R_pad or 1, S_pad or 1]``.

    Row ``r = t G + g`` of key head k is query head ``k G + g`` at position t. A mask over
    neither heads nor queries (key padding ``[B, 1, 1, S]``) stays as it is; one over the
    queries but not the heads is repeated G times along the rows (masks are booleans, and
    only rows, never keys or values, are repeated).
    """
    if mask4 is None:
        return None
    B_, N_, T_, S_ = mask4.shape
    if G > 1 and N_ == 1 and T_ > 1:
        mask4 = jnp.repeat(mask4, G, axis=2)  # [B', 1, T G, S']
    elif G > 1 and N_ > 1:
        mask_BKGTS = jnp.broadcast_to(mask4, (B_, N_, T, S_)).reshape(B_, K, G, T, S_)
        mask4 = jnp.einsum("BKGTS->BKTGS", mask_BKGTS).reshape(B_, K, T * G, S_)
    rows, keys = mask4.shape[2], mask4.shape[3]
    pad = [(0, 0), (0, 0), (0, (R_pad - rows) * (rows != 1)), (0, (S_pad - S) * (keys != 1))]
    return jnp.pad(mask4, pad, constant_values=False)


def fold_sink_logits(sink_N, num_kv_heads: int, T: int, R_pad: int):
    """``[N]`` -> ``[1, K, R_pad]``: the sink logit of each folded query row ``t G + g`` of key
    head k, that of query head ``k G + g`` (padding rows get 0)."""
    sink_KG = sink_N.reshape(num_kv_heads, -1)
    sink_KR = jnp.tile(sink_KG, (1, T))  # row t G + g -> column g
    return jnp.pad(sink_KR, ((0, 0), (0, R_pad - sink_KR.shape[1])))[None]


def fold_query(query_BTNH, num_kv_heads: int):
    """``[B, T, N, H]`` -> ``[B, K, T G, H]``: row ``t G + g`` of head k is query head
    ``k G + g`` at position t (a reshape and a transpose: nothing is repeated)."""
    B, T, N, H = query_BTNH.shape
    G = N // num_kv_heads
    q_BKTGH = jnp.einsum("BTKGH->BKTGH", query_BTNH.reshape(B, T, num_kv_heads, G, H))
    return q_BKTGH.reshape(B, num_kv_heads, T * G, H)


def unfold_output(out_BKRH, T: int, N: int):
    """``[B, K, R_pad, Hv]`` (rows ``t G + g``) -> ``[B, T, N, Hv]``, dropping padding rows."""
    B, K, _, Hv = out_BKRH.shape
    G = N // K
    out_BKTGH = out_BKRH[:, :, : T * G].reshape(B, K, T, G, Hv)
    return jnp.einsum("BKTGH->BTKGH", out_BKTGH).reshape(B, T, N, Hv)


def prepare_flash_inputs(query, key, value, mask, key_lengths, query_lengths, scale,
                         block_q, block_k, *, block_multiple: int = 1):
    """Bring checked arguments to the kernels' padded, folded ``[B, K, rows, H]`` layout.

    Shared with the Pallas kernel. Returns ``(q_BKRH, k_BKSH, v_BKSH, mask, kl, ql, bq, bk)``:
    the queries folded (:func:`fold_query`) and their rows padded to a multiple of ``bq``, S
    padded to a multiple of ``bk`` (block sizes possibly shrunk); the scale folded into ``q``;
    the mask folded likewise; lengths int32 ``[B]`` positions clipped to ``0..T`` / ``0..S``
    (the real lengths if there is padding), or None when nothing is masked along that axis.
    """
    if query.ndim == 3:
        query, key, value = query[None], key[None], value[None]
        key_lengths = None if key_lengths is None else key_lengths[None]
        query_lengths = None if query_lengths is None else query_lengths[None]
    acc = accumulation_dtype(jnp.result_type(query, key, value))
    scale = default_scale(query.shape[-1]) if scale is None else scale
    B, T, N, _ = query.shape
    S, K = key.shape[1], key.shape[2]
    R = T * (N // K)
    # A block never exceeds the (padded) length. And when the whole score matrix is no
    # larger than one tile, it is one tile: short sequences then run with no loop at all.
    bq = min(block_q, round_up(R, block_multiple))
    bk = min(block_k, round_up(S, block_multiple))
    if round_up(R, block_multiple) * round_up(S, block_multiple) <= block_q * block_k:
        bq, bk = round_up(R, block_multiple), round_up(S, block_multiple)
    R_pad, S_pad = round_up(R, bq), round_up(S, bk)

    def padded(x_BKLH, length, to):
        return jnp.pad(x_BKLH, ((0, 0), (0, 0), (0, to - length), (0, 0)))

    q_scaled = (query * jnp.asarray(scale, query.dtype)).astype(acc)
    q_BKRH = padded(fold_query(q_scaled, K), R, R_pad)
    k_BKSH = padded(jnp.einsum("BSKH->BKSH", key.astype(acc)), S, S_pad)
    v_BKSH = padded(jnp.einsum("BSKH->BKSH", value.astype(acc)), S, S_pad)
    mask = _fold_mask(as_rank4(mask), K, N // K, T, R_pad, S, S_pad)

    def lengths(given, full, is_padded):
        if given is None:  # None: nothing to mask along this axis
            return jnp.full((B,), full, jnp.int32) if is_padded else None
        return jnp.clip(given.astype(jnp.int32), 0, full)

    return (q_BKRH, k_BKSH, v_BKSH, mask, lengths(key_lengths, S, S_pad != S),
            lengths(query_lengths, T, R_pad != R), bq, bk)


def flash_attention(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S K H"],
    value: Shaped[Array, "*B S K Hv"],
    bias: None = None,
    mask: Bool[Array, "..."] | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    query_seq_lengths: Int[Array, "*B"] | None = None,
    key_value_seq_lengths: Int[Array, "*B"] | None = None,
    local_window_size: int | tuple[int, int] | None = None,
    soft_cap: float | None = None,
    sink_logits: Shaped[Array, " N"] | None = None,
    key_lengths: Int[Array, "*B"] | None = None,
    query_lengths: Int[Array, "*B"] | None = None,
    block_q: int = 1024,
    block_k: int = 1024,
) -> Shaped[Array, "*B T N Hv"]:
    """Flash attention: tiled online softmax, band tile skipping, recomputing backward.

    Equals :func:`attention.dot_product_attention` (and ``jax.nn.dot_product_attention``)
    with the mask ``mask & causal & window & (s < key_value_seq_lengths[b]) & (t <
    query_seq_lengths[b])``; the algorithm is in the module docstring.

    Args:
      query: ``[B, T, N, H]`` (or unbatched ``[T, N, H]``).
      key, value: ``[B, S, K, H]``, ``[B, S, K, Hv]``, K dividing N (grouped-query: query
        head n uses key head ``n // (N / K)``; keys are never repeated to N heads).
      bias: must be None (present so the signature matches the reference).
      mask: optional boolean, broadcastable to ``[B, N, T, S]``; True = may attend.
      scale: default ``1 / sqrt(H)``.
      is_causal: query t sees keys s <= t (top-left aligned when T != S).
      query_seq_lengths, key_value_seq_lengths: optional int ``[B]`` (``[]`` unbatched) in
        ``0..T`` / ``0..S``; padding queries output zeros, padding keys are masked.
      local_window_size: None, w (the window ``(w, w)``) or ``(left, right)``: query t sees
        keys ``t - left .. t + right``.
      soft_cap: None or a positive ``cap``: scores ``cap * tanh(s / cap)`` (step 1a).
      sink_logits: None or ``[N]``: a sink column per query head in the softmax (step 3a);
        it is differentiated like the inputs.
      key_lengths, query_lengths: the old names of the two lengths (give one form of each).
      block_q, block_k: tile sizes (positive ints; ``block_q`` counts the ``T N / K`` folded
        query rows), shrunk for short inputs. Defaults: the fastest measured on a 2-core CPU
        (``benchmarks/attention.py``).

    Returns:
      ``[B, T, N, Hv]`` in the dtype of ``value`` (float32 accumulation); zeros for a query
      whose keys are all masked (``jax.nn`` gives the values' mean there).

    Raises:
      TypeError, ValueError: as :func:`attention.dot_product_attention` (``soft_cap`` and
        ``sink_logits`` included); a ``bias``; block sizes that are not positive ints; both an
        old and a new name of one length.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (1, 7, 4, 8))
    >>> kv = jax.random.normal(jax.random.key(1), (1, 7, 2, 8))  # K = 2 key heads for N = 4
    >>> kw = dict(is_causal=True, local_window_size=(2, 0))
    >>> out = flash_attention(q, kv, kv, **kw, block_q=4, block_k=2)
    >>> bool(jnp.allclose(out, jax.nn.dot_product_attention(q, kv, kv, **kw), atol=1e-6))
    True
    """
    window, ql, kl = check_kernel_args(
        query, key, value, bias, mask, scale, query_seq_lengths=query_seq_lengths,
        key_value_seq_lengths=key_value_seq_lengths, query_lengths=query_lengths,
        key_lengths=key_lengths, local_window_size=local_window_size,
        kernel="flash_attention", bias_ok=False,
        block_sizes={"block_q": block_q, "block_k": block_k},
    )
    soft_cap = check_score_options(soft_cap, sink_logits, query.shape[-2])
    q, k, v, mask4, kl, ql, bq, bk = prepare_flash_inputs(
        query, key, value, mask, kl, ql, scale, block_q, block_k
    )
    T, N = query.shape[-3], query.shape[-2]
    band = Band(bool(is_causal), window, N // key.shape[-2], bq, bk, soft_cap)
    sink_1KR = None if sink_logits is None else fold_sink_logits(
        sink_logits.astype(q.dtype), key.shape[-2], T, q.shape[2])
    out_BKRH = _flash(q, k, v, sink_1KR, mask4, kl, ql, band, T)
    output_BTNH = unfold_output(out_BKRH, T, N).astype(value.dtype)
    return output_BTNH[0] if query.ndim == 3 else output_BTNH


def flash_attention_reference(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S K H"],
    value: Shaped[Array, "*B S K Hv"],
    bias: None = None,
    mask: Bool[Array, "..."] | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    query_seq_lengths: Int[Array, "*B"] | None = None,
    key_value_seq_lengths: Int[Array, "*B"] | None = None,
    local_window_size: int | tuple[int, int] | None = None,
    soft_cap: float | None = None,
    sink_logits: Shaped[Array, " N"] | None = None,
    key_lengths: Int[Array, "*B"] | None = None,
    query_lengths: Int[Array, "*B"] | None = None,
    block_q: int = 1024,
    block_k: int = 1024,
) -> Shaped[Array, "*B T N Hv"]:
    """What :func:`flash_attention` computes, in plain jnp, the teaching way: key/value heads
    repeated to N (``jnp.repeat``, the view ``repeat_kv_heads`` shows), the lengths and the
    window made masks (:func:`attention.mechanism.masks.seq_lengths_mask`,
    :func:`~attention.mechanism.masks.local_window_mask`) for the reference
    :func:`attention.dot_product_attention` (which takes ``soft_cap`` and ``sink_logits``
    too), padding queries set to zero. Block sizes are ignored.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (2, 5, 2, 4))
    >>> kv = jax.random.normal(jax.random.key(1), (2, 5, 1, 4))
    >>> n = jnp.array([3, 5])
    >>> a = flash_attention_reference(q, kv, kv, key_value_seq_lengths=n, local_window_size=1)
    >>> b = flash_attention(q, kv, kv, key_value_seq_lengths=n, local_window_size=1)
    >>> bool(jnp.allclose(a, b, atol=1e-6))
    True
    """
    del block_q, block_k
    window, ql, kl = check_kernel_args(
        query, key, value, bias, mask, scale, query_seq_lengths=query_seq_lengths,
        key_value_seq_lengths=key_value_seq_lengths, query_lengths=query_lengths,
        key_lengths=key_lengths, local_window_size=local_window_size,
        kernel="flash_attention_reference", bias_ok=False,
    )
    T, N, S = query.shape[-3], query.shape[-2], key.shape[-3]
    G = N // key.shape[-2]
    key, value = jnp.repeat(key, G, axis=-2), jnp.repeat(value, G, axis=-2)
    lengths = seq_lengths_mask(T, S, ql, kl)
    if lengths is not None and query.ndim == 3:
        lengths = lengths[0]  # [1, 1, T, S] -> [1, T, S]
    window_TS = None if window is None else local_window_mask(T, S, window)
    mask = combine_masks(mask, lengths, window_TS)
    out = dot_product_attention(query, key, value, None, mask, scale=scale, is_causal=is_causal,
                                soft_cap=soft_cap, sink_logits=sink_logits)
    if ql is not None:  # padding queries output zeros (as jax.nn)
        real_BT = jnp.arange(T)[None, :] < jnp.reshape(ql, (-1, 1))
        out = jnp.where(jnp.reshape(real_BT, (*query.shape[:-3], T, 1, 1)), out, 0)
    return out
