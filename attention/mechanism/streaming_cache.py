"""Step 7e: attention sinks and a rolling cache, attention past the training context.

StreamingLLM (Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks",
sections 3.1-3.2). A cache of every token grows without end; a sliding window of the last
``window`` tokens stays small but collapses once the first tokens leave it, because trained
models put large attention weight on the first tokens whatever they are ("attention sinks",
3.1). Keeping the keys and values of the first ``num_sinks`` tokens (4 in the paper) next to
the rolling window keeps the model stable over texts of any length::

    cache = [ sink_0 .. sink_{n-1} | the window's last w tokens, in a ring buffer ]

Positions are those *in the cache*, not in the text (3.2): the sinks sit at ``0..n-1`` and
the window's tokens, oldest first, right after them, so no position ever exceeds ``n + w -
1``. A key's position changes as the window rolls, so the keys are stored *before* the
rotation (RoPE) and rotated by their cache positions at every step; the new query takes the
last position. ``num_sinks=0`` is the plain sliding window ("window attention", which
collapses), ``num_sinks=4`` StreamingLLM; one function serves both.

Token p of the text (p = 0, 1, ...) goes to sink slot p while ``p < n``, then to window slot
``(p - n) mod w`` (:func:`write_slots`); :func:`cache_positions` gives each slot its cache
position and whether it holds a token yet. Attention then equals full causal attention over
the kept tokens alone (the sinks followed by the window, at positions ``0..kept-1``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Shaped

from attention._checks import (
    check_floating,
    check_int,
    check_positive_int,
    check_self_attention_module,
    check_width,
    shape_str,
)
from attention.mechanism.multi_head import MultiHeadAttention, split_heads
from attention.mechanism.scaled_dot_product import dot_product_attention


class SinkCache(NamedTuple):
    """The unrotated keys and the values a stream keeps, and how many tokens it has seen.

    Fields:
      sink_key, sink_value: ``[B, n, K, H]``, the first ``n = num_sinks`` tokens (n may be 0).
      window_key, window_value: ``[B, w, K, H]``, a ring buffer of the last ``w = window``
        tokens: token p (p >= n) is in slot ``(p - n) mod w``.
      seen: int32 scalar, the tokens written so far (all of them, evicted ones included).

    Keys are stored before ``process_heads`` (unrotated): their position is their place in the
    cache, which changes as the window rolls. A ``NamedTuple`` is a JAX pytree: it goes
    through ``jit`` and ``lax.scan``; ``n`` and ``w`` are read from the shapes (static).
    """

    sink_key: Shaped[Array, "B n K H"]
    sink_value: Shaped[Array, "B n K H"]
    window_key: Shaped[Array, "B w K H"]
    window_value: Shaped[Array, "B w K H"]
    seen: Int[Array, ""]


def init_sink_cache(
    attention: MultiHeadAttention, batch_size: int, num_sinks: int, window: int,
    dtype=jnp.float32,
) -> SinkCache:
    """An empty :class:`SinkCache` for ``attention``: zeros ``[B, n, K, H]``, ``[B, w, K, H]``.

    Raises:
      TypeError: ``attention`` not a MultiHeadAttention; a size that is not an int.
      ValueError: ``batch_size`` or ``window`` below 1, ``num_sinks`` below 0; a module with
        ``in_kv_features != in_features`` or with its own ``local_window_size``.

    >>> from flax import nnx
    >>> mha = MultiHeadAttention(num_heads=4, in_features=8, num_kv_heads=2, rngs=nnx.Rngs(0))
    >>> cache = init_sink_cache(mha, 3, num_sinks=4, window=5)
    >>> cache.sink_key.shape, cache.window_key.shape, int(cache.seen)  # [B, n|w, K, H]
    ((3, 4, 2, 2), (3, 5, 2, 2), 0)
    """
    check_streaming_module(attention)
    batch_size = check_positive_int("batch_size", batch_size)
    num_sinks, window = check_sinks_and_window(num_sinks, window)
    K, H = attention.num_kv_heads, attention.head_dim
    sinks, recent = (batch_size, num_sinks, K, H), (batch_size, window, K, H)
    return SinkCache(jnp.zeros(sinks, dtype), jnp.zeros(sinks, dtype),
                     jnp.zeros(recent, dtype), jnp.zeros(recent, dtype), jnp.int32(0))


def write_slots(
    num_sinks: int, window: int, position: int | Int[Array, ""]
) -> tuple[Int[Array, ""], Int[Array, ""]]:
    """Where text position p is written: ``(sink slot, window slot)``, the unused one out of
    range (``n``, resp. ``w``) so that a scatter with ``mode="drop"`` skips it.

    p < n goes to sink slot p; p >= n to window slot ``(p - n) mod w``, overwriting token
    ``p - w``, the oldest of the window.

    >>> [tuple(int(s) for s in write_slots(2, 3, p)) for p in range(7)]
    [(0, 3), (1, 3), (2, 0), (2, 1), (2, 2), (2, 0), (2, 1)]
    """
    position = jnp.asarray(position, jnp.int32)
    is_sink = position < num_sinks
    sink_slot = jnp.where(is_sink, position, num_sinks)
    window_slot = jnp.where(is_sink, window, jnp.mod(position - num_sinks, window))
    return sink_slot, window_slot


def cache_positions(
    num_sinks: int, window: int, seen: int | Int[Array, ""]
) -> tuple[Int[Array, " S"], Bool[Array, " S"]]:
    """The cache position of every slot ``[sinks | window]`` (S = n + w) after ``seen``
    tokens, and whether the slot holds a token yet.

    The ``min(seen, n)`` sinks are at ``0..``; the window holds ``kept_w = clip(seen - n, 0,
    w)`` tokens, the newest in slot ``(seen - 1 - n) mod w``; the token of age a (0 = newest)
    is at position ``sinks + kept_w - 1 - a``. The newest token, the query, is thus at the
    largest position, ``sinks + kept_w - 1``. Empty slots get position 0 and False.

    >>> positions, valid = cache_positions(2, 3, 7)  # window slots hold tokens 5, 6, 4
    >>> positions.tolist(), valid.tolist()
    ([0, 1, 3, 4, 2], [True, True, True, True, True])
    >>> cache_positions(2, 3, 3)[0].tolist(), cache_positions(2, 3, 3)[1].tolist()
    ([0, 1, 2, 0, 0], [True, True, True, False, False])
    """
    seen = jnp.asarray(seen, jnp.int32)
    slot_n, slot_w = jnp.arange(num_sinks, dtype=jnp.int32), jnp.arange(window, dtype=jnp.int32)
    sinks_kept = jnp.minimum(seen, num_sinks)
    window_kept = jnp.clip(seen - num_sinks, 0, window)
    newest_slot = jnp.mod(seen - 1 - num_sinks, window)
    age_w = jnp.mod(newest_slot - slot_w, window)  # 0 for the newest token
    valid = jnp.concatenate([slot_n < seen, age_w < window_kept])
    positions = jnp.concatenate([slot_n, sinks_kept + window_kept - 1 - age_w])
    return jnp.where(valid, positions, 0), valid


def stream_and_attend(
    attention: MultiHeadAttention,
    inputs_q: Shaped[Array, "B 1 D"],
    cache: SinkCache,
) -> tuple[Shaped[Array, "B 1 Dout"], SinkCache]:
    """Causal self-attention of one new token over the sinks and the rolling window.

    Its unrotated key and value are written (:func:`write_slots`), then its query attends
    every kept token, itself included, with the positions of :func:`cache_positions`; the
    hooks (RoPE's ``process_heads``, ALiBi's ``position_bias``) see those cache positions::

        out = softmax(rope(q, m) . rope(K_kept, 0..m) / sqrt(d_k)) V_kept,   m = kept - 1

    This equals ``attention(x_kept, is_causal=True)[:, -1]`` on the inputs of the kept tokens
    (the sinks, then the window's tokens, in text order). One token per call: the window
    forgets tokens that earlier queries of a longer chunk would still need.

    Args:
      inputs_q: ``[B, 1, D]``, the new token's input.
      cache: from :func:`init_sink_cache` or the previous step.

    Returns:
      ``(output [B, 1, Dout], cache with the token written and seen + 1)``.

    Raises:
      TypeError: a cache that is not a :class:`SinkCache`; non-floating inputs.
      ValueError: inputs not ``[B, 1, D]`` of the module's width; a cache of another B, K or
        H (another module's); a module unfit for streaming (see :func:`init_sink_cache`).

    >>> from flax import nnx
    >>> mha = MultiHeadAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
    >>> cache = init_sink_cache(mha, 3, num_sinks=1, window=2)
    >>> for _ in range(5):
    ...     out, cache = stream_and_attend(mha, jnp.ones((3, 1, 8)), cache)
    >>> out.shape, int(cache.seen)
    ((3, 1, 8), 5)
    """
    check_stream_inputs(attention, inputs_q, cache)
    num_sinks, window = cache.sink_key.shape[1], cache.window_key.shape[1]
    key_BKH = split_heads(attention.key(inputs_q), attention.num_kv_heads)[:, 0]
    value_BKH = split_heads(attention.value(inputs_q), attention.num_kv_heads)[:, 0]
    sink_slot, window_slot = write_slots(num_sinks, window, cache.seen)
    cache = SinkCache(
        _write(cache.sink_key, sink_slot, key_BKH),
        _write(cache.sink_value, sink_slot, value_BKH),
        _write(cache.window_key, window_slot, key_BKH),
        _write(cache.window_value, window_slot, value_BKH),
        cache.seen + 1,
    )
    key_positions_S, valid_S = cache_positions(num_sinks, window, cache.seen)
    query_positions_1 = jnp.max(key_positions_S, keepdims=True)  # the newest token's
    key_BSKH = jnp.concatenate([cache.sink_key, cache.window_key], axis=1)
    value_BSKH = jnp.concatenate([cache.sink_value, cache.window_value], axis=1)
    query_B1NH = split_heads(attention.query(inputs_q), attention.num_heads)
    query_B1NH, key_BSKH, value_BSKH = attention.apply_process_heads(
        query_B1NH, key_BSKH, value_BSKH, query_positions_1, key_positions_S)
    bias_N1S = attention.bias_for(query_positions_1, key_positions_S)
    output_B1NH = dot_product_attention(
        query_B1NH, key_BSKH, value_BSKH, None if bias_N1S is None else bias_N1S[None],
        valid_S[None, None, None, :], **attention.score_options(),
    )
    return attention.project_out(inputs_q, output_B1NH), cache


def _write(buffer_BSKH, slot, new_BKH):
    """``buffer[:, slot] = new``, nothing when ``slot`` is out of range (or the buffer empty,
    as the sinks of the plain window are)."""
    if buffer_BSKH.shape[1] == 0:
        return buffer_BSKH
    return buffer_BSKH.at[:, slot].set(new_BKH.astype(buffer_BSKH.dtype), mode="drop")


# ------------------------------------------------------------------ the checks of this step


def check_sinks_and_window(num_sinks, window) -> tuple[int, int]:
    """``num_sinks`` an int >= 0 (0: the plain sliding window), ``window`` an int >= 1."""
    num_sinks = check_int("num_sinks", num_sinks, minimum=0,
                          what="an int >= 0 (0 is the plain sliding window)")
    return num_sinks, check_positive_int("window", window)


def check_streaming_module(attention) -> None:
    """A self-attention :class:`MultiHeadAttention` without its own local window (the cache
    is the window)."""
    if not isinstance(attention, MultiHeadAttention):
        raise TypeError(
            f"attention must be a MultiHeadAttention, got {type(attention).__name__}.")
    check_self_attention_module(attention, "stream_and_attend")
    if attention.local_window_size is not None:
        raise ValueError(
            f"stream_and_attend keeps its own window (the cache's), but this module has "
            f"local_window_size={attention.local_window_size}; build it without one and "
            f"choose the cache's window instead."
        )


def check_stream_inputs(attention, inputs_q, cache) -> None:
    """One new token ``[B, 1, D]`` of the module's width, and a :class:`SinkCache` whose
    ``[B, ., K, H]`` fit the module and that batch."""
    check_streaming_module(attention)
    check_floating("inputs_q", inputs_q, axes="BTD")
    check_width("inputs_q", inputs_q, attention.in_features, "in_features")
    if inputs_q.shape[1] != 1:
        raise ValueError(
            f"inputs_q must be one new token [B, 1, D], got {shape_str(inputs_q.shape)}; "
            f"stream a longer text one token at a time (lax.scan)."
        )
    if not isinstance(cache, SinkCache):
        raise TypeError(
            f"cache must be a SinkCache (from init_sink_cache), got {type(cache).__name__}.")
    B, K, H = inputs_q.shape[0], attention.num_kv_heads, attention.head_dim
    for name in ("sink_key", "sink_value", "window_key", "window_value"):
        shape = getattr(cache, name).shape
        if len(shape) != 4 or (shape[0], shape[2], shape[3]) != (B, K, H):
            raise ValueError(
                f"cache.{name} must be [B, ., K, H] = [{B}, ., {K}, {H}] for inputs_q "
                f"{shape_str(inputs_q.shape)} and this module's {K} key/value heads of size "
                f"{H}, got {shape_str(shape)}; was the cache made for another module?"
            )
    if cache.sink_key.shape != cache.sink_value.shape or (
            cache.window_key.shape != cache.window_value.shape):
        raise ValueError(
            f"cache keys and values must have one shape, got sink_key "
            f"{shape_str(cache.sink_key.shape)}, sink_value {shape_str(cache.sink_value.shape)}, "
            f"window_key {shape_str(cache.window_key.shape)}, window_value "
            f"{shape_str(cache.window_value.shape)}."
        )
    if cache.window_key.shape[1] < 1:
        raise ValueError("cache.window_key has no slot; the window must hold >= 1 token.")
