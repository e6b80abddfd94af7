"""Step 27: fast attention kernels, a ladder from the reference to flash attention.

Every rung computes the same function as :func:`attention.dot_product_attention` (rung 1) and
``jax.nn.dot_product_attention``, and takes their arguments: grouped-query key/value heads (K
dividing N, never repeated in memory), ``query_seq_lengths`` / ``key_value_seq_lengths`` (old
names ``query_lengths`` / ``key_lengths``) and ``local_window_size``, plus block sizes where
they apply. The soft-cap and sink logits of today's models (``soft_cap=``, ``sink_logits=``,
steps 1a and 3a) are taken by flash attention and its reference; the other rungs refuse them
with a message naming those. Read them in order; each docstring says what changes from the
rung before::

    reading-map:start (python -m attention._reading_map --write)
    27a  fused.py         fused attention (rung 2), the whole formula as one expression.
    27b  blockwise.py     blockwise attention (rung 3), an online softmax over blocks of keys.
    27c  flash.py         flash attention (rung 4), tiled over queries and keys, with a memory-light
                          backward.
    27d  pallas_flash.py  the flash forward pass as a Pallas kernel (rung 5), for GPU and TPU.
    27e  select.py        choosing an attention implementation, one of the rungs, by name.
    reading-map:end

``benchmarks/attention.py`` times them against ``jax.nn.dot_product_attention``.
"""

from attention.kernels.blockwise import blockwise_attention, blockwise_attention_reference
from attention.kernels.flash import flash_attention, flash_attention_reference
from attention.kernels.fused import fused_attention
from attention.kernels.pallas_flash import (
    pallas_flash_attention,
    pallas_flash_attention_reference,
    pallas_supported,
)
from attention.kernels.select import IMPLEMENTATIONS, get_attention_fn

__all__ = [
    "fused_attention",
    "blockwise_attention",
    "blockwise_attention_reference",
    "flash_attention",
    "flash_attention_reference",
    "pallas_flash_attention",
    "pallas_flash_attention_reference",
    "pallas_supported",
    "get_attention_fn",
    "IMPLEMENTATIONS",
]
