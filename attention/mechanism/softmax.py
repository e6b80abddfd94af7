"""Step 3: softmax, turning scores into weights that are positive and sum to one.

    softmax(x)_s = exp(x_s) / sum_s' exp(x_s')

Computed naively, exp overflows for scores above about 88 in float32 (11 in float16). The
softmax does not change when a constant is subtracted from every score, so we subtract the
row's maximum first: the largest exponent is then exp(0) = 1 and nothing overflows.

Masked entries are left out of both the maximum and the sum, and get weight exactly 0. We
never write -inf into the scores: a row in which every key is masked would then compute
-inf - (-inf) = NaN. Such a row (a query with nothing it may look at) gets all-zero weights,
so it contributes a zero vector, and its gradients are zero rather than NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Shaped

from attention._checks import accumulation_dtype, check_axis, check_floating, check_mask


def masked_softmax(
    scores: Shaped[Array, "*batch S"],
    mask: Bool[Array, "*#batch #S"] | None = None,
    axis: int = -1,
) -> Shaped[Array, "*batch S"]:
    """Numerically stable softmax along ``axis`` that gives masked entries weight 0.

    Formula, with m the maximum over allowed entries of the row::

        weights_s = mask_s * exp(x_s - m) / sum_s' mask_s' * exp(x_s' - m)

    Args:
      scores: floating-point scores, typically ``[B, N, T, S]``.
      mask: boolean, broadcastable to ``scores``; ``True`` keeps an entry.
      axis: the axis to normalise over (the keys, -1, for attention).

    Returns:
      Weights with the shape and dtype of ``scores``; computed in float32 for half-precision
      inputs. Each row sums to 1 where any entry is allowed; a fully masked row (or one whose
      allowed scores are all -inf) is all zeros, with zero gradients.

    Raises:
      TypeError: non-floating ``scores``, non-boolean ``mask``, ``axis`` not an int.
      ValueError: a mask that does not broadcast to ``scores``; ``axis`` out of range.

    >>> import jax.numpy as jnp
    >>> masked_softmax(jnp.array([1.0, 1.0, 5.0]), jnp.array([True, True, False])).tolist()
    [0.5, 0.5, 0.0]
    >>> masked_softmax(jnp.zeros(2), jnp.array([False, False])).tolist()
    [0.0, 0.0]
    """
    check_floating("scores", scores)
    axis = check_axis("axis", axis, scores, array_name="scores")
    x = scores.astype(accumulation_dtype(scores.dtype))
    if mask is not None:
        check_mask(mask, scores.shape, axes=None)
        mask = jnp.broadcast_to(mask, x.shape)
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
