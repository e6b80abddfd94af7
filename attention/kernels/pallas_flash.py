"""Rung 5: the flash forward pass as a Pallas kernel, for GPU and TPU.

What changes from rung 4 (:func:`attention.kernels.flash_attention`): the algorithm is the
same, but the tiling is explicit instead of being left to XLA. ``pl.pallas_call`` runs the
kernel once per grid cell ``(b, n, i)`` = (sequence, head, query block); the ``BlockSpec``
of the queries hands it its ``[block_q, H]`` tile (in fast on-chip memory), and the kernel
loops over key blocks itself, keeping the running max ``m``, sum ``l`` and output ``acc`` in
registers / on-chip memory: on a GPU the ``[block_q, block_k]`` scores never reach the main
memory at all, which is where FlashAttention's speed comes from (Dao et al. 2022, section 3.1).

The backward pass reuses rung 4's (``jax.custom_vjp``): it recomputes the weights tile by tile
from the log-sum-exp this kernel writes, so training memory is linear in T here too.

Masks: ``is_causal`` (tiles above the diagonal skipped by the loop bound), ``key_lengths`` and
``query_lengths``. A general boolean ``mask`` is not taken (use :func:`flash_attention`).

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

from attention.kernels._arguments import check_attention_args
from attention.kernels.flash import _backward, flash_attention, prepare_flash_inputs

# Block sizes must tile the hardware: TPU vector registers are [8, 128] (lanes of 128), Triton
# on GPU needs matrix-multiply tiles of at least 16; the interpreter only asks for sublanes of 8.
BLOCK_MULTIPLE = {"tpu": 128, "gpu": 16}
INTERPRET_BLOCK_MULTIPLE = 8


def pallas_supported() -> bool:
    """True where Pallas compiles natively: the default backend is a GPU or a TPU."""
    return jax.default_backend() in ("gpu", "tpu")


def _cdiv(a, b):
    return (a + b - 1) // b


def _forward_kernel(kl_ref, ql_ref, q_ref, k_ref, v_ref, o_ref, lse_ref, *,
                    is_causal: bool, block_q: int, block_k: int):
    """One grid cell (b, n, i): query block i of head n of sequence b against all keys."""
    b, i = pl.program_id(0), pl.program_id(2)
    key_length, query_length = kl_ref[b], ql_ref[b]
    q_qH = q_ref[...]
    acc_dtype = jnp.float32
    lowest = jnp.finfo(acc_dtype).min
    hi = _cdiv(key_length, block_k)
    if is_causal:
        hi = jnp.minimum(hi, _cdiv((i + 1) * block_q, block_k))
    hi = jnp.where(i * block_q < query_length, hi, 0)
    q_pos_qk = i * block_q + jax.lax.broadcasted_iota(jnp.int32, (block_q, block_k), 0)

    def key_step(j, carry):
        m_q1, l_q1, acc_qH = carry
        k_kH = k_ref[pl.ds(j * block_k, block_k), :]
        v_kH = v_ref[pl.ds(j * block_k, block_k), :]
        s_qk = jax.lax.dot_general(
            q_qH, k_kH, (((1,), (1,)), ((), ())), preferred_element_type=acc_dtype
        )
        k_pos_qk = j * block_k + jax.lax.broadcasted_iota(jnp.int32, (block_q, block_k), 1)
        ok_qk = (k_pos_qk < key_length) & (q_pos_qk < query_length)
        if is_causal:
            ok_qk = ok_qk & (k_pos_qk <= q_pos_qk)
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
    m_q1, l_q1, acc_qH = jax.lax.fori_loop(0, hi, key_step, init)
    seen_q1 = m_q1 > lowest
    l_q1 = jnp.where(seen_q1, l_q1, 1.0)
    o_ref[...] = jnp.where(seen_q1, acc_qH / l_q1, 0.0).astype(o_ref.dtype)
    lse_ref[...] = jnp.where(seen_q1, m_q1 + jnp.log(l_q1), 0.0)[:, 0]


def _pallas_forward(q_BNTH, k_BNSH, v_BNSH, kl, ql, is_causal, bq, bk, interpret):
    B, N, T, H = q_BNTH.shape
    S, Hv = k_BNSH.shape[2], v_BNSH.shape[-1]
    kernel = partial(_forward_kernel, is_causal=is_causal, block_q=bq, block_k=bk)
    whole = lambda shape: pl.BlockSpec(shape, lambda b, n, i: (0,) * len(shape))
    return pl.pallas_call(
        kernel,
        grid=(B, N, T // bq),
        in_specs=[
            whole((B,)),
            whole((B,)),
            pl.BlockSpec((None, None, bq, H), lambda b, n, i: (b, n, i, 0)),
            pl.BlockSpec((None, None, S, H), lambda b, n, i: (b, n, 0, 0)),
            pl.BlockSpec((None, None, S, Hv), lambda b, n, i: (b, n, 0, 0)),
        ],
        out_specs=[
            pl.BlockSpec((None, None, bq, Hv), lambda b, n, i: (b, n, i, 0)),
            pl.BlockSpec((None, None, bq), lambda b, n, i: (b, n, i)),
        ],
        out_shape=[
            jax.ShapeDtypeStruct((B, N, T, Hv), jnp.float32),
            jax.ShapeDtypeStruct((B, N, T), jnp.float32),
        ],
        interpret=interpret,
    )(kl, ql, q_BNTH, k_BNSH, v_BNSH)


@partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8))
def _pallas_flash(q_BNTH, k_BNSH, v_BNSH, kl, ql, is_causal, bq, bk, interpret):
    return _pallas_forward(q_BNTH, k_BNSH, v_BNSH, kl, ql, is_causal, bq, bk, interpret)[0]


def _pallas_flash_fwd(q_BNTH, k_BNSH, v_BNSH, kl, ql, is_causal, bq, bk, interpret):
    out, lse = _pallas_forward(q_BNTH, k_BNSH, v_BNSH, kl, ql, is_causal, bq, bk, interpret)
    return out, (q_BNTH, k_BNSH, v_BNSH, kl, ql, out, lse)


def _pallas_flash_bwd(is_causal, bq, bk, interpret, residuals, dout_BNTH):
    q, k, v, kl, ql, out, lse = residuals
    dq, dk, dv = _backward(q, k, v, None, kl, ql, out, lse, dout_BNTH, is_causal, bq, bk)
    return dq, dk, dv, None, None


_pallas_flash.defvjp(_pallas_flash_fwd, _pallas_flash_bwd)


def pallas_flash_attention(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S N H"],
    value: Shaped[Array, "*B S N Hv"],
    bias: None = None,
    mask: None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    key_lengths: Int[Array, "*B"] | None = None,
    query_lengths: Int[Array, "*B"] | None = None,
    block_q: int = 128,
    block_k: int = 128,
    interpret: bool | None = None,
) -> Shaped[Array, "*B T N Hv"]:
    """Flash attention with a Pallas forward kernel; equals :func:`flash_attention`.

    Args:
      query, key, value, scale, is_causal, key_lengths, query_lengths: as
        :func:`flash_attention`.
      bias, mask: must be None (raise otherwise): give padding as ``key_lengths``.
      block_q, block_k: tile sizes; multiples of 128 on TPU, 16 on GPU, 8 in interpret mode.
      interpret: run in Pallas' interpreter; default: where it cannot compile natively.

    Returns:
      ``[B, T, N, Hv]`` in the dtype of ``value``; zeros for fully masked queries.

    Raises:
      TypeError, ValueError: as :func:`flash_attention`; a ``mask``; block sizes that are not
        positive multiples of the hardware tile.

    >>> import jax, jax.numpy as jnp
    >>> q = jax.random.normal(jax.random.key(0), (1, 12, 1, 8))
    >>> out = pallas_flash_attention(q, q, q, is_causal=True, block_q=8, block_k=8)
    >>> bool(jnp.allclose(out, flash_attention(q, q, q, is_causal=True), atol=1e-5))
    True
    """
    check_attention_args(
        query, key, value, bias, None, scale, bias_ok=False, kernel="pallas_flash_attention"
    )
    if mask is not None:
        raise ValueError(
            "pallas_flash_attention takes no boolean mask=; give key padding as "
            "key_lengths=[B] (and query padding as query_lengths=), with is_causal= for "
            "causal masking, or use flash_attention, which slices any mask broadcastable to "
            "[B, N, T, S]."
        )
    interpret = not pallas_supported() if interpret is None else interpret
    backend = jax.default_backend()
    multiple = INTERPRET_BLOCK_MULTIPLE if interpret else BLOCK_MULTIPLE.get(backend, 8)
    q, k, v, _, kl, ql, bq, bk = prepare_flash_inputs(
        query, key, value, None, key_lengths, query_lengths, scale, block_q, block_k,
        block_multiple=multiple,
    )
    # The kernel always compares positions with the lengths (None: nothing masked).
    B = q.shape[0]
    kl = jnp.full((B,), key.shape[-3], jnp.int32) if kl is None else kl
    ql = jnp.full((B,), query.shape[-3], jnp.int32) if ql is None else ql
    out_BNTH = _pallas_flash(q, k, v, kl, ql, bool(is_causal), bq, bk, bool(interpret))
    T = query.shape[-3]
    output_BTNH = jnp.einsum("BNTH->BTNH", out_BNTH[:, :, :T]).astype(value.dtype)
    return output_BTNH[0] if query.ndim == 3 else output_BTNH


# The reference twin: the pure-JAX flash kernel computes the same thing the same way.
pallas_flash_attention_reference = flash_attention
