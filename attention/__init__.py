"""attention: transformer attention built step by step in JAX and Flax NNX.

Read the modules in this order; each builds on the ones before it.

    scores.py              dot products between queries and keys, scaled by 1/sqrt(d_k)
    masks.py               causal and padding masks (True = may attend)
    softmax.py             a numerically stable, masked softmax
    weights.py             attention weights = softmax(scores + bias, masked)
    weighted_sum.py        the weighted sum of values
    scaled_dot_product.py  scaled dot-product attention, single-head and batched
    multi_head.py          multi-head attention (Flax NNX)

Axis glossary (BTNH, the order of ``jax.nn.dot_product_attention``)::

    B  batch                 T  query length (target)   S  key length (source)
    N  heads (h)             H  head dim (d_k, d_v)     D  model width (d_model)
    V  vocabulary size       F  feed-forward width (d_ff)

Shapes are written in square brackets, ``[B, T, N, H]``, in docstrings, and as suffixes
(``scores_BNTS``) on intermediate names.
"""

from attention.masks import causal_mask, combine_masks, padding_mask
from attention.multi_head import MultiHeadAttention, merge_heads, split_heads
from attention.scaled_dot_product import dot_product_attention, single_head_attention
from attention.scores import default_scale, dot_product_scores
from attention.softmax import masked_softmax
from attention.weighted_sum import weighted_sum
from attention.weights import attention_weights

__all__ = [
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
]
