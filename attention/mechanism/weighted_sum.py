"""Step 5: the weighted sum of values, what each query takes away (Vaswani et al. 2017, eq. 1)."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Shaped

from attention._checks import accumulation_dtype, check_weighted_sum
from attention.mechanism.scores import repeat_kv_heads


def weighted_sum(
    weights: Shaped[Array, "*B N T S"], value: Shaped[Array, "*B S K Hv"]
) -> Shaped[Array, "*B T N Hv"]:
    """``output[b, t, n] = sum_s weights[b, n, t, s] * value[b, s, n // (N / K)]``: weights
    ``[B, N, T, S]``, values ``[B, S, K, Hv]`` -> ``[B, T, N, Hv]`` in the value's dtype.

    Raises:
      TypeError: non-floating inputs.
      ValueError: ranks other than 3/4; B or S that disagree; K not dividing N.

    >>> w = jnp.array([[[0.25, 0.75]]])                # [N=1, T=1, S=2]
    >>> v = jnp.array([[[0.0, 4.0]], [[8.0, 0.0]]])    # [S=2, K=1, Hv=2]
    >>> weighted_sum(w, v).tolist()                    # [T=1, N=1, Hv=2]
    [[[6.0, 1.0]]]
    """
    check_weighted_sum(weights, value)
    acc_dtype = accumulation_dtype(jnp.result_type(weights, value))
    value_BSNH = repeat_kv_heads(value, weights.shape[-3])
    output_BTNH = jnp.einsum(
        "...NTS,...SNH->...TNH", weights, value_BSNH, preferred_element_type=acc_dtype
    )
    return output_BTNH.astype(value.dtype)
