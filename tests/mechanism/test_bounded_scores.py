"""Tests for attention/mechanism/bounded_scores.py (step 1a): QK-norm and soft-capping.

References: NumPy float64 from the formulas (RMS norm, layer norm over the head dim;
``cap * tanh(s / cap)``), finite differences for the soft-cap's derivative.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention import QKNorm, head_norm, soft_cap

B, T, N, H = 2, 3, 5, 7


def normal(seed, shape, scale=1.0):
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def head_norm_numpy(x, scale, kind, epsilon):
    x = np.asarray(x, np.float64)
    if kind == "layer":
        x = x - x.mean(-1, keepdims=True)
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + epsilon) * np.asarray(scale, np.float64)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("kind", ["rms", "layer"])
def test_head_norm_matches_numpy_per_head(kind, jit):
    x, scale = normal(0, (B, T, N, H), 3.0) + 1.5, normal(1, (H,))
    f = jax.jit(head_norm, static_argnames=("kind", "epsilon")) if jit else head_norm
    got = f(x, scale, kind=kind, epsilon=1e-5)
    np.testing.assert_allclose(got, head_norm_numpy(x, scale, kind, 1e-5), rtol=1e-5, atol=1e-5)
    # Each head of each position on its own: one head scaled up does not move the others.
    y = x.at[:, :, 2].multiply(100.0)
    moved = f(y, scale, kind=kind, epsilon=1e-5)
    np.testing.assert_allclose(np.delete(moved, 2, axis=2), np.delete(got, 2, axis=2),
                               rtol=1e-5, atol=1e-5)


def test_head_norm_bounds_the_scores():
    """With unit scales, |q . k| <= H however large q and k are (Cauchy-Schwarz)."""
    q, k = normal(2, (T, N, H), 1e3), normal(3, (T, N, H), 1e3)
    ones = jnp.ones(H)
    scores = jnp.einsum("TNH,SNH->NTS", head_norm(q, ones), head_norm(k, ones))
    assert float(jnp.max(jnp.abs(scores))) <= H * (1 + 1e-5)


def test_head_norm_keeps_bfloat16_and_computes_in_float32():
    x, scale = normal(4, (T, H), 4.0), normal(5, (H,))
    got = head_norm(x.astype(jnp.bfloat16), scale)
    assert got.dtype == jnp.bfloat16
    want = head_norm_numpy(np.asarray(x.astype(jnp.bfloat16), np.float64), scale, "rms", 1e-6)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(x=jnp.ones((3, 5), jnp.int32)), TypeError, "x must have a floating dtype"),
        (dict(scale=jnp.ones(4)), ValueError, r"scale must be \[H\] = \[5\]"),
        (dict(kind="l2"), ValueError, "kind must be one of"),
        (dict(epsilon=0.0), ValueError, r"epsilon must be in \(0, inf\)"),
    ],
    ids=["int_x", "scale_shape", "kind", "epsilon"],
)
@pytest.mark.outside_annotations
def test_head_norm_names_bad_arguments(kwargs, error, message):
    args = dict(x=jnp.ones((3, 5)), scale=jnp.ones(5)) | kwargs
    with pytest.raises(error, match=message):
        head_norm(args.pop("x"), args.pop("scale"), **args)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_soft_cap_matches_numpy_and_bounds(jit):
    scores = normal(6, (B, N, T, 11), 40.0)
    f = jax.jit(soft_cap, static_argnums=1) if jit else soft_cap
    got = f(scores, 5.0)
    np.testing.assert_allclose(got, 5.0 * np.tanh(np.asarray(scores, np.float64) / 5.0),
                               rtol=1e-6, atol=1e-6)
    assert float(jnp.max(jnp.abs(got))) <= 5.0
    small = normal(7, (11,), 1e-3)  # far below the cap, it changes nothing
    np.testing.assert_allclose(soft_cap(small, 50.0), small, rtol=1e-6)


def test_soft_cap_gradient_is_one_minus_tanh_squared():
    s, cap, eps = normal(8, (13,), 4.0), 3.0, 1e-3
    grad = jax.vmap(jax.grad(lambda x: soft_cap(x, cap)))(s)
    s64 = np.asarray(s, np.float64)
    finite = (cap * np.tanh((s64 + eps) / cap) - cap * np.tanh((s64 - eps) / cap)) / (2 * eps)
    np.testing.assert_allclose(grad, finite, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad, 1 - np.tanh(s64 / cap) ** 2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "cap, error",
    [(0.0, ValueError), (-2.0, ValueError), (float("inf"), ValueError),
     (float("nan"), ValueError), ("50", TypeError), (True, TypeError)],
    ids=["zero", "negative", "inf", "nan", "str", "bool"],
)
@pytest.mark.outside_annotations
def test_soft_cap_names_a_bad_cap(cap, error):
    with pytest.raises(error, match="cap must be a positive"):
        soft_cap(jnp.ones(3), cap)


def test_qk_norm_module_is_a_process_heads_hook_with_learned_scales():
    norm = QKNorm(H, kind="layer")
    assert norm.query_scale[...].shape == (H,) and bool(jnp.all(norm.key_scale[...] == 1))
    norm.query_scale[...] = normal(9, (H,))
    norm.key_scale[...] = normal(10, (H,))
    q, k, v = normal(11, (B, T, N, H)), normal(12, (B, 11, 1, H)), normal(13, (B, 11, 1, H))
    positions = jnp.arange(T), jnp.arange(11)
    q2, k2, v2 = norm(q, k, v, *positions)
    np.testing.assert_allclose(q2, head_norm_numpy(q, norm.query_scale[...], "layer", 1e-6),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(k2, head_norm_numpy(k, norm.key_scale[...], "layer", 1e-6),
                               rtol=1e-5, atol=1e-5)
    assert v2 is v
    # Its scales are parameters, which a gradient reaches.
    grads = nnx.grad(lambda m: jnp.sum(m(q, k, v)[0] * m(q, k, v)[1][:, :T].mean()))(norm)
    assert float(jnp.abs(grads.query_scale[...]).sum()) > 0


@pytest.mark.outside_annotations
def test_qk_norm_module_names_bad_arguments():
    with pytest.raises(ValueError, match="head_dim must be a positive int"):
        QKNorm(0)
    with pytest.raises(ValueError, match="kind must be one of"):
        QKNorm(4, kind="batch")
