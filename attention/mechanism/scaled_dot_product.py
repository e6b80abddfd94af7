"""Step 6: scaled dot-product attention, the steps composed (Vaswani et al. 2017, eq. 1).

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

:func:`single_head_attention` is the formula for one head of one sequence, to read first;
:func:`dot_product_attention` is the batched, multi-head version with the signature of
``jax.nn.dot_product_attention`` (its ``jax.vmap`` over batch and heads, the tests check).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Shaped

from attention._checks import accumulation_dtype, check_qkv, check_single_head
from attention.mechanism.softmax import masked_softmax
from attention.mechanism.weighted_sum import weighted_sum
from attention.mechanism.weights import attention_weights


def single_head_attention(
    query: Shaped[Array, "T H"],
    key: Shaped[Array, "S H"],
    value: Shaped[Array, "S Hv"],
    mask: Bool[Array, "T S"] | None = None,
) -> Shaped[Array, "T Hv"]:
    """``softmax(Q K^T / sqrt(H)) V`` for ``query [T, H]``, ``key [S, H]``, ``value [S, Hv]``
    and a boolean ``mask [T, S]`` (True = may attend): ``[T, Hv]`` in the value's dtype.

    Raises:
      TypeError: non-floating query, key or value; a non-boolean mask.
      ValueError: inputs that are not 2-D, H or S that differ, a mask that is not ``[T, S]``.

    >>> single_head_attention(jnp.zeros((1, 2)), jnp.zeros((2, 2)), jnp.eye(2)).tolist()
    [[0.5, 0.5]]
    """
    check_single_head(query, key, value, mask)
    # Half-precision products overflow easily (float16 stops at 65504), so the scores are
    # formed in float32.
    acc_dtype = accumulation_dtype(jnp.result_type(query, key, value))
    query, key = query.astype(acc_dtype), key.astype(acc_dtype)
    scores_TS = query @ key.T / jnp.sqrt(query.shape[-1]).astype(acc_dtype)
    weights_TS = masked_softmax(scores_TS, mask)
    return (weights_TS @ value.astype(acc_dtype)).astype(value.dtype)


def dot_product_attention(
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
    soft_cap: float | None = None,
    sink_logits: Shaped[Array, " N"] | None = None,
) -> Shaped[Array, "*B T N Hv"]:
    """``weights = attention_weights(query, key, mask, bias, ...)``, ``output = weights V``.

    The options of ``jax.nn.dot_product_attention``, with its meanings and BTNH shapes:
    ``query [B, T, N, H]``, ``key [B, S, K, H]``, ``value [B, S, K, Hv]`` (or unbatched), K
    key/value heads dividing N (step 1); ``bias`` and ``mask`` broadcast to ``[B, N, T, S]``;
    see :func:`attention_weights` for the masks, ``soft_cap`` and ``sink_logits [N]``
    (which ``jax.nn`` does not have). Returns ``[B, T, N, Hv]`` in the value's
    dtype. Unlike ``jax.nn``, a query whose keys are all masked (and every padding query)
    gets a zero vector, not the average of all values.

    Raises:
      TypeError, ValueError: as :func:`attention_weights`; a value whose B, S or K differ from
        the key's.

    >>> q = jnp.ones((2, 5, 4, 8))
    >>> kv = q[:, :, :2]  # K = 2 key/value heads shared by the N = 4 query heads
    >>> dot_product_attention(q, kv, kv, is_causal=True, local_window_size=(2, 0)).shape
    (2, 5, 4, 8)
    """
    check_qkv(query, key, value)
    # Padding queries get all-zero weights (every key of their row is masked), hence zero
    # outputs, the values jax.nn gives them by multiplying its outputs by the query mask.
    weights_BNTS = attention_weights(
        query, key, mask, bias=bias, scale=scale, is_causal=is_causal,
        query_seq_lengths=query_seq_lengths, key_value_seq_lengths=key_value_seq_lengths,
        local_window_size=local_window_size, soft_cap=soft_cap, sink_logits=sink_logits,
    )
    return weighted_sum(weights_BNTS, value)


# Attention functions by name, for ``TransformerConfig.attention_impl``: this step's reference,
# and the fast kernels of step 27, which :mod:`attention.kernels` adds when it is imported (as
# ``import attention`` does). The model (steps 8-17) finds a kernel here by its name without
# importing a later step.
ATTENTION_FNS: dict[str, Callable] = {"reference": dot_product_attention}


def attention_fn_by_name(name: str) -> Callable:
    """The attention function registered as ``name`` in :data:`ATTENTION_FNS`.

    Raises:
      ValueError: an unknown name (the message lists the registered ones).
    """
    if name not in ATTENTION_FNS:
        raise ValueError(
            f"unknown attention implementation {name!r}; choose one of "
            f"{', '.join(repr(n) for n in ATTENTION_FNS)}."
        )
    return ATTENTION_FNS[name]
