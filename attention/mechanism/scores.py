"""Step 1: dot-product scores, how well each query matches each key (Vaswani et al. 2017, 3.2.1).

Grouped-query attention (Ainslie et al. 2023; K = 1 is multi-query, Shazeer 2019): K key/value
heads serve the N query heads, query head n reading head n // (N / K), K dividing N.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, Shaped

from attention._checks import accumulation_dtype, check_qkv, check_repeat_kv_heads, check_scale


def default_scale(head_dim: int) -> float:
    """The paper's scale 1 / sqrt(d_k) for a head dim of ``head_dim`` (section 3.2.1)."""
    return 1.0 / math.sqrt(head_dim)


def repeat_kv_heads(x: Shaped[Array, "*B S K H"], num_heads: int) -> Shaped[Array, "*B S N H"]:
    """Repeat each of the K key/value heads N / K times: ``out[..., n, :] = x[..., n // (N/K), :]``.

    Raises:
      TypeError: ``x`` not an array, ``num_heads`` not an int.
      ValueError: ``x`` of rank below 3; ``num_heads`` below 1 or not a multiple of K.

    >>> repeat_kv_heads(jnp.array([[[10.0], [20.0]]]), 4)[0, :, 0].tolist()  # [S=1, K=2, H=1]
    [10.0, 10.0, 20.0, 20.0]
    """
    num_heads = check_repeat_kv_heads(x, num_heads)
    return jnp.repeat(x, num_heads // x.shape[-2], axis=-2)


def dot_product_scores(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S K H"],
    *,
    scale: float | None = None,
) -> Shaped[Array, "*B N T S"]:
    """``scores[b, n, t, s] = scale * q[b, t, n] . k[b, s, n // (N / K)]``, scale 1 / sqrt(H):
    ``[B, T, N, H]``, ``[B, S, K, H]`` -> ``[B, N, T, S]``, float32 for half-precision inputs.

    Raises:
      TypeError: non-floating query or key; ``scale`` not a real number.
      ValueError: ranks other than 3 or 4; B or H that differ; K not dividing N.

    >>> dot_product_scores(jnp.ones((1, 2, 1, 4)), jnp.ones((1, 3, 1, 4)))[0, 0, 0].tolist()
    [2.0, 2.0, 2.0]
    """
    check_qkv(query, key)
    check_scale(scale)
    scale = default_scale(query.shape[-1]) if scale is None else scale
    acc_dtype = accumulation_dtype(jnp.result_type(query, key))
    key_BSNH = repeat_kv_heads(key, query.shape[-2])
    scores_BNTS = jnp.einsum(
        "...TNH,...SNH->...NTS", query, key_BSNH, preferred_element_type=acc_dtype
    )
    # Scaled after the product, in the accumulation dtype: no half-precision overflow.
    return scores_BNTS * jnp.asarray(scale, acc_dtype)
