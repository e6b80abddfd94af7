"""Step 27d: the flash forward pass as a Pallas kernel (rung 5), for GPU and TPU.

What changes from rung 4 (:func:`attention.kernels.flash_attention`): the algorithm is the
same, but the tiling is explicit instead of being left to XLA. ``pl.pallas_call`` runs the
kernel once per grid cell ``(b, k, i)`` = (sequence, key head, query block); the ``BlockSpec``
of the queries hands it its ``[block_q, H]`` tile (in fast on-chip memory), and the kernel
loops over key blocks itself, keeping the running max ``m``, sum ``l`` and output ``acc`` in
registers / on-chip memory: on a GPU the ``[block_q, block_k]`` scores never reach the main
memory at all, which is where FlashAttention's speed comes from (Dao et al. 2022, section 3.1).

The backward pass reuses rung 4's (``jax.custom_vjp``): it recomputes the weights tile by tile
from the log-sum-exp this kernel writes, so training memory is linear in T here too.

Masks: ``is_causal`` (tiles above the diagonal skipped by the loop bounds), a local window
``local_window_size`` (the key loop runs only over the blocks that meet the band, as in rung
4, so a fixed window costs time linear in T), ``key_value_seq_lengths`` and
``query_seq_lengths`` (old names ``key_lengths``, ``query_lengths``), each sequence's own
lengths bounding its loop. A general boolean ``mask`` is not taken (use
:func:`flash_attention`).

Grouped-query heads (see :func:`attention.mechanism.scores.repeat_kv_heads`) arrive folded as
in rung 4 (``[B, K, T G, H]``): the grid is ``(B, K, row blocks)``, each cell reading its
group's one key/value head.

On CPU the kernel runs in Pallas' interpreter (``interpret=True``), slowly: that is how it is
tested here. :func:`pallas_supported` says whether it compiles natively, and
``get_attention_fn("auto")`` only picks it then. It has been checked in interpret mode only.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jaxtyping import Array, Int, Shaped

from attention._checks import check_kernel_args, refuse_score_options
from attention.kernels.flash import (
    Band,
    _backward,
    band_allowed,
    flash_attention,
    key_block_range,
    prepare_flash_inputs,
    row_position,
    unfold_output,
)

# Block sizes must tile the hardware: TPU vector registers are [8, 128] (lanes of 128), Triton
# on GPU needs matrix-multiply tiles of at least 16; the interpreter only asks for sublanes of 8.
BLOCK_MULTIPLE = {"tpu": 128, "gpu": 16}
INTERPRET_BLOCK_MULTIPLE = 8


def pallas_supported() -> bool:
    """True where Pallas compiles natively: the default backend is a GPU or a TPU."""
    return jax.default_backend() in ("gpu", "tpu")


def _forward_kernel(kl_ref, ql_ref, q_ref, k_ref, v_ref, o_ref, lse_ref, *, band: Band):
    """One grid cell (b, k, i): query rows block i of key head k of sequence b, all keys."""
    b, i = pl.program_id(0), pl.program_id(2)
    block_q, block_k = band.bq, band.bk
    key_length, query_length = kl_ref[b], ql_ref[b]
    q_qH = q_ref[...]
    acc_dtype = jnp.float32
    lowest = jnp.finfo(acc_dtype).min
    # The same bounds as rung 4: causal diagonal, window band, this sequence's lengths.
    lo, hi = key_block_range(i, band, key_length, query_length)
    q_pos_qk = row_position(
        i * block_q + jax.lax.broadcasted_iota(jnp.int32, (block_q, block_k), 0), band.group)

    def key_step(j, carry):
        m_q1, l_q1, acc_qH = carry
        k_kH = k_ref[pl.ds(j * block_k, block_k), :]
        v_kH = v_ref[pl.ds(j * block_k, block_k), :]
        s_qk = jax.lax.dot_general(
            q_qH, k_kH, (((1,), (1,)), ((), ())), preferred_element_type=acc_dtype
        )
        k_pos_qk = j * block_k + jax.lax.broadcasted_iota(jnp.int32, (block_q, block_k), 1)
        ok_qk = (k_pos_qk < key_length) & (q_pos_qk < query_length)
        in_band = band_allowed(q_pos_qk, k_pos_qk, band)
        if in_band is not None:
            ok_qk = ok_qk & in_band
        s_qk = jnp.where(ok_qk, s_qk, lowest)
        m_new_q1 = jnp.maximum(m_q1, jnp.max(s_qk, axis=1, keepdims=True))
        alpha_q1 = jnp.exp(m_q1 - m_new_q1)
        p_qk = jnp.exp(s_qk - m_new_q1)  # see flash.py: masked entries vanish or are wiped
        l_q1 = alpha_q1 * l_q1 + jnp.sum(p_qk, axis=1, keepdims=True)
        acc_qH = alpha_q1 * acc_qH + jax.lax.dot_general(
            p_qk.astype(v_kH.dtype), v_kH, (((1,), (0,)), ((), ())),
            preferred_element_type=acc_dtype,
        )
        return m_new_q1, l_q1, acc_qH

    init = (
        jnp.full((block_q, 1), lowest, acc_dtype),
        jnp.zeros((block_q, 1), acc_dtype),
        jnp.zeros((block_q, v_ref.shape[-1]), acc_dtype),
    )
    m_q1, l_q1, acc_qH = jax.lax.fori_loop(lo, hi, key_step, init)
    seen_q1 = m_q1 > lowest
    l_q1 = jnp.where(seen_q1, l_q1, 1.0)
    o_ref[...] = jnp.where(seen_q1, acc_qH / l_q1, 0.0).astype(o_ref.dtype)
    lse_ref[...] = jnp.where(seen_q1, m_q1 + jnp.log(l_q1), 0.0)[:, 0]


def _pallas_forward(q_BKRH, k_BKSH, v_BKSH, kl, ql, band: Band, interpret):
    B, K, R, H = q_BKRH.shape
    S, Hv = k_BKSH.shape[2], v_BKSH.shape[-1]
    bq = band.bq
    kernel = partial(_forward_kernel, band=band)
    whole = lambda shape: pl.BlockSpec(shape, lambda b, k, i: (0,) * len(shape))
    # The queries are folded (flash.fold_query): grid cell (b, k, i) holds rows of the G
    # query heads that share key head k, so its key/value index map is (b, k): each key
    # head is read once per group of query heads, never repeated in memory.
    return pl.pallas_call(
        kernel,
        grid=(B, K, R // bq),
        in_specs=[
            whole((B,)),
            whole((B,)),
            pl.BlockSpec((None, None, bq, H), lambda b, k, i: (b, k, i, 0)),
            pl.BlockSpec((None, None, S, H), lambda b, k, i: (b, k, 0, 0)),
            pl.BlockSpec((None, None, S, Hv), lambda b, k, i: (b, k, 0, 0)),
        ],
        out_specs=[
            pl.BlockSpec((None, None, bq, Hv), lambda b, k, i: (b, k, i, 0)),
            pl.BlockSpec((None, None, bq), lambda b, k, i: (b, k, i)),
        ],
        out_shape=[
            jax.ShapeDtypeStruct((B, K, R, Hv), jnp.float32),
            jax.ShapeDtypeStruct((B, K, R), jnp.float32),
        ],
        interpret=interpret,
    )(kl, ql, q_BKRH, k_BKSH, v_BKSH)


@partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _pallas_flash(q_BKRH, k_BKSH, v_BKSH, kl, ql, band, T, interpret):
    return _pallas_forward(q_BKRH, k_BKSH, v_BKSH, kl, ql, band, interpret)[0]


def _pallas_flash_fwd(q_BKRH, k_BKSH, v_BKSH, kl, ql, band, T, interpret):
    out, lse = _pallas_forward(q_BKRH, k_BKSH, v_BKSH, kl, ql, band, interpret)
    return out, (q_BKRH, k_BKSH, v_BKSH, kl, ql, out, lse)


def _pallas_flash_bwd(band, T, interpret, residuals, dout_BKRH):
    q, k, v, kl, ql, out, lse = residuals
    dq, dk, dv = _backward(q, k, v, None, kl, ql, out, lse, dout_BKRH, band, T)
    return dq, dk, dv, None, None


_pallas_flash.defvjp(_pallas_flash_fwd, _pallas_flash_bwd)


def pallas_flash_attention(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S K H"],
    value: Shaped[Array, "*B S K Hv"],
    bias: None = None,
    mask: None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    query_seq_lengths: Int[Array, "*B"] | None = None,
    key_value_seq_lengths: Int[Array, "*B"] | None = None,
    local_window_size: int | tuple[int, int] | None = None,
    soft_cap: None = None,
    sink_logits: None = None,
    key_lengths: Int[Array, "*B"] | None = None,
    query_lengths: Int[Array, "*B"] | None = None,
    block_q: int = 128,
    block_k: int = 128,
    interpret: bool | None = None,
) -> Shaped[Array, "*B T N Hv"]:
    """Flash attention with a Pallas forward kernel; equals :func:`flash_attention`.

    Args:
      query, key, value, scale, is_causal, query_seq_lengths, key_value_seq_lengths,
        local_window_size, key_lengths, query_lengths: as :func:`flash_attention` (key/value
        with K heads dividing N; a window's tiles outside the band are skipped).
      bias, mask: must be None (raise otherwise): give padding as ``key_value_seq_lengths``.
      soft_cap, sink_logits: must be None (a ValueError names the functions that take them).
      block_q, block_k: tile sizes (``block_q`` in folded query rows, as in
        :func:`flash_attention`); multiples of 128 on TPU, 16 on GPU, 8 in interpret mode.
      interpret: run in Pallas' interpreter; default: where it cannot compile natively.

    Returns:
      ``[B, T, N, Hv]`` in the dtype of ``value``; zeros for fully masked queries.

    Raises:
      TypeError, ValueError: as :func:`flash_attention`; a ``mask``; block sizes that are not
        positive multiples of the hardware tile.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (1, 12, 2, 8))
    >>> kv = jax.random.normal(jax.random.key(1), (1, 12, 1, 8))
    >>> kw = dict(is_causal=True, local_window_size=(3, 0))
    >>> out = pallas_flash_attention(q, kv, kv, **kw, block_q=8, block_k=8)
    >>> bool(jnp.allclose(out, flash_attention(q, kv, kv, **kw), atol=1e-5))
    True
    """
    interpret = not pallas_supported() if interpret is None else interpret
    multiple = (INTERPRET_BLOCK_MULTIPLE if interpret
                else BLOCK_MULTIPLE.get(jax.default_backend(), 8))
    refuse_score_options("pallas_flash_attention", soft_cap, sink_logits)
    window, ql, kl = check_kernel_args(
        query, key, value, bias, mask, scale, query_seq_lengths=query_seq_lengths,
        key_value_seq_lengths=key_value_seq_lengths, query_lengths=query_lengths,
        key_lengths=key_lengths, local_window_size=local_window_size,
        kernel="pallas_flash_attention", bias_ok=False, mask_ok=False,
        block_sizes={"block_q": block_q, "block_k": block_k}, block_multiple=multiple,
    )
    q, k, v, _, kl, ql, bq, bk = prepare_flash_inputs(
        query, key, value, None, kl, ql, scale, block_q, block_k, block_multiple=multiple,
    )
    # The kernel always compares positions with the lengths (None: nothing masked).
    B = q.shape[0]
    T, N = query.shape[-3], query.shape[-2]
    kl = jnp.full((B,), key.shape[-3], jnp.int32) if kl is None else kl
    ql = jnp.full((B,), T, jnp.int32) if ql is None else ql
    band = Band(bool(is_causal), window, N // key.shape[-2], bq, bk)
    out_BKRH = _pallas_flash(q, k, v, kl, ql, band, T, bool(interpret))
    output_BTNH = unfold_output(out_BKRH, T, N).astype(value.dtype)
    return output_BTNH[0] if query.ndim == 3 else output_BTNH


# The reference twin: the pure-JAX flash kernel computes the same thing the same way.
pallas_flash_attention_reference = flash_attention
