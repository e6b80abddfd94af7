"""Step 15a: what both model families share: the output head, the decode cache, attention maps.

The encoder-decoder :class:`attention.Transformer` (step 16) and the decoder-only
:class:`attention.model.language_model.LanguageModel` (step 17b) end in the same decoder
stack (step 15). Everything after it is written once, here:

* the pre-softmax projection (Vaswani et al. 2017, 3.4), tied to the embedding or not::

      logits = hidden W^T      W = E [V, D] when tied (Press & Wolf 2017), else own  # [B, T, V]

* the decode cache of the decoder (:meth:`attention.model.decoder.Decoder.init_cache`),
  with one check of its length against ``config.max_len``;
* the attention maps: one forward pass with ``sow_weights=True``, and what every attention
  layer sowed, stacked layer by layer (:func:`sown_attention_maps`).
"""

from __future__ import annotations

from collections import defaultdict

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from attention._checks import check_positive_int
from attention.model.config import TransformerConfig
from attention.model.decoder import DecodeCache, Decoder
from attention.model.embeddings import TokenEmbedding
from attention.model.precision import mixed_einsum

# ----------------------------------------------------------------- the pre-softmax projection


def make_output_projection(config: TransformerConfig, *, rngs: nnx.Rngs) -> nnx.Linear | None:
    """None when ``config.share_embeddings`` (the embedding matrix serves), else a ``[D, V]``
    linear map without bias (like the tied one, so the two differ only in the tying)."""
    if config.share_embeddings:
        return None
    return nnx.Linear(config.d_model, config.tgt_vocab_size, use_bias=False,
                      **config.linear_dtypes, param_dtype=config.jnp_param_dtype, rngs=rngs)


def output_weight(embed: TokenEmbedding, output: nnx.Linear | None,
                  dtype=None) -> Float[Array, "V D"]:
    """The projection as ``[V, D]``: ``logits = hidden @ W.T`` (E when tied)."""
    if output is None:
        return embed._table()
    weight_VD = output.kernel[...].T
    return weight_VD if dtype is None else weight_VD.astype(dtype)


def output_logits(embed: TokenEmbedding, output: nnx.Linear | None,
                  hidden: Float[Array, "*B D"], matmul_dtype=None) -> Float[Array, "*B V"]:
    """Float32 vocabulary scores of hidden states (3.4); ``matmul_dtype`` (bfloat16 in mixed
    precision) is the dtype of the product's inputs, summed in float32."""
    if output is not None:
        return output(hidden).astype(jnp.float32)
    if matmul_dtype is None:
        return embed.attend(hidden).astype(jnp.float32)
    return mixed_einsum("...D,VD->...V", hidden, embed.embedding[...], dtype=matmul_dtype)


class DecoderModel(nnx.Module):
    """The part of a model that reads its decoder's output: both model families derive from
    it. A subclass sets ``config``, ``decoder`` and ``output`` (from
    :func:`make_output_projection`), and names its target embedding in ``target_embedding``."""

    config: TransformerConfig
    decoder: Decoder
    output: nnx.Linear | None

    def target_embedding(self) -> TokenEmbedding:
        """The embedding of the decoder's tokens, which the tied projection reuses."""
        raise NotImplementedError

    def output_weight(self) -> Float[Array, "V D"]:
        """The pre-softmax projection as a ``[V, D]`` matrix: ``logits = hidden @ W.T``
        (the embedding matrix E when shared, else the output kernel transposed)."""
        return output_weight(self.target_embedding(), self.output, self.config.jnp_dtype)

    def logits(self, hidden: Float[Array, "*B D"]) -> Float[Array, "*B V"]:
        """Project decoder hidden states to float32 vocabulary scores (3.4)."""
        return output_logits(self.target_embedding(), self.output, hidden,
                             self.config.matmul_dtype)

    def _init_cache(self, memory, max_len: int, batch_size: int | None = None) -> DecodeCache:
        """The decoder's cache for ``max_len`` positions, after checking that many fit."""
        check_positive_int("max_len", max_len)
        if max_len > self.config.max_len:
            raise ValueError(
                f"max_len={max_len} decoding steps need {max_len} positions but the model "
                f"has config.max_len={self.config.max_len}."
            )
        return self.decoder.init_cache(memory, max_len, batch_size=batch_size)


# --------------------------------------------------------------------------- attention maps

_MAP_ORDER = ("encoder_self", "decoder_self", "decoder_cross")


@nnx.jit
def _sown_weights(model: DecoderModel, inputs: tuple):
    """The ``nnx.State`` the layers sow in one deterministic forward pass, compiled once per
    input shape (op by op, each new length would compile every operation of the model)."""

    def forward(m):
        return m(*inputs, deterministic=True, sow_weights=True)

    _, intermediates = nnx.capture(forward, nnx.Intermediate)(model)
    return intermediates


def sown_attention_maps(model: DecoderModel, *inputs) -> dict[str, Float[Array, "L B N T S"]]:
    """Every attention weight of every layer, from ``model(*inputs)`` run once with
    ``deterministic=True, sow_weights=True`` inside ``nnx.capture``.

    Each attention layer sows its weights ``[B, N, T, S]`` under a path such as
    ``("decoder", "layers", 2, "cross_attention", "attention_weights")``; those of one stack
    and kind are stacked over the layers into ``"decoder_cross": [L, B, N, T, S]``. A
    differential attention layer (step 7f) adds its two softmax maps, ``"decoder_self_1"``
    and ``"decoder_self_2"``, beside their difference under ``"decoder_self"``.

    Raises:
      ValueError: ``attention_impl`` is not "reference" (fused kernels never form weights);
        ``attention="linear"`` (no weights either).
    """
    if model.config.attention == "linear":
        raise ValueError(
            "attention maps need softmax attention weights, which attention='linear' never "
            "forms (phi(Q) (phi(K)^T V) has no T x S map); maps are supported for attention="
            "'standard', 'mla' and 'differential'."
        )
    if model.config.attention_impl != "reference":
        raise ValueError(
            f"attention maps need the attention weights, which attention_impl="
            f"{model.config.attention_impl!r} never forms; build the model with "
            f"attention_impl='reference'."
        )

    intermediates = _sown_weights(model, inputs)
    per_layer = defaultdict(dict)  # "decoder_cross" -> {layer: weights_BNTS}
    for path, variable in nnx.to_flat_state(intermediates):
        stack, _, layer, attention, name = path  # (stack, "layers", layer, attention, name)
        # Differential attention also sows its two maps, "attention_weights_1" and "_2":
        # they become "decoder_self_1" and "decoder_self_2" beside the difference.
        suffix = name.removeprefix("attention_weights")
        (weights_BNTS,) = variable.get_value()
        per_layer[f"{stack}_{attention.removesuffix('_attention')}{suffix}"][layer] = weights_BNTS
    names = sorted(per_layer, key=lambda n: _MAP_ORDER.index(n) if n in _MAP_ORDER else 9)
    return {n: jnp.stack([w for _, w in sorted(per_layer[n].items())]) for n in names}
