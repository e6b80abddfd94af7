"""Step 13a: the attention of config.attention, the self-attention variants of today's models.

``TransformerConfig.attention`` picks the self-attention of the decoder-only model's layers:
``"standard"`` is step 13's :func:`make_attention`; the others are built here from the config,
with the model's positions passed in (the mechanism steps never import the model's):

* ``"mla"``: :class:`LatentAttention` (step 7g), d_k heads, a latent of ``latent_dim`` and
  ``rope_head_dim`` decoupled rotary dims, rotated by a :class:`RotaryEmbedding` when
  ``positional="rope"``;
* ``"differential"``: :class:`DifferentialAttention` (step 7f), each d_k head split into two
  halves of d_k / 2 (the parameters of a standard layer), ``lambda_init`` of its layer;
* ``"linear"``: :class:`LinearAttention` (step 7h), gated by ``linear_decay`` when set.

Each variant has its own decode cache; :func:`init_self_attention_cache` and
:func:`self_attention_step` are the one place that tells them apart from step 7a's.

>>> config = TransformerConfig.language_model(vocab_size=11, d_model=16, num_heads=2,
...                                           attention="mla")
>>> mla = make_self_attention_variant(config, rngs=nnx.Rngs(0), layer_index=0)
>>> type(mla).__name__, mla.latent_dim, type(mla.process_heads).__name__
('LatentAttention', 32, 'RotaryEmbedding')
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from attention.mechanism import kv_cache
from attention.mechanism.differential import DifferentialAttention
from attention.mechanism.latent import LatentAttention
from attention.mechanism.linear import LinearAttention
from attention.mechanism.multi_head import MultiHeadAttention
from attention.model.config import TransformerConfig
from attention.model.positional import RotaryEmbedding

SelfAttention = MultiHeadAttention | LatentAttention | DifferentialAttention | LinearAttention


def make_self_attention_variant(
    config: TransformerConfig, *, rngs: nnx.Rngs, layer_index: int
) -> LatentAttention | DifferentialAttention | LinearAttention:
    """The self-attention of ``config.attention`` (not "standard") for layer ``layer_index``
    (0-based; the differential layer's ``lambda_init`` reads it as ``l = layer_index + 1``).

    Raises:
      ValueError: ``config.attention == "standard"`` (that is :func:`make_attention`).
    """
    dtypes = dict(**config.linear_dtypes, param_dtype=config.jnp_param_dtype, rngs=rngs)
    qkv_bias = config.use_bias if config.qkv_bias is None else config.qkv_bias

    def rope(head_dim):
        if config.positional != "rope":
            return None
        return RotaryEmbedding(head_dim, config.rope_base, config.rope_scaling)

    if config.attention == "mla":
        return LatentAttention(
            config.num_heads, config.d_model, latent_dim=config.mla_latent_dim,
            rope_head_dim=config.mla_rope_head_dim, query_latent_dim=config.query_latent_dim,
            process_heads=rope(config.mla_rope_head_dim), **dtypes)
    if config.attention == "differential":
        return DifferentialAttention(
            config.num_heads, config.d_model, head_dim=config.head_dim // 2,
            num_kv_heads=config.kv_heads, layer=layer_index + 1, use_bias=qkv_bias,
            process_heads=rope(config.head_dim // 2), **dtypes)
    if config.attention == "linear":
        return LinearAttention(config.num_heads, config.d_model, num_kv_heads=config.kv_heads,
                               decay=config.linear_decay, use_bias=qkv_bias, **dtypes)
    raise ValueError(
        f"make_self_attention_variant builds attention='mla', 'differential' or 'linear'; "
        f"got attention={config.attention!r} (make_attention builds 'standard')."
    )


def init_self_attention_cache(attention: SelfAttention, batch_size: int, max_len: int,
                              dtype=jnp.float32):
    """An empty decode cache of any self-attention: step 7a's :class:`KVCache`, or the
    variant's own (a latent cache, a key/value cache of halves, a linear state)."""
    if isinstance(attention, MultiHeadAttention):
        return kv_cache.init_cache(attention, batch_size, max_len, dtype=dtype)
    return attention.init_cache(batch_size, max_len, dtype)


def self_attention_step(attention: SelfAttention, x, cache, index):
    """New positions ``index ..`` of ``x [B, T, D]`` through any self-attention with its
    cache: ``(output [B, T, D], updated cache)``."""
    if isinstance(attention, MultiHeadAttention):
        return kv_cache.append_and_attend(attention, x, cache, index)
    return attention.append_and_attend(x, cache, index)
