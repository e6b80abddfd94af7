"""Exercise 10, label smoothing: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/10_label_smoothing``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attention.exercises._checking import (
    Exercise,
    Mistake,
    as_array,
    call,
    check_finite,
    check_jit_and_vmap,
    checker,
    close,
    constant_ratio,
    describe_inputs,
    match_variant,
    reject_package_function,
    shape_str,
)
from attention.exercises._shared import (
    cases,
    normal,
    seed_of,
)
from attention.training.loss import label_smoothed_cross_entropy


def _smoothed_mean(logits, targets, eps, pad_id, q_of):
    """The mean over targets != pad_id of -sum_v q(v) log softmax(logits)(v), for the target
    distribution ``q_of(onehot, eps, V)``; written out, the reference of every variant."""
    V = logits.shape[-1]
    q = q_of(jax.nn.one_hot(targets, V), eps, V)
    loss = -jnp.sum(q * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    real = targets != pad_id
    return jnp.sum(jnp.where(real, loss, 0.0)) / jnp.sum(real)


def _package_loss(logits, targets, eps, pad_id):
    total, count = label_smoothed_cross_entropy(logits, targets, label_smoothing=eps,
                                                pad_id=pad_id)
    return total / count


def _wrong_words_loss(logits, targets, eps, pad_id):
    """fairseq's convention: eps spread over the V - 1 wrong words only (written out here: the
    package implements the eps / V convention)."""
    return _smoothed_mean(logits, targets, eps, pad_id,
                          lambda onehot, e, V: (1 - e) * onehot + e / (V - 1) * (1 - onehot))


# Two conventions for where the smoothing mass eps goes; the paper (section 5.4) does not say
# which it used. tensor2tensor and the package spread eps / V over all V words (the correct one
# included); fairseq spreads eps / (V - 1) over the V - 1 wrong words. Both are accepted.
CONVENTIONS = {"all V words": _package_loss, "V - 1 wrong words": _wrong_words_loss}

CONVENTION_NOTE = (
    " Note: you spread eps / (V - 1) over the V - 1 wrong words (fairseq's convention; the "
    "correct word keeps exactly 1 - eps). The package, like tensor2tensor, spreads eps / V "
    "over all V words, so the correct word gets 1 - eps + eps / V. The paper does not say "
    "which it used; the two losses differ by a small amount that depends on V, and both are "
    "accepted."
)

# Every argument varies between cases, so that a loss that fixes eps or the padding id (or
# reads neither) cannot pass: (label_smoothing, pad_id) of each case of ``cases()``.
SETTINGS = ((0.1, 0), (0.25, 3))


def _reference_loss(logits, targets, eps, pad_id, convention="all V words"):
    return np.asarray(CONVENTIONS[convention](logits, targets, eps, pad_id))


def _targets(seed, shape, V, pad_id):
    """Random target ids other than ``pad_id``, with the last two of sequence 0 padding."""
    targets = jax.random.randint(jax.random.key(seed_of(seed + 10)), shape, 0, V - 1)
    targets = jnp.where(targets >= pad_id, targets + 1, targets)  # every id but pad_id
    return targets.at[0, -2:].set(pad_id)


@checker("label_smoothing")
def check_label_smoothing(label_smoothed_loss) -> str:
    """``label_smoothed_loss(logits [B, T, V], targets [B, T], label_smoothing, pad_id)``."""
    fn = label_smoothed_loss
    name = "label_smoothed_loss"
    reject_package_function(fn, name)
    convention = "all V words"
    for (sizes, seed), (eps, pad_id) in zip(cases(), SETTINGS, strict=True):
        B, T, V = sizes.B, sizes.T, sizes.N + sizes.H
        logits = normal(seed, (B, T, V), scale=2.0)
        targets = _targets(seed, (B, T), V, pad_id)
        inputs = {"logits": logits, "targets": targets}
        static = {"label_smoothing": eps, "pad_id": pad_id}
        expected = _reference_loss(logits, targets, eps, pad_id)
        got = as_array(call(fn, name, inputs | static), name, "loss")
        if got.shape != ():
            raise Mistake(
                f"your loss has shape {shape_str(got.shape)}; expected one number (shape []): "
                f"the mean over the real (non-padding) target tokens."
            )
        log_p = jax.nn.log_softmax(logits, axis=-1)
        onehot = jax.nn.one_hot(targets, V)
        real = (targets != pad_id).astype(jnp.float32)

        def loss_with(q, mask=real):
            return jnp.sum(-jnp.sum(q * log_p, axis=-1) * mask) / jnp.sum(mask)

        def smoothed(e):
            return (1 - e) * onehot + e / V

        count = float(real.sum())
        check_finite(got, expected, name, f"on inputs {describe_inputs(inputs)}", "")
        if close(got, expected):
            continue
        fairseq = _reference_loss(logits, targets, eps, pad_id, convention="V - 1 wrong words")
        if close(got, fairseq):  # the other convention: accepted, with a note
            convention = "V - 1 wrong words"
            expected = fairseq
            continue
        match_variant(got, [
            (
                "your loss includes the padding positions: average only over targets != "
                "pad_id (multiply each position's loss by the mask, divide by the number of "
                "real tokens).",
                lambda: loss_with(smoothed(eps), jnp.ones_like(real)),
            ),
            (
                f"your loss reads neither argument: it uses label_smoothing=0.1 and treats id "
                f"0 as padding, but this case has label_smoothing={eps:g} and pad_id={pad_id}. "
                f"Use the arguments, not fixed numbers.",
                lambda: loss_with(smoothed(0.1), (targets != 0).astype(jnp.float32))
                if (eps, pad_id) != (0.1, 0) else jnp.nan,
            ),
            (
                f"your loss treats id 0 as padding, but pad_id={pad_id} here: compare the "
                f"targets with the pad_id argument, not with a fixed number.",
                lambda: loss_with(smoothed(eps), (targets != 0).astype(jnp.float32))
                if pad_id != 0 else jnp.nan,
            ),
            (
                f"your loss uses label_smoothing=0.1 whatever it is given (here {eps:g}): "
                f"read eps from the label_smoothing argument.",
                lambda: loss_with(smoothed(0.1)) if eps != 0.1 else jnp.nan,
            ),
            (
                "you mixed the two conventions: eps / (V - 1) on all V words, so q sums to "
                "more than 1. Either spread eps / V over all V words (the package, "
                "tensor2tensor) or eps / (V - 1) over the V - 1 wrong words only (fairseq).",
                lambda: loss_with((1 - eps) * onehot + eps / (V - 1)),
            ),
            (
                "you mixed the two conventions: eps / V on the V - 1 wrong words only, so q "
                "sums to less than 1. Either spread eps / V over all V words (the package, "
                "tensor2tensor) or eps / (V - 1) over the wrong words only (fairseq).",
                lambda: loss_with((1 - eps) * onehot + eps / V * (1 - onehot)),
            ),
            (
                "your loss ignores label_smoothing: it is the plain cross-entropy. Use the "
                "smoothed target q = (1 - eps) * onehot + eps / V.",
                lambda: loss_with(onehot),
            ),
            (
                "your smoothing is the wrong way round: the correct word keeps 1 - eps of the "
                "probability (plus its share eps / V), q = (1 - eps) * onehot + eps / V.",
                lambda: loss_with(eps * onehot + (1 - eps) / V),
            ),
            (
                f"your loss is the sum over the {count:g} real tokens; expected their mean "
                f"(divide by the number of non-padding targets).",
                lambda: loss_with(smoothed(eps)) * count,
            ),
        ])
        c = constant_ratio(got, expected)
        raise Mistake(
            f"your loss is {float(got):.6g}; expected {float(expected):.6g} on inputs "
            f"{describe_inputs(inputs | static)}"
            + (f" ({c:.4g} times too large)." if c is not None else ".")
        )
    big = logits * 50.0
    big_inputs = {"logits": big, "targets": targets}
    got_big = as_array(call(fn, name, big_inputs | static), name, "loss")
    check_finite(
        got_big, _reference_loss(big, targets, eps, pad_id, convention=convention), name,
        "for large logits (around +-100)",
        "exp of a large logit overflows, and log of a softmax that underflowed to 0 is -inf: "
        "use jax.nn.log_softmax (it subtracts the maximum) rather than log(softmax(x)).",
    )
    logits2 = normal(77, logits.shape)
    check_jit_and_vmap(
        fn, name, inputs, {"logits": logits2, "targets": targets}, expected,
        _reference_loss(logits2, targets, eps, pad_id, convention=convention), static=static,
    )
    if convention == "V - 1 wrong words":
        return (
            "your loss is the label-smoothed cross-entropy with q = (1 - eps) onehot + "
            "eps / (V - 1) on the wrong words, padding ignored, no NaN for large logits, under "
            "jax.jit and jax.vmap too." + CONVENTION_NOTE
        )
    return (
        "your loss matches attention.training.loss.label_smoothed_cross_entropy (sum / count): "
        "q = (1 - eps) onehot + eps / V, padding ignored, no NaN for large logits, under "
        "jax.jit and jax.vmap too."
    )


EXERCISE = Exercise(
    name="label_smoothing",
    title="Label-smoothed cross-entropy",
    notebook="10_label_smoothing",
    names=("label_smoothed_loss",),
    check=check_label_smoothing,
    minutes=25,
)
