"""Moved to :mod:`attention.vectors` (steps 0e-0h); this alias only re-exports, for old imports."""

from attention.vectors import (
    QUANTIZED_DTYPES,
    QuantizedDatabase,
    cosine_top_k,
    cosine_top_k_reference,
    dequantize,
    normalize,
    quantize_database,
)

__all__ = [
    "normalize",
    "QUANTIZED_DTYPES",
    "QuantizedDatabase",
    "quantize_database",
    "dequantize",
    "cosine_top_k",
    "cosine_top_k_reference",
]
