"""Step 16: the whole encoder-decoder transformer (Vaswani et al. 2017, Figure 1).

    memory = Encoder(src_tokens)                               # [B, S, D]
    hidden = Decoder(tgt_in, memory)                           # [B, T, D]
    logits = hidden W_out   (or hidden E^T when shared)        # [B, T, V]

``tgt_in`` is the decoder *input*: the target sentence shifted right by one, starting with
``bos``. Position t of the logits scores the token at position t+1 of the shifted sequence,
i.e. the t-th target token, given the source and the target tokens before it. The model builds
its own masks from the tokens: source key padding (``src_tokens != pad_id``) for encoder
self-attention and decoder cross-attention, and target key padding AND causal for decoder
self-attention. Padding therefore never changes the outputs at real positions.

:func:`attention_maps` returns every attention weight of every layer, for plots.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from attention._checks import check_tokens, shape_str
from attention.mechanism.masks import padding_mask
from attention.model.config import TransformerConfig
from attention.model.decoder import DecodeCache, Decoder
from attention.model.embeddings import TokenEmbedding
from attention.model.encoder import Encoder
from attention.model.spine import DecoderModel, make_output_projection, sown_attention_maps


class Transformer(DecoderModel):
    """The encoder-decoder transformer of "Attention Is All You Need".

    Args:
      config: a :class:`TransformerConfig`.
      rngs: ``nnx.Rngs`` with a ``params`` stream (and ``dropout`` for training; a single
        seed ``nnx.Rngs(0)`` serves both).

    Call ``model(src_tokens [B, S], tgt_tokens [B, T])`` for float32 logits ``[B, T, V]``.
    ``deterministic=None`` follows ``model.train()`` / ``model.eval()`` (dropout on / off);
    ``True`` or ``False`` overrides. ``model.encode`` and ``model.decode`` split the call so
    that decoding encodes the source once; ``model.init_decode_cache`` and
    ``model.decode_step`` decode one token at a time with a key/value cache.

    Raises:
      TypeError, ValueError: see :func:`check_tokens`; source and target batch sizes that
        differ; a ``memory`` that does not match the source.

    >>> model = Transformer(TransformerConfig.tiny(vocab_size=13), rngs=nnx.Rngs(0))
    >>> src = jnp.array([[5, 6, 7, 2]]); tgt = jnp.array([[1, 8, 9]])
    >>> model(src, tgt, deterministic=True).shape
    (1, 3, 13)
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}.")
        if config.is_language_model:
            raise ValueError(
                "Transformer is the encoder-decoder model, but this config has "
                "architecture='decoder_only'; build it with "
                "attention.model.language_model.LanguageModel."
            )
        self.config = config
        embedding = dict(scale=config.scale_embeddings, dtype=config.jnp_dtype,
                         param_dtype=config.jnp_param_dtype, rngs=rngs)
        self.src_embed = TokenEmbedding(config.src_vocab_size, config.d_model, **embedding)
        # Sharing is by reference: NNX sees one module (one parameter array) in two places.
        self.tgt_embed = (
            self.src_embed
            if config.share_embeddings
            else TokenEmbedding(config.tgt_vocab_size, config.d_model, **embedding)
        )
        self.encoder = Encoder(config, self.src_embed, rngs=rngs)
        self.decoder = Decoder(config, self.tgt_embed, rngs=rngs)
        self.output = make_output_projection(config, rngs=rngs)

    def target_embedding(self) -> TokenEmbedding:
        return self.tgt_embed

    # ------------------------------------------------------------------ training path

    def __call__(
        self,
        src_tokens: Int[Array, "B S"],
        tgt_tokens: Int[Array, "B T"],
        *,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "B T V"]:
        return self.logits(self.features(src_tokens, tgt_tokens, deterministic=deterministic,
                                         sow_weights=sow_weights))

    def features(
        self,
        src_tokens: Int[Array, "B S"],
        tgt_tokens: Int[Array, "B T"],
        *,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "B T D"]:
        """The decoder's last hidden states ``[B, T, D]``: the model before its output
        projection. Training feeds them to :func:`attention.training.loss.projected_cross_entropy`
        with :meth:`output_weight`, which never holds all the logits at once."""
        self._check_src(src_tokens)
        self._check_tgt(tgt_tokens)
        if src_tokens.shape[0] != tgt_tokens.shape[0]:
            raise ValueError(
                f"src_tokens {shape_str(src_tokens.shape)} and tgt_tokens "
                f"{shape_str(tgt_tokens.shape)} must have the same batch size B."
            )
        memory = self.encode(src_tokens, deterministic=deterministic, sow_weights=sow_weights)
        return self.decoder(
            tgt_tokens, memory, self.source_mask(src_tokens), deterministic=deterministic,
            sow_weights=sow_weights,
        )

    def encode(
        self,
        src_tokens: Int[Array, "B S"],
        *,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "B S D"]:
        """The encoder output ``memory [B, S, D]`` (padding positions hold values; they are
        masked wherever memory is used)."""
        self._check_src(src_tokens)
        return self.encoder(
            src_tokens, self.source_mask(src_tokens), deterministic=deterministic,
            sow_weights=sow_weights,
        )

    def decode(
        self,
        tgt_tokens: Int[Array, "B T"],
        memory: Float[Array, "B S D"],
        src_tokens: Int[Array, "B S"] | Bool[Array, "B 1 1 S"] | None = None,
        *,
        src_mask: Bool[Array, "B 1 1 S"] | None = None,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "B T V"]:
        """Logits ``[B, T, V]`` for decoder inputs ``tgt_tokens`` given the encoder ``memory``.

        Args:
          tgt_tokens: ``[B, T]`` decoder input (shifted right, starting with bos).
          memory: ``[B, S, D]`` from :meth:`encode`.
          src_tokens: the source tokens ``[B, S]`` (their padding is masked), or directly a
            boolean source mask ``[B, 1, 1, S]``.
          src_mask: keyword form of the boolean source mask.
        """
        self._check_tgt(tgt_tokens)
        src_mask = self._resolve_src_mask(src_tokens, src_mask, memory, tgt_tokens.shape[0])
        hidden_BTD = self.decoder(
            tgt_tokens, memory, src_mask, deterministic=deterministic, sow_weights=sow_weights
        )
        return self.logits(hidden_BTD)

    def source_mask(self, src_tokens: Int[Array, "B S"]) -> Bool[Array, "B 1 1 S"]:
        """Key-padding mask of the source: True at real tokens."""
        return padding_mask(tokens=src_tokens, pad_id=self.config.pad_id)

    # ------------------------------------------------------------- incremental path

    def init_decode_cache(
        self, memory: Float[Array, "B S D"], max_len: int
    ) -> DecodeCache:
        """Caches for decoding up to ``max_len`` target positions (see :class:`DecodeCache`).

        Raises:
          TypeError, ValueError: ``max_len`` not an int in ``1..config.max_len``.
        """
        return self._init_cache(memory, max_len)

    def decode_step(
        self,
        tokens: Int[Array, " B"],
        cache: DecodeCache,
        index,
        src_mask: Bool[Array, "B 1 1 S"],
    ) -> tuple[Float[Array, "B V"], DecodeCache]:
        """Logits ``[B, V]`` for the next token after decoder input ``tokens`` at ``index``.

        Equal to ``decode(prefix, memory, src)[:, index]`` where ``prefix[:, index] = tokens``
        and earlier positions are those fed to previous steps (always deterministic).
        """
        hidden_BD, cache = self.decoder.step(tokens, cache, index, src_mask)
        return self.logits(hidden_BD), cache

    # ------------------------------------------------------------------------ checks

    def _check_src(self, src_tokens) -> None:
        check_tokens(
            "src_tokens", src_tokens, vocab_size=self.config.src_vocab_size,
            max_len=self.config.max_len,
        )

    def _check_tgt(self, tgt_tokens) -> None:
        check_tokens(
            "tgt_tokens", tgt_tokens, vocab_size=self.config.tgt_vocab_size,
            max_len=self.config.max_len,
        )

    def _resolve_src_mask(self, src_tokens, src_mask, memory, batch_size):
        if src_tokens is not None and src_mask is not None:
            raise ValueError("give the source as src_tokens or as src_mask, not both.")
        if src_tokens is not None and getattr(src_tokens, "dtype", None) == jnp.bool_:
            src_tokens, src_mask = None, src_tokens
        if src_tokens is not None:
            self._check_src(src_tokens)
            src_mask = self.source_mask(src_tokens)
        if memory.ndim != 3 or memory.shape[-1] != self.config.d_model:
            raise ValueError(
                f"memory must be the encoder output [B, S, D={self.config.d_model}], got "
                f"{shape_str(memory.shape)}."
            )
        B, S = memory.shape[:2]
        if B != batch_size:
            raise ValueError(
                f"memory {shape_str(memory.shape)} and tgt_tokens have different batch sizes "
                f"({B} vs {batch_size})."
            )
        if src_mask is not None and tuple(src_mask.shape) not in ((B, 1, 1, S), (1, 1, 1, S)):
            raise ValueError(
                f"the source mask must be [B, 1, 1, S] = {shape_str((B, 1, 1, S))} to match "
                f"memory {shape_str(memory.shape)}, got {shape_str(src_mask.shape)}."
            )
        return src_mask


