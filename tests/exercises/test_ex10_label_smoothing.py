"""Exercise 10's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex10_label_smoothing.py)."""


import jax
import jax.numpy as jnp

from attention import exercises

from ._helpers import fails


def _loss(*, mask_pad=True, smooth="paper", naive=False, mean=True, fixed_eps=None,
          fixed_pad=None):
    def label_smoothed_loss(logits, targets, label_smoothing=0.1, pad_id=0):
        V = logits.shape[-1]
        eps = label_smoothing if fixed_eps is None else fixed_eps
        pad_id = pad_id if fixed_pad is None else fixed_pad
        if naive:
            log_p = jnp.log(jnp.exp(logits) / jnp.sum(jnp.exp(logits), -1, keepdims=True))
        else:
            log_p = jax.nn.log_softmax(logits, axis=-1)
        onehot = jax.nn.one_hot(targets, V)
        q = {
            "paper": (1 - eps) * onehot + eps / V,
            "none": onehot,
            "v-1": (1 - eps) * onehot + eps / (V - 1) * (1 - onehot),
            "v-1 on all": (1 - eps) * onehot + eps / (V - 1),
            "v on wrong": (1 - eps) * onehot + eps / V * (1 - onehot),
        }[smooth]
        loss = -jnp.sum(q * log_p, axis=-1)
        real = (targets != pad_id) if mask_pad else jnp.ones(targets.shape, bool)
        total = jnp.sum(jnp.where(real, loss, 0.0))
        return total / jnp.sum(real) if mean else total

    return label_smoothed_loss


def test_label_smoothing_mistakes():
    check = exercises.check_label_smoothing
    assert check(_loss()).passed
    fails(check(_loss(mask_pad=False)), "includes the padding positions")
    fails(check(_loss(smooth="none")), "ignores label_smoothing")
    fails(check(_loss(mean=False)), "sum over the", "expected their mean")
    fails(check(_loss(naive=True)), "for large logits", "jax.nn.log_softmax")


def test_fairseq_convention_is_accepted_with_a_note():
    """eps / (V - 1) on the wrong words (fairseq) passes, and the message names the convention;
    the same convention with a mistake still fails on that mistake."""
    check = exercises.check_label_smoothing
    result = check(_loss(smooth="v-1"))
    assert result.passed, result
    assert "fairseq's convention" in result.message and "eps / (V - 1)" in result.message
    assert "fairseq" not in check(_loss()).message
    fails(check(_loss(smooth="v-1", naive=True)), "for large logits")
    fails(check(_loss(smooth="v-1", mask_pad=False)))


def test_a_loss_that_fixes_its_arguments_fails_and_is_told_which():
    """The issue's hard-coded solution (0.9 onehot + 0.1 / V, targets != 0) and each half."""
    check = exercises.check_label_smoothing
    fails(check(_loss(fixed_eps=0.1, fixed_pad=0)), "reads neither argument",
          "label_smoothing=0.25", "pad_id=3")
    fails(check(_loss(fixed_eps=0.1)), "uses label_smoothing=0.1 whatever it is given")
    fails(check(_loss(fixed_pad=0)), "treats id 0 as padding, but pad_id=3")


def test_mixed_conventions_are_named():
    check = exercises.check_label_smoothing
    fails(check(_loss(smooth="v-1 on all")), "mixed the two conventions", "sums to more than 1")
    fails(check(_loss(smooth="v on wrong")), "mixed the two conventions", "sums to less than 1")
