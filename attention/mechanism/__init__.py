"""The attention mechanism, steps 1-7: from a dot product to multi-head attention and its heirs.

Read the modules in this order; each builds on the ones before it (notebooks 01-04, 09, 11)::

    reading-map:start (python -m attention._reading_map --write)
    1   scores.py              dot-product scores, how well each query matches each key (Vaswani et
                               al. 2017, 3.2.1).
    1a  bounded_scores.py      QK-norm and soft-capping, which keep the scores bounded.
    2   masks.py               masks, which keys each query may look at (Vaswani et al. 2017,
                               3.2.3).
    3   softmax.py             softmax, turning scores into weights that are positive and sum to
                               one.
    3a  sink_logits.py         learned sink logits, a softmax column per head that takes weight but
                               has no value.
    4   weights.py             attention weights, scores + masks + softmax (Vaswani et al. 2017, eq.
                               1).
    5   weighted_sum.py        the weighted sum of values, what each query takes away (Vaswani et
                               al. 2017, eq. 1).
    6   scaled_dot_product.py  scaled dot-product attention, the steps composed (Vaswani et al.
                               2017, eq. 1).
    6a  output_gate.py         gated attention, a sigmoid gate on each head's output (Qiu et al.
                               2025).
    7   multi_head.py          multi-head attention, h attentions side by side (Vaswani et al. 2017,
                               3.2.2).
    7a  kv_cache.py            the key/value cache, attention one new token at a time while
                               decoding.
    7e  streaming_cache.py     attention sinks and a rolling cache, attention past the training
                               context.
    7f  differential.py        differential attention, the difference of two softmax maps (Ye et al.
                               2024, 2.1).
    7g  latent.py              multi-head latent attention, a small latent cached instead of keys
                               and values.
    7h  linear.py              linear attention, a kernel instead of the softmax (Katharopoulos et
                               al. 2020, 3.2-3.4).
    reading-map:end

Every step follows ``jax.nn.dot_product_attention``'s semantics for the options of today's
models: K key/value heads dividing the N query heads (:func:`repeat_kv_heads`),
``query_seq_lengths`` / ``key_value_seq_lengths`` and ``local_window_size``. Steps 1a, 3a and 6a
add what models since 2024 use: QK-norm and soft-capping, learned sink logits and the output
gate, options of steps 4-7a (``soft_cap=``, ``sink_logits=``; ``MultiHeadAttention(qk_norm=,
soft_cap=, sink_logits=, output_gate=)``). Step 0, the question of multiplying embeddings, is
:mod:`attention.vectors`.
"""

from attention.mechanism.bounded_scores import QKNorm, head_norm, soft_cap
from attention.mechanism.differential import DifferentialAttention, differential_attention
from attention.mechanism.kv_cache import KVCache, init_kv_cache, update_kv_cache
from attention.mechanism.latent import LatentAttention, LatentCache, latent_attention
from attention.mechanism.linear import LinearAttention, LinearState, linear_attention
from attention.mechanism.masks import (
    causal_mask,
    combine_masks,
    local_window_mask,
    padding_mask,
    seq_lengths_mask,
)
from attention.mechanism.multi_head import MultiHeadAttention, merge_heads, split_heads
from attention.mechanism.output_gate import gate_output
from attention.mechanism.scaled_dot_product import dot_product_attention, single_head_attention
from attention.mechanism.scores import default_scale, dot_product_scores, repeat_kv_heads
from attention.mechanism.sink_logits import softmax_with_sink
from attention.mechanism.softmax import masked_softmax
from attention.mechanism.streaming_cache import SinkCache, init_sink_cache, stream_and_attend
from attention.mechanism.weighted_sum import weighted_sum
from attention.mechanism.weights import attention_weights

# Kept for compatibility: step 0 (similarity search, the inverted-file index) moved to
# attention.vectors; its names stay importable from here.
from attention.vectors import (
    InvertedIndex,
    QuantizedDatabase,
    assign_to_cells,
    build_inverted_index,
    cosine_top_k,
    dequantize,
    inverted_index_top_k,
    normalize,
    quantize_database,
    spherical_kmeans,
)

__all__ = [
    # kept for compatibility, from attention.vectors (step 0)
    "normalize",
    "cosine_top_k",
    "QuantizedDatabase",
    "quantize_database",
    "dequantize",
    "spherical_kmeans",
    "assign_to_cells",
    "InvertedIndex",
    "build_inverted_index",
    "inverted_index_top_k",
    "dot_product_scores",
    "default_scale",
    "repeat_kv_heads",
    "head_norm",
    "soft_cap",
    "QKNorm",
    "causal_mask",
    "padding_mask",
    "local_window_mask",
    "seq_lengths_mask",
    "combine_masks",
    "masked_softmax",
    "softmax_with_sink",
    "attention_weights",
    "weighted_sum",
    "single_head_attention",
    "dot_product_attention",
    "gate_output",
    "split_heads",
    "merge_heads",
    "KVCache",
    "init_kv_cache",
    "update_kv_cache",
    "MultiHeadAttention",
    "SinkCache",
    "init_sink_cache",
    "stream_and_attend",
    "differential_attention",
    "DifferentialAttention",
    "LatentCache",
    "latent_attention",
    "LatentAttention",
    "LinearState",
    "linear_attention",
    "LinearAttention",
]
