import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention.training.loss import (
    label_smoothed_cross_entropy,
    projected_cross_entropy,
    token_accuracy,
)

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


@pytest.mark.outside_annotations
def test_loss_errors_name_the_problem():
    logits = jnp.zeros((B, T, V))
    with pytest.raises(ValueError, match=r"logits \[B, T, V\] = \[3, 5, 7\] and targets"):
        label_smoothed_cross_entropy(logits, jnp.zeros((B, T + 1), jnp.int32))
    with pytest.raises(TypeError, match=r"targets must have an integer dtype.*float32"):
        label_smoothed_cross_entropy(logits, jnp.zeros((B, T)))
    with pytest.raises(TypeError, match=r"targets must be an integer array, got list"):
        label_smoothed_cross_entropy(logits, [[0] * T] * B)
    with pytest.raises(ValueError, match=r"logits must have 3 dimensions \[B, T, V\]"):
        label_smoothed_cross_entropy(logits[0], jnp.zeros((B, T), jnp.int32))
    targets = jnp.zeros((B, T), jnp.int32)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\), got 1.0"):
        label_smoothed_cross_entropy(logits, targets, label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\), got nan"):
        label_smoothed_cross_entropy(logits, targets, label_smoothing=float("nan"))
    with pytest.raises(TypeError, match=r"label_smoothing must be a number, got '0.1' \(str\)"):
        label_smoothed_cross_entropy(logits, targets, label_smoothing="0.1")
    with pytest.raises(TypeError, match=r"pad_id must be an int .*got 0.0 \(float\)"):
        token_accuracy(logits, targets, pad_id=0.0)


D = 4


def _projection_inputs(seed=0):
    kh, kw, kt = jax.random.split(jax.random.key(seed), 3)
    hidden = jax.random.normal(kh, (B, T, D))
    weight = 2 * jax.random.normal(kw, (V, D))
    targets = np.array(jax.random.randint(kt, (B, T), 1, V))
    targets[0, 3:] = 0  # padding
    targets[2, 1:] = 0
    return hidden, weight, jnp.asarray(targets)


# chunk 4 does not divide B*T = 15 (the last chunk is padded); 15 is one chunk; 1 is per token.
@pytest.mark.parametrize("chunk", [1, 4, 15, 64])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_projected_cross_entropy_equals_logits_then_loss(chunk, eps):
    hidden, weight, targets = _projection_inputs()
    sums = jax.jit(lambda h, w: projected_cross_entropy(
        h, w, targets, label_smoothing=eps, chunk_tokens=chunk))(hidden, weight)
    logits = hidden @ weight.T
    expected_sum, expected_count = _direct_loss(logits, np.asarray(targets), eps, 0)
    expected_nll, _ = _direct_loss(logits, np.asarray(targets), 0.0, 0)
    expected_correct, _ = token_accuracy(logits, targets)
    np.testing.assert_allclose(float(sums["loss_sum"]), expected_sum, rtol=1e-5)
    np.testing.assert_allclose(float(sums["nll_sum"]), expected_nll, rtol=1e-5)
    assert float(sums["correct"]) == float(expected_correct)
    assert float(sums["tokens"]) == expected_count

    def chunked(h, w):
        return projected_cross_entropy(h, w, targets, label_smoothing=eps,
                                       chunk_tokens=chunk)["loss_sum"]

    def direct(h, w):
        return label_smoothed_cross_entropy(h @ w.T, targets, label_smoothing=eps)[0]

    grads = jax.jit(jax.grad(chunked, argnums=(0, 1)))(hidden, weight)
    expected_grads = jax.grad(direct, argnums=(0, 1))(hidden, weight)
    for got, want in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5, rtol=1e-5)


