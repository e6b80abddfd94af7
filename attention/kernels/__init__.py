"""Step 27: fast attention kernels, a ladder from the reference to flash attention.

Every rung computes the same function as :func:`attention.dot_product_attention` (rung 1) and
``jax.nn.dot_product_attention``, and takes their arguments: grouped-query key/value heads (K
dividing N, never repeated in memory), ``query_seq_lengths`` / ``key_value_seq_lengths`` (old
names ``query_lengths`` / ``key_lengths``) and ``local_window_size``, plus block sizes where
they apply. Read them in order; each docstring says what changes from the rung before.

    fused.py         rung 2: the formula as one fused expression (still T x S memory)
    blockwise.py     rung 3: online softmax over key blocks, a lax.scan (Rabe & Staats 2021)
    flash.py         rung 4: tiles over queries and keys, skipping the tiles outside the
                     causal / sliding-window band (linear in T for a fixed window), and a
                     custom backward that recomputes the weights (Dao et al. 2022, 2023)
    pallas_flash.py  rung 5: the flash forward as a Pallas kernel for GPU and TPU
    select.py        get_attention_fn(name): pick a rung by name, e.g. for MultiHeadAttention

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
