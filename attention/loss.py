"""Training loss: cross-entropy with label smoothing (Vaswani et al. 2017, section 5.4).

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

from attention._checks import check_floating, shape_str


def _check_logits_targets(logits, targets) -> None:
    check_floating("logits", logits)
    if not jnp.issubdtype(targets.dtype, jnp.integer):
        raise TypeError(f"targets must be integer token ids, got dtype {targets.dtype}.")
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits [B, T, V] = {shape_str(logits.shape)} and targets [B, T] = "
            f"{shape_str(targets.shape)} must agree on B and T."
        )


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
      TypeError, ValueError: non-float logits, non-integer targets, shapes that disagree,
        ``label_smoothing`` outside [0, 1).
    """
    _check_logits_targets(logits, targets)
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
    log_probs_BTV = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    target_log_prob_BT = jnp.take_along_axis(log_probs_BTV, targets[..., None], axis=-1)[..., 0]
    mean_log_prob_BT = jnp.mean(log_probs_BTV, axis=-1)
    # -sum_v q(v) log p(v) with q = (1 - eps) onehot + eps / V, written without forming q.
    loss_BT = -(1.0 - label_smoothing) * target_log_prob_BT - label_smoothing * mean_log_prob_BT
    real_BT = (targets != pad_id).astype(jnp.float32)
    return jnp.sum(loss_BT * real_BT), jnp.sum(real_BT)


def token_accuracy(
    logits: Float[Array, "B T V"], targets: Int[Array, "B T"], *, pad_id: int = 0
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Number of non-padding positions whose argmax equals the target, and their count."""
    _check_logits_targets(logits, targets)
    real_BT = targets != pad_id
    correct = jnp.sum((jnp.argmax(logits, axis=-1) == targets) & real_BT)
    return correct.astype(jnp.float32), jnp.sum(real_BT).astype(jnp.float32)
