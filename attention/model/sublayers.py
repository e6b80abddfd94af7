"""Step 13: the sub-layers of a transformer layer, built from the configuration.

An encoder or decoder layer is made of the same few parts, each sized and switched by the one
:class:`TransformerConfig`: multi-head attention (step 7; with the attention kernel the config
names, and ``num_kv_heads`` key/value heads), the position-wise feed-forward network (step 10),
the positional encodings that the stacks add to their embeddings (step 8), and the layer norm
of each residual block (step 12).

These factories are the one place that reads the config for them, so the encoder (step 14) and
the decoder (step 15) build identical parts and a new config field is honoured by both.

Where the positions enter depends on ``config.positional``: "sinusoidal" and "learned" tables
are added to the embeddings (:func:`make_positions`); "rope" and "alibi" act inside every
*self*-attention (:func:`make_attention` gives it a :class:`RotaryEmbedding` or an
:class:`ALiBi`), and :func:`make_positions` returns None. Cross-attention gets neither: its
queries (target positions) and keys (source positions) do not index one sequence.

>>> cfg = TransformerConfig.tiny(vocab_size=10)
>>> make_attention(cfg, rngs=nnx.Rngs(0)).num_heads
4
>>> rope = cfg.replace(positional="rope", num_kv_heads=2)
>>> attention = make_attention(rope, rngs=nnx.Rngs(0))
>>> attention.num_kv_heads, type(attention.process_heads).__name__
(2, 'RotaryEmbedding')
>>> make_positions(rope, rngs=nnx.Rngs(0)) is None
True
"""

from __future__ import annotations

from flax import nnx

from attention.mechanism.multi_head import MultiHeadAttention
from attention.mechanism.scaled_dot_product import attention_fn_by_name
from attention.model.config import TransformerConfig
from attention.model.feed_forward import FeedForward, SwiGLUFeedForward
from attention.model.positional import (
    ALiBi,
    LearnedPositions,
    RotaryEmbedding,
    SinusoidalPositions,
)


def attention_fn_for(config: TransformerConfig):
    """The ``attention_fn`` for ``config.attention_impl``: None for the teaching reference.

    None (rather than the reference function itself) keeps :class:`MultiHeadAttention` on its
    own step-by-step path, the one whose weights can be sown for plots. The kernels of step 27
    are found by name (:data:`attention.mechanism.scaled_dot_product.ATTENTION_FNS`).
    """
    if config.attention_impl == "reference":
        return None
    return attention_fn_by_name(config.attention_impl)


def make_attention(
    config: TransformerConfig, *, rngs: nnx.Rngs, self_attention: bool = True
) -> MultiHeadAttention:
    """A d_model-wide, h-head :class:`MultiHeadAttention` configured from ``config``.

    It has ``config.kv_heads`` key/value heads (grouped-query attention when fewer than h).
    For self-attention (``self_attention=True``) it also carries the position scheme that acts
    inside attention: a :class:`RotaryEmbedding` as its ``process_heads`` for
    ``positional="rope"``, an :class:`ALiBi` as its ``position_bias`` for ``positional="alibi"``.
    Cross-attention (``self_attention=False``) gets neither. Both get the switches of today's
    models: ``qk_norm``, ``attn_soft_cap``, ``attention_sinks``, ``output_gate`` (steps 1a,
    3a, 6a), which mean the same whether keys come from the target or the source.
    """
    inside = config.positional if self_attention else None
    return MultiHeadAttention(
        num_heads=config.num_heads,
        in_features=config.d_model,
        num_kv_heads=config.kv_heads,
        dropout_rate=config.attention_dropout_rate,
        attention_fn=attention_fn_for(config),
        process_heads=(
            RotaryEmbedding(config.head_dim, config.rope_base, config.rope_scaling)
            if inside == "rope" else None),
        position_bias=ALiBi(config.num_heads) if inside == "alibi" else None,
        use_bias=config.use_bias if config.qkv_bias is None else config.qkv_bias,
        out_bias=config.use_bias,
        qk_norm=config.qk_norm,
        soft_cap=config.attn_soft_cap,
        sink_logits=config.attention_sinks,
        output_gate=config.output_gate,
        **config.linear_dtypes,
        param_dtype=config.jnp_param_dtype,
        rngs=rngs,
    )


def make_positions(config: TransformerConfig, *, rngs: nnx.Rngs):
    """:class:`SinusoidalPositions` or :class:`LearnedPositions` to add to the embeddings, as
    ``config.positional``; None for "rope" and "alibi", whose positions act in attention."""
    if config.positional in ("rope", "alibi"):
        return None
    if config.positional == "learned":
        return LearnedPositions(
            config.max_len, config.d_model, dtype=config.jnp_dtype,
            param_dtype=config.jnp_param_dtype, rngs=rngs,
        )
    return SinusoidalPositions(config.max_len, config.d_model, dtype=config.jnp_dtype)


def make_feed_forward(
    config: TransformerConfig, *, rngs: nnx.Rngs
) -> FeedForward | SwiGLUFeedForward:
    """The position-wise network ``D -> F -> D`` of ``config``: a :class:`FeedForward` with
    the activation ``config.feed_forward``, or a :class:`SwiGLUFeedForward` for "swiglu"."""
    dtypes = dict(**config.linear_dtypes, param_dtype=config.jnp_param_dtype, rngs=rngs)
    if config.feed_forward == "swiglu":
        return SwiGLUFeedForward(config.d_model, config.d_ff, **dtypes)
    return FeedForward(config.d_model, config.d_ff, activation=config.feed_forward,
                       use_bias=config.use_bias, **dtypes)
