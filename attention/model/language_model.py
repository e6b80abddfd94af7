"""Step 17b: a decoder-only language model from the same blocks (Radford et al. 2018, 2019).

Drop the encoder and the cross-attention from the translation model and what is left is a
language model: token embeddings, a stack of masked self-attention + feed-forward layers, and
the (tied) projection back to the vocabulary. It reads a sequence and, at every position t,
scores the token at t+1::

    x      = E[tokens] (* sqrt(d_model), + positions)      # [B, T, D]
    hidden = DecoderStack(x)   causal mask: t sees 0..t     # [B, T, D]
    logits = LayerNorm(hidden) E^T                          # [B, T, V]

    loss   = -1/T sum_t log softmax(logits_t)[tokens_{t+1}]     (the next-token NLL)

It is the decoder of step 15 built with ``cross_attention=False``, with the output head,
cache and attention maps of step 15a: nothing is copied from the translation model. Its
config is a :class:`TransformerConfig` with ``architecture="decoder_only"``
(:meth:`TransformerConfig.language_model`), GPT-2-shaped (Radford et al. 2019, 2.3): pre-LN
with a final LayerNorm, and tied embeddings. Training is the translation model's step
(:func:`attention.training.train.train_step`) without ``src``; generation is
:mod:`attention.model.sampling`.

:func:`language_model_attention_maps` (also reached through :func:`attention.attention_maps`)
returns the weights of every head, ``{"decoder_self": [L, B, N, T, T]}``, for the plots.
"""

from __future__ import annotations

from flax import nnx
from jaxtyping import Array, Float, Int

from attention._checks import check_positive_int, check_tokens
from attention.model.config import TransformerConfig
from attention.model.decoder import DecodeCache, Decoder
from attention.model.embeddings import TokenEmbedding
from attention.model.spine import DecoderModel, make_output_projection, sown_attention_maps


class LanguageModel(DecoderModel):
    """A GPT-style decoder-only transformer: ``logits = model(tokens)``.

    Args:
      config: a :class:`TransformerConfig` with ``architecture="decoder_only"``. Its
        vocabulary is ``tgt_vocab_size`` (``src_vocab_size`` is not used).
      rngs: ``nnx.Rngs`` with a ``params`` stream (and ``dropout`` for training).

    Call ``model(tokens [B, T])`` for float32 logits ``[B, T, V]``; row t scores the token
    after ``tokens[:, t]``. ``pad_id`` tokens are masked as keys, so right-padding never
    changes the real positions. ``deterministic=None`` follows ``model.train()`` /
    ``model.eval()``. ``init_decode_cache`` and ``decode_step`` (one token) or ``prefill``
    (several) run it incrementally with a key/value cache.

    Raises:
      TypeError: ``config`` not a TransformerConfig; see :func:`check_tokens`.
      ValueError: a config of the encoder-decoder architecture; bad tokens.

    >>> import jax.numpy as jnp
    >>> config = TransformerConfig.language_model(vocab_size=13, d_model=16, num_heads=2,
    ...                                           d_ff=32, num_layers=2)
    >>> model = LanguageModel(config, rngs=nnx.Rngs(0))
    >>> model(jnp.array([[1, 5, 6, 7]]), deterministic=True).shape
    (1, 4, 13)
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}.")
        if not config.is_language_model:
            raise ValueError(
                f"LanguageModel needs a config with architecture='decoder_only', got "
                f"architecture={config.architecture!r}; use attention.Transformer for it, or "
                f"config.as_language_model()."
            )
        self.config = config
        self.embed = TokenEmbedding(
            config.tgt_vocab_size, config.d_model, scale=config.scale_embeddings,
            dtype=config.jnp_dtype, param_dtype=config.jnp_param_dtype, rngs=rngs,
        )
        self.decoder = Decoder(config, self.embed, rngs=rngs, cross_attention=False)
        self.output = make_output_projection(config, rngs=rngs)

    def target_embedding(self) -> TokenEmbedding:
        return self.embed

    # ------------------------------------------------------------------ training path

    def __call__(
        self,
        tokens: Int[Array, "B T"],
        *,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "B T V"]:
        return self.logits(
            self.features(tokens, deterministic=deterministic, sow_weights=sow_weights)
        )

    def features(
        self,
        tokens: Int[Array, "B T"],
        *,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "B T D"]:
        """The last hidden states ``[B, T, D]`` (after the final LayerNorm), before the
        output projection; training feeds them to
        :func:`attention.training.loss.projected_cross_entropy` with :meth:`output_weight`."""
        check_tokens("tokens", tokens, vocab_size=self.config.tgt_vocab_size,
                     max_len=self.config.max_len)
        return self.decoder(tokens, None, None, deterministic=deterministic,
                            sow_weights=sow_weights)

    # ------------------------------------------------------------- incremental path

    def init_decode_cache(self, batch_size: int, max_len: int) -> DecodeCache:
        """Empty key/value caches for ``max_len`` positions of ``batch_size`` sequences
        (``[B, max_len, K, H]`` per layer; no cross-attention part).

        Raises:
          TypeError, ValueError: a size that is not a positive int; ``max_len`` above
            ``config.max_len``.
        """
        check_positive_int("batch_size", batch_size)
        return self._init_cache(None, max_len, batch_size)

    def prefill(
        self, tokens: Int[Array, "B T"], cache: DecodeCache, index=0
    ) -> tuple[Float[Array, "B T V"], DecodeCache]:
        """Logits of T new positions ``index .. index+T-1`` at once, written into ``cache``
        (a prompt in one parallel pass); equal to ``model(prefix)[:, index:index+T]``."""
        hidden_BTD, cache = self.decoder.extend(tokens, cache, index, None)
        return self.logits(hidden_BTD), cache

    def decode_step(
        self, tokens: Int[Array, " B"], cache: DecodeCache, index
    ) -> tuple[Float[Array, "B V"], DecodeCache]:
        """Logits ``[B, V]`` of the token after ``tokens`` (at position ``index``), reading
        positions ``< index`` from ``cache``; equal to ``model(prefix)[:, index]``."""
        hidden_BD, cache = self.decoder.step(tokens, cache, index, None)
        return self.logits(hidden_BD), cache


def language_model_attention_maps(
    model: LanguageModel, tokens: Int[Array, "B T"]
) -> dict[str, Float[Array, "L B N T T"]]:
    """Every head's causal self-attention weights, from one deterministic forward pass.

    Returns:
      ``{"decoder_self": [L, B, N, T, T]}``: layer l, head n, row t = how position t attends
      positions ``0..t`` (upper triangle and padding columns are 0; rows sum to 1). The key is
      the one of :func:`attention.attention_maps` for the translation model's decoder, so the
      same plotting code serves both.

    Raises:
      ValueError: ``attention_impl`` is not "reference" (fused kernels never form weights).

    >>> import jax.numpy as jnp
    >>> config = TransformerConfig.language_model(vocab_size=13, d_model=16, num_heads=2,
    ...                                           d_ff=32, num_layers=3)
    >>> model = LanguageModel(config, rngs=nnx.Rngs(0))
    >>> language_model_attention_maps(model, jnp.array([[1, 5, 6]]))["decoder_self"].shape
    (3, 1, 2, 3, 3)
    """
    if not isinstance(model, LanguageModel):
        raise TypeError(f"model must be a LanguageModel, got {type(model).__name__}.")
    return sown_attention_maps(model, tokens)
