"""Step 0e: cosine similarity, the dot product of two vectors scaled to length 1.

Notebook 00 ("Multiplying embeddings") multiplies embeddings before attention does: the dot
product u . v is large when u and v point the same way, and divided by both lengths it is the
cosine of the angle between them, a number in [-1, 1] that ignores how long the vectors are::

    cos(u, v) = (u . v) / (|u| |v|)

**Normalise the database once.** If every row of a database already has length 1, a query's
cosines are the single matrix-vector product ``database @ query``. Dividing by the row norms on
every search would read the whole matrix two or three times instead of once. So the searches
of the next steps (:mod:`attention.vectors.search`, :mod:`attention.vectors.inverted_index`)
take ``normalized=True`` for a database scaled once by :func:`normalize`.

Besides :func:`normalize`, the checks every search of this subpackage shares on the vectors it
is given: a database is ``[M, D]``, and no row may hold a NaN (a NaN has no cosine).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from attention._checks import (
    check_axis,
    check_floating,
    check_real,
)


def normalize(
    vectors: Float[Array, "... D"], axis: int = -1, eps: float = 1e-12
) -> Float[Array, "... D"]:
    """Scale vectors to length 1 along ``axis``: ``v / max(|v|, eps)``.

    Zero vectors (and any shorter than ``eps``) are not divided by zero: they stay (near) zero,
    so their cosine with everything is 0 rather than NaN. The norm is accumulated in float32
    for half-precision inputs; the result keeps the input dtype. Jitted: on a large database
    the square, sum, square root and division fuse into one pass over the matrix.

    Args:
      vectors: floating, any shape, for example a database ``[M, D]``.
      axis: the axis holding each vector's coordinates.
      eps: the smallest norm divided by; a positive float.

    Returns:
      An array of the shape and dtype of ``vectors`` whose slices along ``axis`` have
      length 1 (or are zero).

    Raises:
      TypeError: ``vectors`` not a floating-point array; ``axis`` not an int; ``eps`` not a
        number.
      ValueError: ``axis`` out of range, ``eps`` not positive.

    >>> import jax.numpy as jnp
    >>> normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    check_floating("vectors", vectors)
    axis = check_axis("axis", axis, vectors, array_name="vectors")
    eps = check_real("eps", eps, low=0.0, low_inclusive=False)
    return _normalize(vectors, axis, eps)


@functools.partial(jax.jit, static_argnames=("axis", "eps"))
def _normalize(vectors, axis: int, eps: float):
    acc = vectors.astype(jnp.promote_types(vectors.dtype, jnp.float32))
    norm = jnp.sqrt(jnp.sum(acc * acc, axis=axis, keepdims=True))
    return (acc / jnp.maximum(norm, eps)).astype(vectors.dtype)


