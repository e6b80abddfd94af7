"""Tests for attention/vectors/cosine.py: normalize, against NumPy."""

import jax.numpy as jnp
import numpy as np
import pytest

from attention.vectors.cosine import normalize

from ._helpers import gaussian

Q, D, M, K = 3, 7, 53, 5


def test_normalize_gives_unit_rows_and_keeps_direction():
    x = gaussian(0, (M, D))
    unit = np.asarray(normalize(jnp.asarray(x)))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(unit, x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-6)


def test_normalize_other_axis_and_zero_vector():
    x = gaussian(1, (D, Q))
    x[:, 1] = 0.0
    unit = np.asarray(normalize(jnp.asarray(x), axis=0))
    np.testing.assert_allclose(np.linalg.norm(unit[:, [0, 2]], axis=0), 1.0, rtol=1e-6)
    assert np.all(unit[:, 1] == 0.0)  # a zero vector stays zero instead of becoming NaN.


def test_normalize_keeps_bfloat16():
    x = jnp.asarray(gaussian(2, (Q, D))).astype(jnp.bfloat16)
    unit = normalize(x)
    assert unit.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.linalg.norm(np.asarray(unit, np.float32), axis=1), 1.0, atol=1e-2)


@pytest.mark.outside_annotations
def test_normalize_errors():
    with pytest.raises(TypeError, match="vectors must have a floating dtype"):
        normalize(jnp.ones((2, 3), jnp.int32))
    with pytest.raises(
        ValueError, match=r"axis=2 is out of range for vectors of shape \[2, 3\] \(rank 2\)"
    ):
        normalize(jnp.ones((2, 3)), axis=2)
    with pytest.raises(TypeError, match=r"axis must be an int, got 1.0 \(float\)"):
        normalize(jnp.ones((2, 3)), axis=1.0)
    with pytest.raises(ValueError, match=r"eps must be in \(0, inf\), got 0.0"):
        normalize(jnp.ones((2, 3)), eps=0)
    with pytest.raises(TypeError, match=r"eps must be a number, got True \(bool\)"):
        normalize(jnp.ones((2, 3)), eps=True)
    # NumPy ints are axes too.
    np.testing.assert_array_equal(normalize(jnp.ones((2, 3)), axis=np.int64(0)),
                                  normalize(jnp.ones((2, 3)), axis=0))
