"""Step 0g: a database stored in fewer bytes: bfloat16, or int8 with one scale per row.

**Fewer bytes per row beat the float32 floor.** One query against a database is memory-bound:
a million 300-d float32 vectors are 1.2 GB, and the product does 2 flops per 4 bytes read, so
the best possible time is the time to read the matrix once. Stored in bfloat16 (2 bytes a
coordinate) or in int8 with one float32 scale per row (1 byte), the same search reads 2x or 4x
fewer bytes (:func:`quantize_database`). What is left is a small error in every stored row,
measured as recall@10 against exact float32 search in the tests and in
``benchmarks/similarity.py``.

This step is the storage only: how a row is rounded, and what it stands for afterwards
(:func:`dequantize`). The search of the next step (:func:`attention.vectors.cosine_top_k`)
multiplies the stored values directly, accumulating in float32 (bfloat16) or exactly in int32
(int8), and multiplies each row's score by its scale afterwards, so the matrix is never
expanded back to float32 in memory.

Axes here: ``M`` database rows, ``D`` the width.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Shaped

from attention._checks import check_array, check_database, check_finite_rows, check_rank, shape_str
from attention.vectors.cosine import _normalize

# The storage dtypes quantize_database knows, by name.
QUANTIZED_DTYPES = ("bfloat16", "int8")


class QuantizedDatabase(NamedTuple):
    """A database stored in fewer bytes per coordinate: row m stands for ``scales[m] * values[m]``.

    Made by :func:`quantize_database`; searched by :func:`cosine_top_k`; expanded back by
    :func:`dequantize`. A NamedTuple, hence a JAX pytree: it passes through ``jax.jit``.

    Attributes:
      values: ``[M, D]`` bfloat16 (the unit rows, rounded) or int8 (``round(x / scale)``, in
        ``-127..127``).
      scales: ``[M]`` float32, one per row: ``max_d |x[m, d]| / 127`` for int8 (0 for an
        all-zero row), 1 for bfloat16.
    """

    values: Shaped[Array, "M D"]
    scales: Float[Array, " M"]

    @property
    def shape(self) -> tuple[int, int]:
        """``(M, D)``, the shape of the database it stands for."""
        return tuple(self.values.shape)

    @property
    def dtype(self):
        """The storage dtype of ``values`` (bfloat16 or int8)."""
        return self.values.dtype

    @property
    def nbytes(self) -> int:
        """Bytes held: values and scales (what one search reads)."""
        return int(self.values.nbytes) + int(self.scales.nbytes)


def _check_dtype_name(dtype) -> str:
    if isinstance(dtype, str):
        name = dtype
    else:
        try:
            name = jnp.dtype(dtype).name
        except TypeError:
            raise TypeError(
                f"dtype must be one of {', '.join(map(repr, QUANTIZED_DTYPES))} (a name or a "
                f"dtype), got {dtype!r} ({type(dtype).__name__})."
            ) from None
    if name not in QUANTIZED_DTYPES:
        raise ValueError(
            f"dtype must be one of {', '.join(map(repr, QUANTIZED_DTYPES))}, got {name!r}."
        )
    return name


def quantize_database(
    database: Float[Array, "M D"], dtype="int8", *, normalized: bool = False
) -> QuantizedDatabase:
    """Store a database in bfloat16 or in int8 with one scale per row, for faster search.

    The rows are first scaled to length 1 (unless ``normalized=True`` promises they are), so
    that a score is a cosine. Then, for row ``x`` (float32)::

        bfloat16:  values = bfloat16(x)                          scales = 1
        int8:      scale = max_d |x_d| / 127,  values = round(x / scale)   (in -127..127)

    Symmetric per-row int8 quantization (as in Jacob et al. 2018, "Quantization and Training of
    Neural Networks for Efficient Integer-Arithmetic-Only Inference", with zero point 0 and
    one scale per row): every coordinate is off by at most half a step,
    ``|x_d - scale * values_d| <= scale / 2``. bfloat16 keeps 8 significant bits, a relative
    error of at most 2^-8 per coordinate. An all-zero row gets scale 0 and values 0: it scores
    0 against every query, as :func:`normalize` makes its cosine.

    One search then reads 2 (bfloat16) or 1 (int8) byte per coordinate instead of 4, plus 4
    bytes per row for the scales.

    Args:
      database: ``[M, D]`` floating point, ``M, D >= 1``, every value finite.
      dtype: ``"bfloat16"`` or ``"int8"`` (or ``jnp.bfloat16``, ``jnp.int8``).
      normalized: promise that the rows already have length 1; they are then stored as given.

    Returns:
      A :class:`QuantizedDatabase` ``(values [M, D], scales [M])``.

    Raises:
      TypeError: ``database`` not a floating array, ``dtype`` neither a name nor a dtype.
      ValueError: ``database`` not ``[M, D]``, with no rows or no columns, rows holding a NaN
        or an infinity (the message names them; checked when the values are concrete, not
        under ``jit``), an unknown ``dtype``.

    >>> import jax.numpy as jnp
    >>> q = quantize_database(jnp.array([[3.0, -4.0], [0.0, 0.0]]), "int8")
    >>> q.values.tolist(), [round(s, 5) for s in q.scales.tolist()], q.nbytes
    ([[95, -127], [0, 0]], [0.0063, 0.0], 12)
    """
    check_database(database)
    name = _check_dtype_name(dtype)
    check_finite_rows("database", database)
    values, scales = _quantize(database, name, bool(normalized))
    return QuantizedDatabase(values, scales)


@functools.partial(jax.jit, static_argnames=("dtype", "normalized"))
def _quantize(database, dtype: str, normalized: bool):
    unit_MD = database.astype(jnp.promote_types(database.dtype, jnp.float32))
    if not normalized:
        unit_MD = _normalize(unit_MD, 1, 1e-12)
    M = unit_MD.shape[0]
    if dtype == "bfloat16":
        return unit_MD.astype(jnp.bfloat16), jnp.ones((M,), jnp.float32)
    scales_M = (jnp.max(jnp.abs(unit_MD), axis=1) / 127.0).astype(jnp.float32)
    # An all-zero row has scale 0: divide it by 1 instead, which leaves it 0.
    safe_M1 = jnp.where(scales_M > 0, scales_M, 1.0)[:, None]
    values_MD = jnp.clip(jnp.round(unit_MD / safe_M1), -127, 127).astype(jnp.int8)
    return values_MD, scales_M


def dequantize(quantized: QuantizedDatabase) -> Float[Array, "M D"]:
    """The float32 database a :class:`QuantizedDatabase` stands for: ``scales[:, None] * values``.

    For tests and for inspection; a search never builds it.

    >>> import jax.numpy as jnp
    >>> q = quantize_database(jnp.array([[0.6, 0.8]]), "bfloat16")
    >>> [round(v, 3) for v in dequantize(q)[0].tolist()]
    [0.602, 0.801]
    """
    _check_quantized("quantized", quantized)
    return quantized.values.astype(jnp.float32) * quantized.scales[:, None]


def _check_quantized(name: str, quantized) -> None:
    if not isinstance(quantized, QuantizedDatabase):
        raise TypeError(
            f"{name} must be a QuantizedDatabase (from quantize_database), got "
            f"{type(quantized).__name__}."
        )
    values, scales = quantized
    check_array(f"{name}.values", values)
    check_array(f"{name}.scales", scales)
    if values.dtype.name not in QUANTIZED_DTYPES:
        raise TypeError(
            f"{name}.values must be stored as one of {', '.join(QUANTIZED_DTYPES)}, got "
            f"{values.dtype}; make it with quantize_database."
        )
    check_rank(f"{name}.values", values, "MD")
    if tuple(scales.shape) != (values.shape[0],) or scales.dtype != jnp.float32:
        raise ValueError(
            f"{name}.scales must be float32 of shape [M] = {shape_str(values.shape[:1])}, got "
            f"{scales.dtype} of shape {shape_str(scales.shape)}."
        )
