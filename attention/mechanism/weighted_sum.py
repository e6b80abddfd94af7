"""Step 5: the weighted sum of values, what each query takes away.

    output[t] = sum_s weights[t, s] * value[s]

Each query's output is an average of the value vectors, weighted by how well the query matched
each key: a soft, differentiable version of looking a key up in a dictionary and returning its
value.

With grouped-query attention (Ainslie et al. 2023) the values have K heads, fewer than the N
heads of the weights: query head n averages value head n // (N / K), the same grouping as the
keys (:func:`attention.mechanism.scores.repeat_kv_heads`).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Shaped

from attention._checks import accumulation_dtype, check_floating, shape_str
from attention.mechanism.scores import repeat_kv_heads


def weighted_sum(
    weights: Shaped[Array, "*B N T S"], value: Shaped[Array, "*B S K Hv"]
) -> Shaped[Array, "*B T N Hv"]:
    """Average the values with the attention weights, head by head.

    Formula::

        output[b, t, n, h] = sum_s weights[b, n, t, s] * value[b, s, n // (N / K), h]

    Args:
      weights: ``[B, N, T, S]`` (or unbatched ``[N, T, S]``), from :func:`attention_weights`.
      value: ``[B, S, K, Hv]`` (or ``[S, K, Hv]``); Hv may differ from the query's H; K value
        heads dividing N (K = N: one value head per query head).

    Returns:
      ``[B, T, N, Hv]`` in the dtype of ``value`` (accumulated in float32 for half precision).

    Raises:
      TypeError: non-floating inputs.
      ValueError: ranks other than 3/4; B or S that disagree; K that does not divide N.

    >>> import jax.numpy as jnp
    >>> w = jnp.array([[[0.25, 0.75]]])                # [N=1, T=1, S=2]
    >>> v = jnp.array([[[0.0, 4.0]], [[8.0, 0.0]]])    # [S=2, N=1, Hv=2]
    >>> weighted_sum(w, v).tolist()                    # [T=1, N=1, Hv=2]
    [[[6.0, 1.0]]]
    """
    check_floating("weights", weights)
    check_floating("value", value)
    if weights.ndim not in (3, 4) or value.ndim != weights.ndim:
        raise ValueError(
            f"weights must be [B, N, T, S] and value [B, S, N, Hv] (or both unbatched); got "
            f"weights {shape_str(weights.shape)} and value {shape_str(value.shape)}."
        )
    *batch_w, N, _, S = weights.shape
    *batch_v, S_v, N_v, _ = value.shape
    if (tuple(batch_w), S) != (tuple(batch_v), S_v) or N_v == 0 or N % N_v:
        raise ValueError(
            f"weights [B, N, T, S] = {shape_str(weights.shape)} and value [B, S, K, Hv] = "
            f"{shape_str(value.shape)} must agree on B and S, and the K={N_v} value heads "
            f"must divide the N={N} heads of the weights."
        )
    acc_dtype = accumulation_dtype(jnp.result_type(weights, value))
    value_BSNH = repeat_kv_heads(value, N)  # K = N: unchanged
    output_BTNH = jnp.einsum(
        "...NTS,...SNH->...TNH", weights, value_BSNH, preferred_element_type=acc_dtype
    )
    return output_BTNH.astype(value.dtype)
