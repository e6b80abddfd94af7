"""Step 27e: choosing an attention implementation, one of the rungs, by name.

Every rung of the ladder has the signature of :func:`attention.dot_product_attention`, so any
of them can be handed to ``MultiHeadAttention(attention_fn=...)`` or named in a config::

    mha = MultiHeadAttention(num_heads=8, in_features=512, rngs=rngs,
                             attention_fn=get_attention_fn("flash"))

``"auto"`` picks the Pallas kernel where it compiles natively (GPU, TPU) and the mask form is
one it takes (no boolean ``mask``), else the pure-JAX flash kernel; with an additive ``bias``
(ALiBi), fused attention; with ``soft_cap`` or ``sink_logits`` (steps 1a, 3a), which of the
rungs only the pure-JAX flash kernel takes, flash. Every rung takes grouped-query key/value
heads, the sequence lengths ``query_seq_lengths`` / ``key_value_seq_lengths`` and
``local_window_size``, with the meaning of ``jax.nn.dot_product_attention``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax

from attention.kernels.blockwise import blockwise_attention
from attention.kernels.flash import flash_attention
from attention.kernels.fused import fused_attention
from attention.kernels.pallas_flash import pallas_flash_attention, pallas_supported
from attention.mechanism.scaled_dot_product import (
    ATTENTION_FNS,
    attention_fn_by_name,
    dot_product_attention,
)

AttentionFn = Callable[..., jax.Array]

IMPLEMENTATIONS: dict[str, AttentionFn] = {
    "reference": dot_product_attention,
    "fused": fused_attention,
    "blockwise": blockwise_attention,
    "flash": flash_attention,
    "pallas": pallas_flash_attention,
}


def _auto_attention(query, key, value, bias=None, mask=None, *, scale=None, is_causal=False,
                    query_seq_lengths=None, key_value_seq_lengths=None, local_window_size=None,
                    **options):
    """Pallas on GPU/TPU without a general mask; pure-JAX flash otherwise; fused for a bias;
    flash for a soft-cap or sink logits (the only kernel that takes them)."""
    common = dict(scale=scale, is_causal=is_causal, query_seq_lengths=query_seq_lengths,
                  key_value_seq_lengths=key_value_seq_lengths,
                  local_window_size=local_window_size)
    if options.get("soft_cap") is not None or options.get("sink_logits") is not None:
        return flash_attention(query, key, value, bias, mask, **common, **options)
    options = {k: v for k, v in options.items() if k not in ("soft_cap", "sink_logits")}
    if bias is not None:
        # The block sizes of the other rungs mean nothing to fused attention; lengths under
        # their old names still do.
        options = {k: v for k, v in options.items() if k in ("query_lengths", "key_lengths")}
        return fused_attention(query, key, value, bias, mask, **common, **options)
    if mask is None and pallas_supported():
        return pallas_flash_attention(query, key, value, **common, **options)
    return flash_attention(query, key, value, mask=mask, **common, **options)


# Every rung, and "auto", findable by name from the model's config (step 6's table).
ATTENTION_FNS.update(IMPLEMENTATIONS, auto=_auto_attention)


def get_attention_fn(name: str = "auto", **options) -> AttentionFn:
    """The attention implementation called ``name``, with keyword ``options`` bound.

    Args:
      name: one of ``"reference"``, ``"fused"``, ``"blockwise"``, ``"flash"``, ``"pallas"``,
        ``"auto"``.
      **options: keyword arguments for that implementation, for example
        ``block_q=256, block_k=256`` for ``"flash"``.

    Returns:
      A callable ``f(query, key, value, bias=None, mask=None, *, scale=None,
      is_causal=False, query_seq_lengths=None, key_value_seq_lengths=None,
      local_window_size=None)`` returning ``[B, T, N, Hv]``; key/value may have K heads
      dividing N (grouped-query attention).

    Raises:
      ValueError: an unknown name (the message lists the valid ones).

    >>> import jax.numpy as jnp
    >>> f = get_attention_fn("flash", block_q=8, block_k=8)
    >>> f(jnp.ones((1, 5, 2, 4)), jnp.ones((1, 5, 2, 4)), jnp.ones((1, 5, 2, 4))).shape
    (1, 5, 2, 4)
    """
    function = attention_fn_by_name(name)
    return partial(function, **options) if options else function