def test_projected_cross_entropy_never_holds_all_logits():
    """XLA's own account of the compiled gradient: its temporary memory grows with the chunk,
    not with B x T x V (here 64 x 32 x 4000 float32 logits would be 33 MB)."""
    hidden = jax.ShapeDtypeStruct((64, 32, 16), jnp.float32)
    weight = jax.ShapeDtypeStruct((4000, 16), jnp.float32)
    targets = jax.ShapeDtypeStruct((64, 32), jnp.int32)

    def temp_bytes(f):
        grad = jax.grad(f, argnums=(0, 1))
        analysis = jax.jit(grad).lower(hidden, weight, targets).compile().memory_analysis()
        if analysis is None:
            pytest.skip("this backend reports no memory analysis")
        return analysis.temp_size_in_bytes

    logits_bytes = 64 * 32 * 4000 * 4
    chunked = temp_bytes(lambda h, w, t: projected_cross_entropy(h, w, t, chunk_tokens=128)[
        "loss_sum"])
    direct = temp_bytes(lambda h, w, t: label_smoothed_cross_entropy(h @ w.T, t)[0])
    assert direct >= logits_bytes
    assert chunked < logits_bytes / 4


@pytest.mark.outside_annotations
def test_projected_cross_entropy_errors_name_the_problem():
    hidden, weight, targets = _projection_inputs()
    with pytest.raises(ValueError, match=r"hidden \[B, T, D\] = \[3, 5, 4\] and weight \[V, D\] "
                                         r"= \[7, 3\]"):
        projected_cross_entropy(hidden, weight[:, :3], targets)
    with pytest.raises(ValueError, match=r"hidden \[B, T, D\] = \[3, 5, 4\] and targets"):
        projected_cross_entropy(hidden, weight, targets[:, :2])
    with pytest.raises(ValueError, match=r"weight must have 2 dimensions \[V, D\]"):
        projected_cross_entropy(hidden, weight[None], targets)
    with pytest.raises(TypeError, match=r"targets must have an integer dtype.*float32"):
        projected_cross_entropy(hidden, weight, targets.astype(jnp.float32))
    with pytest.raises(ValueError, match="chunk_tokens must be a positive int, got 0"):
        projected_cross_entropy(hidden, weight, targets, chunk_tokens=0)
    with pytest.raises(TypeError, match=r"chunk_tokens must be a positive int, got 4.0 \(float\)"):
        projected_cross_entropy(hidden, weight, targets, chunk_tokens=4.0)
    with pytest.raises(TypeError, match=r"chunk_tokens must be a positive int, got True \(bool\)"):
        projected_cross_entropy(hidden, weight, targets, chunk_tokens=True)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("jit", [False, True])
def test_written_out_reference_matches_optax_and_the_fast_loss(eps, jit):
    import optax

    from attention.training.loss import label_smoothed_cross_entropy_reference

    logits = jax.random.normal(jax.random.key(3), (3, 5, 7)) * 2.0
    targets = jnp.array([[1, 2, 3, 0, 0], [4, 5, 6, 1, 2], [6, 0, 0, 0, 0]])
    reference = label_smoothed_cross_entropy_reference
    if jit:
        reference = jax.jit(reference, static_argnames=("label_smoothing", "pad_id"))
    loss_sum, tokens = reference(logits, targets, label_smoothing=eps, pad_id=0)
    # optax: cross-entropy against optax.smooth_labels ((1 - eps) one-hot + eps / V), masked.
    smoothed = optax.smooth_labels(jax.nn.one_hot(targets, 7), eps)
    per_token = np.asarray(optax.softmax_cross_entropy(logits, smoothed))
    real = np.asarray(targets) != 0
    np.testing.assert_allclose(loss_sum, per_token[real].sum(), rtol=1e-5)
    assert float(tokens) == real.sum()
    fast_sum, fast_tokens = label_smoothed_cross_entropy(logits, targets, label_smoothing=eps)
    np.testing.assert_allclose(loss_sum, fast_sum, rtol=1e-5)
    assert float(fast_tokens) == float(tokens)
