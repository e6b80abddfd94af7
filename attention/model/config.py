"""Step 11: one frozen configuration for the whole transformer (Vaswani et al. 2017, Table 3).

Every size and switch of the model lives in :class:`TransformerConfig`, a frozen,
keyword-only dataclass, so a model is described by one value that can be printed, compared,
saved beside a checkpoint (:meth:`TransformerConfig.to_dict`, JSON-able) and loaded back
(:meth:`TransformerConfig.from_dict`). Fields carry the paper's names in their comments.

Presets: :meth:`TransformerConfig.base` is the paper's base model (Table 3, row "base":
N = 6, d_model = 512, d_ff = 2048, h = 8, P_drop = 0.1, about 65M parameters with a shared
37000-token vocabulary); :meth:`TransformerConfig.small` is a Multi30k-sized model that a
CPU trains in an hour (N = 3, d_model = 256, h = 8, d_ff = 1024, about 6M parameters with an
8000-token vocabulary); :meth:`TransformerConfig.tiny` trains on a laptop CPU in minutes.
:data:`PRESETS` names them for the command line (``attention train --preset small``).

The same config describes the decoder-only language model (step 17b,
:class:`attention.model.language_model.LanguageModel`): ``architecture="decoder_only"`` keeps
the decoder stack without its cross-attention and ignores the encoder. Its preset
:meth:`TransformerConfig.language_model` is GPT-shaped (Radford et al. 2019): pre-LN, the
embedding tied to the output projection, rotary positions; :meth:`as_language_model` turns any
preset into that shape (``attention train --task lm --preset tiny``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from attention._checks import (
    check_attention_options,
    check_attention_variant,
    check_heads_divide_width,
    check_int,
    check_kv_heads_divide,
    check_positive_int,
    check_real,
    check_rope_scaling,
)
from attention.model.precision import check_precision, matmul_dtypes, resolve_precision

POSITIONAL = ("sinusoidal", "learned", "rope", "alibi")
NORMS = ("layer_norm", "rms_norm")
"""The choices of ``TransformerConfig.norm``: LayerNorm (Ba et al. 2016) or RMSNorm (Zhang &
Sennrich 2019, Llama's)."""
FEED_FORWARDS = ("relu", "gelu", "gelu_tanh", "swiglu")
"""The choices of ``TransformerConfig.feed_forward``: the paper's ReLU network, GELU (exact or
GPT-2's tanh approximation), or the gated SwiGLU of Llama (Shazeer 2020)."""
"""The choices of ``TransformerConfig.positional`` (for the command line's ``--positional``)."""
ARCHITECTURES = ("encoder_decoder", "decoder_only")
"""The choices of ``TransformerConfig.architecture``, the model's kind: the 2017 translation
model, or a GPT-style language model made of the decoder stack alone."""
# ALiBi adds a bias to the scores: only kernels that take a ``bias`` argument can carry it.
_BIAS_KERNELS = ("reference", "fused")
ATTENTIONS = ("standard", "mla", "differential", "linear")
"""The choices of ``TransformerConfig.attention`` (:mod:`attention.model.variants`)."""
_MLA_SIZES = ("latent_dim", "rope_head_dim", "query_latent_dim")
# Soft-capping and sink logits act inside the softmax: the kernels that take them.
_SCORE_OPTION_KERNELS = ("reference", "flash", "auto")


class SavedConfig:
    """What a frozen, keyword-only config dataclass needs to be saved beside a checkpoint and
    read back: :meth:`to_dict`, :meth:`from_dict`, :meth:`replace` (written once, for
    :class:`TransformerConfig` and :class:`attention.training.train.TrainConfig`)."""

    def replace(self, **changes: Any):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field, to save beside a checkpoint."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Inverse of :meth:`to_dict`. Fields missing from ``values`` take their defaults, so
        a config saved before a field existed still loads (as the model it described).

        Raises:
          ValueError: keys that are not fields (a typo, or a file from another version).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} field(s) {unknown}; the fields are {sorted(names)}."
            )
        return cls(**values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformerConfig(SavedConfig):
    """Sizes and switches of an encoder-decoder transformer.

    Raises:
      TypeError: a size or token id that is not an int (``True`` is not a size), a rate that
        is not a number.
      ValueError: a non-positive size, ``num_heads`` not dividing ``d_model``, a dropout rate
        outside ``[0, 1)``, a special token id outside its vocabulary or equal to another,
        ``share_embeddings`` with different vocabulary sizes, an unknown ``positional`` or
        dtype name, a ``precision`` outside :data:`PRECISIONS` or with ``dtype`` also set,
        attention dropout with a fused ``attention_impl``, ``num_kv_heads`` not
        dividing ``num_heads``, ``rope_base <= 0``, ``positional="rope"`` with an odd head
        dim, ``positional="alibi"`` with a kernel that takes no bias (only "reference" and
        "fused" do), an unknown ``norm`` or ``feed_forward``, a special token id of None in
        an encoder-decoder config; a ``qk_norm`` other than None, "rms", "layer"; an
        ``attn_soft_cap`` that is not a positive number, or one or ``attention_sinks`` with
        a kernel that does not take them (only "reference", "flash" and "auto" do).

    >>> cfg = TransformerConfig.tiny(vocab_size=100)
    >>> cfg.d_model, cfg.num_heads, cfg.d_model // cfg.num_heads
    (128, 4, 32)
    >>> TransformerConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    architecture: str = "encoder_decoder"  # "encoder_decoder": the paper's model (Figure 1);
    #   "decoder_only": the decoder stack without cross-attention, a language model that
    #   predicts the next token (Liu et al. 2018; Radford et al. 2018). Written first so that
    #   a saved config says which model it is before anything else.
    src_vocab_size: int  # source vocabulary size (input of the encoder embedding)
    tgt_vocab_size: int  # target vocabulary size (decoder embedding and the softmax)
    d_model: int = 512  # d_model: width of every sub-layer output and embedding (3.1)
    num_heads: int = 8  # h: parallel attention heads; d_k = d_v = d_model / h (3.2.2)
    num_kv_heads: int | None = None  # K: key/value heads, dividing h (grouped-query
    #   attention, attention.mechanism.scores); None = h, the paper's multi-head attention
    attention: str = "standard"  # the decoder-only model's self-attention (step 13a,
    #   attention.model.variants): "standard" softmax(QK^T/sqrt(d_k))V (3.2); "mla", multi-head
    #   latent attention (DeepSeek-V2, 2.1); "differential" (Ye et al. 2024, 2.1); "linear",
    #   phi(Q)(phi(K)^T V) with phi = elu + 1 (Katharopoulos et al. 2020)
    latent_dim: int | None = None  # MLA's d_c, the cached latent c_KV; None = 4 d_k (the paper's)
    rope_head_dim: int | None = None  # MLA's d_h^R, the decoupled rotary dims; None = d_k / 2
    query_latent_dim: int | None = None  # MLA's d_c', the query's latent; None: no compression
    linear_decay: float | None = None  # "linear" only: the gated form's decay g in (0, 1],
    #   S_t = g S_{t-1} + phi(k_t) v_t^T (RetNet, GLA); None: no decay, the 2020 paper's
    d_ff: int = 2048  # d_ff: inner width of the position-wise feed-forward network (3.3)
    num_layers: int = 6  # N: identical layers in the encoder stack and in the decoder stack
    dropout_rate: float = 0.1  # P_drop: residual dropout and dropout on embeddings + PE (5.4)
    attention_dropout_rate: float = 0.0  # dropout on attention weights (not in the paper)
    max_len: int = 256  # longest source or target sequence (rows of the position table)
    pad_id: int | None = 0  # padding token: masked as a key, never generated; None (a
    #   language model only, e.g. a loaded GPT-2): no token is padding, every key is real
    bos_id: int | None = 1  # beginning of sentence: first decoder input token, never
    #   generated; None (a language model only): no such token
    eos_id: int | None = 2  # end of sentence: decoding stops after it; None (a language
    #   model only): generation stops only at its length
    share_embeddings: bool = False  # one matrix for source, target embeddings and the
    #   pre-softmax projection (3.4); needs src_vocab_size == tgt_vocab_size
    norm_first: bool = False  # False: post-LN, LayerNorm(x + Sublayer(x)) as in the paper;
    #   True: pre-LN, x + Sublayer(LayerNorm(x)) plus a final LayerNorm (Xiong et al. 2020)
    positional: str = "sinusoidal"  # "sinusoidal" (3.5) or "learned" (Table 3, row E),
    #   added to the embeddings; or, inside self-attention, "rope": rotary position
    #   embeddings (Su et al. 2021, RoFormer) or "alibi": linear biases (Press et al. 2022)
    rope_base: float = 10000.0  # RoPE's base: pair i rotates by pos * base^(-2i/d_k) (RoFormer)
    rope_scaling: tuple[float, float, float, float] | None = None  # Llama 3's (factor,
    #   low_freq_factor, high_freq_factor, original context): slower long wavelengths
    #   (attention.model.positional.llama3_frequencies); None: RoFormer's frequencies
    attention_impl: str = "reference"  # "reference" (teaching steps) or a kernel name of
    #   attention.kernels.get_attention_fn ("fused", "blockwise", "flash", ...)
    qk_norm: str | None = None  # QK-norm: "rms" or "layer" norm of each query and key head,
    #   learned scale, before RoPE (Dehghani et al. 2023; Qwen3, OLMo 2, Gemma 3); step 1a
    attn_soft_cap: float | None = None  # scores cap * tanh(s / cap) (Gemma 2, section 3:
    #   attn_logit_softcapping = 50); step 1a
    attention_sinks: bool = False  # a learned sink logit per head, an extra softmax column
    #   with no value (gpt-oss; Xiao et al. 2023); step 3a
    output_gate: bool = False  # gated attention: each head's output times sigmoid(x W_g)
    #   before W^O (Qiu et al. 2025; Qwen3-Next); step 6a
    layer_norm_epsilon: float = 1e-6  # epsilon of every LayerNorm (not given in the paper)
    norm: str = "layer_norm"  # "layer_norm" (Ba et al. 2016, the paper's) or "rms_norm":
    #   x / sqrt(mean(x^2) + eps) * gamma, no centring, no bias (Zhang & Sennrich 2019; Llama)
    feed_forward: str = "relu"  # the FFN (3.3): "relu" (the paper's), "gelu" / "gelu_tanh"
    #   (Hendrycks & Gimpel 2016; GPT-2 uses the tanh form), "swiglu": W_2(silu(x W_g) * x W_1)
    #   (Shazeer 2020; Llama)
    use_bias: bool = True  # biases in the attention projections and the FFN (Llama: none)
    qkv_bias: bool | None = None  # biases in W^Q, W^K, W^V alone (Qwen2: True, with
    #   use_bias=False); None: as use_bias
    scale_embeddings: bool = True  # multiply the embeddings by sqrt(d_model) (3.4); GPT-2
    #   and Llama do not
    precision: str = "float32"  # "float32"; "bfloat16": mixed precision, products with
    #   bfloat16 inputs and float32 sums, everything else float32 (attention.model.precision);
    #   "auto": bfloat16 where that makes training faster (GPU, TPU, AMX), else float32
    dtype: str | None = None  # every activation in this dtype ("bfloat16", ...; not mixed:
    #   softmax and norms too); None follows the params. For speed use precision= instead
    param_dtype: str = "float32"  # dtype in which parameters are stored

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}."
            )
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "num_heads", "d_ff",
                     "num_layers", "max_len"):
            check_positive_int(name, getattr(self, name))
        check_heads_divide_width(self.num_heads, self.d_model)
        if self.num_kv_heads is not None:
            check_positive_int("num_kv_heads", self.num_kv_heads)
            check_kv_heads_divide(self.num_kv_heads, self.num_heads)
        for name in ("dropout_rate", "attention_dropout_rate"):
            check_real(name, getattr(self, name), low=0.0, high=1.0, high_inclusive=False)
        for name in ("pad_id", "bos_id", "eos_id"):
            if getattr(self, name) is None:
                if not self.is_language_model:
                    raise ValueError(
                        f"{name}=None is for a language model only; the encoder-decoder "
                        f"model needs a {name} token id."
                    )
                continue
            value = check_int(name, getattr(self, name))
            if not 0 <= value < self.tgt_vocab_size:
                raise ValueError(
                    f"{name}={value} must be a token id of the target vocabulary, "
                    f"0 <= {name} < tgt_vocab_size={self.tgt_vocab_size}."
                )
        if self.pad_id is not None and not 0 <= self.pad_id < self.src_vocab_size:
            raise ValueError(
                f"pad_id={self.pad_id} must also be a source token id, "
                f"0 <= pad_id < src_vocab_size={self.src_vocab_size}."
            )
        ids = {name: getattr(self, name) for name in ("pad_id", "bos_id", "eos_id")
               if getattr(self, name) is not None}
        if len(set(ids.values())) != len(ids):
            raise ValueError(
                f"pad_id, bos_id and eos_id must be three different tokens (those not None; "
                f"padding is masked out and bos/eos are not), got {ids}."
            )
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                f"share_embeddings=True uses one embedding matrix for source and target, so "
                f"src_vocab_size ({self.src_vocab_size}) must equal tgt_vocab_size "
                f"({self.tgt_vocab_size}); build a shared vocabulary or set "
                f"share_embeddings=False."
            )
        if self.positional not in POSITIONAL:
            raise ValueError(
                f"positional must be one of {POSITIONAL}, got {self.positional!r}."
            )
        check_real("rope_base", self.rope_base, low=0.0, low_inclusive=False)
        # A tuple (hashable, as a frozen config must be), also when read back from JSON's list.
        object.__setattr__(self, "rope_scaling", check_rope_scaling(self.rope_scaling))
        if self.positional == "rope" and self.head_dim % 2:
            raise ValueError(
                f"positional='rope' rotates pairs of head dims, so the head dim d_model / "
                f"num_heads = {self.d_model} / {self.num_heads} = {self.head_dim} must be even; "
                f"change d_model or num_heads, or choose another positional."
            )
        if not isinstance(self.attention_impl, str) or not self.attention_impl:
            raise ValueError(
                f"attention_impl must be a kernel name such as 'reference', got "
                f"{self.attention_impl!r}."
            )
        if self.positional == "alibi" and self.attention_impl not in _BIAS_KERNELS:
            raise ValueError(
                f"positional='alibi' adds a bias to the attention scores, which "
                f"attention_impl={self.attention_impl!r} does not take; use attention_impl "
                f"in {_BIAS_KERNELS} with ALiBi, or another positional."
            )
        object.__setattr__(self, "attn_soft_cap", check_attention_options(
            self.qk_norm, self.attn_soft_cap, self.attention_sinks, self.output_gate,
            soft_cap_name="attn_soft_cap", sink_logits_name="attention_sinks"))
        uses = [name for name in ("attn_soft_cap", "attention_sinks") if getattr(self, name)]
        if uses and self.attention_impl not in _SCORE_OPTION_KERNELS:
            raise ValueError(
                f"{' and '.join(uses)} {'act' if len(uses) > 1 else 'acts'} on the scores "
                f"inside the kernel, and "
                f"attention_impl={self.attention_impl!r} does not take them; use attention_impl "
                f"in {_SCORE_OPTION_KERNELS}.")
        if self.attention_impl != "reference" and self.attention_dropout_rate > 0:
            raise ValueError(
                f"attention_dropout_rate={self.attention_dropout_rate} needs the attention "
                f"weights, which attention_impl={self.attention_impl!r} never forms; use "
                f"attention_impl='reference' or attention_dropout_rate=0."
            )
        check_real("layer_norm_epsilon", self.layer_norm_epsilon, low=0.0, low_inclusive=False)
        for name, choices in (("norm", NORMS), ("feed_forward", FEED_FORWARDS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}.")
        check_precision(self.precision)
        if self.precision != "float32" and self.dtype is not None:
            raise ValueError(
                f"precision={self.precision!r} (mixed precision: bfloat16 products, float32 "
                f"elsewhere) and dtype={self.dtype!r} (every activation in one dtype) are two "
                f"ways to lower the precision; set one of them, not both."
            )
        for name in ("dtype", "param_dtype"):
            value = getattr(self, name)
            if value is None and name == "dtype":
                continue
            try:
                ok = isinstance(value, str) and jnp.issubdtype(jnp.dtype(value), jnp.floating)
            except TypeError:
                ok = False
            if not ok:
                raise ValueError(
                    f"{name} must name a floating dtype such as 'float32' or 'bfloat16', "
                    f"got {value!r}."
                )

        check_attention_variant(self, ATTENTIONS, _MLA_SIZES)

    @property
    def mla_latent_dim(self) -> int:
        """MLA's d_c: ``latent_dim``, or ``4 d_k`` when None (DeepSeek-V2, 2.1.2)."""
        return 4 * self.head_dim if self.latent_dim is None else self.latent_dim

    @property
    def mla_rope_head_dim(self) -> int:
        """MLA's d_h^R: ``rope_head_dim``, or ``d_k / 2`` (at least 1) when None."""
        return max(self.head_dim // 2, 1) if self.rope_head_dim is None else self.rope_head_dim

    @property
    def is_language_model(self) -> bool:
        """True for ``architecture="decoder_only"`` (a :class:`LanguageModel`)."""
        return self.architecture == "decoder_only"

    @property
    def vocab_size(self) -> int:
        """V of the decoder: ``tgt_vocab_size`` (the only vocabulary of a language model)."""
        return self.tgt_vocab_size

    def as_language_model(self, **overrides: Any) -> TransformerConfig:
        """The decoder-only, GPT-shaped version of this config: one vocabulary
        (``tgt_vocab_size``), pre-LN with a final LayerNorm, the embedding tied to the output
        projection, and ``num_layers`` decoder layers without cross-attention.

        >>> TransformerConfig.tiny(vocab_size=50).as_language_model().architecture
        'decoder_only'
        """
        fields = dict(architecture="decoder_only", src_vocab_size=self.tgt_vocab_size,
                      norm_first=True, share_embeddings=True)
        return self.replace(**(fields | overrides))

    @property
    def head_dim(self) -> int:
        """d_k = d_v = d_model / h."""
        return self.d_model // self.num_heads

    @property
    def kv_heads(self) -> int:
        """K, the number of key/value heads: ``num_kv_heads``, or ``num_heads`` when None."""
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    @property
    def jnp_dtype(self):
        """``dtype`` as a NumPy dtype (or None)."""
        return None if self.dtype is None else jnp.dtype(self.dtype)

    @property
    def jnp_param_dtype(self):
        return jnp.dtype(self.param_dtype)

    @property
    def resolved_precision(self) -> str:
        """``"float32"`` or ``"bfloat16"``: ``precision``, with ``"auto"`` decided on this
        machine (:func:`attention.model.precision.resolve_precision`)."""
        return resolve_precision(self.precision)

    @property
    def matmul_dtype(self):
        """The inputs' dtype of every matrix product: bfloat16 in mixed precision, else
        ``dtype`` (None: the parameters')."""
        return self.linear_dtypes["dtype"]

    @property
    def linear_dtypes(self) -> dict:
        """``dtype`` and ``preferred_element_type`` for the model's ``nnx.Linear`` layers."""
        if self.resolved_precision == "bfloat16":
            return matmul_dtypes("bfloat16")
        return {"dtype": self.jnp_dtype, "preferred_element_type": None}

    @classmethod
    def base(cls, vocab_size: int = 37000, **overrides: Any) -> TransformerConfig:
        """The paper's base model (Table 3): N=6, d_model=512, d_ff=2048, h=8, P_drop=0.1.

        Source and target share one vocabulary of ``vocab_size`` tokens (37000 byte-pair
        tokens for English-German in the paper, section 5.1) and one embedding matrix (3.4).
        """
        fields = dict(
            src_vocab_size=vocab_size, tgt_vocab_size=vocab_size, d_model=512, num_heads=8,
            d_ff=2048, num_layers=6, dropout_rate=0.1, share_embeddings=True,
        )
        return cls(**(fields | overrides))

    @classmethod
    def small(cls, vocab_size: int = 8000, **overrides: Any) -> TransformerConfig:
        """A Multi30k-sized model for a CPU: N=3, d_model=256, h=8, d_ff=1024, P_drop=0.1.

        The setting of ``attention train --data multi30k`` and of the benchmarks: about 6M
        parameters with a shared 8000-token vocabulary, trained in an hour on two cores.
        """
        fields = dict(
            src_vocab_size=vocab_size, tgt_vocab_size=vocab_size, d_model=256, num_heads=8,
            d_ff=1024, num_layers=3, dropout_rate=0.1, max_len=128, share_embeddings=True,
        )
        return cls(**(fields | overrides))

    @classmethod
    def tiny(cls, vocab_size: int = 8000, **overrides: Any) -> TransformerConfig:
        """A classroom model for a laptop CPU: N=2, d_model=128, h=4, d_ff=512, shared vocab."""
        fields = dict(
            src_vocab_size=vocab_size, tgt_vocab_size=vocab_size, d_model=128, num_heads=4,
            d_ff=512, num_layers=2, dropout_rate=0.1, share_embeddings=True,
        )
        return cls(**(fields | overrides))


    @classmethod
    def language_model(cls, vocab_size: int = 8000, **overrides: Any) -> TransformerConfig:
        """A small GPT-style language model: N=4 decoder layers, d_model=256, h=8, d_ff=1024,
        P_drop=0.1, 128 positions, pre-LN, tied embeddings, rotary positions.

        About 3.2M parameters without the embedding (2M more with an 8000-token vocabulary).
        Grouped-query heads: ``num_kv_heads=2``; other positions: ``positional="learned"``
        (GPT-2's) or any of :data:`POSITIONAL`.

        >>> cfg = TransformerConfig.language_model(vocab_size=100, num_kv_heads=2)
        >>> cfg.architecture, cfg.norm_first, cfg.share_embeddings, cfg.kv_heads
        ('decoder_only', True, True, 2)
        """
        fields = dict(
            architecture="decoder_only", src_vocab_size=vocab_size, tgt_vocab_size=vocab_size,
            d_model=256, num_heads=8, d_ff=1024, num_layers=4, dropout_rate=0.1, max_len=128,
            share_embeddings=True, norm_first=True, positional="rope",
        )
        return cls(**(fields | overrides))


PRESETS = {"tiny": TransformerConfig.tiny, "small": TransformerConfig.small,
           "base": TransformerConfig.base}
"""The named presets, smallest first: ``PRESETS[name](vocab_size=..., **overrides)``."""
