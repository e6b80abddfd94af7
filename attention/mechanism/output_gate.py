"""Step 6a: gated attention, a sigmoid gate on each head's output (Qiu et al. 2025).

Qiu et al. 2025 ("Gated Attention for Large Language Models") multiply the output
of scaled dot-product attention (step 6), elementwise, by a gate computed from the layer's
input ``x``, before the heads are merged and projected by ``W^O``::

    Y' = Y * sigmoid(x W_g),   Y [B, T, N, H],   W_g [D, N H]

Per head dim, the gate can shut a head off at a position (a query with nothing to take need
not take the average of its keys), adds a non-linearity between ``W^V`` and ``W^O``, and in
the paper removes the first-token attention sink and loss spikes; Qwen3-Next uses it. Step 7's
:class:`attention.MultiHeadAttention` learns ``W_g`` with ``output_gate=True``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from attention._checks import check_output_gate_args


def gate_output(
    output: Float[Array, "*B T N H"],
    gate_logits: Float[Array, "*B T N H"],
) -> Float[Array, "*B T N H"]:
    """``output * sigmoid(gate_logits)``, elementwise: Qiu et al. 2025's gate after the SDPA.

    ``gate_logits = x W_g`` for the layer input ``x [B, T, D]`` and ``W_g [D, N H]``, split
    into heads. The sigmoid is taken in float32; the result has the dtype of ``output``.

    Raises:
      TypeError: a non-floating ``output`` or ``gate_logits``.
      ValueError: shapes that differ.

    >>> gate_output(jnp.full((1, 1, 2), 2.0), jnp.array([[[0.0, 100.0]]])).tolist()  # [T, N, H]
    [[[1.0, 2.0]]]
    """
    check_output_gate_args(output, gate_logits)
    gate = jax.nn.sigmoid(gate_logits.astype(jnp.float32))
    return (output.astype(jnp.float32) * gate).astype(output.dtype)
