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

**Why today's models moved the positions into attention.** Added to the embeddings, the
positions reach a score only through the projections::

    score(m, n) = (x_m + PE_m) W^Q (W^K)^T (x_n + PE_n)^T

Even the bare product ``PE_m . PE_n = sum_i cos((m - n) w_i)`` is symmetric in ``m - n``: it
cannot tell a token three places *before* from one three places *after*; and once ``W^Q`` and
``W^K`` (and the cross terms with the tokens) come in, the score is no longer a function of
``m - n`` at all. Two answers put the relative position into the score itself.

**Rotary position embeddings** (RoPE, Su et al. 2021, "RoFormer", section 3.2): rotate each
pair of query and key dimensions ``(x_2i, x_2i+1)`` by the angle ``pos * theta_i`` with
``theta_i = base^(-2i/H)`` (base 10000, the sinusoids' frequencies), *after* the projections::

    [x'_2i  ]   [cos(pos theta_i)  -sin(pos theta_i)] [x_2i  ]
    [x'_2i+1] = [sin(pos theta_i)   cos(pos theta_i)] [x_2i+1]

Read as a complex number ``z_i = x_2i + i x_2i+1`` this is ``z_i * exp(i pos theta_i)``. A
rotation keeps norms, and the product of two rotated vectors sees only the difference of
their angles: ``q_m . k_n = Re sum_i q_i conj(k_i) exp(i (m - n) theta_i)``, a function of
``m - n`` (with its sign) for every pair of vectors, whatever the projections learned. Values
are not rotated: positions steer *where* to look, not *what* is read. :func:`apply_rope` is
the pure function, :class:`RotaryEmbedding` the ``process_heads`` hook of a
:class:`attention.mechanism.multi_head.MultiHeadAttention`, applied to its projected heads.

**ALiBi** (Press et al. 2022, "Train Short, Test Long", section 3): no position vectors at
all; head h adds a fixed penalty proportional to the distance to every score::

    score_h(t, s) = q_t . k_s / sqrt(d_k) - m_h |t - s|

With N heads the slopes form a geometric sequence starting at ``2^(-8/N)`` with that ratio
(8 heads: 1/2, 1/4, ..., 1/256), so some heads look far and some only at neighbours. For N not
a power of 2 the paper takes the slopes of the closest lower power of 2 and adds every other
slope of the next power of 2 (:func:`alibi_slopes`). Under the causal mask ``|t - s|`` is the
paper's ``t - s``; the encoder's bidirectional attention uses the symmetric form. The bias is
:func:`alibi_bias`; :class:`ALiBi` is the callable a ``MultiHeadAttention`` adds to its scores.
Both are used only in self-attention: in cross-attention target and source positions are not
on one axis.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from attention._checks import (
    check_floating,
    check_integer,
    check_position_span,
    check_positive_int,
    check_rope_args,
    check_rope_base,
    check_rope_head_dim,
    check_rope_scaling,
)


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
        check_position_span(length, offset, self.max_len)
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
        check_position_span(length, offset, self.max_len)
        rows_TD = _rows(self.embedding[...], length, offset)
        return rows_TD if self.dtype is None else rows_TD.astype(self.dtype)


# ------------------------------------------------------------------ rotary (Su et al. 2021)


def apply_rope(
    x: Float[Array, "*B T N H"],
    positions: Int[Array, "*P T"],
    *,
    base: float = 10000.0,
    scaling: tuple[float, float, float, float] | None = None,
) -> Float[Array, "*B T N H"]:
    """Rotary position embedding: rotate each pair of dims by its position's angle (RoFormer).

    Su et al. 2021, sections 3.2.2 and 3.4.2: for pair ``i`` of head dims ``(x_2i, x_2i+1)`` and
    position ``p``, with ``theta_i = base^(-2i/H)``::

        x'_2i   = x_2i cos(p theta_i) - x_2i+1 sin(p theta_i)
        x'_2i+1 = x_2i sin(p theta_i) + x_2i+1 cos(p theta_i)

    that is ``z_i * exp(i p theta_i)`` for the complex number ``z_i = x_2i + i x_2i+1``. Apply
    it to queries and keys (never values) after the projections: the score
    ``rope(q, m) . rope(k, n)`` then depends on the positions only through ``m - n``. Angles
    and products are computed in float32 and the result is cast back to ``x.dtype``.

    Args:
      x: queries or keys ``[*B, T, N, H]`` (``[T, N, H]`` unbatched), H even.
      positions: integer ``[T]``, the absolute position of each of the T rows (``arange(T)``
        for a whole sequence, ``index + arange(T)`` for new tokens when decoding), or
        ``[*B, T]`` with one row of positions per sequence. May be traced.
      base: the frequency base, > 0 (10000 in the paper, as for the sinusoids).
      scaling: Llama 3's ``(factor, low_freq_factor, high_freq_factor, original_context)``
        (:func:`llama3_frequencies`); None, the paper's frequencies.

    Returns:
      the rotated ``x``, same shape and dtype.

    Raises:
      TypeError: ``x`` not floating, ``positions`` not an integer array, ``base`` not a number.
      ValueError: ``x`` of rank below 3; an odd head dim H (the dims are rotated in pairs);
        ``positions`` neither ``[T]`` nor ``x.shape[:-2]``; ``base <= 0``.

    >>> x = jnp.ones((3, 1, 2))  # T=3 positions, one head, one pair of dims: (1, 1)
    >>> y = apply_rope(x, jnp.arange(3), base=10000.0)
    >>> [round(float(v), 4) for v in y[1, 0]]  # rotated by 1 radian
    [-0.3012, 1.3818]
    >>> [round(float(jnp.linalg.norm(v)), 4) for v in y[:, 0]]  # norms are kept
    [1.4142, 1.4142, 1.4142]
    """
    base = check_rope_args(x, positions, base)
    scaling = check_rope_scaling(scaling)
    H = x.shape[-1]
    inverse_frequency_I = _inverse_frequencies(H, base, scaling)  # theta_i, [H/2], NumPy
    angle_PTI = positions.astype(jnp.float32)[..., None] * inverse_frequency_I.reshape(
        (1,) * positions.ndim + (H // 2,)
    )  # [*P, T, H/2]: pos * theta_i
    # One angle per row and pair, shared by the heads: [*B, T, 1, H/2], of the rank of x.
    angle = angle_PTI.reshape(
        (1,) * (x.ndim - 2 - positions.ndim) + angle_PTI.shape[:-1] + (1, H // 2)
    )
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    pairs = x.astype(jnp.float32).reshape(*x.shape[:-1], H // 2, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return rotated.reshape(x.shape).astype(x.dtype)


@functools.lru_cache(maxsize=32)
def _inverse_frequencies(head_dim: int, base: float, scaling=None) -> np.ndarray:
    # theta_i = base^(-2i/H), i = 0 .. H/2 - 1, in float64 and rounded once (as the table).
    two_i = np.arange(0, head_dim, 2, dtype=np.float64)
    theta = np.power(base, -two_i / head_dim)
    if scaling is not None:
        theta = llama3_frequencies(theta, *scaling)
    theta = theta.astype(np.float32)
    theta.flags.writeable = False
    return theta


def llama3_frequencies(theta, factor: float, low_freq_factor: float, high_freq_factor: float,
                       original_context: float) -> np.ndarray:
    """Llama 3's rope scaling of the frequencies ``theta [H/2]`` (Meta 2024, Llama 3.1).

    A pair whose wavelength ``2 pi / theta_i`` is longer than ``original_context /
    low_freq_factor`` turns ``factor`` times slower (it stretches to the longer context); one
    shorter than ``original_context / high_freq_factor`` is kept (local order stays sharp);
    in between, the two are mixed linearly in ``original_context / wavelength``.

    >>> llama3_frequencies(np.array([1.0, 1e-4]), 8.0, 1.0, 4.0, 8192).tolist()
    [1.0, 1.25e-05]
    """
    theta = np.asarray(theta, np.float64)
    wavelength = 2 * np.pi / theta
    smooth = ((original_context / wavelength - low_freq_factor)
              / (high_freq_factor - low_freq_factor))
    mixed = (1 - smooth) * theta / factor + smooth * theta
    long = wavelength > original_context / low_freq_factor
    short = wavelength < original_context / high_freq_factor
    return np.where(long, theta / factor, np.where(short, theta, mixed))


class RotaryEmbedding(nnx.Module):
    """RoPE as the ``process_heads`` hook of a ``MultiHeadAttention`` (step 7).

    ``rope(query, key, value, query_positions [T], key_positions [S])`` returns
    ``(apply_rope(query, query_positions), apply_rope(key, key_positions), value)`` with this
    ``base``: queries and keys rotated, values never. No parameters: the rotation is fixed.

    Raises:
      TypeError, ValueError: ``head_dim`` not a positive even int, ``base <= 0``; at the call,
        a query or key whose head dim is not ``head_dim`` (and the errors of :func:`apply_rope`).

    >>> rope = RotaryEmbedding(head_dim=4)
    >>> q, k, v = rope(jnp.ones((2, 5, 3, 4)), jnp.ones((2, 7, 1, 4)), jnp.ones((2, 7, 1, 4)),
    ...                jnp.arange(5), jnp.arange(7))
    >>> q.shape, k.shape, bool((v == 1).all())
    ((2, 5, 3, 4), (2, 7, 1, 4), True)
    """

    def __init__(self, head_dim: int, base: float = 10000.0,
                 scaling: tuple[float, float, float, float] | None = None):
        self.head_dim = check_rope_head_dim(head_dim)
        self.base = check_rope_base(base)
        self.scaling = check_rope_scaling(scaling)

    def __call__(
        self,
        query: Float[Array, "*B T N H"],
        key: Float[Array, "*B S K H"],
        value: Float[Array, "*B S K Hv"],
        query_positions: Int[Array, "*P T"],
        key_positions: Int[Array, "*P S"],
    ) -> tuple[Float[Array, "*B T N H"], Float[Array, "*B S K H"], Float[Array, "*B S K Hv"]]:
        return self.rotate(query, query_positions), self.rotate(key, key_positions), value

    def rotate(self, x: Float[Array, "*B T N H"], positions: Int[Array, "*P T"]):
        """:func:`apply_rope` of one array ``x`` with this ``base``, its head dim checked."""
        check_rope_args(x, positions, self.base, head_dim=self.head_dim)
        return apply_rope(x, positions, base=self.base, scaling=self.scaling)


# ------------------------------------------------------------------- ALiBi (Press et al. 2022)


def alibi_slopes(num_heads: int) -> Float[Array, " N"]:
    """The head-specific slopes ``m_h`` of ALiBi (Press et al. 2022, section 3).

    For N a power of 2: the geometric sequence that starts at ``2^(-8/N)`` with ratio
    ``2^(-8/N)``, ``m_h = 2^(-8 h / N)`` for h = 1..N (8 heads: 1/2, 1/4, ..., 1/256). For
    other N, the rule of the paper's code: the N' slopes of the closest lower power of 2
    ``N'``, followed by every other slope (the 1st, 3rd, ...) of ``2 N'`` heads, up to N.

    Args:
      num_heads: N >= 1.

    Returns:
      float32 ``[N]``.

    Raises:
      TypeError, ValueError: ``num_heads`` not a positive int.

    >>> alibi_slopes(4).tolist()
    [0.25, 0.0625, 0.015625, 0.00390625]
    >>> alibi_slopes(3).tolist()  # those of 2 heads, then the first of 4 heads
    [0.0625, 0.00390625, 0.25]
    """
    num_heads = check_positive_int("num_heads", num_heads)
    return jnp.asarray(_alibi_slopes(num_heads))


@functools.lru_cache(maxsize=64)
def _alibi_slopes(num_heads: int) -> np.ndarray:
    def geometric(n):  # n a power of 2
        ratio = 2.0 ** (-8.0 / n)
        return [ratio ** (h + 1) for h in range(n)]

    lower = 1 << (num_heads.bit_length() - 1)  # the closest power of 2 <= num_heads
    slopes = geometric(lower) + geometric(2 * lower)[0::2][: num_heads - lower]
    table = np.asarray(slopes, np.float32)
    table.flags.writeable = False
    return table


def alibi_bias(
    slopes: Float[Array, " N"],
    query_positions: Int[Array, " T"],
    key_positions: Int[Array, " S"],
) -> Float[Array, "N T S"]:
    """ALiBi's additive score bias ``-m_h |t - s|`` (Press et al. 2022, section 3).

    Added to the scores before the softmax, ``softmax(q_t K^T / sqrt(d_k) + bias[h, t])``.
    Under a causal mask (``s <= t``) ``|t - s| = t - s`` is the paper's penalty; without it
    (the encoder) the same penalty applies to both sides.

    Args:
      slopes: ``[N]``, one per head (:func:`alibi_slopes`).
      query_positions: integer ``[T]`` (``index + arange(T)`` when decoding with a cache).
      key_positions: integer ``[S]``. Positions may be traced.

    Returns:
      float32 ``[N, T, S]``, zero on the diagonal ``t = s``.

    Raises:
      TypeError: slopes not floating, positions not integer arrays.
      ValueError: arrays that are not 1-D.

    >>> bias = alibi_bias(jnp.array([0.5, 0.25]), jnp.arange(3), jnp.arange(3))
    >>> bias[0].tolist()
    [[0.0, -0.5, -1.0], [-0.5, 0.0, -0.5], [-1.0, -0.5, 0.0]]
    """
    check_floating("slopes", slopes, axes="N")
    check_integer("query_positions", query_positions, axes="T")
    check_integer("key_positions", key_positions, axes="S")
    distance_TS = jnp.abs(query_positions[:, None] - key_positions[None, :])
    # Negate the integer distance, not the product, so the diagonal is 0.0 and not -0.0.
    return slopes.astype(jnp.float32)[:, None, None] * (-distance_TS).astype(jnp.float32)[None]


class ALiBi(nnx.Module):
    """ALiBi as the ``position_bias`` hook of a ``MultiHeadAttention`` (step 7).

    ``alibi(query_positions [T], key_positions [S])`` is :func:`alibi_bias` with the slopes
    of ``num_heads`` heads, ``[N, T, S]``; the attention module adds it to its scores. No
    parameters: the slopes are fixed.

    Raises:
      TypeError, ValueError: ``num_heads`` not a positive int (and, at the call, the errors
        of :func:`alibi_bias`).

    >>> ALiBi(num_heads=3)(jnp.arange(2), jnp.arange(5)).shape
    (3, 2, 5)
    """

    def __init__(self, num_heads: int):
        self.num_heads = check_positive_int("num_heads", num_heads)

    def __call__(
        self, query_positions: Int[Array, " T"], key_positions: Int[Array, " S"]
    ) -> Float[Array, "N T S"]:
        return alibi_bias(alibi_slopes(self.num_heads), query_positions, key_positions)
