"""Step 7a: the key/value cache, attention one new token at a time while decoding.

A decoder generates one token per step, and its query attends the keys and values of every
earlier token, which never change. So they are kept in a :class:`KVCache` ``[B, S, K, H]``
and each step projects only the new token: :func:`append_and_attend` writes its key and value
at position ``index`` and attends over the cache (self-attention); :func:`project_kv` projects
the encoder output once and :func:`attend_to_cache` reads it at every step (cross-attention).
The cache is a value passed in and returned, never state of the module: the decoding loop
carries it and beam search gathers it. With K < N key/value heads (step 1) it is N / K times
smaller, and N / K times less is read per step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Shaped

from attention._checks import (
    check_cache,
    check_cache_index,
    check_floating,
    check_positive_int,
    check_self_attention_module,
    check_width,
)
from attention.mechanism.masks import causal_mask, combine_masks, local_window_mask
from attention.mechanism.multi_head import MultiHeadAttention, split_heads
from attention.mechanism.scaled_dot_product import dot_product_attention


class KVCache(NamedTuple):
    """Projected keys and values of one attention layer, kept between decoding steps.

    Fields ``key`` and ``value``: ``[B, S, K, H]``. For self-attention S is the maximum
    decoding length, the slots from the current step on hold zeros (masked out), and the keys
    are stored after the module's ``process_heads`` (rotated, with RoPE). For cross-attention
    S is the source length and the keys are the bare projections. A ``NamedTuple`` is a JAX
    pytree: it goes through ``lax.while_loop`` and ``jax.tree.map``.
    """

    key: Shaped[Array, "B S K H"]
    value: Shaped[Array, "B S K H"]


def init_kv_cache(
    batch_size: int, max_len: int, num_kv_heads: int, head_dim: int, dtype=jnp.float32
) -> KVCache:
    """An empty cache of ``max_len`` slots: two zero arrays ``[B, S, K, H]``.

    >>> init_kv_cache(3, 5, 2, 4).key.shape
    (3, 5, 2, 4)
    """
    shape = (batch_size, max_len, num_kv_heads, head_dim)
    return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def update_kv_cache(
    cache: KVCache,
    key_BTKH: Shaped[Array, "B T K H"],
    value_BTKH: Shaped[Array, "B T K H"],
    index: int | Int[Array, ""],
) -> KVCache:
    """Write T new keys and values at slots ``index .. index+T-1`` (``index`` may be traced).

    >>> cache = update_kv_cache(init_kv_cache(1, 3, 1, 1), jnp.ones((1, 1, 1, 1)),
    ...                         jnp.ones((1, 1, 1, 1)), 1)
    >>> cache.key[0, :, 0, 0].tolist()
    [0.0, 1.0, 0.0]
    """
    start = (0, index, 0, 0)
    return KVCache(
        jax.lax.dynamic_update_slice(cache.key, key_BTKH.astype(cache.key.dtype), start),
        jax.lax.dynamic_update_slice(cache.value, value_BTKH.astype(cache.value.dtype), start),
    )


def init_cache(
    attention: MultiHeadAttention, batch_size: int, max_len: int, *, dtype=jnp.float32
) -> KVCache:
    """An empty self-attention cache for ``attention``: ``[B, max_len, K, H]`` zeros.

    Raises:
      TypeError, ValueError: ``batch_size`` or ``max_len`` not a positive int.

    >>> from flax import nnx
    >>> mha = MultiHeadAttention(num_heads=4, in_features=8, num_kv_heads=2, rngs=nnx.Rngs(0))
    >>> init_cache(mha, 3, 5).key.shape  # [B, S, K, H]
    (3, 5, 2, 2)
    """
    batch_size = check_positive_int("batch_size", batch_size)
    max_len = check_positive_int("max_len", max_len)
    return init_kv_cache(batch_size, max_len, attention.num_kv_heads, attention.head_dim, dtype)


def append_and_attend(
    attention: MultiHeadAttention,
    inputs_q: Shaped[Array, "B T D"],
    cache: KVCache,
    index: int | Int[Array, ""],
    *,
    mask: Bool[Array, "..."] | None = None,
) -> tuple[Shaped[Array, "B T Dout"], KVCache]:
    """Causal self-attention of new positions ``index .. index+T-1`` over a cache.

    Their keys and values are written into ``cache`` at ``index``, and new query t attends
    the slots ``s <= index + t`` (:func:`attention.causal_mask` with ``offset=index``), so
    unwritten slots never enter the softmax. The module's options (QK-norm, soft-cap, sink
    logits, output gate) act as in its call. The hooks see the positions ``index + arange(T)``
    (keys ``0..S-1`` for ``position_bias``). Position by position, this equals
    ``attention(x, is_causal=True)``. It always attends with the teaching steps: one query
    per sequence leaves a tiled kernel nothing to tile.

    Args:
      inputs_q: ``[B, T, D]`` (T = 1 when decoding token by token).
      cache: ``[B, S, K, H]`` from :func:`init_cache` or the previous step, ``index + T <= S``.
      index: how many positions the cache holds (an int or a traced integer scalar).
      mask: an extra boolean mask broadcastable to ``[B, N, T, S]``.

    Returns:
      ``(output [B, T, Dout], updated cache)``.

    Raises:
      TypeError: a cache that is not a :class:`KVCache`; an ``index`` that is not an integer.
      ValueError: a cache of another B, K or H; a module with ``in_kv_features !=
        in_features``; a concrete ``index`` below 0 or ``index + T > S`` (a traced one is
        clamped by ``dynamic_update_slice``).

    >>> from flax import nnx
    >>> mha = MultiHeadAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
    >>> out, cache = append_and_attend(mha, jnp.ones((3, 1, 8)), init_cache(mha, 3, 5), 0)
    >>> out.shape, cache.key.shape
    ((3, 1, 8), (3, 5, 2, 4))
    """
    check_self_attention_module(attention, "append_and_attend")
    check_cache(cache, KVCache, inputs_q, attention)
    T, S = inputs_q.shape[1], cache.key.shape[1]
    check_cache_index(index, T, S)
    positions_T = jnp.asarray(index, jnp.int32) + jnp.arange(T, dtype=jnp.int32)
    query_BTNH = split_heads(attention.query(inputs_q), attention.num_heads)
    key_BTKH = split_heads(attention.key(inputs_q), attention.num_kv_heads)
    value_BTKH = split_heads(attention.value(inputs_q), attention.num_kv_heads)
    query_BTNH, key_BTKH, value_BTKH = attention.apply_process_heads(
        query_BTNH, key_BTKH, value_BTKH, positions_T, positions_T)
    cache = update_kv_cache(cache, key_BTKH, value_BTKH, index)
    window = attention.local_window_size
    mask = combine_masks(
        mask,
        causal_mask(T, S, offset=index),
        None if window is None else local_window_mask(T, S, window, offset=index),
    )
    bias_NTS = attention.bias_for(positions_T, jnp.arange(S, dtype=jnp.int32))
    output_BTNH = dot_product_attention(
        query_BTNH, cache.key, cache.value, None if bias_NTS is None else bias_NTS[None], mask,
        **attention.score_options(),
    )
    return attention.project_out(inputs_q, output_BTNH), cache


def project_kv(attention: MultiHeadAttention, inputs_kv: Shaped[Array, "B S Dkv"]) -> KVCache:
    """Keys ``memory W^K`` and values ``memory W^V`` of a fixed sequence (the encoder
    output), projected once for :func:`attend_to_cache`: a :class:`KVCache` ``[B, S, K, H]``.

    Raises:
      TypeError, ValueError: a non-floating input, not ``[B, S, Dkv]`` of the module's width.
    """
    check_floating("inputs_kv", inputs_kv, axes="BSD")
    check_width("inputs_kv", inputs_kv, attention.in_kv_features, "in_kv_features")
    return KVCache(
        split_heads(attention.key(inputs_kv), attention.num_kv_heads),
        split_heads(attention.value(inputs_kv), attention.num_kv_heads),
    )


def attend_to_cache(
    attention: MultiHeadAttention,
    inputs_q: Shaped[Array, "B T D"],
    cache: KVCache,
    *,
    mask: Bool[Array, "..."] | None = None,
) -> Shaped[Array, "B T Dout"]:
    """Attention of new queries over keys and values already in ``cache`` (cross-attention).

    Equals ``attention(inputs_q, inputs_kv, mask=mask)`` without dropout when ``cache =
    project_kv(attention, inputs_kv)``, hooks included (queries at ``0..T-1``, keys at
    ``0..S-1``); it attends with the teaching steps.

    Args:
      inputs_q: ``[B, T, D]``, usually one new position.
      cache: from :func:`project_kv`, ``[B, S, K, H]``.
      mask: boolean, broadcastable to ``[B, N, T, S]`` (a source padding mask).

    Returns:
      ``[B, T, Dout]``.

    Raises:
      TypeError: a cache that is not a :class:`KVCache`; inputs as the module's call.
      ValueError: a cache of another B, K or H; inputs as the module's call.
    """
    check_cache(cache, KVCache, inputs_q, attention)
    query_positions_T = jnp.arange(inputs_q.shape[1], dtype=jnp.int32)
    key_positions_S = jnp.arange(cache.key.shape[1], dtype=jnp.int32)
    query_BTNH, key_BSKH, value_BSKH = attention.apply_process_heads(
        split_heads(attention.query(inputs_q), attention.num_heads), cache.key, cache.value,
        query_positions_T, key_positions_S,
    )
    bias_NTS = attention.bias_for(query_positions_T, key_positions_S)
    output_BTNH = dot_product_attention(
        query_BTNH, key_BSKH, value_BSKH, None if bias_NTS is None else bias_NTS[None], mask,
        local_window_size=attention.local_window_size, **attention.score_options(),
    )
    return attention.project_out(inputs_q, output_BTNH)