def count_params(model: nnx.Module) -> int:
    """Number of trainable parameters (shared arrays counted once)."""
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def attention_maps(
    model: DecoderModel,
    src_tokens: Int[Array, "B S"],
    tgt_tokens: Int[Array, "B T"] | None = None,
) -> dict[str, Float[Array, "L B N Tq Tk"]]:
    """Every attention weight of every layer, from one deterministic forward pass.

    For a decoder-only language model (``config.architecture="decoder_only"``) call
    ``attention_maps(model, tokens)``: the result is ``{"decoder_self": [L, B, N, T, T]}``.

    What every attention layer sowed in ``model(src, tgt, deterministic=True,
    sow_weights=True)``, stacked over the layers
    (:func:`attention.model.spine.sown_attention_maps`).

    Returns:
      A dict of float arrays, layer-major:

      * ``"encoder_self"``: ``[L, B, N, S, S]``, encoder layer l, head n: row s = how source
        position s attends the source positions.
      * ``"decoder_self"``: ``[L, B, N, T, T]``, masked self-attention of the decoder (upper
        triangle and padding columns are 0).
      * ``"decoder_cross"``: ``[L, B, N, T, S]``, row t = how target position t attends the
        source (padding columns are 0). This is the "alignment" plot.

      Each row over the last axis sums to 1 (0 for a row that sees no key).

    Raises:
      ValueError: ``attention_impl`` is not "reference" (fused kernels never form weights).

    >>> model = Transformer(TransformerConfig.tiny(vocab_size=13), rngs=nnx.Rngs(0))
    >>> maps = attention_maps(model, jnp.array([[5, 6, 2]]), jnp.array([[1, 7]]))
    >>> {k: v.shape for k, v in maps.items()}["decoder_cross"]
    (2, 1, 4, 2, 3)
    """

    if model.config.is_language_model:
        if tgt_tokens is not None:
            raise ValueError(
                "a LanguageModel reads one sequence: call attention_maps(model, tokens), "
                "without tgt_tokens."
            )
        return sown_attention_maps(model, src_tokens)
    if tgt_tokens is None:
        raise ValueError(
            "a Transformer needs both sequences: attention_maps(model, src_tokens, tgt_tokens)."
        )
    return sown_attention_maps(model, src_tokens, tgt_tokens)
