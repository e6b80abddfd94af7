"""Step 7g: multi-head latent attention, a small latent cached instead of keys and values.

DeepSeek-V2 (DeepSeek-AI 2024, section 2.1) caches, per token, one latent ``c_KV`` of C dims
(and one shared rotary key of R dims) instead of ``2 N H`` keys and values; keys and values
are projected up from the latent when needed::

    c_KV = x W^DKV                        [C]      the only content that is cached
    k^C  = c_KV W^UK,   v = c_KV W^UV     [N, H]   up-projections, per head
    q^C  = x W^Q  (or c_Q W^UQ, c_Q = x W^DQ when the query is compressed too)
    k^R  = RoPE(x W^KR)                   [R]      one rotary key shared by the heads, cached
    q^R  = RoPE(x W^QR)                   [N, R]   (or c_Q W^QR)
    score_n(t, s) = (q^C_tn . k^C_sn + q^R_tn . k^R_s) / sqrt(H + R)
    output = Concat_n(softmax(score_n) v_n) W^O

RoPE rotates by position, so it would not commute with an up-projection: it acts on the
separate ``q^R, k^R`` only (the "decoupled" rotary part), through the ``process_heads`` hook.

When decoding, ``W^UK`` is absorbed into the query (``q^C . (c W^UK) = (q^C W^UK^T) . c``) and
``W^UV`` into ``W^O``: the new query attends the cached latents directly, a single key/value
head of width C (:func:`absorbed_latent_attention`), and no key or value is ever rebuilt.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int, Shaped

from attention._checks import (
    check_cache_index,
    check_floating,
    check_positive_int,
    check_width,
    shape_str,
)
from attention.mechanism.masks import causal_mask, combine_masks
from attention.mechanism.multi_head import ProcessHeadsFn, merge_heads, split_heads
from attention.mechanism.scores import dot_product_scores
from attention.mechanism.softmax import masked_softmax
from attention.mechanism.weighted_sum import weighted_sum


class LatentCache(NamedTuple):
    """What multi-head latent attention keeps per token: ``latent`` ``c_KV [B, S, C]`` and the
    rotated shared rotary key ``key_rope`` ``k^R [B, S, R]`` (slots from the current step on
    hold zeros, masked out). A pytree, like :class:`attention.mechanism.kv_cache.KVCache`."""

    latent: Shaped[Array, "B S C"]
    key_rope: Shaped[Array, "B S R"]


def latent_cache_bytes_per_token(
    latent_dim: int, rope_head_dim: int, *, num_layers: int = 1, bytes_per_element: int = 2
) -> int:
    """Bytes cached per token by multi-head latent attention: ``(C + R) layers bytes``.

    >>> latent_cache_bytes_per_token(512, 64, num_layers=60)  # DeepSeek-V2, bfloat16
    69120
    """
    for name, value in (("latent_dim", latent_dim), ("rope_head_dim", rope_head_dim),
                        ("num_layers", num_layers), ("bytes_per_element", bytes_per_element)):
        check_positive_int(name, value)
    return (latent_dim + rope_head_dim) * num_layers * bytes_per_element


def kv_cache_bytes_per_token(
    num_kv_heads: int, head_dim: int, *, num_layers: int = 1, bytes_per_element: int = 2
) -> int:
    """Bytes cached per token by a key/value cache (step 7a): ``2 K H layers bytes``; K = N
    for multi-head attention, fewer for grouped-query attention.

    >>> kv_cache_bytes_per_token(128, 128, num_layers=60) // latent_cache_bytes_per_token(
    ...     512, 64, num_layers=60)  # DeepSeek-V2's 128 heads as plain MHA: 56 times more
    56
    """
    for name, value in (("num_kv_heads", num_kv_heads), ("head_dim", head_dim),
                        ("num_layers", num_layers), ("bytes_per_element", bytes_per_element)):
        check_positive_int(name, value)
    return 2 * num_kv_heads * head_dim * num_layers * bytes_per_element


def _mask_for(mask, is_causal: bool, T: int, S: int):
    return combine_masks(mask, causal_mask(T, S) if is_causal else None)


def latent_weights(
    query: Shaped[Array, "*B T N H"],
    query_rope: Shaped[Array, "*B T N R"],
    key: Shaped[Array, "*B S N H"],
    key_rope: Shaped[Array, "*B S R"],
    mask: Bool[Array, "..."] | None = None,
    *,
    is_causal: bool = False,
) -> Shaped[Array, "*B N T S"]:
    """``softmax((q^C . k^C + q^R . k^R) / sqrt(H + R))`` over the allowed keys (section 2.1.3).

    Args:
      query, key: the content parts ``[B, T, N, H]``, ``[B, S, N, H]``.
      query_rope: the rotary queries ``[B, T, N, R]``.
      key_rope: the one rotary key per token ``[B, S, R]``, shared by the N heads.
      mask: boolean, broadcastable to ``[B, N, T, S]``; ``is_causal``: key s only if s <= t.

    Returns:
      ``[B, N, T, S]``; a row with every key masked is all zeros.

    Raises:
      TypeError, ValueError: as :func:`dot_product_scores` and :func:`masked_softmax`.

    >>> q, k = jnp.ones((2, 1, 4)), jnp.ones((3, 1, 4))
    >>> latent_weights(q, jnp.ones((2, 1, 2)), k, jnp.ones((3, 2)), is_causal=True)[0, 1].tolist()
    [0.5, 0.5, 0.0]
    """
    scale = 1.0 / math.sqrt(query.shape[-1] + query_rope.shape[-1])
    content_BNTS = dot_product_scores(query, key, scale=scale)
    # The shared rotary key is one key head (K = 1) that every query head reads.
    rope_BNTS = dot_product_scores(query_rope, key_rope[..., None, :], scale=scale)
    mask = _mask_for(mask, is_causal, query.shape[-3], key.shape[-3])
    return masked_softmax(content_BNTS + rope_BNTS, mask)


def latent_attention(
    query: Shaped[Array, "*B T N H"],
    query_rope: Shaped[Array, "*B T N R"],
    key: Shaped[Array, "*B S N H"],
    key_rope: Shaped[Array, "*B S R"],
    value: Shaped[Array, "*B S N Hv"],
    mask: Bool[Array, "..."] | None = None,
    *,
    is_causal: bool = False,
) -> Shaped[Array, "*B T N Hv"]:
    """The plain form: :func:`latent_weights` times the up-projected values ``[B, S, N, Hv]``.

    >>> q, v = jnp.ones((2, 1, 4)), jnp.arange(2.0).reshape(2, 1, 1)
    >>> latent_attention(q, jnp.ones((2, 1, 2)), q, jnp.ones((2, 2)), v).tolist()
    [[[0.5]], [[0.5]]]
    """
    weights_BNTS = latent_weights(query, query_rope, key, key_rope, mask, is_causal=is_causal)
    return weighted_sum(weights_BNTS, value)


def absorbed_latent_attention(
    query: Shaped[Array, "*B T N H"],
    query_rope: Shaped[Array, "*B T N R"],
    latent: Shaped[Array, "*B S C"],
    key_rope: Shaped[Array, "*B S R"],
    key_up: Float[Array, "C N H"],
    mask: Bool[Array, "..."] | None = None,
    *,
    is_causal: bool = False,
) -> Shaped[Array, "*B T N C"]:
    """The absorbed form: ``W^UK`` moved into the query, the latents attended directly::

        q^C . (c_s W^UK_n) = (q^C W^UK_n^T) . c_s        output_n = sum_s a_ts c_s   [C]

    The caller applies ``W^UV`` (folded into ``W^O``) to the result: ``output_n W^UV_n`` is
    what :func:`latent_attention` returns for head n.

    Args:
      query, query_rope, key_rope, mask, is_causal: as :func:`latent_weights`.
      latent: the cached ``c_KV [B, S, C]``.
      key_up: ``W^UK`` as ``[C, N, H]``.

    Returns:
      the weighted sums of latents, ``[B, T, N, C]``.

    >>> out = absorbed_latent_attention(jnp.ones((2, 1, 4)), jnp.ones((2, 1, 2)),
    ...     jnp.arange(6.0).reshape(2, 3), jnp.ones((2, 2)), jnp.ones((3, 1, 4)), is_causal=True)
    >>> out[0, 0].tolist()  # query 0 sees latent 0 only
    [0.0, 1.0, 2.0]
    """
    scale = 1.0 / math.sqrt(query.shape[-1] + query_rope.shape[-1])
    query_latent_BTNC = jnp.einsum("...TNH,CNH->...TNC", query, key_up.astype(query.dtype))
    latent_BS1C = latent[..., None, :]  # one key/value head of width C
    content_BNTS = dot_product_scores(query_latent_BTNC, latent_BS1C, scale=scale)
    rope_BNTS = dot_product_scores(query_rope, key_rope[..., None, :], scale=scale)
    mask = _mask_for(mask, is_causal, query.shape[-3], latent.shape[-2])
    weights_BNTS = masked_softmax(content_BNTS + rope_BNTS, mask)
    return weighted_sum(weights_BNTS, latent_BS1C)


class LatentAttention(nnx.Module):
    """Multi-head latent attention, self-attention (DeepSeek-V2, section 2.1).

    Args:
      num_heads: N heads.
      in_features: width D of the input and output.
      head_dim: H of the content queries, keys and values (default D / N).
      latent_dim: C, the width of the cached latent ``c_KV`` (default 4 H, the paper's).
      rope_head_dim: R of the decoupled rotary queries and shared key (default H / 2, the
        paper's; even, for RoPE).
      query_latent_dim: the width of the query's latent ``c_Q``; None projects queries directly.
      process_heads: the rotary hook ``(query, key, value, query_positions, key_positions) ->
        (query, key, value)``, e.g. ``RotaryEmbedding(rope_head_dim)``, applied to ``q^R``
        ``[B, T, N, R]`` and ``k^R`` as one key head ``[B, S, 1, R]``; None: no rotation.
      dtype, param_dtype, preferred_element_type: as ``nnx.Linear`` (no biases: the paper's).
      rngs: ``nnx.Rngs`` with ``params``.

    Call ``attention(x [B, T, D], mask=, is_causal=, sow_weights=)`` (the plain form; the
    weights are sown as ``"attention_weights"``); decode with :meth:`init_cache` and
    :meth:`append_and_attend` (the absorbed form by default).

    Raises:
      TypeError, ValueError: a size that is not a positive int; N not dividing D without a
        ``head_dim``; at the call, an input not floating ``[B, T, D]``.

    >>> mla = LatentAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
    >>> mla(jnp.ones((3, 5, 8)), is_causal=True).shape, mla.init_cache(3, 5).latent.shape
    ((3, 5, 8), (3, 5, 16))
    """

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        *,
        head_dim: int | None = None,
        latent_dim: int | None = None,
        rope_head_dim: int | None = None,
        query_latent_dim: int | None = None,
        process_heads: ProcessHeadsFn | None = None,
        dtype=None,
        param_dtype=jnp.float32,
        preferred_element_type=None,
        rngs: nnx.Rngs,
    ):
        N = check_positive_int("num_heads", num_heads)
        D = check_positive_int("in_features", in_features)
        if head_dim is None and D % N:
            raise ValueError(
                f"the default head_dim is in_features / num_heads, so num_heads={N} must "
                f"divide in_features={D}; pass head_dim."
            )
        H = check_positive_int("head_dim", D // N if head_dim is None else head_dim)
        C = check_positive_int("latent_dim", 4 * H if latent_dim is None else latent_dim)
        R = check_positive_int("rope_head_dim", max(H // 2, 1) if rope_head_dim is None
                               else rope_head_dim)
        if query_latent_dim is not None:
            check_positive_int("query_latent_dim", query_latent_dim)
        if process_heads is not None and not callable(process_heads):
            raise TypeError(
                f"process_heads must be callable or None, got {type(process_heads).__name__}.")
        self.num_heads, self.head_dim, self.latent_dim, self.rope_head_dim = N, H, C, R
        self.in_features = D
        self.process_heads = process_heads
        linear = dict(use_bias=False, dtype=dtype, param_dtype=param_dtype,
                      preferred_element_type=preferred_element_type, rngs=rngs)
        self.kv_down = nnx.Linear(D, C, **linear)       # W^DKV
        self.key_up = nnx.Linear(C, N * H, **linear)    # W^UK
        self.value_up = nnx.Linear(C, N * H, **linear)  # W^UV
        self.key_rope = nnx.Linear(D, R, **linear)      # W^KR
        query_in = D if query_latent_dim is None else query_latent_dim
        self.query_down = (None if query_latent_dim is None
                           else nnx.Linear(D, query_latent_dim, **linear))  # W^DQ
        self.query = nnx.Linear(query_in, N * H, **linear)       # W^Q (W^UQ when compressed)
        self.query_rope = nnx.Linear(query_in, N * R, **linear)  # W^QR
        self.out = nnx.Linear(N * H, D, **linear)                 # W^O

    def _check_input(self, x) -> None:
        check_floating("x", x, axes="BTD")
        check_width("x", x, self.in_features, "in_features")

    def _rotate(self, query_rope_BTNR, key_rope_BSR, query_positions_T, key_positions_S):
        if self.process_heads is None:
            return query_rope_BTNR, key_rope_BSR
        key_rope_BS1R = key_rope_BSR[:, :, None]
        # RoPE never touches values: the rotary key stands in for them.
        query_rope_BTNR, key_rope_BS1R, _ = self.process_heads(
            query_rope_BTNR, key_rope_BS1R, key_rope_BS1R, query_positions_T, key_positions_S)
        return query_rope_BTNR, key_rope_BS1R[:, :, 0]

    def _project(self, x_BTD, positions_T):
        """``q^C [B, T, N, H]``, ``q^R [B, T, N, R]``, ``c_KV [B, T, C]``, ``k^R [B, T, R]``,
        the rotary parts rotated at ``positions``."""
        query_in = x_BTD if self.query_down is None else self.query_down(x_BTD)
        query_BTNH = split_heads(self.query(query_in), self.num_heads)
        query_rope_BTNR = split_heads(self.query_rope(query_in), self.num_heads)
        latent_BTC = self.kv_down(x_BTD)
        query_rope_BTNR, key_rope_BTR = self._rotate(
            query_rope_BTNR, self.key_rope(x_BTD), positions_T, positions_T)
        return query_BTNH, query_rope_BTNR, latent_BTC, key_rope_BTR

    def _up(self, latent_BSC):
        """The plain form's keys and values ``[B, S, N, H]`` from the latents."""
        return (split_heads(self.key_up(latent_BSC), self.num_heads),
                split_heads(self.value_up(latent_BSC), self.num_heads))

    def __call__(
        self,
        x: Shaped[Array, "B T D"],
        *,
        mask: Bool[Array, "..."] | None = None,
        is_causal: bool = False,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Shaped[Array, "B T D"]:
        self._check_input(x)
        positions_T = jnp.arange(x.shape[1], dtype=jnp.int32)
        query_BTNH, query_rope_BTNR, latent_BSC, key_rope_BSR = self._project(x, positions_T)
        key_BSNH, value_BSNH = self._up(latent_BSC)
        weights_BNTS = latent_weights(
            query_BTNH, query_rope_BTNR, key_BSNH, key_rope_BSR, mask, is_causal=is_causal)
        if sow_weights:
            self.sow(nnx.Intermediate, "attention_weights", weights_BNTS)
        return self.out(merge_heads(weighted_sum(weights_BNTS, value_BSNH)))

    def absorbed_output_matrix(self) -> Float[Array, "C N D"]:
        """``W^UV`` folded into ``W^O``: ``[C, N, D]``, head n's ``W^UV_n W^O_n``."""
        value_up_CNH = self.value_up.kernel[...].reshape(self.latent_dim, self.num_heads, -1)
        out_NHD = self.out.kernel[...].reshape(self.num_heads, self.head_dim, -1)
        return jnp.einsum("CNH,NHD->CND", value_up_CNH, out_NHD)

    def init_cache(self, batch_size: int, max_len: int, dtype=jnp.float32) -> LatentCache:
        """An empty cache: ``latent [B, S, C]`` and ``key_rope [B, S, R]`` zeros.

        Raises:
          TypeError, ValueError: a size that is not a positive int.
        """
        B = check_positive_int("batch_size", batch_size)
        S = check_positive_int("max_len", max_len)
        return LatentCache(jnp.zeros((B, S, self.latent_dim), dtype),
                           jnp.zeros((B, S, self.rope_head_dim), dtype))

    def append_and_attend(
        self,
        x: Shaped[Array, "B T D"],
        cache: LatentCache,
        index: int | Int[Array, ""],
        *,
        absorbed: bool = True,
    ) -> tuple[Shaped[Array, "B T D"], LatentCache]:
        """Causal attention of new positions ``index .. index+T-1`` over the cached latents,
        theirs written at ``index``. ``absorbed=True`` attends the latents directly
        (:func:`absorbed_latent_attention`, ``W^UV W^O`` folded); False rebuilds every key
        and value (the plain form). Both equal the full causal call position by position.

        Raises:
          TypeError: a cache that is not a :class:`LatentCache`; an ``index`` not an integer.
          ValueError: a cache of another shape; ``index + T`` beyond the cache.
        """
        self._check_input(x)
        self._check_cache(cache, x.shape[0])
        T, S = x.shape[1], cache.latent.shape[1]
        check_cache_index(index, T, S)
        positions_T = jnp.asarray(index, jnp.int32) + jnp.arange(T, dtype=jnp.int32)
        query_BTNH, query_rope_BTNR, latent_BTC, key_rope_BTR = self._project(x, positions_T)
        start = (0, index, 0)
        cache = LatentCache(
            jax.lax.dynamic_update_slice(cache.latent, latent_BTC.astype(cache.latent.dtype),
                                         start),
            jax.lax.dynamic_update_slice(cache.key_rope,
                                         key_rope_BTR.astype(cache.key_rope.dtype), start),
        )
        mask_TS = causal_mask(T, S, offset=index)
        if absorbed:
            key_up_CNH = self.key_up.kernel[...].reshape(self.latent_dim, self.num_heads, -1)
            output_BTNC = absorbed_latent_attention(
                query_BTNH, query_rope_BTNR, cache.latent, cache.key_rope, key_up_CNH, mask_TS)
            output = jnp.einsum("BTNC,CND->BTD", output_BTNC, self.absorbed_output_matrix())
            return output.astype(x.dtype), cache
        key_BSNH, value_BSNH = self._up(cache.latent)
        output_BTNH = latent_attention(
            query_BTNH, query_rope_BTNR, key_BSNH, cache.key_rope, value_BSNH, mask_TS)
        return self.out(merge_heads(output_BTNH)), cache

    def _check_cache(self, cache, B: int) -> None:
        if not isinstance(cache, LatentCache):
            raise TypeError(
                f"cache must be a LatentCache (from init_cache), got {type(cache).__name__}.")
        S = cache.latent.shape[1] if cache.latent.ndim > 1 else 0  # any number of slots
        expected = ((B, S, self.latent_dim), (B, S, self.rope_head_dim))
        if (tuple(cache.latent.shape), tuple(cache.key_rope.shape)) != expected:
            raise ValueError(
                f"cache must hold latent [B, S, C] = {shape_str(expected[0])} and key_rope "
                f"[B, S, R] = {shape_str(expected[1])} for this input and module; got "
                f"{shape_str(cache.latent.shape)} and {shape_str(cache.key_rope.shape)}."
            )
