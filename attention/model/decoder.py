"""Step 15: the decoder, and decoding one token at a time (Vaswani et al. 2017, 3.1, 3.2.3).

A decoder layer has three sub-layers, each in a residual block (step 12b, :class:`Residual`):

1. **masked self-attention** over the target prefix: position t may attend only positions
   ``<= t`` (the causal mask), so the prediction for position t+1 cannot peek at it;
2. **cross-attention** ("encoder-decoder attention"): queries from the decoder, keys and
   values from the encoder output ``memory``, so every target position can look at every
   real source token;
3. the position-wise feed-forward network.

During training all target positions are computed at once (the causal mask makes that equal
to generating them one by one: "teacher forcing"). During generation, tokens come one at a
time. :meth:`Decoder.step` computes only the newest position, reading the keys and values of
earlier positions from a :class:`DecodeCache` instead of recomputing them:

* self-attention: each layer appends the new position's key/value to its cache
  (:func:`attention.mechanism.kv_cache.append_and_attend`);
* cross-attention: each layer's keys/values of ``memory`` are computed once by
  :meth:`Decoder.init_cache` (:func:`attention.mechanism.kv_cache.project_kv`).

Both caches hold ``config.kv_heads`` heads (``[B, L, K, H]``, ``[B, S, K, H]``; grouped-query
attention, :mod:`attention.mechanism.scores`). With RoPE the cached keys are stored rotated at
their own positions and the new query is rotated at ``index``; with ALiBi the step's bias is
that of query ``index``. Either way the step sees exactly what the full call sees.

With ``config.attention`` set to "mla", "differential" or "linear" (step 13a), each layer's
self-attention is that variant and its cache the variant's own (a latent per token, the keys
of both halves, a constant-size linear state): the step dispatches through
:func:`attention.model.variants.self_attention_step`.

Running :meth:`Decoder.step` for t = 0, 1, 2, ... gives the same hidden states as one call of
the decoder on the whole sequence (the tests check it); :meth:`Decoder.extend` writes several
positions at once (a prompt's "prefill").

Without sub-layer 2 (``cross_attention=False``) the same stack is a decoder-only language
model (step 17b): masked self-attention and feed-forward, nothing to attend to but the prefix.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from attention.mechanism import kv_cache
from attention.mechanism.kv_cache import KVCache
from attention.mechanism.latent import LatentCache
from attention.mechanism.linear import LinearState
from attention.mechanism.masks import causal_mask, combine_masks, padding_mask
from attention.model.config import TransformerConfig
from attention.model.dropout import Dropout
from attention.model.embeddings import TokenEmbedding
from attention.model.residual import Residual, make_layer_norm
from attention.model.sublayers import make_attention, make_feed_forward, make_positions
from attention.model.variants import (
    init_self_attention_cache,
    make_self_attention_variant,
    self_attention_step,
)


class DecodeCache(NamedTuple):
    """Everything a decoder step needs from earlier steps, one entry per layer.

    Fields:
      self_attention: one :class:`KVCache` per layer, keys/values ``[B, L, K, H]`` of the
        target positions decoded so far (L = the decoding length; later slots are zeros;
        K = ``config.kv_heads`` key/value heads); with ``config.attention`` other than
        "standard", that variant's own cache (a :class:`LatentCache` ``[B, L, C]``, a
        :class:`KVCache` of both halves ``[B, L, K, 2 H']``, a :class:`LinearState`).
      cross_attention: one :class:`KVCache` per layer, keys/values ``[B, S, K, H]`` of the
        encoder output, computed once.
    """

    self_attention: tuple[KVCache | LatentCache | LinearState, ...]
    cross_attention: tuple[KVCache, ...]


def target_mask(
    tgt_tokens: Int[Array, "B T"], pad_id: int | None
) -> Bool[Array, "#B 1 T T"]:
    """Causal mask AND target key-padding mask, ``[B, 1, T, T]`` (section 3.2.3); the causal
    mask alone (``[1, 1, T, T]``) when ``pad_id`` is None (no token is padding).

    >>> import jax.numpy as jnp
    >>> target_mask(jnp.array([[1, 5, 0]]), pad_id=0)[0, 0].astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 0]]
    """
    T = tgt_tokens.shape[1]
    if pad_id is None:
        return causal_mask(T)[None, None]
    return combine_masks(padding_mask(tokens=tgt_tokens, pad_id=pad_id), causal_mask(T)[None, None])


class DecoderLayer(nnx.Module):
    """Masked self-attention, cross-attention over ``memory``, feed-forward (3.1).

    With ``cross_attention=False`` the layer has no cross-attention sub-layer: masked
    self-attention and feed-forward only, the block of a decoder-only language model
    (:class:`attention.model.language_model.LanguageModel`); ``memory`` and ``src_mask`` are
    then None. ``config.attention`` other than "standard" builds that self-attention (step
    13a) for layer ``layer_index``.
    """

    def __init__(
        self, config: TransformerConfig, *, rngs: nnx.Rngs, cross_attention: bool = True,
        layer_index: int = 0,
    ):
        self.self_attention = (
            make_attention(config, rngs=rngs) if config.attention == "standard"
            else make_self_attention_variant(config, rngs=rngs, layer_index=layer_index))
        self.self_attention_residual = Residual(config, rngs=rngs)
        self.cross_attention = (
            make_attention(config, rngs=rngs, self_attention=False) if cross_attention else None
        )
        self.cross_attention_residual = Residual(config, rngs=rngs) if cross_attention else None
        self.feed_forward = make_feed_forward(config, rngs=rngs)
        self.feed_forward_residual = Residual(config, rngs=rngs)

    def __call__(
        self,
        x: Float[Array, "B T D"],
        memory: Float[Array, "B S D"] | None,
        src_mask: Bool[Array, "B 1 1 S"] | None,
        tgt_mask: Bool[Array, "#B 1 T T"] | None,
        *,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "B T D"]:
        def self_attend(h):
            return self.self_attention(
                h, mask=tgt_mask, deterministic=deterministic, sow_weights=sow_weights
            )

        def cross_attend(h):
            return self.cross_attention(
                h, memory, mask=src_mask, deterministic=deterministic, sow_weights=sow_weights
            )

        x = self.self_attention_residual(x, self_attend, deterministic=deterministic)
        if self.cross_attention is not None:
            x = self.cross_attention_residual(x, cross_attend, deterministic=deterministic)
        return self.feed_forward_residual(x, self.feed_forward, deterministic=deterministic)

    def step(
        self,
        x: Float[Array, "B T D"],
        self_cache: KVCache | LatentCache | LinearState,
        cross_kv: KVCache | None,
        index,
        src_mask: Bool[Array, "B 1 1 S"] | None,
    ) -> tuple[Float[Array, "B T D"], KVCache | LatentCache | LinearState]:
        """New positions ``index .. index+T-1`` (T = 1 when decoding token by token), with
        cached keys/values; always deterministic. ``cross_kv`` is None without
        cross-attention."""

        def self_attend(h):
            return self_attention_step(self.self_attention, h, self_cache, index)

        def cross_attend(h):
            return kv_cache.attend_to_cache(self.cross_attention, h, cross_kv, mask=src_mask)

        x, self_cache = self.self_attention_residual(
            x, self_attend, deterministic=True, has_aux=True
        )
        if self.cross_attention is not None:
            x = self.cross_attention_residual(x, cross_attend, deterministic=True)
        x = self.feed_forward_residual(x, self.feed_forward, deterministic=True)
        return x, self_cache


class Decoder(nnx.Module):
    """Target embeddings + positions + dropout, N decoder layers (3.1, Figure 1 right).

    Returns hidden states ``[B, T, D]``; the projection to the vocabulary lives in
    :class:`attention.Transformer` (or the language model) because it may share the
    embedding matrix.

    Args:
      config: the :class:`TransformerConfig`.
      embed: the target :class:`TokenEmbedding` (possibly shared).
      rngs: ``nnx.Rngs``.
      cross_attention: False builds the layers without cross-attention: the stack of a
        decoder-only language model, called with ``memory=None, src_mask=None`` and cached
        with ``init_cache(None, max_len, batch_size=B)``.
    """

    def __init__(
        self, config: TransformerConfig, embed: TokenEmbedding, *, rngs: nnx.Rngs,
        cross_attention: bool = True,
    ):
        self.pad_id = config.pad_id
        self.embed = embed
        self.has_cross_attention = cross_attention
        self.positions = make_positions(config, rngs=rngs)
        self.dropout = Dropout(config.dropout_rate, rngs=rngs)
        self.layers = nnx.List(
            [DecoderLayer(config, rngs=rngs, cross_attention=cross_attention, layer_index=i)
             for i in range(config.num_layers)]
        )
        self.final_norm = make_layer_norm(config, rngs=rngs) if config.norm_first else None

    def __call__(
        self,
        tgt_tokens: Int[Array, "B T"],
        memory: Float[Array, "B S D"] | None,
        src_mask: Bool[Array, "B 1 1 S"] | None,
        *,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "B T D"]:
        tgt_mask = target_mask(tgt_tokens, self.pad_id)
        x_BTD = self.embed(tgt_tokens)
        if self.positions is not None:  # None: RoPE / ALiBi, applied inside self-attention
            x_BTD = x_BTD + self.positions(tgt_tokens.shape[1])[None]
        x_BTD = self.dropout(x_BTD, deterministic=deterministic)
        for layer in self.layers:
            x_BTD = layer(
                x_BTD, memory, src_mask, tgt_mask, deterministic=deterministic,
                sow_weights=sow_weights,
            )
        return x_BTD if self.final_norm is None else self.final_norm(x_BTD)

    def init_cache(
        self, memory: Float[Array, "B S D"] | None, max_len: int, *,
        batch_size: int | None = None, dtype=None,
    ) -> DecodeCache:
        """Empty self-attention caches of ``max_len`` slots and the cross-attention keys/values.

        Args:
          memory: encoder output ``[B, S, D]``; None for a stack without cross-attention
            (then ``cross_attention`` is ``()``).
          max_len: number of target positions the caches can hold.
          batch_size: B when ``memory`` is None (else read from ``memory``).
          dtype: cache dtype (default: that of ``memory``; float32 without one).

        Raises:
          ValueError: ``memory`` given to a stack without cross-attention, or missing for one
            with it; no ``batch_size`` without ``memory``.
        """
        if (memory is None) == self.has_cross_attention:
            raise ValueError(
                "memory must be the encoder output for a decoder with cross-attention, and "
                f"None for one without; this decoder has cross_attention="
                f"{self.has_cross_attention} and got memory="
                f"{'None' if memory is None else 'an array'}."
            )
        if memory is None:
            if batch_size is None:
                raise ValueError("batch_size is needed to build a cache without memory.")
            B, dtype = batch_size, jnp.float32 if dtype is None else dtype
        else:
            B, dtype = memory.shape[0], memory.dtype if dtype is None else dtype
        return DecodeCache(
            self_attention=tuple(
                init_self_attention_cache(layer.self_attention, B, max_len, dtype)
                for layer in self.layers
            ),
            cross_attention=tuple(
                kv_cache.project_kv(layer.cross_attention, memory) for layer in self.layers
            ) if memory is not None else (),
        )

    def step(
        self,
        tokens: Int[Array, " B"],
        cache: DecodeCache,
        index,
        src_mask: Bool[Array, "B 1 1 S"] | None,
    ) -> tuple[Float[Array, "B D"], DecodeCache]:
        """Hidden state of one new position ``index`` whose input token is ``tokens``.

        Args:
          tokens: ``[B]``, the decoder input at position ``index`` (bos at index 0).
          cache: from :meth:`init_cache` or the previous step.
          index: the position, a Python int or a traced int32 scalar.
          src_mask: source padding mask ``[B, 1, 1, S]`` (None without cross-attention).

        Returns:
          ``(hidden [B, D], cache with position index written)``.
        """
        hidden_B1D, cache = self.extend(tokens[:, None], cache, index, src_mask)
        return hidden_B1D[:, 0], cache

    def extend(
        self,
        tokens: Int[Array, "B T"],
        cache: DecodeCache,
        index,
        src_mask: Bool[Array, "B 1 1 S"] | None,
    ) -> tuple[Float[Array, "B T D"], DecodeCache]:
        """Hidden states of T new positions ``index .. index+T-1`` at once, written into the
        cache: :meth:`step` for T = 1, and the "prefill" of a prompt (every prompt token in
        one parallel pass, the causal mask keeping each from seeing later ones).

        Equal to positions ``index .. index+T-1`` of the full call on the whole prefix.
        """
        T = tokens.shape[1]
        x_BTD = self.embed(tokens)
        if self.positions is not None:  # RoPE / ALiBi take the position from ``index`` instead
            x_BTD = x_BTD + self.positions(T, offset=index)[None]
        cross = cache.cross_attention or (None,) * len(self.layers)
        new_self = []
        for layer, self_cache, cross_kv in zip(
            self.layers, cache.self_attention, cross, strict=True
        ):
            x_BTD, self_cache = layer.step(x_BTD, self_cache, cross_kv, index, src_mask)
            new_self.append(self_cache)
        if self.final_norm is not None:
            x_BTD = self.final_norm(x_BTD)
        return x_BTD, DecodeCache(tuple(new_self), cache.cross_attention)
