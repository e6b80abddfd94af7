"""Exercise 03, masking: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/03_masking``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import attention as ref
from attention.exercises._checking import (
    Exercise,
    Mistake,
    as_array,
    call,
    check_finite,
    check_jit_and_vmap,
    check_shape,
    checker,
    close,
    compare,
    describe_inputs,
    match_variant,
    reject_package_function,
    shape_str,
)
from attention.exercises._shared import (
    cases,
    check_boolean,
    masked_softmax_reference,
    normal,
    seed_of,
)

BOTTOM_RIGHT_NOTE = (
    " Note: your causal mask is aligned to the bottom-right corner (query t may attend keys "
    "s <= t + S - T): the queries are taken to be the last T of the S positions, the "
    "convention of FlashAttention >= 2.1 and PyTorch's causal_lower_right, and the one a "
    "decoder with a key/value cache needs. The package and jax.nn.dot_product_attention("
    "is_causal=True) align to the top-left (s <= t, counting both from the first position). "
    "The two agree when T == S; when T > S your first T - S queries see no key at all. Both "
    "are accepted here; say which one you mean when T != S."
)


def _check_causal_mask(causal_mask) -> str:
    """Check the mask; return a note for the bottom-right convention, else an empty string."""
    name = "causal_mask"
    alignments = set()
    for T, S in ((3, 5), (6, 4), (5, 5)):
        inputs = {"T": T, "S": S}
        got = as_array(call(causal_mask, name, inputs), name, "mask")
        check_shape(got, (T, S), "TS", name, "mask")
        check_boolean(got, name)
        expected = np.asarray(ref.causal_mask(T, S))
        t, s = np.arange(T)[:, None], np.arange(S)[None, :]
        if close(got, expected):
            alignments.add("top-left" if T != S else None)
            continue
        if close(got, s <= t + (S - T)):  # the other convention, accepted with a note
            alignments.add("bottom-right")
            continue
        match_variant(got, [
            (
                "your causal mask has the wrong polarity: True must mean \"may attend\" (query t "
                "may look at keys s <= t), and yours is True exactly where attention is "
                "forbidden.",
                lambda: ~expected,
            ),
            (
                "your causal mask lets query t see the future: it allows keys s >= t. Query t "
                "may attend keys s <= t (the lower triangle, diagonal included).",
                lambda: s >= t,
            ),
            (
                "your causal mask hides the diagonal: query t must be allowed to attend its own "
                "key s = t (use s <= t, not s < t).",
                lambda: s < t,
            ),
        ])
        index = [int(i) for i in np.argwhere(got != expected)[0]]
        raise Mistake(
            f"your causal mask for T={T}, S={S} is wrong at [t, s] = {index}: you have "
            f"{bool(got[tuple(index)])}, expected {bool(expected[tuple(index)])} (True when "
            f"s <= t)."
        )
    alignments.discard(None)
    if len(alignments) > 1:
        raise Mistake(
            "your causal mask is aligned to the top-left corner (s <= t) for some shapes and to "
            "the bottom-right corner (s <= t + S - T) for others: choose one convention (the "
            "package's is top-left) and use it for every T and S."
        )
    return BOTTOM_RIGHT_NOTE if alignments == {"bottom-right"} else ""


def _check_padding_mask(padding_mask) -> None:
    name = "padding_mask"
    for lengths, max_len in (([2, 5, 0], 5), ([6, 1, 3, 4], 6)):
        lengths = jnp.array(lengths, jnp.int32)
        B = lengths.shape[0]
        inputs = {"lengths": lengths, "max_len": max_len}
        got = as_array(call(padding_mask, name, inputs), name, "mask")
        if got.shape == (B, max_len):
            raise Mistake(
                f"your padding mask has shape {shape_str(got.shape)}; expected "
                f"{shape_str((B, 1, 1, max_len))} ([B, 1, 1, S]) so that it broadcasts over "
                f"the heads N and the queries T of the scores [B, N, T, S]: add the two axes "
                f"with mask[:, None, None, :]."
            )
        check_shape(got, (B, 1, 1, max_len), "B11S", name, "mask")
        check_boolean(got, name)
        expected = np.asarray(ref.padding_mask(lengths, max_len))
        if close(got, expected):
            continue
        s = np.arange(max_len)[None, None, None, :]
        n = np.asarray(lengths)[:, None, None, None]
        match_variant(got, [
            (
                "your padding mask has the wrong polarity: True must mean \"may attend\", so "
                "real tokens (s < lengths[b]) are True and padding is False.",
                lambda: ~expected,
            ),
            (
                "your padding mask is off by one: position s = lengths[b] is already padding "
                "(a sequence of length 2 has real tokens at 0 and 1); use s < lengths[b].",
                lambda: s <= n,
            ),
        ])
        index = [int(i) for i in np.argwhere(got != expected)[0]]
        raise Mistake(
            f"your padding mask for lengths={np.asarray(lengths).tolist()} is wrong at "
            f"{index}: you have {bool(got[tuple(index)])}, expected "
            f"{bool(expected[tuple(index)])} (True for the real tokens s < lengths[b])."
        )
    lengths2 = jnp.array([3, 6, 0, 2], jnp.int32)
    check_jit_and_vmap(
        padding_mask, name, {"lengths": lengths}, {"lengths": lengths2}, expected,
        ref.padding_mask(lengths2, max_len), static={"max_len": max_len},
    )


def _random_mask(seed: int, shape) -> jax.Array:
    """About 70% True, with row [0, 0, 1] entirely False (a query that may see nothing)."""
    mask = jax.random.bernoulli(jax.random.key(seed_of(seed)), 0.7, shape)
    mask = mask.at[..., 0].set(True)  # every other row keeps at least one key
    return mask.at[0, 0, 1, :].set(False)


def _check_masked_softmax(masked_softmax) -> None:
    name = "masked_softmax"
    for sizes, seed in cases():
        B, T, S, N = sizes.B, sizes.T, sizes.S, sizes.N
        x = normal(seed, (B, N, T, S), scale=2.0)
        mask = _random_mask(seed + 20, (B, 1, T, S))
        inputs = {"scores": x, "mask": mask}
        expected = np.asarray(masked_softmax_reference(x, mask))
        got = as_array(call(masked_softmax, name, inputs), name, "weights")
        check_shape(got, expected.shape, "BNTS", name, "weights")
        full_mask = np.broadcast_to(np.asarray(mask), x.shape)
        some = full_mask.any(axis=-1, keepdims=True)  # rows with at least one allowed key
        leaked = (~full_mask) & some & (np.abs(np.nan_to_num(got)) > 1e-6)
        if leaked.any():
            flipped = np.asarray(masked_softmax_reference(x, ~mask))
            rows = some & (~full_mask).any(axis=-1, keepdims=True)
            if np.allclose(np.where(rows, np.nan_to_num(got), 0), np.where(rows, flipped, 0),
                           atol=1e-5):
                raise Mistake(
                    "your mask has the wrong polarity: True must mean \"may attend\", but your "
                    "weights are zero exactly where the mask is True."
                )
            b, n, t, s = (int(i) for i in np.argwhere(leaked)[0])
            raise Mistake(
                f"masked positions receive weight: weights[{b}, {n}, {t}, {s}] = "
                f"{float(got[b, n, t, s]):.3g} although mask[{b}, 0, {t}, {s}] is False (key "
                f"{s} is hidden from query {t}). Masked weights must be exactly 0: set their "
                f"scores to a large negative number before exp, or zero them with jnp.where."
            )
        good_rows = np.broadcast_to(some, got.shape)
        check_finite(
            np.where(good_rows, got, 0.0), np.where(good_rows, expected, 0.0), name,
            f"on inputs {describe_inputs(inputs)}", "",
        )
        sums = got.sum(axis=-1)[some[..., 0]]
        if not np.allclose(sums, 1.0, atol=1e-4):
            raise Mistake(
                "your weights do not sum to one over the keys a query may attend (a row sums "
                f"to {float(sums[~np.isclose(sums, 1.0, atol=1e-4)][0]):.4g}): normalise by "
                "the sum of the allowed exponentials only."
            )
        compare(
            np.where(good_rows, got, 0.0), np.where(good_rows, expected, 0.0), axes="BNTS",
            name=name, what="weights", inputs=inputs,
        )
        row = got[0, :, 1, :]  # every key masked for query 1 of batch 0
        if not np.isfinite(row).all():
            raise Mistake(
                f"a fully masked row (query 1 of batch 0, with no key it may attend) gives "
                f"{row[~np.isfinite(row)][0]}: with -inf in every entry, exp(-inf - (-inf)) is "
                f"NaN. Use a large finite negative (jnp.finfo(x.dtype).min) instead of -inf, "
                f"and give such a row all-zero weights (the package's convention)."
            )
        if np.abs(row).max() > 1e-6:
            raise Mistake(
                f"a fully masked row (query 1 of batch 0, with no key it may attend) gets "
                f"weights {np.round(row[0], 3).tolist()} (head 0); the package's convention is "
                f"all zeros, so that such a query contributes nothing. Multiply by the mask (or "
                f"jnp.where) after the exp, and divide by 1 where the sum is 0."
            )
        hard = x * 5.0 + 1000.0
        hard_inputs = {"scores": hard, "mask": mask}
        got_hard = as_array(call(masked_softmax, name, hard_inputs), name, "weights")
        want_hard = np.asarray(masked_softmax_reference(hard, mask))
        check_shape(got_hard, want_hard.shape, "BNTS", name, "weights")
        check_finite(
            got_hard, want_hard, name, "for large scores (near 1000)",
            "exp overflows float32 above about 88: subtract the row's maximum over the allowed "
            "keys before exp.",
        )
    x2, mask2 = normal(9, x.shape), _random_mask(10, mask.shape)
    check_jit_and_vmap(
        masked_softmax, name, inputs, {"scores": x2, "mask": mask2}, expected,
        masked_softmax_reference(x2, mask2),
    )


@checker("masking")
def check_masking(causal_mask, padding_mask, masked_softmax) -> str:
    """``causal_mask(T, S)``, ``padding_mask(lengths, max_len)``, ``masked_softmax(...)``."""
    for fn, name in ((causal_mask, "causal_mask"), (padding_mask, "padding_mask"),
                     (masked_softmax, "masked_softmax")):
        reject_package_function(fn, name)
    note = _check_causal_mask(causal_mask)
    _check_padding_mask(padding_mask)
    _check_masked_softmax(masked_softmax)
    return (
        "your causal mask, padding mask and masked softmax match the package: True means may "
        "attend, masked keys get weight 0, a fully masked row gives zeros (not NaN), and they "
        "work under jax.jit and jax.vmap." + note
    )


EXERCISE = Exercise(
    name="masking",
    title="Causal and padding masks, masked softmax",
    notebook="03_masking",
    names=("causal_mask", "padding_mask", "masked_softmax"),
    check=check_masking,
    minutes=35,
)
