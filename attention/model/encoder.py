"""Step 14: the encoder, self-attention over the source (Vaswani et al. 2017, 3.1).

An encoder layer is self-attention then feed-forward, each in a residual block (step 12b,
:class:`attention.model.residual.Residual`); the encoder is the embeddings plus positional
encodings (with residual dropout on their sum, section 5.4) followed by N identical layers.
With RoPE or ALiBi (``config.positional``) nothing is added to the embeddings: every
self-attention layer applies the positions itself (step 13).
Every source position attends every other real (non-padding) source position, so the encoder
output ``memory [B, S, D]`` describes each source token in the context of the whole sentence.
"""

from __future__ import annotations

from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from attention.model.config import TransformerConfig
from attention.model.dropout import Dropout
from attention.model.embeddings import TokenEmbedding
from attention.model.residual import Residual, make_layer_norm
from attention.model.sublayers import make_attention, make_feed_forward, make_positions


class EncoderLayer(nnx.Module):
    """Self-attention over the source, then the position-wise feed-forward network (3.1).

    Call ``layer(x [B, S, D], src_mask [B, 1, 1, S], deterministic=..., sow_weights=...)``.
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        self.self_attention = make_attention(config, rngs=rngs)
        self.self_attention_residual = Residual(config, rngs=rngs)
        self.feed_forward = make_feed_forward(config, rngs=rngs)
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

    (No positional encodings are added for ``positional`` "rope" or "alibi".)

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
        self.dropout = Dropout(config.dropout_rate, rngs=rngs)
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
        x_BSD = self.embed(src_tokens)
        if self.positions is not None:  # None: RoPE / ALiBi, applied inside self-attention
            x_BSD = x_BSD + self.positions(src_tokens.shape[1])[None]
        x_BSD = self.dropout(x_BSD, deterministic=deterministic)
        for layer in self.layers:
            x_BSD = layer(x_BSD, src_mask, deterministic=deterministic, sow_weights=sow_weights)
        return x_BSD if self.final_norm is None else self.final_norm(x_BSD)
