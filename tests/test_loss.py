import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention.loss import label_smoothed_cross_entropy, token_accuracy

B, T, V = 3, 5, 7


def _direct_loss(logits, targets, eps, pad_id):
    """Cross-entropy against an explicitly built smoothed distribution, in float64 NumPy."""
    logits = np.asarray(logits, np.float64)
    log_p = logits - logits.max(-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
    total, count = 0.0, 0
    for b in range(targets.shape[0]):
        for t in range(targets.shape[1]):
            if targets[b, t] == pad_id:
                continue
            q = np.full(V, eps / V)
            q[targets[b, t]] += 1.0 - eps
            total += -(q * log_p[b, t]).sum()
            count += 1
    return total, count


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_direct_computation(eps):
    k1, k2 = jax.random.split(jax.random.key(0))
    logits = 3 * jax.random.normal(k1, (B, T, V))
    targets = np.array(jax.random.randint(k2, (B, T), 1, V))
    targets[0, 3:] = 0  # padding
    targets[2, 1:] = 0
    loss_sum, count = label_smoothed_cross_entropy(
        logits, jnp.asarray(targets), label_smoothing=eps, pad_id=0
    )
    expected_sum, expected_count = _direct_loss(logits, targets, eps, 0)
    assert float(count) == expected_count
    np.testing.assert_allclose(float(loss_sum), expected_sum, rtol=1e-5)


def test_label_smoothing_loss_minimised_by_the_smoothed_distribution():
    # The minimiser of H(q, p) over p is p = q: its logits log q give the lowest loss.
    eps, target = 0.2, 4
    q = np.full(V, eps / V)
    q[target] += 1 - eps
    best = jnp.log(jnp.asarray(q))[None, None]
    targets = jnp.array([[target]])
    loss_best, _ = label_smoothed_cross_entropy(best, targets, label_smoothing=eps, pad_id=0)
    sharper = best.at[..., target].add(1.0)
    loss_sharper, _ = label_smoothed_cross_entropy(sharper, targets, label_smoothing=eps, pad_id=0)
    assert float(loss_best) < float(loss_sharper)


def test_loss_bfloat16_logits_are_computed_in_float32():
    logits = jax.random.normal(jax.random.key(1), (B, T, V)).astype(jnp.bfloat16)
    targets = jnp.ones((B, T), jnp.int32)
    loss, _ = label_smoothed_cross_entropy(logits, targets, label_smoothing=0.1)
    assert loss.dtype == jnp.float32
    expected, _ = label_smoothed_cross_entropy(logits.astype(jnp.float32), targets)
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-6)


def test_token_accuracy_ignores_padding():
    logits = jax.nn.one_hot(jnp.array([[1, 2, 3], [4, 4, 4]]), V)
    targets = jnp.array([[1, 5, 0], [4, 0, 0]])
    correct, count = token_accuracy(logits, targets, pad_id=0)
    assert (float(correct), float(count)) == (2.0, 3.0)


def test_loss_errors_name_the_problem():
    logits = jnp.zeros((B, T, V))
    with pytest.raises(ValueError, match=r"logits \[B, T, V\] = \[3, 5, 7\] and targets"):
        label_smoothed_cross_entropy(logits, jnp.zeros((B, T + 1), jnp.int32))
    with pytest.raises(TypeError, match="targets must be integer"):
        label_smoothed_cross_entropy(logits, jnp.zeros((B, T)))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        label_smoothed_cross_entropy(logits, jnp.zeros((B, T), jnp.int32), label_smoothing=1.0)
