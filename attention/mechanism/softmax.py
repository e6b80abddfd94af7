"""Step 3: softmax, turning scores into weights that are positive and sum to one.

    softmax(x)_s = exp(x_s - m) / sum_s' exp(x_s' - m),   m = max_s x_s   (no overflow)

Masked entries are left out of the maximum and the sum and get weight 0, without ever writing
-inf into the scores (a fully masked row would compute -inf - (-inf) = NaN): such a row gets
all-zero weights and zero gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Shaped

from attention._checks import accumulation_dtype, check_softmax_args


def masked_softmax(
    scores: Shaped[Array, "*batch S"],
    mask: Bool[Array, "*#batch #S"] | None = None,
    axis: int = -1,
) -> Shaped[Array, "*batch S"]:
    """Numerically stable softmax along ``axis`` that gives masked entries weight 0.

    ``weights_s = mask_s exp(x_s - m) / sum_s' mask_s' exp(x_s' - m)``, m the row's maximum
    over allowed entries; ``mask`` (True keeps) broadcasts to ``scores``. The result has the
    shape and dtype of ``scores`` (computed in float32 for half precision); a fully masked row
    (or one whose allowed scores are all -inf) is all zeros.

    Raises:
      TypeError: non-floating ``scores``, non-boolean ``mask``, ``axis`` not an int.
      ValueError: a mask that does not broadcast to ``scores``; ``axis`` out of range.

    >>> masked_softmax(jnp.array([1.0, 1.0, 5.0]), jnp.array([True, True, False])).tolist()
    [0.5, 0.5, 0.0]
    """
    axis = check_softmax_args(scores, mask, axis)
    x = scores.astype(accumulation_dtype(scores.dtype))
    mask = None if mask is None else jnp.broadcast_to(mask, x.shape)
    lowest = jnp.finfo(x.dtype).min
    x_max = jnp.max(x, axis=axis, keepdims=True, where=mask, initial=lowest)
    # The shift is a constant of the softmax, so no gradient flows through it. A row whose
    # allowed scores are all -inf (an additive bias of -inf) would have x - x_max =
    # -inf - (-inf) = NaN: it is shifted by 0 instead and ends up all zeros, like a masked row.
    x_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(x_max), x_max, 0.0))
    if mask is None:
        unnormalized = jnp.exp(x - x_max)
    else:
        # Masked entries take exp(0) and are then zeroed: no -inf ever enters the arithmetic.
        shifted = jnp.where(mask, x - x_max, 0.0)
        unnormalized = jnp.where(mask, jnp.exp(shifted), 0.0)
    total = jnp.sum(unnormalized, axis=axis, keepdims=True)
    # A fully masked row has total 0: dividing by 1 instead leaves it all zeros.
    weights = unnormalized / jnp.where(total > 0, total, 1.0)
    return weights.astype(scores.dtype)
