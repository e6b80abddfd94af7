"""Tests for attention/vectors/quantized.py: quantize_database and dequantize against NumPy
(int8 with per-row scales, bfloat16), and their errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention.vectors.quantized import dequantize, quantize_database
from attention.vectors.search import cosine_top_k

from ._helpers import gaussian, unit_rows

Q, D, M, K = 3, 7, 53, 5


def test_int8_quantization_matches_numpy_and_is_within_half_a_step():
    database = gaussian(20, (M, D)) * np.arange(1, M + 1, dtype=np.float32)[:, None]
    quantized = quantize_database(jnp.asarray(database), "int8")
    unit = unit_rows(database)
    want_scales = np.abs(unit).max(axis=1) / 127
    assert quantized.values.dtype == jnp.int8 and quantized.values.shape == (M, D)
    assert quantized.scales.dtype == jnp.float32 and quantized.scales.shape == (M,)
    np.testing.assert_allclose(quantized.scales, want_scales, rtol=1e-6)
    values = np.asarray(quantized.values, np.int64)
    assert np.abs(values).max() == 127  # the largest coordinate of each row maps to +-127
    np.testing.assert_array_equal(np.abs(values).max(axis=1), 127)
    # Round to nearest: off by at most half a step (plus float32 rounding of the division).
    error = np.abs(unit - want_scales[:, None] * values)
    assert np.all(error <= want_scales[:, None] * (0.5 + 1e-4))
    np.testing.assert_allclose(dequantize(quantized), want_scales[:, None] * values, rtol=1e-6)
    assert quantized.nbytes == M * D * 1 + M * 4


def test_bfloat16_quantization_is_within_one_rounding():
    database = gaussian(21, (M, D))
    quantized = quantize_database(jnp.asarray(database), jnp.bfloat16)
    unit = unit_rows(database)
    assert quantized.values.dtype == jnp.bfloat16
    np.testing.assert_array_equal(quantized.scales, np.ones(M))
    # bfloat16 keeps 8 significant bits: round to nearest is off by at most 2^-8 relative.
    error = np.abs(unit - np.asarray(dequantize(quantized), np.float64))
    assert np.all(error <= 2.0**-8 * np.abs(unit) + 1e-7)
    assert quantized.nbytes == M * D * 2 + M * 4


def test_normalized_true_stores_the_rows_as_given():
    database = 3.0 * gaussian(22, (M, D))  # rows far from unit length
    quantized = quantize_database(jnp.asarray(database), "int8", normalized=True)
    np.testing.assert_allclose(quantized.scales, np.abs(database).max(axis=1) / 127, rtol=1e-6)


def test_all_zero_row_gets_scale_zero_and_scores_zero():
    database = gaussian(23, (M, D))
    database[:, 0] = -1.0 - np.abs(database[:, 0])  # every row points away from e_0 ...
    database[4] = 0.0  # ... but row 4, which is zero: cosine 0, the best there is.
    quantized = quantize_database(jnp.asarray(database), "int8")
    assert float(quantized.scales[4]) == 0.0
    assert not np.asarray(quantized.values[4]).any()
    for query in (jnp.eye(D)[0], jnp.eye(D)[jnp.array([0, 0])]):  # one query, and a batch
        scores, indices = cosine_top_k(query, quantized, 1)
        assert indices.ravel()[0] == 4 and float(scores.ravel()[0]) == 0.0


def test_quantize_under_jit_equals_eager():
    database = jnp.asarray(gaussian(24, (M, D)))
    jitted = jax.jit(quantize_database, static_argnames=("dtype",))(database, dtype="int8")
    eager = quantize_database(database, "int8")
    np.testing.assert_array_equal(jitted.values, eager.values)
    np.testing.assert_array_equal(jitted.scales, eager.scales)


@pytest.mark.outside_annotations
def test_quantized_errors_name_what_was_given():
    db = jnp.asarray(gaussian(41, (M, D)))
    quantized = quantize_database(db, "int8")
    with pytest.raises(ValueError, match=r"dtype must be one of 'bfloat16', 'int8', got 'float16'"):
        quantize_database(db, "float16")
    with pytest.raises(ValueError, match=r"got 'float32'"):
        quantize_database(db, jnp.float32)
    with pytest.raises(TypeError, match=r"dtype must be one of .*got 8 \(int\)"):
        quantize_database(db, 8)
    with pytest.raises(TypeError, match="database must have a floating dtype"):
        quantize_database(quantized.values, "int8")
    with pytest.raises(ValueError, match=r"at least one row and one column, got shape \[0, 7\]"):
        quantize_database(jnp.ones((0, D)), "int8")
    with pytest.raises(ValueError, match=r"database must have 2 dimensions \[M, D\]"):
        quantize_database(jnp.ones(D), "int8")
    bad = np.asarray(db).copy()
    bad[[2, 30], 1] = np.nan
    bad[45, 0] = np.inf
    with pytest.raises(ValueError, match=r"3 of 53 rows with a NaN or infinity \(rows 2, 30, 45\)"):
        quantize_database(jnp.asarray(bad), "bfloat16")
    many = np.full((M, D), np.nan, np.float32)
    with pytest.raises(ValueError, match=r"rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 43 more"):
        quantize_database(jnp.asarray(many), "int8")
    with pytest.raises(TypeError, match="quantized must be a QuantizedDatabase.*got tuple"):
        dequantize((quantized.values, quantized.scales))
