"""The attention mechanism, steps 0-7a: from a dot product to multi-head attention.

Read the modules in this order; each builds on the ones before it (notebooks 00-04)::

    0  similarity.py          multiplying embeddings: the dot product, cosine similarity and
                              top-k search, also over bfloat16 / int8 copies of the database
    0a inverted_index.py      approximate search: spherical k-means cells, and only the rows of
                              the few cells nearest the query searched (FAISS's IndexIVFFlat)
    1  scores.py              query . key / sqrt(d_k); K key/value heads shared by N query heads
    2  masks.py               causal, padding, sliding-window masks (True = may attend)
    3  softmax.py             a numerically stable, masked softmax
    4  weights.py             attention weights = softmax(scores + bias, masked)
    5  weighted_sum.py        the weighted sum of values
    6  scaled_dot_product.py  scaled dot-product attention, single-head and batched
    7  multi_head.py          multi-head attention (Flax NNX), with hooks for positions
    7a kv_cache.py            the key/value cache for decoding one token at a time

Every step follows ``jax.nn.dot_product_attention``'s semantics for the options of today's
models: K key/value heads dividing the N query heads (Ainslie et al. 2023; Shazeer 2019),
``query_seq_lengths`` / ``key_value_seq_lengths`` and ``local_window_size``.
"""

from attention.mechanism.inverted_index import (
    InvertedIndex,
    assign_to_cells,
    build_inverted_index,
    inverted_index_top_k,
    spherical_kmeans,
)
from attention.mechanism.kv_cache import KVCache, init_kv_cache, update_kv_cache
from attention.mechanism.masks import (
    causal_mask,
    combine_masks,
    local_window_mask,
    padding_mask,
    seq_lengths_mask,
)
from attention.mechanism.multi_head import MultiHeadAttention, merge_heads, split_heads
from attention.mechanism.scaled_dot_product import dot_product_attention, single_head_attention
from attention.mechanism.scores import default_scale, dot_product_scores, repeat_kv_heads
from attention.mechanism.similarity import (
    QuantizedDatabase,
    cosine_top_k,
    dequantize,
    normalize,
    quantize_database,
)
from attention.mechanism.softmax import masked_softmax
from attention.mechanism.weighted_sum import weighted_sum
from attention.mechanism.weights import attention_weights

__all__ = [
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
    "causal_mask",
    "padding_mask",
    "local_window_mask",
    "seq_lengths_mask",
    "combine_masks",
    "masked_softmax",
    "attention_weights",
    "weighted_sum",
    "single_head_attention",
    "dot_product_attention",
    "split_heads",
    "merge_heads",
    "KVCache",
    "init_kv_cache",
    "update_kv_cache",
    "MultiHeadAttention",
]
