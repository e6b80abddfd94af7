"""Step 20: the training loss, cross-entropy with label smoothing (Vaswani et al. 2017, 5.4).

Label smoothing with epsilon_ls replaces the one-hot target by

    q(v) = (1 - epsilon_ls) * [v == target] + epsilon_ls / V

so the model is asked to keep a little probability on every word. The paper (epsilon_ls =
0.1) notes that this "hurts perplexity, as the model learns to be more unsure, but improves
accuracy and BLEU score". The loss is the cross-entropy H(q, p) = -sum_v q(v) log p(v),
averaged over real (non-padding) target tokens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from attention._checks import check_logits_targets, check_loss_args, check_projected_loss_args


def label_smoothed_cross_entropy(
    logits: Float[Array, "B T V"],
    targets: Int[Array, "B T"],
    *,
    label_smoothing: float = 0.1,
    pad_id: int = 0,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Summed label-smoothed cross-entropy over non-padding targets, and their count.

    Formula, with p = softmax(logits) and q the smoothed target above::

        loss = sum_{b, t: targets[b, t] != pad_id} -sum_v q_{b,t}(v) log p_{b,t}(v)

    Returning the sum and the count (not their ratio) lets a caller average over a whole
    global batch, whatever way it is split across devices or accumulation steps.

    Args:
      logits: ``[B, T, V]``, any float dtype (the loss is computed in float32).
      targets: ``[B, T]`` integer ids; ``pad_id`` positions are ignored.
      label_smoothing: epsilon_ls in [0, 1).
      pad_id: the padding id.

    Returns:
      ``(loss_sum, num_tokens)``, both float32 scalars.

    Raises:
      TypeError: non-float logits, non-integer targets, a ``label_smoothing`` that is not a
        number, a ``pad_id`` that is not an int.
      ValueError: logits not ``[B, T, V]``, shapes that disagree, ``label_smoothing``
        outside [0, 1).

    >>> import jax.numpy as jnp
    >>> loss_sum, tokens = label_smoothed_cross_entropy(jnp.zeros((1, 2, 4)), jnp.array([[3, 0]]))
    >>> round(float(loss_sum), 4), float(tokens)  # uniform over V = 4: log 4 for one token
    (1.3863, 1.0)
    """
    label_smoothing = check_loss_args(logits, targets, pad_id, label_smoothing)
    log_probs_BTV = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    target_log_prob_BT = jnp.take_along_axis(log_probs_BTV, targets[..., None], axis=-1)[..., 0]
    mean_log_prob_BT = jnp.mean(log_probs_BTV, axis=-1)
    # -sum_v q(v) log p(v) with q = (1 - eps) onehot + eps / V, written without forming q.
    loss_BT = -(1.0 - label_smoothing) * target_log_prob_BT - label_smoothing * mean_log_prob_BT
    real_BT = (targets != pad_id).astype(jnp.float32)
    return jnp.sum(loss_BT * real_BT), jnp.sum(real_BT)


