"""The transformer around attention, steps 8-17f (Vaswani et al. 2017; notebooks 05, 06, 09, 12).

Read the modules in this order::

    reading-map:start (python -m attention._reading_map --write)
    8    positional.py         positional encodings, telling attention where each token is (Vaswani
                               et al. 2017, 3.5).
    9    embeddings.py         token embeddings, and the tied output projection that shares them
                               (Vaswani et al. 3.4).
    10   feed_forward.py       the position-wise feed-forward network (Vaswani et al. 2017, section
                               3.3).
    10a  precision.py          mixed precision, matrix products in bfloat16 and everything else in
                               float32.
    11   config.py             one frozen configuration for the whole transformer (Vaswani et al.
                               2017, Table 3).
    12   layer_norm.py         layer normalisation, written out (Ba, Kiros & Hinton 2016; Vaswani et
                               al. 3.1).
    12a  dropout.py            dropout, with its mask drawn by a fast generator (Vaswani et al.
                               2017, 5.4).
    12b  residual.py           residual connections and layer norm around every sub-layer (Vaswani
                               et al. 3.1, 5.4).
    13   sublayers.py          the sub-layers of a transformer layer, built from the configuration.
    13a  variants.py           the attention of config.attention, the self-attention variants of
                               today's models.
    14   encoder.py            the encoder, self-attention over the source (Vaswani et al. 2017,
                               3.1).
    15   decoder.py            the decoder, and decoding one token at a time (Vaswani et al. 2017,
                               3.1, 3.2.3).
    15a  spine.py              what both model families share: the output head, the decode cache,
                               attention maps.
    16   transformer.py        the whole encoder-decoder transformer (Vaswani et al. 2017, Figure
                               1).
    17   generation.py         generating tokens one at a time: the next-token distribution and the
                               shared loop.
    17a  decoding.py           generating translations, greedy decoding and beam search (Vaswani et
                               al. 2017, 6.1).
    17b  language_model.py     a decoder-only language model from the same blocks (Radford et al.
                               2018, 2019).
    17c  sampling.py           continuing prompts with a language model: sampling, prefill and the
                               cache.
    17d  checkpoint_folder.py  a Hugging Face checkpoint folder: its config, its safetensors
                               tensors, its tokenizer.
    17e  pretrained.py         real checkpoints: GPT-2 and Llama-family weights in the package's own
                               LanguageModel.
    17f  streaming.py          streaming a language model past its context, with attention sinks
                               (StreamingLLM).
    reading-map:end

``TransformerConfig(attention=...)`` swaps the language model's self-attention for one of
today's variants (step 13a): multi-head latent attention, differential or linear attention.
"""

from attention.model.config import ATTENTIONS, PRESETS, TransformerConfig
from attention.model.decoder import DecodeCache, Decoder, DecoderLayer
from attention.model.decoding import beam_search, greedy_decode, sample_decode
from attention.model.embeddings import TokenEmbedding
from attention.model.encoder import Encoder, EncoderLayer
from attention.model.feed_forward import FeedForward, SwiGLUFeedForward, swiglu_feed_forward
from attention.model.language_model import LanguageModel, language_model_attention_maps
from attention.model.layer_norm import layer_norm, rms_norm
from attention.model.positional import (
    ALiBi,
    LearnedPositions,
    RotaryEmbedding,
    SinusoidalPositions,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    llama3_frequencies,
    sinusoidal_positions,
)
from attention.model.pretrained import PretrainedError, Tokenizer, from_pretrained
from attention.model.residual import Residual
from attention.model.sampling import (
    generate,
    sampling_log_probs,
    top_k_mask,
    top_p_mask,
)
from attention.model.streaming import (
    init_streaming_cache,
    streaming_generate,
    streaming_log_likelihood,
    streaming_step,
)
from attention.model.transformer import Transformer, attention_maps, count_params
from attention.model.variants import make_self_attention_variant

__all__ = [
    "LanguageModel",
    "language_model_attention_maps",
    "layer_norm",
    "rms_norm",
    "from_pretrained",
    "PretrainedError",
    "Tokenizer",
    "sample_decode",
    "generate",
    "sampling_log_probs",
    "top_k_mask",
    "top_p_mask",
    "sinusoidal_positions",
    "SinusoidalPositions",
    "LearnedPositions",
    "apply_rope",
    "llama3_frequencies",
    "RotaryEmbedding",
    "alibi_slopes",
    "alibi_bias",
    "ALiBi",
    "TokenEmbedding",
    "FeedForward",
    "SwiGLUFeedForward",
    "swiglu_feed_forward",
    "TransformerConfig",
    "PRESETS",
    "ATTENTIONS",
    "make_self_attention_variant",
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
    "init_streaming_cache",
    "streaming_step",
    "streaming_log_likelihood",
    "streaming_generate",
]
