"""Step 1: dot-product scores, how well each query matches each key.

Two embeddings u and v can be combined element-wise (u * v, an interaction term) or summed
into one number, the dot product u . v = sum_h u_h v_h, which is large when they point the
same way. Attention uses that number as a similarity score between a query and every key.

With H-dimensional vectors whose entries have unit variance, u . v has variance H, so the
scores grow with the head size and push the softmax into saturation, where its gradients
vanish. Vaswani et al. (2017, section 3.2.1) therefore divide by sqrt(H) = sqrt(d_k).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, Shaped

from attention._checks import accumulation_dtype, check_qkv, check_scale


def default_scale(head_dim: int) -> float:
    """The paper's scale 1 / sqrt(d_k) for a head dim of ``head_dim`` (section 3.2.1)."""
    return 1.0 / math.sqrt(head_dim)


def dot_product_scores(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S N H"],
    *,
    scale: float | None = None,
) -> Shaped[Array, "*B N T S"]:
    """Scaled dot products between every query and every key, head by head.

    Formula (Vaswani et al. 2017, eq. 1 before the softmax)::

        scores[b, n, t, s] = scale * sum_h query[b, t, n, h] * key[b, s, n, h]

    with ``scale = 1 / sqrt(H)`` unless given.

    Args:
      query: ``[B, T, N, H]`` (or unbatched ``[T, N, H]``), floating point.
      key: ``[B, S, N, H]`` (or ``[S, N, H]``), same B, N and H as ``query``.
      scale: multiplier for the dot products; default ``1 / sqrt(H)``.

    Returns:
      Scores ``[B, N, T, S]`` (or ``[N, T, S]``), accumulated and returned in float32 for
      half-precision inputs (so that large logits do not overflow float16), else in the
      input dtype.

    Raises:
      TypeError: integer or boolean ``query``/``key``; ``scale`` not a real number.
      ValueError: ranks other than 3 or 4, or B, N or H that differ between query and key.

    >>> import jax.numpy as jnp
    >>> q = jnp.ones((1, 2, 1, 4)); k = jnp.ones((1, 3, 1, 4))
    >>> dot_product_scores(q, k).shape  # [B, N, T, S]
    (1, 1, 2, 3)
    >>> float(dot_product_scores(q, k)[0, 0, 0, 0])  # 4 / sqrt(4)
    2.0
    """
    check_qkv(query, key)
    check_scale(scale)
    if scale is None:
        scale = default_scale(query.shape[-1])
    acc_dtype = accumulation_dtype(jnp.result_type(query, key))
    scores_BNTS = jnp.einsum(
        "...TNH,...SNH->...NTS", query, key, preferred_element_type=acc_dtype
    )
    # Scale after the dot product, in the accumulation dtype, so that a large scale or large
    # inputs never overflow a half-precision intermediate.
    return scores_BNTS * jnp.asarray(scale, acc_dtype)
