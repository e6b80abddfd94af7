"""Step 8: positional encodings, telling attention where each token is (Vaswani et al. 2017, 3.5).

Attention is a weighted average over a *set*: permute the keys and values together and the
output does not change. Word order matters in language, so the position of each token is
added to its embedding. The paper uses fixed sinusoids::

    PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

Each pair of dimensions (2i, 2i+1) is a rotating clock with wavelength ``2 pi 10000^(2i/d)``,
from 2 pi (fast) to 10000 * 2 pi (slow); for any fixed offset k, PE(pos + k) is a rotation of
PE(pos), which the authors hoped would let the model attend by relative position. They also
tried learned position embeddings (Table 3, row E) with nearly identical results; both are
here: :class:`SinusoidalPositions` and :class:`LearnedPositions`. Each returns the table rows
``offset .. offset+T-1`` (``offset`` is the decoding step when generating with a cache).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from attention._checks import check_positive_int, is_traced


def sinusoidal_positions(max_len: int, d_model: int) -> Float[Array, "L D"]:
    """The paper's table of sinusoids, one row per position (section 3.5).

    Even dims ``2i`` hold ``sin(pos / 10000^(2i/d_model))`` and odd dims ``2i+1`` hold
    ``cos`` of the same angle. An odd ``d_model`` keeps the final sine column.

    Args:
      max_len: number of positions L.
      d_model: width D.

    Returns:
      float32 ``[max_len, d_model]``, values in ``[-1, 1]``.

    Raises:
      TypeError, ValueError: ``max_len`` or ``d_model`` not a positive int.

    >>> pe = sinusoidal_positions(3, 4)
    >>> pe[0].tolist()  # position 0: sin 0 = 0, cos 0 = 1
    [0.0, 1.0, 0.0, 1.0]
    """
    max_len = check_positive_int("max_len", max_len)
    d_model = check_positive_int("d_model", d_model)
    return jnp.asarray(_sinusoid_table(max_len, d_model))


@functools.lru_cache(maxsize=16)
def _sinusoid_table(max_len: int, d_model: int) -> np.ndarray:
    # Built in NumPy float64 and rounded once, so the table is a compile-time constant under
    # jit and as exact as float32 allows even for positions in the thousands.
    position_L1 = np.arange(max_len, dtype=np.float64)[:, None]
    two_i_D = (np.arange(d_model) // 2 * 2).astype(np.float64)  # 0, 0, 2, 2, 4, 4, ...
    angle_LD = position_L1 / np.power(10000.0, two_i_D / d_model)[None, :]
    table_LD = np.where(np.arange(d_model)[None, :] % 2 == 0, np.sin(angle_LD), np.cos(angle_LD))
    table_LD = table_LD.astype(np.float32)
    table_LD.flags.writeable = False
    return table_LD


def _check_span(length: int, offset, max_len: int) -> None:
    check_positive_int("the sequence length", length)
    if is_traced(offset):
        # A traced decoding step cannot be checked here; dynamic_slice clamps it instead.
        if length > max_len:
            raise ValueError(
                f"a sequence of length {length} is longer than max_len={max_len} positions."
            )
        return
    if int(offset) < 0 or int(offset) + length > max_len:
        raise ValueError(
            f"positions {int(offset)}..{int(offset) + length - 1} are needed but the table "
            f"has max_len={max_len} positions (0..{max_len - 1}); shorten the sequence or "
            f"build the model with a larger max_len."
        )


def _rows(table_LD, length: int, offset) -> Float[Array, "T D"]:
    if isinstance(offset, int) and offset == 0:
        return table_LD[:length]
    return jax.lax.dynamic_slice_in_dim(table_LD, jnp.asarray(offset, jnp.int32), length)


class SinusoidalPositions(nnx.Module):
    """Fixed sinusoidal encodings (3.5): no parameters, the table is a constant.

    Call ``positions(T, offset=0)`` for rows ``offset .. offset+T-1`` of the table, ``[T, D]``.

    Raises:
      ValueError: a span beyond ``max_len`` (checked when ``offset`` is concrete; a traced
        offset past the end is clamped by ``lax.dynamic_slice``).

    >>> SinusoidalPositions(max_len=10, d_model=4)(3).shape
    (3, 4)
    """

    def __init__(self, max_len: int, d_model: int, *, dtype=None):
        self.max_len = check_positive_int("max_len", max_len)
        self.d_model = check_positive_int("d_model", d_model)
        self.dtype = dtype

    def __call__(self, length: int, *, offset: int | Int[Array, ""] = 0) -> Float[Array, "T D"]:
        _check_span(length, offset, self.max_len)
        table_LD = sinusoidal_positions(self.max_len, self.d_model)
        rows_TD = _rows(table_LD, length, offset)
        return rows_TD if self.dtype is None else rows_TD.astype(self.dtype)


class LearnedPositions(nnx.Module):
    """Learned position embeddings: a trained ``[max_len, D]`` table (Table 3, row E).

    Same call as :class:`SinusoidalPositions`. Initialised from N(0, 0.02^2), small beside the
    scaled token embeddings. Unlike sinusoids it cannot reach positions beyond ``max_len``.
    """

    def __init__(
        self, max_len: int, d_model: int, *, dtype=None, param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.max_len = check_positive_int("max_len", max_len)
        self.d_model = check_positive_int("d_model", d_model)
        self.dtype = dtype
        init = nnx.initializers.normal(stddev=0.02)
        self.embedding = nnx.Param(init(rngs.params(), (max_len, d_model), param_dtype))

    def __call__(self, length: int, *, offset: int | Int[Array, ""] = 0) -> Float[Array, "T D"]:
        _check_span(length, offset, self.max_len)
        rows_TD = _rows(self.embedding[...], length, offset)
        return rows_TD if self.dtype is None else rows_TD.astype(self.dtype)
