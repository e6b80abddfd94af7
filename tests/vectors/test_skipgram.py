"""Tests for attention/vectors/skipgram.py: the loss and its gradients, and the paper's sampling
formulas (noise distribution, subsampling, windows)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention import vectors as wv


def _loss_numpy(center, context, negatives):
    """Mikolov et al. (2013), eq. 4, written out: -log s(u_o . v_c) - sum log s(-u_k . v_c)."""
    def log_sigmoid(x):
        return -np.log1p(np.exp(-x))

    positive = np.sum(center * context, axis=1)
    negative = np.sum(center[:, None, :] * negatives, axis=2)
    return -log_sigmoid(positive) - np.sum(log_sigmoid(-negative), axis=1)


def test_loss_matches_the_formula_written_out():
    rng = np.random.default_rng(0)
    B, k, D = 3, 5, 7
    center, context = rng.normal(size=(B, D)), rng.normal(size=(B, D))
    negatives = rng.normal(size=(B, k, D))
    got = wv.skipgram_loss(*(jnp.asarray(x, jnp.float32) for x in (center, context, negatives)))
    assert got.shape == (B,)
    np.testing.assert_allclose(got, _loss_numpy(center, context, negatives), rtol=1e-5)


def test_loss_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    B, k, D = 2, 3, 5
    with jax.enable_x64(True):
        args = [jnp.asarray(rng.normal(size=s), jnp.float64) for s in ((B, D), (B, D), (B, k, D))]

        def total(*xs):
            return jnp.sum(wv.skipgram_loss(*xs))

        grads = jax.grad(total, argnums=(0, 1, 2))(*args)
        h = 1e-6
        for which, (x, g) in enumerate(zip(args, grads, strict=True)):
            flat = np.asarray(x).ravel()
            numeric = np.empty_like(flat)
            for i in range(flat.size):
                step = np.zeros_like(flat)
                step[i] = h
                plus, minus = list(args), list(args)
                plus[which] = jnp.asarray((flat + step).reshape(x.shape))
                minus[which] = jnp.asarray((flat - step).reshape(x.shape))
                numeric[i] = (float(total(*plus)) - float(total(*minus))) / (2 * h)
            np.testing.assert_allclose(np.asarray(g).ravel(), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.outside_annotations
def test_loss_rejects_shapes_that_disagree():
    with pytest.raises(ValueError, match=r"got \[2, 3\], \[2, 4\] and \[2, 5, 3\]"):
        wv.skipgram_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)), jnp.zeros((2, 5, 3)))


def test_noise_distribution_is_unigram_to_the_three_quarters():
    counts = np.array([7, 2, 11, 3, 5])
    weights = np.array([c ** 0.75 for c in counts.tolist()])
    np.testing.assert_allclose(wv.noise_distribution(counts), weights / weights.sum())
    np.testing.assert_allclose(wv.noise_distribution(counts, power=1.0), counts / counts.sum())
    assert math.isclose(wv.noise_distribution(counts).sum(), 1.0)
    with pytest.raises(ValueError, match="positive counts"):
        wv.noise_distribution(np.array([3, 0, 2]))


def test_keep_probabilities_follow_the_papers_formula():
    counts = np.array([500, 120, 30, 7, 1])
    t = 0.02
    frequency = counts / counts.sum()
    discard = [1 - math.sqrt(t / f) if f > t else 0.0 for f in frequency.tolist()]
    np.testing.assert_allclose(wv.keep_probabilities(counts, t), 1 - np.array(discard))
    with pytest.raises(ValueError, match=r"threshold must be in \(0, inf\), got 0.0"):
        wv.keep_probabilities(counts, 0.0)


def test_pairs_are_the_window_within_each_sentence():
    sentences = [np.array([0, 1, 2]), np.array([3, 4])]
    keep = np.ones(5)
    centers, contexts = wv.skipgram_pairs(sentences, keep, window=1, rng=np.random.default_rng(0))
    got = sorted(zip(centers.tolist(), contexts.tolist(), strict=True))
    assert got == [(0, 1), (1, 0), (1, 2), (2, 1), (3, 4), (4, 3)]  # never (2, 3) across
    # Subsampling: a word kept with probability 0 never appears in a pair.
    keep[1] = 0.0
    centers, contexts = wv.skipgram_pairs(sentences, keep, window=2, rng=np.random.default_rng(0))
    assert 1 not in set(centers.tolist()) | set(contexts.tolist())
    assert (0, 2) in set(zip(centers.tolist(), contexts.tolist(), strict=True))  # 1 removed first
