"""The transformer around attention, steps 8-17c (Vaswani et al. 2017; notebooks 05, 06, 09, 12).

Read the modules in this order::

    8   positional.py      sinusoidal and learned positions; RoPE and ALiBi inside attention
    9   embeddings.py      token embeddings scaled by sqrt(d_model); the tied projection
    10  feed_forward.py    the position-wise feed-forward network
    10a precision.py       mixed precision: bfloat16 products, float32 sums
    11  config.py          TransformerConfig: every size and switch (and the model's kind)
    12  layer_norm.py      layer normalisation written out (what nnx.LayerNorm computes)
    12a dropout.py         dropout, with its fast random bits
    12b residual.py        residual connection + layer norm around a sub-layer (post- or pre-LN)
    13  sublayers.py       attention, feed-forward, positions and layer norm from the config
    14  encoder.py         encoder layer and stack
    15  decoder.py         decoder layer and stack (masked self-, cross-attention), decode cache
    15a spine.py           what both model families share: output head, cache, attention maps
    16  transformer.py     the encoder-decoder model and its attention maps
    17  generation.py      the next-token distribution (temperature, top-k, top-p), the loop
    17a decoding.py        greedy decoding, beam search and sampling of translations
    17b language_model.py  the decoder-only language model from the same blocks (notebook 12)
    17c sampling.py        generate: continuing prompts with the language model
"""

from attention.model.config import PRESETS, TransformerConfig
from attention.model.decoder import DecodeCache, Decoder, DecoderLayer
from attention.model.decoding import beam_search, greedy_decode, sample_decode
from attention.model.embeddings import TokenEmbedding
from attention.model.encoder import Encoder, EncoderLayer
from attention.model.feed_forward import FeedForward
from attention.model.language_model import LanguageModel, language_model_attention_maps
from attention.model.layer_norm import layer_norm
from attention.model.positional import (
    ALiBi,
    LearnedPositions,
    RotaryEmbedding,
    SinusoidalPositions,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    sinusoidal_positions,
)
from attention.model.residual import Residual
from attention.model.sampling import (
    generate,
    sampling_log_probs,
    top_k_mask,
    top_p_mask,
)
from attention.model.transformer import Transformer, attention_maps, count_params

__all__ = [
    "LanguageModel",
    "language_model_attention_maps",
    "layer_norm",
    "sample_decode",
    "generate",
    "sampling_log_probs",
    "top_k_mask",
    "top_p_mask",
    "sinusoidal_positions",
    "SinusoidalPositions",
    "LearnedPositions",
    "apply_rope",
    "RotaryEmbedding",
    "alibi_slopes",
    "alibi_bias",
    "ALiBi",
    "TokenEmbedding",
    "FeedForward",
    "TransformerConfig",
    "PRESETS",
    "Residual",
    "EncoderLayer",
    "Encoder",
    "DecoderLayer",
    "Decoder",
    "DecodeCache",
    "Transformer",
    "attention_maps",
    "count_params",
    "greedy_decode",
    "beam_search",
]
