"""attention: transformer attention built step by step in JAX and Flax NNX.

Read the modules in this order; each builds on the ones before it.

    The attention mechanism
    scores.py              dot products between queries and keys, scaled by 1/sqrt(d_k)
    masks.py               causal and padding masks (True = may attend)
    softmax.py             a numerically stable, masked softmax
    weights.py             attention weights = softmax(scores + bias, masked)
    weighted_sum.py        the weighted sum of values
    scaled_dot_product.py  scaled dot-product attention, single-head and batched
    multi_head.py          multi-head attention (Flax NNX), with a key/value cache

    The transformer (Vaswani et al. 2017)
    positional.py          sinusoidal and learned positional encodings
    embeddings.py          token embeddings scaled by sqrt(d_model), shared output projection
    feed_forward.py        the position-wise feed-forward network
    config.py              TransformerConfig: every size and switch, with presets
    encoder.py             residual + layer norm sub-layers, encoder layer and stack
    decoder.py             decoder layer and stack (masked self-, cross-attention), cache
    transformer.py         the encoder-decoder model and its attention maps
    decoding.py            greedy decoding and beam search

    Fast kernels           kernels/ (fused, blockwise, flash-style, Pallas)

    Training and use
    data/                  synthetic tasks, Multi30k and Tatoeba, tokenizers, batching
    schedule.py, loss.py   the paper's learning-rate schedule, label-smoothed loss
    train.py               the jit-compiled train step and the training loop
    parallel.py            data parallelism with jax.sharding
    checkpoint.py          Orbax checkpoints, resume, averaging
    translation.py, cli.py the main job: train, translate, evaluate (BLEU)
    plotting.py            attention heatmaps, alignments, head summaries
    explorer.py            an interactive attention explorer for Jupyter
    similarity.py          fast cosine-similarity top-k (the "multiplying embeddings" notebook)

Axis glossary (BTNH, the order of ``jax.nn.dot_product_attention``)::

    B  batch                 T  query length (target)   S  key length (source)
    N  heads (h)             H  head dim (d_k, d_v)     D  model width (d_model)
    V  vocabulary size       F  feed-forward width (d_ff)   L  layers

Shapes are written in square brackets, ``[B, T, N, H]``, in docstrings, and as suffixes
(``scores_BNTS``) on intermediate names.
"""

from attention.model.config import TransformerConfig
from attention.model.decoding import beam_search, greedy_decode
from attention.kernels import flash_attention, get_attention_fn
from attention.mechanism.masks import causal_mask, combine_masks, padding_mask
from attention.mechanism.multi_head import MultiHeadAttention, merge_heads, split_heads
from attention.inspection.plotting import (
    head_entropy,
    mean_attention_distance,
    plot_alignment,
    plot_attention,
    plot_head_summary,
    plot_heads,
    plot_layers,
    plot_translation_attention,
)
from attention.model.positional import sinusoidal_positions
from attention.mechanism.scaled_dot_product import dot_product_attention, single_head_attention
from attention.mechanism.scores import default_scale, dot_product_scores
from attention.mechanism.similarity import cosine_top_k, normalize
from attention.mechanism.softmax import masked_softmax
from attention.model.transformer import Transformer, attention_maps, count_params
from attention.mechanism.weighted_sum import weighted_sum
from attention.mechanism.weights import attention_weights

__all__ = [
    # the attention mechanism, in teaching order
    "dot_product_scores",
    "default_scale",
    "causal_mask",
    "padding_mask",
    "combine_masks",
    "masked_softmax",
    "attention_weights",
    "weighted_sum",
    "single_head_attention",
    "dot_product_attention",
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
    # the transformer
    "sinusoidal_positions",
    "TransformerConfig",
    "Transformer",
    "count_params",
    "attention_maps",
    "greedy_decode",
    "beam_search",
    # fast kernels
    "flash_attention",
    "get_attention_fn",
    # pictures and embeddings
    "plot_attention",
    "plot_heads",
    "plot_layers",
    "plot_translation_attention",
    "plot_alignment",
    "head_entropy",
    "mean_attention_distance",
    "plot_head_summary",
    "normalize",
    "cosine_top_k",
]
