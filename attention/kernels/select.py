"""Choosing an attention implementation by name.

Every rung of the ladder has the signature of :func:`attention.dot_product_attention`, so any
of them can be handed to ``MultiHeadAttention(attention_fn=...)`` or named in a config::

    mha = MultiHeadAttention(num_heads=8, in_features=512, rngs=rngs,
                             attention_fn=get_attention_fn("flash"))

``"auto"`` picks the Pallas kernel where it compiles natively (GPU, TPU) and the mask form is
one it takes, else the pure-JAX flash kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax

from attention.kernels.blockwise import blockwise_attention
from attention.kernels.flash import flash_attention
from attention.kernels.fused import fused_attention
from attention.kernels.pallas_flash import pallas_flash_attention, pallas_supported
from attention.mechanism.scaled_dot_product import dot_product_attention

AttentionFn = Callable[..., jax.Array]

IMPLEMENTATIONS: dict[str, AttentionFn] = {
    "reference": dot_product_attention,
    "fused": fused_attention,
    "blockwise": blockwise_attention,
    "flash": flash_attention,
    "pallas": pallas_flash_attention,
}


def _auto_attention(query, key, value, bias=None, mask=None, *, scale=None, is_causal=False,
                    **options):
    """Pallas on GPU/TPU without a general mask; pure-JAX flash otherwise."""
    if bias is not None:
        return fused_attention(query, key, value, bias, mask, scale=scale, is_causal=is_causal)
    if mask is None and pallas_supported():
        return pallas_flash_attention(
            query, key, value, scale=scale, is_causal=is_causal, **options
        )
    return flash_attention(query, key, value, mask=mask, scale=scale, is_causal=is_causal,
                           **options)


def get_attention_fn(name: str = "auto", **options) -> AttentionFn:
    """The attention implementation called ``name``, with keyword ``options`` bound.

    Args:
      name: one of ``"reference"``, ``"fused"``, ``"blockwise"``, ``"flash"``, ``"pallas"``,
        ``"auto"``.
      **options: keyword arguments for that implementation, for example
        ``block_q=256, block_k=256`` for ``"flash"``.

    Returns:
      A callable ``f(query, key, value, bias=None, mask=None, *, scale=None,
      is_causal=False)`` returning ``[B, T, N, Hv]``.

    Raises:
      ValueError: an unknown name (the message lists the valid ones).

    >>> import jax.numpy as jnp
    >>> f = get_attention_fn("flash", block_q=8, block_k=8)
    >>> f(jnp.ones((1, 5, 2, 4)), jnp.ones((1, 5, 2, 4)), jnp.ones((1, 5, 2, 4))).shape
    (1, 5, 2, 4)
    """
    names = [*IMPLEMENTATIONS, "auto"]
    if name not in names:
        raise ValueError(
            f"unknown attention implementation {name!r}; choose one of "
            f"{', '.join(repr(n) for n in names)}."
        )
    function = _auto_attention if name == "auto" else IMPLEMENTATIONS[name]
    return partial(function, **options) if options else function
