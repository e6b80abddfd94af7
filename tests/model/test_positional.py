"""Positional encodings (section 3.5): the paper's formula, offsets, learned table, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.positional import LearnedPositions, SinusoidalPositions, sinusoidal_positions


def paper_table(max_len, d_model):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...), written as a loop."""
    table = np.zeros((max_len, d_model))
    for pos in range(max_len):
        for i in range(0, d_model, 2):
            angle = pos / 10000 ** (i / d_model)
            table[pos, i] = math.sin(angle)
            if i + 1 < d_model:
                table[pos, i + 1] = math.cos(angle)
    return table


@pytest.mark.parametrize(("max_len", "d_model"), [(11, 6), (50, 16), (7, 5)])
def test_matches_the_paper_formula(max_len, d_model):
    np.testing.assert_allclose(
        sinusoidal_positions(max_len, d_model), paper_table(max_len, d_model), atol=1e-6
    )


def test_large_positions_stay_accurate():
    table = sinusoidal_positions(1000, 8)
    np.testing.assert_allclose(table, paper_table(1000, 8), atol=1e-6)
    assert table.dtype == jnp.float32 and table.shape == (1000, 8)


def test_relative_offset_is_a_rotation():
    # The paper's motivation: PE(pos + k) is a fixed linear map (a rotation per pair of dims)
    # of PE(pos), the same map for every pos.
    d, k = 8, 3
    table = np.asarray(sinusoidal_positions(40, d), np.float64)
    for i in range(0, d, 2):
        w = 1 / 10000 ** (i / d)
        c, s = math.cos(k * w), math.sin(k * w)
        rotation = np.array([[c, -s], [s, c]])  # [sin, cos](a + b) = [sin a, cos a] R(b)
        np.testing.assert_allclose(table[:-k, i:i + 2] @ rotation, table[k:, i:i + 2], atol=1e-5)


def test_module_rows_and_offsets():
    pe = SinusoidalPositions(max_len=20, d_model=6)
    table = sinusoidal_positions(20, 6)
    np.testing.assert_array_equal(pe(5), table[:5])
    np.testing.assert_array_equal(pe(3, offset=7), table[7:10])
    # A traced offset (the decoding step inside a compiled loop) gives the same rows.
    rows = jax.jit(lambda t: pe(2, offset=t))(jnp.int32(11))
    np.testing.assert_array_equal(rows, table[11:13])
    assert pe(4).shape == (4, 6)
    assert SinusoidalPositions(8, 4, dtype=jnp.bfloat16)(3).dtype == jnp.bfloat16


def test_learned_positions_are_a_trainable_table():
    pe = LearnedPositions(max_len=9, d_model=4, rngs=nnx.Rngs(0))
    params = nnx.state(pe, nnx.Param)
    assert [x.shape for x in jax.tree.leaves(params)] == [(9, 4)]
    np.testing.assert_array_equal(pe(3, offset=2), pe.embedding[...][2:5])

    def loss(module):
        return module(4, offset=1).sum()

    grads = nnx.grad(loss)(pe)
    expected = np.zeros((9, 4))
    expected[1:5] = 1.0
    np.testing.assert_array_equal(grads.embedding[...], expected)


@pytest.mark.parametrize("make", [
    lambda: SinusoidalPositions(max_len=10, d_model=4),
    lambda: LearnedPositions(max_len=10, d_model=4, rngs=nnx.Rngs(0)),
])
def test_longer_than_max_len_is_an_error(make):
    pe = make()
    message = r"positions 0\.\.10 are needed but the table has max_len=10"
    with pytest.raises(ValueError, match=message):
        pe(11)
    with pytest.raises(ValueError, match=r"positions 8\.\.10 are needed"):
        pe(3, offset=8)
    with pytest.raises(ValueError, match="sequence length must be a positive int, got 0"):
        pe(0)


@pytest.mark.outside_annotations
def test_sizes_of_the_wrong_type():
    with pytest.raises(TypeError, match=r"d_model must be a positive int, got True \(bool\)"):
        sinusoidal_positions(4, True)
    with pytest.raises(TypeError, match=r"max_len must be a positive int, got 4.0"):
        SinusoidalPositions(4.0, 4)


def test_bad_sizes():
    with pytest.raises(ValueError, match="d_model must be a positive int, got 0"):
        sinusoidal_positions(4, 0)
    with pytest.raises(ValueError, match="max_len must be a positive int, got -3"):
        SinusoidalPositions(-3, 4)


def test_annotation():
    from beartype import beartype
    from jaxtyping import jaxtyped

    assert jaxtyped(typechecker=beartype)(sinusoidal_positions)(6, 4).shape == (6, 4)
