"""The attention mechanism, steps 0-7: from a dot product to multi-head attention.

Read the modules in this order; each builds on the ones before it (notebooks 00-04)::

    0  similarity.py          multiplying embeddings: the dot product and cosine similarity
    1  scores.py              dot products between queries and keys, scaled by 1/sqrt(d_k)
    2  masks.py               causal and padding masks (True = may attend)
    3  softmax.py             a numerically stable, masked softmax
    4  weights.py             attention weights = softmax(scores + bias, masked)
    5  weighted_sum.py        the weighted sum of values
    6  scaled_dot_product.py  scaled dot-product attention, single-head and batched
    7  multi_head.py          multi-head attention (Flax NNX), with a key/value cache
"""

from attention.mechanism.masks import causal_mask, combine_masks, padding_mask
from attention.mechanism.multi_head import KVCache, MultiHeadAttention, merge_heads, split_heads
from attention.mechanism.scaled_dot_product import dot_product_attention, single_head_attention
from attention.mechanism.scores import default_scale, dot_product_scores
from attention.mechanism.similarity import cosine_top_k, normalize
from attention.mechanism.softmax import masked_softmax
from attention.mechanism.weighted_sum import weighted_sum
from attention.mechanism.weights import attention_weights

__all__ = [
    "normalize",
    "cosine_top_k",
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
    "KVCache",
    "MultiHeadAttention",
]
