"""Positional encodings (section 3.5): the paper's formula, offsets, learned table, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.positional import (
    ALiBi,
    LearnedPositions,
    RotaryEmbedding,
    SinusoidalPositions,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    llama3_frequencies,
    sinusoidal_positions,
)


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


# ------------------------------------------------------------------------ RoPE (RoFormer)


def rope_complex(x, positions, base):
    """Su et al. 2021 eq. 34 as complex numbers: pair (x_2i, x_2i+1) is z_i = x_2i + i x_2i+1,
    rotated to z_i exp(i pos theta_i), theta_i = base^(-2i/H); written in NumPy float64."""
    x = np.asarray(x, np.float64)
    H = x.shape[-1]
    theta = base ** (-np.arange(0, H, 2) / H)  # [H/2]
    positions = np.asarray(positions, np.float64)
    if positions.ndim == 1:
        positions = np.broadcast_to(positions, x.shape[:-2])
    z = x[..., 0::2] + 1j * x[..., 1::2]
    z = z * np.exp(1j * positions[..., None, None] * theta)
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out


# One shape for the RoPE tests (B, T, N, H all different), so eager calls compile once.
X = jax.random.normal(jax.random.key(0), (2, 5, 3, 8))


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_rope_is_the_complex_rotation(jit):
    rope = jax.jit(apply_rope, static_argnames="base") if jit else apply_rope
    positions = 7 + jnp.arange(5)  # an offset, as when decoding after 7 cached tokens
    per_row = jnp.array([[0, 3, 1, 9, 4], [2, 2, 8, 5, 6]])  # one row per sequence, [B, T]
    for base in (10000.0, 100.0):
        np.testing.assert_allclose(rope(X, positions, base=base),
                                   rope_complex(X, positions, base), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(rope(X, per_row, base=base), rope_complex(X, per_row, base),
                                   rtol=1e-5, atol=1e-5)
    # Unbatched [T, N, H].
    np.testing.assert_allclose(rope(X[1], positions, base=10000.0),
                               rope_complex(X[1], positions, 10000.0), rtol=1e-5, atol=1e-5)


def test_rope_scores_depend_only_on_the_offset():
    q, k = X[0, :1], X[1, :1]  # one position each, N=3 heads, H=8

    @jax.jit
    def score(m, n):  # [N]: the score of every head between q at m and k at n
        return jnp.einsum("nh,nh->n", apply_rope(q, m[None])[0], apply_rope(k, n[None])[0])

    def at(m, n):
        return np.asarray(score(jnp.int32(m), jnp.int32(n)))

    for m, n, c in [(0, 0, 5), (4, 1, 3), (1, 6, 11), (9, 2, 40)]:
        np.testing.assert_allclose(at(m + c, n + c), at(m, n), rtol=1e-4, atol=1e-4)
    # ... and on its sign: three places before is not three places after (the sinusoid
    # product PE_m . PE_n is symmetric in m - n and cannot tell these apart).
    assert np.abs(at(5, 2) - at(2, 5)).max() > 1e-2
    # At equal positions the rotations cancel: the plain dot product of the unrotated vectors.
    np.testing.assert_allclose(at(6, 6), np.einsum("nh,nh->n", q[0], k[0]), rtol=1e-4,
                               atol=1e-4)


def test_rope_keeps_norms_and_dtype_and_position_zero():
    y = apply_rope(X, jnp.arange(5) * 13)
    np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(X, axis=-1),
                               rtol=1e-5)
    np.testing.assert_allclose(y[:, 0], X[:, 0], rtol=1e-6)  # angle 0: the identity
    assert not np.allclose(y[:, 1:], X[:, 1:])
    low = apply_rope(X.astype(jnp.bfloat16), jnp.arange(5))
    assert low.dtype == jnp.bfloat16
    np.testing.assert_allclose(low.astype(jnp.float32), apply_rope(X, jnp.arange(5)), atol=0.05)


def test_rotary_embedding_module():
    rope = RotaryEmbedding(head_dim=8, base=50.0)
    np.testing.assert_array_equal(rope.rotate(X, jnp.arange(5)),
                                  apply_rope(X, jnp.arange(5), base=50.0))
    # As a process_heads hook: queries and keys rotated at their own positions, values kept.
    key = X[:, :4, :1] * 2.0  # [B, S=4, K=1, H]
    value = X[:, :4, :1, :3]  # Hv = 3, not rotated
    query_positions, key_positions = jnp.arange(5) + 2, jnp.arange(4)
    q, k, v = rope(X, key, value, query_positions, key_positions)
    np.testing.assert_array_equal(q, apply_rope(X, query_positions, base=50.0))
    np.testing.assert_array_equal(k, apply_rope(key, key_positions, base=50.0))
    np.testing.assert_array_equal(v, value)
    assert jax.tree.leaves(nnx.state(rope, nnx.Param)) == []  # nothing to train


@pytest.mark.outside_annotations
def test_rope_errors():
    x = jnp.ones((2, 5, 3, 4))
    with pytest.raises(ValueError, match=r"head dim H must be even; x has shape \[2, 5, 3, 5\]"):
        apply_rope(jnp.ones((2, 5, 3, 5)), jnp.arange(5))
    with pytest.raises(ValueError, match=r"base must be in \(0, inf\), got 0.0"):
        apply_rope(x, jnp.arange(5), base=0.0)
    with pytest.raises(ValueError, match=r"base must be in \(0, inf\), got -2.0"):
        RotaryEmbedding(4, base=-2.0)
    with pytest.raises(TypeError, match="positions must have an integer dtype"):
        apply_rope(x, jnp.arange(5.0))
    with pytest.raises(ValueError, match=r"positions must give one position per row of x, "
                                         r"\[T\] = \[5\] or \[\*B, T\] = \[2, 5\] .* got \[4\]"):
        apply_rope(x, jnp.arange(4))
    with pytest.raises(ValueError, match=r"got \[3, 5\]"):
        apply_rope(x, jnp.zeros((3, 5), jnp.int32))
    with pytest.raises(ValueError, match=r"x must have shape \[\*B, T, N, H\]"):
        apply_rope(jnp.ones((5, 4)), jnp.arange(5))
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        apply_rope(jnp.ones((5, 1, 4), jnp.int32), jnp.arange(5))
    with pytest.raises(ValueError, match="head_dim must be even, got 5"):
        RotaryEmbedding(5)
    with pytest.raises(ValueError, match=r"x has head dim 4 \(shape \[2, 5, 3, 4\]\) but this "
                                         "RotaryEmbedding was built with head_dim=6"):
        RotaryEmbedding(6)(x, x, x, jnp.arange(5), jnp.arange(5))


# ------------------------------------------------------------------ ALiBi (Press et al. 2022)


def test_alibi_slopes_are_the_papers():
    # Section 3: "for 8 heads, the slopes are 1/2^1, 1/2^2, ..., 1/2^8"; for 16 heads, those
    # 8 slopes interpolated by geometric means of consecutive pairs: 1/2^0.5, 1/2^1, ...
    np.testing.assert_allclose(alibi_slopes(8), [2.0 ** -k for k in range(1, 9)], rtol=1e-6)
    np.testing.assert_allclose(alibi_slopes(16), [2.0 ** (-k / 2) for k in range(1, 17)],
                               rtol=1e-6)
    np.testing.assert_allclose(alibi_slopes(4), [2.0 ** -(2 * k) for k in range(1, 5)],
                               rtol=1e-6)
    assert alibi_slopes(8).dtype == jnp.float32 and alibi_slopes(8).shape == (8,)


def test_alibi_slopes_for_other_head_counts():
    # Not a power of 2: the slopes of the closest lower power of 2, then every other slope of
    # the next power of 2. 6 heads: the 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8, then the 1st and
    # 3rd of the 8-head slopes, 2^-1 and 2^-3.
    np.testing.assert_allclose(alibi_slopes(6), [2.0 ** -k for k in (2, 4, 6, 8, 1, 3)],
                               rtol=1e-6)
    # 12 heads: the 8-head slopes 2^-1 .. 2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5 (the 1st,
    # 3rd, 5th and 7th of the 16-head slopes).
    expected = [2.0 ** -k for k in range(1, 9)] + [2.0 ** -k for k in (0.5, 1.5, 2.5, 3.5)]
    np.testing.assert_allclose(alibi_slopes(12), expected, rtol=1e-6)
    np.testing.assert_allclose(alibi_slopes(1), [2.0 ** -8], rtol=1e-6)


def test_alibi_bias_against_numpy():
    slopes = jnp.array([0.5, 0.25, 0.125, 0.1, 0.03])  # N=5
    query_positions, key_positions = 4 + jnp.arange(3), jnp.arange(7)  # T=3 (offset), S=7
    expected = np.zeros((5, 3, 7))
    for n in range(5):
        for t in range(3):
            for s in range(7):
                expected[n, t, s] = -float(slopes[n]) * abs(int(query_positions[t]) - s)
    np.testing.assert_allclose(alibi_bias(slopes, query_positions, key_positions), expected,
                               rtol=1e-6)
    jitted = jax.jit(alibi_bias)(slopes, query_positions, key_positions)
    np.testing.assert_allclose(jitted, expected, rtol=1e-6)
    module = ALiBi(num_heads=5)(query_positions, key_positions)
    np.testing.assert_allclose(
        module, alibi_bias(alibi_slopes(5), query_positions, key_positions), rtol=1e-6
    )


@pytest.mark.outside_annotations
def test_alibi_errors():
    with pytest.raises(ValueError, match="num_heads must be a positive int, got 0"):
        alibi_slopes(0)
    with pytest.raises(TypeError, match=r"num_heads must be a positive int, got 2.0"):
        ALiBi(2.0)
    with pytest.raises(TypeError, match="query_positions must have an integer dtype"):
        alibi_bias(jnp.ones(2), jnp.arange(3.0), jnp.arange(3))
    with pytest.raises(ValueError, match=r"key_positions must have 1 dimension \[S\]"):
        alibi_bias(jnp.ones(2), jnp.arange(3), jnp.zeros((1, 3), jnp.int32))
    with pytest.raises(TypeError, match="slopes must have a floating dtype"):
        alibi_bias(jnp.ones(2, jnp.int32), jnp.arange(3), jnp.arange(3))


def test_llama3_frequencies_keep_short_stretch_long_and_mix_between():
    theta = np.array([1.0, 0.25, 0.05, 0.001])  # wavelengths 6.3, 25, 126, 6283
    factor, low, high, context = 8.0, 1.0, 4.0, 64.0  # long above 64, short below 16
    scaled = llama3_frequencies(theta, factor, low, high, context)
    smooth = (context / (2 * np.pi / 0.25) - low) / (high - low)
    expected = [1.0, (1 - smooth) * 0.25 / factor + smooth * 0.25, 0.05 / 8, 0.001 / 8]
    np.testing.assert_allclose(scaled, expected, rtol=1e-12)


def test_rotary_embedding_with_llama3_scaling_rotates_by_the_scaled_frequencies():
    H, base, scaling = 8, 300.0, (4.0, 1.0, 4.0, 16.0)
    x = jax.random.normal(jax.random.key(3), (2, 5, 3, H))
    positions = jnp.arange(5)
    theta = llama3_frequencies(np.power(base, -np.arange(0, H, 2) / H), *scaling)
    angle = np.asarray(positions, np.float64)[:, None] * theta[None]  # [T, H/2]
    pairs = np.asarray(x, np.float64).reshape(2, 5, 3, H // 2, 2)
    cos, sin = np.cos(angle)[None, :, None], np.sin(angle)[None, :, None]
    expected = np.stack([pairs[..., 0] * cos - pairs[..., 1] * sin,
                         pairs[..., 0] * sin + pairs[..., 1] * cos], axis=-1).reshape(x.shape)
    rope = RotaryEmbedding(H, base, scaling)
    np.testing.assert_allclose(rope.rotate(x, positions), expected, atol=1e-5)
    assert not np.allclose(apply_rope(x, positions, base=base), expected, atol=1e-3)
