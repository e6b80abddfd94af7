"""Step 12: residual connections, layer norm, and the encoder (Vaswani et al. 2017, 3.1, 5.4).

Each sub-layer (attention or feed-forward) is wrapped in a residual connection and a layer
normalisation. The paper normalises *after* the residual add (post-LN)::

    y = LayerNorm(x + Dropout(Sublayer(x)))              # post-LN, the paper (3.1, 5.4)

Later work (Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture")
showed that normalising the sub-layer *input* keeps the residual path an identity and trains
stably without a long warm-up (pre-LN); the stack then needs one final LayerNorm::

    y = x + Dropout(Sublayer(LayerNorm(x)))              # pre-LN, config.norm_first=True

Residual dropout (P_drop) is applied to each sub-layer output before the add, and to the sum
of token embeddings and positional encodings (section 5.4).

An encoder layer is self-attention then feed-forward, each in such a block; the encoder is
the embeddings followed by N identical layers. Every source position attends every other
real (non-padding) source position, so the encoder output ``memory [B, S, D]`` describes each
source token in the context of the whole sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from attention.model.config import TransformerConfig
from attention.model.embeddings import TokenEmbedding
from attention.model.feed_forward import FeedForward
from attention.mechanism.multi_head import MultiHeadAttention
from attention.model.positional import LearnedPositions, SinusoidalPositions


def attention_fn_for(config: TransformerConfig):
    """The ``attention_fn`` for ``config.attention_impl``: None for the teaching reference.

    The kernels package is imported only when a kernel is asked for, so the reference model
    never depends on it.
    """
    if config.attention_impl == "reference":
        return None
    from attention.kernels import get_attention_fn

    return get_attention_fn(config.attention_impl)


def make_attention(config: TransformerConfig, *, rngs: nnx.Rngs) -> MultiHeadAttention:
    """A d_model-wide, h-head :class:`MultiHeadAttention` configured from ``config``."""
    return MultiHeadAttention(
        num_heads=config.num_heads,
        in_features=config.d_model,
        dropout_rate=config.attention_dropout_rate,
        attention_fn=attention_fn_for(config),
        dtype=config.jnp_dtype,
        param_dtype=config.jnp_param_dtype,
        rngs=rngs,
    )


def make_positions(config: TransformerConfig, *, rngs: nnx.Rngs):
    """:class:`SinusoidalPositions` or :class:`LearnedPositions`, as ``config.positional``."""
    if config.positional == "learned":
        return LearnedPositions(
            config.max_len, config.d_model, dtype=config.jnp_dtype,
            param_dtype=config.jnp_param_dtype, rngs=rngs,
        )
    return SinusoidalPositions(config.max_len, config.d_model, dtype=config.jnp_dtype)


def make_layer_norm(config: TransformerConfig, *, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(
        config.d_model, epsilon=config.layer_norm_epsilon, dtype=config.jnp_dtype,
        param_dtype=config.jnp_param_dtype, rngs=rngs,
    )


class Residual(nnx.Module):
    """Residual connection around a sub-layer, with layer norm and dropout (3.1, 5.4).

    ``norm_first=False`` (post-LN, the paper): ``LayerNorm(x + Dropout(sublayer(x)))``.
    ``norm_first=True`` (pre-LN): ``x + Dropout(sublayer(LayerNorm(x)))``.

    Call ``residual(x, sublayer, deterministic=...)`` with any ``sublayer: [B, T, D] ->
    [B, T, D]``; with ``has_aux=True`` the sublayer returns ``(y, aux)`` and so does the call
    (used to thread a key/value cache through).

    >>> cfg = TransformerConfig.tiny(vocab_size=10)
    >>> res = Residual(cfg, rngs=nnx.Rngs(0))
    >>> import jax.numpy as jnp
    >>> res(jnp.ones((2, 3, 128)), lambda h: 2 * h, deterministic=True).shape
    (2, 3, 128)
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        self.norm_first = config.norm_first
        self.norm = make_layer_norm(config, rngs=rngs)
        self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)

    def __call__(
        self,
        x: Float[Array, "B T D"],
        sublayer: Callable[[Array], Any],
        *,
        deterministic: bool | None = None,
        has_aux: bool = False,
    ):
        inputs = self.norm(x) if self.norm_first else x
        y, aux = sublayer(inputs) if has_aux else (sublayer(inputs), None)
        x = x + self.dropout(y, deterministic=deterministic)
        x = x if self.norm_first else self.norm(x)
        return (x, aux) if has_aux else x


class EncoderLayer(nnx.Module):
    """Self-attention over the source, then the position-wise feed-forward network (3.1).

    Call ``layer(x [B, S, D], src_mask [B, 1, 1, S], deterministic=..., sow_weights=...)``.
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        self.self_attention = make_attention(config, rngs=rngs)
        self.self_attention_residual = Residual(config, rngs=rngs)
        self.feed_forward = FeedForward(
            config.d_model, config.d_ff, dtype=config.jnp_dtype,
            param_dtype=config.jnp_param_dtype, rngs=rngs,
        )
        self.feed_forward_residual = Residual(config, rngs=rngs)

    def __call__(
        self,
        x: Float[Array, "B S D"],
        src_mask: Bool[Array, "B 1 1 S"] | None,
        *,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "B S D"]:
        def attend(h):
            return self.self_attention(
                h, mask=src_mask, deterministic=deterministic, sow_weights=sow_weights
            )

        x = self.self_attention_residual(x, attend, deterministic=deterministic)
        return self.feed_forward_residual(x, self.feed_forward, deterministic=deterministic)


class Encoder(nnx.Module):
    """Embeddings + positional encodings + dropout, then N encoder layers (3.1, Figure 1 left).

    Args:
      config: the :class:`TransformerConfig`.
      embed: the source :class:`TokenEmbedding` (shared with the decoder when
        ``config.share_embeddings``: the same module object, so one parameter array).
      rngs: ``nnx.Rngs`` with ``params`` (and ``dropout``) streams.

    Call ``encoder(src_tokens [B, S], src_mask [B, 1, 1, S])`` for ``memory [B, S, D]``. The
    token checks live in :class:`attention.Transformer`, which calls this.
    """

    def __init__(self, config: TransformerConfig, embed: TokenEmbedding, *, rngs: nnx.Rngs):
        self.embed = embed
        self.positions = make_positions(config, rngs=rngs)
        self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)
        self.layers = nnx.List(
            [EncoderLayer(config, rngs=rngs) for _ in range(config.num_layers)]
        )
        # Pre-LN leaves the residual stream un-normalised; normalise it once at the end.
        self.final_norm = make_layer_norm(config, rngs=rngs) if config.norm_first else None

    def __call__(
        self,
        src_tokens: Int[Array, "B S"],
        src_mask: Bool[Array, "B 1 1 S"] | None,
        *,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "B S D"]:
        x_BSD = self.embed(src_tokens) + self.positions(src_tokens.shape[1])[None]
        x_BSD = self.dropout(x_BSD, deterministic=deterministic)
        for layer in self.layers:
            x_BSD = layer(x_BSD, src_mask, deterministic=deterministic, sow_weights=sow_weights)
        return x_BSD if self.final_norm is None else self.final_norm(x_BSD)
