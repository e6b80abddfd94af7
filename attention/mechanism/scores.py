"""Step 1: dot-product scores, how well each query matches each key.

Two embeddings u and v can be combined element-wise (u * v, an interaction term) or summed
into one number, the dot product u . v = sum_h u_h v_h, which is large when they point the
same way. Attention uses that number as a similarity score between a query and every key.

With H-dimensional vectors whose entries have unit variance, u . v has variance H, so the
scores grow with the head size and push the softmax into saturation, where its gradients
vanish. Vaswani et al. (2017, section 3.2.1) therefore divide by sqrt(H) = sqrt(d_k).

**Grouped-query and multi-query attention.** Keys and values may have fewer heads K than the
N query heads, as long as K divides N: query head n then uses key/value head n // (N / K), so
each key head serves a group of N / K consecutive query heads (Ainslie et al. 2023, "GQA";
K = 1 is Shazeer 2019's multi-query attention, K = N ordinary multi-head attention). The
teaching view, :func:`repeat_kv_heads`, copies each key head N / K times and then proceeds as
if K = N; the fast kernels get the same numbers by indexing the shared head instead.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, Shaped

from attention._checks import (
    accumulation_dtype,
    check_array,
    check_positive_int,
    check_qkv,
    check_scale,
    shape_str,
)


def default_scale(head_dim: int) -> float:
    """The paper's scale 1 / sqrt(d_k) for a head dim of ``head_dim`` (section 3.2.1)."""
    return 1.0 / math.sqrt(head_dim)


def repeat_kv_heads(x: Shaped[Array, "*B S K H"], num_heads: int) -> Shaped[Array, "*B S N H"]:
    """Repeat each of the K key (or value) heads N / K times: the grouped-query view.

    In grouped-query attention (Ainslie et al. 2023) the N query heads share K <= N key/value
    heads: query head n uses key/value head ``n // (N / K)``. Multi-query attention (Shazeer
    2019, "Fast Transformer Decoding: One Write-Head is All You Need") is K = 1. Repeating the
    key/value heads turns that into ordinary multi-head attention::

        repeated[..., s, n, h] = x[..., s, n // (N / K), h]

    Why share heads at all: the model quality stays close to multi-head attention, while the
    key/value cache of a decoder, ``2 * layers * B * S * K * H`` numbers, shrinks by a factor
    N / K (for N = 32 query heads and K = 8, four times less memory, and four times less to
    read at every decoding step, which is what limits its speed). This function is the
    teaching view: it materialises the copies. The kernels never do; they index the shared
    head.

    Args:
      x: keys or values ``[B, S, K, H]`` (or unbatched ``[S, K, H]``).
      num_heads: N, the number of query heads; K must divide it.

    Returns:
      ``[B, S, N, H]`` (``[S, N, H]``): heads ``0 .. N/K - 1`` are copies of key head 0, the
      next N/K of head 1, and so on (``jnp.repeat``, not ``jnp.tile``).

    Raises:
      TypeError: ``x`` not an array; ``num_heads`` not an int.
      ValueError: ``x`` with fewer than 3 axes; ``num_heads`` below 1 or not a multiple of K.

    >>> import jax.numpy as jnp
    >>> k = jnp.array([[[10.0], [20.0]]])  # [S=1, K=2, H=1]
    >>> repeat_kv_heads(k, 4)[0, :, 0].tolist()  # query heads 0, 1 use key head 0; 2, 3 head 1
    [10.0, 10.0, 20.0, 20.0]
    """
    check_array("x", x)
    num_heads = check_positive_int("num_heads", num_heads)
    if x.ndim < 3:
        raise ValueError(
            f"x must be keys or values [B, S, K, H] (or [S, K, H]), got shape "
            f"{shape_str(x.shape)}."
        )
    num_kv_heads = x.shape[-2]
    if num_kv_heads == 0 or num_heads % num_kv_heads:
        raise ValueError(
            f"num_heads={num_heads} (query heads N) must be a multiple of the K={num_kv_heads} "
            f"key/value heads of x (shape {shape_str(x.shape)}, axis -2), so that each key head "
            f"serves N / K query heads."
        )
    return jnp.repeat(x, num_heads // num_kv_heads, axis=-2)


def dot_product_scores(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S K H"],
    *,
    scale: float | None = None,
) -> Shaped[Array, "*B N T S"]:
    """Scaled dot products between every query and every key, head by head.

    Formula (Vaswani et al. 2017, eq. 1 before the softmax)::

        scores[b, n, t, s] = scale * sum_h query[b, t, n, h] * key[b, s, n // (N / K), h]

    with ``scale = 1 / sqrt(H)`` unless given. With K = N key heads (ordinary multi-head
    attention) ``n // (N / K) = n``; with fewer, the key heads are shared by groups of query
    heads (grouped-query attention, see :func:`repeat_kv_heads`).

    Args:
      query: ``[B, T, N, H]`` (or unbatched ``[T, N, H]``), floating point.
      key: ``[B, S, K, H]`` (or ``[S, K, H]``), same B and H as ``query``, K dividing N.
      scale: multiplier for the dot products; default ``1 / sqrt(H)``.

    Returns:
      Scores ``[B, N, T, S]`` (or ``[N, T, S]``), accumulated and returned in float32 for
      half-precision inputs (so that large logits do not overflow float16), else in the
      input dtype.

    Raises:
      TypeError: integer or boolean ``query``/``key``; ``scale`` not a real number.
      ValueError: ranks other than 3 or 4; B or H that differ between query and key; K that
        does not divide N.

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
    key_BSNH = repeat_kv_heads(key, query.shape[-2])  # K = N: unchanged
    scores_BNTS = jnp.einsum(
        "...TNH,...SNH->...NTS", query, key_BSNH, preferred_element_type=acc_dtype
    )
    # Scale after the dot product, in the accumulation dtype, so that a large scale or large
    # inputs never overflow a half-precision intermediate.
    return scores_BNTS * jnp.asarray(scale, acc_dtype)