def label_smoothed_cross_entropy_reference(
    logits: Float[Array, "B T V"],
    targets: Int[Array, "B T"],
    *,
    label_smoothing: float = 0.1,
    pad_id: int = 0,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """:func:`label_smoothed_cross_entropy` written out step by step (notebook 07).

    Forms the smoothed target distribution ``q [B, T, V]`` explicitly, takes the
    cross-entropy ``-sum_v q(v) log p(v)`` at every position, and sums it over the positions
    whose target is not ``pad_id``. The fast version never forms ``q``; the two agree (tests).

    Returns:
      ``(loss_sum, num_tokens)``, both float32 scalars.

    Raises:
      as :func:`label_smoothed_cross_entropy`.

    >>> import jax.numpy as jnp
    >>> logits = jnp.zeros((1, 2, 4))  # uniform predictions over V = 4 words
    >>> loss_sum, tokens = label_smoothed_cross_entropy_reference(logits, jnp.array([[3, 0]]))
    >>> round(float(loss_sum), 4), float(tokens)  # one real token, loss log 4
    (1.3863, 1.0)
    """
    label_smoothing = check_loss_args(logits, targets, pad_id, label_smoothing)
    V = logits.shape[-1]
    log_probs_BTV = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # log p(v)
    one_hot_BTV = jax.nn.one_hot(targets, V, dtype=jnp.float32)
    q_BTV = (1.0 - label_smoothing) * one_hot_BTV + label_smoothing / V   # smoothed target
    loss_BT = -jnp.sum(q_BTV * log_probs_BTV, axis=-1)                     # H(q, p) per token
    real_BT = (targets != pad_id).astype(jnp.float32)                      # 0 at padding
    return jnp.sum(loss_BT * real_BT), jnp.sum(real_BT)


def token_accuracy(
    logits: Float[Array, "B T V"], targets: Int[Array, "B T"], *, pad_id: int = 0
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Number of non-padding positions whose argmax equals the target, and their count."""
    check_logits_targets(logits, targets, pad_id)
    real_BT = targets != pad_id
    correct = jnp.sum((jnp.argmax(logits, axis=-1) == targets) & real_BT)
    return correct.astype(jnp.float32), jnp.sum(real_BT).astype(jnp.float32)


def projected_cross_entropy(
    hidden: Float[Array, "B T D"],
    weight: Float[Array, "V D"],
    targets: Int[Array, "B T"],
    *,
    label_smoothing: float = 0.1,
    pad_id: int = 0,
    chunk_tokens: int = 512,
    matmul_dtype=None,
) -> dict[str, Float[Array, ""]]:
    """The output projection and the loss together, ``chunk_tokens`` positions at a time.

    Computes ``label_smoothed_cross_entropy(hidden @ weight.T, targets)``, plus the plain
    cross-entropy and the argmax accuracy, without holding the ``[B, T, V]`` logits: each
    chunk's logits live inside one step of a loop and the backward recomputes them
    (``jax.checkpoint``). Why: they are a step's largest array (4096 tokens x 8000 words =
    131 MB in float32; ``benchmarks/train_throughput.py --breakdown``).

    Args:
      hidden: ``[B, T, D]`` decoder outputs (the last layer, after its norm).
      weight: ``[V, D]`` output projection: the (tied) embedding matrix, or the transposed
        output kernel.
      targets: ``[B, T]`` integer ids; ``pad_id`` positions are ignored.
      label_smoothing, pad_id: as :func:`label_smoothed_cross_entropy`.
      chunk_tokens: positions per chunk (a positive int).
      matmul_dtype: the dtype of the projection's inputs (bfloat16 in mixed precision,
        :mod:`attention.model.precision`); the logits are summed and normalised in float32.
        None: as given.

    Returns:
      ``{"loss_sum", "nll_sum", "correct", "tokens"}``: float32 scalars, sums over the
      non-padding positions of the label-smoothed loss, the plain cross-entropy, the argmax
      hits, and their count.

    Raises:
      TypeError, ValueError: as :func:`label_smoothed_cross_entropy`; ``hidden`` and
        ``weight`` that are not ``[B, T, D]`` and ``[V, D]`` or disagree on D; a
        ``chunk_tokens`` that is not a positive int.

    >>> import jax, jax.numpy as jnp
    >>> h = jax.random.normal(jax.random.key(0), (2, 3, 4))
    >>> w = jax.random.normal(jax.random.key(1), (7, 4))
    >>> t = jnp.array([[1, 2, 0], [3, 4, 5]])
    >>> direct, _ = label_smoothed_cross_entropy(h @ w.T, t)
    >>> chunked = projected_cross_entropy(h, w, t, chunk_tokens=4)["loss_sum"]
    >>> bool(jnp.allclose(direct, chunked, rtol=1e-6))
    True
    """
    label_smoothing, chunk_tokens = check_projected_loss_args(
        hidden, weight, targets, pad_id, label_smoothing, chunk_tokens)
    D = hidden.shape[-1]
    hidden_ND, targets_N = hidden.reshape(-1, D), targets.reshape(-1)
    chunk = min(chunk_tokens, hidden_ND.shape[0])
    padded = -(-hidden_ND.shape[0] // chunk) * chunk
    extra = padded - hidden_ND.shape[0]  # padding positions, ignored like pad_id targets
    hidden_KCD = jnp.pad(hidden_ND, ((0, extra), (0, 0))).reshape(-1, chunk, D)
    targets_KC = jnp.pad(targets_N, (0, extra), constant_values=pad_id).reshape(-1, chunk)
    accumulate = jnp.promote_types(jnp.result_type(hidden, weight), jnp.float32)
    if matmul_dtype is not None:  # cast once, not once per chunk
        hidden_KCD, weight = hidden_KCD.astype(matmul_dtype), weight.astype(matmul_dtype)

    @jax.checkpoint  # the backward recomputes this chunk's logits rather than storing them
    def chunk_sums(hidden_CD, targets_C):
        logits_CV = jnp.einsum("CD,VD->CV", hidden_CD, weight,
                               preferred_element_type=accumulate)
        log_probs_CV = jax.nn.log_softmax(logits_CV, axis=-1)
        target_log_prob_C = jnp.take_along_axis(log_probs_CV, targets_C[:, None], axis=-1)[:, 0]
        loss_C = (-(1.0 - label_smoothing) * target_log_prob_C
                  - label_smoothing * jnp.mean(log_probs_CV, axis=-1))
        real_C = (targets_C != pad_id).astype(jnp.float32)
        hits_C = (jnp.argmax(logits_CV, axis=-1) == targets_C).astype(jnp.float32)
        return jnp.stack([jnp.sum(loss_C * real_C),
                          jax.lax.stop_gradient(jnp.sum(-target_log_prob_C * real_C)),
                          jax.lax.stop_gradient(jnp.sum(hits_C * real_C)),
                          jnp.sum(real_C)])

    sums = jnp.sum(jax.lax.map(lambda args: chunk_sums(*args), (hidden_KCD, targets_KC)), 0)
    return dict(zip(("loss_sum", "nll_sum", "correct", "tokens"), sums, strict=True))
