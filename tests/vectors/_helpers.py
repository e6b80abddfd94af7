"""What the tests of the searches share: random vectors, and unit rows written out in NumPy."""

import numpy as np


def gaussian(seed, shape, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def unit_rows(x):
    """Rows scaled to length one, in float64 (a zero row stays zero)."""
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
