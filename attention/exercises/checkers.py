"""One checker per exercise: compare the student's code with the package, explain the first problem.

Every checker takes the student's function(s), runs them on inputs whose axes all have
different sizes (so a swapped axis shows up as a wrong shape) for two random seeds, compares
with the package's implementation, and returns a :class:`CheckResult`. The checks run in
teaching order: the shape, then NaN, then the usual mistakes recognised by name (a missing
1/sqrt(d_k), a mask of the wrong polarity, a future token leaking through...), then the
values, then ``jax.jit`` and ``jax.vmap``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import dataclasses
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import attention as ref
from attention.exercises._checking import (
    Mistake,
    NotImplementedYet,
    as_array,
    call,
    check_finite,
    check_jit_and_vmap,
    check_shape,
    checker,
    close,
    compare,
    constant_ratio,
    describe_inputs,
    find_future_leak,
    first_difference,
    match_variant,
    reject_package_function,
    shape_str,
    sqrt_hint,
)
from attention.training.loss import label_smoothed_cross_entropy


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Batch B, query length T, key length S, heads N, head dim H: all different."""

    B: int
    T: int
    S: int
    N: int
    H: int

    @property
    def D(self) -> int:
        return self.N * self.H


# Two input sets: every axis a different size, T < S in one and T > S in the other.
SIZES = (Sizes(B=2, T=3, S=5, N=7, H=16), Sizes(B=3, T=6, S=4, N=5, H=9))
SEEDS = (0, 1)


# The package's functions, compiled: one compilation per input shape instead of one per
# operation (the checks run on several shapes, and eager compilation dominates their time).
_attention = jax.jit(ref.dot_product_attention, static_argnames=("scale", "is_causal"))
_scores = jax.jit(ref.dot_product_scores)
_softmax = jax.jit(ref.masked_softmax)


@nnx.jit(static_argnames=("is_causal",))
def _mha_apply(mha, x, mask=None, is_causal=False):
    return mha(x, mask=mask, is_causal=is_causal)


def _normal(seed: int, shape, scale: float = 1.0) -> jax.Array:
    return scale * jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _cases():
    return zip(SIZES, SEEDS, strict=True)


# ======================================================================= 00 combining embeddings

_INTERACTION_RIGHT = {"c", "product", "u * v", "u*v", "the product", "element-wise product",
                      "elementwise product", "the element-wise product", "hadamard product"}
_INTERACTION_WRONG = {
    "a": "sum", "sum": "sum", "u + v": "sum", "u+v": "sum", "the sum": "sum",
    "b": "difference", "difference": "difference", "u - v": "difference",
    "u-v": "difference", "the difference": "difference",
}


@checker("combine_embeddings")
def check_combine_embeddings(combine_embeddings, interaction_answer=None) -> str:
    """``combine_embeddings(u, v) -> (u + v, u - v, u * v)``, and which one is the interaction.

    ``interaction_answer``: the student's choice among (a) sum, (b) difference, (c) product.
    """
    name = "combine_embeddings"
    reject_package_function(combine_embeddings, name)
    for sizes, seed in _cases():
        u = _normal(seed, (sizes.B, sizes.D))
        v = _normal(seed + 10, (sizes.B, sizes.D))
        inputs = {"u": u, "v": v}
        result = call(combine_embeddings, name, inputs)
        if not isinstance(result, tuple | list) or len(result) != 3:
            raise Mistake(
                f"`{name}` should return three arrays (sum, difference, product), got "
                f"{type(result).__name__}"
                + (f" of {len(result)} items" if isinstance(result, tuple | list) else "")
                + "."
            )
        expected = {"sum": u + v, "difference": u - v, "product": u * v}
        words = {"sum": "u + v", "difference": "u - v", "product": "u * v"}
        for got, (label, want) in zip(result, expected.items(), strict=True):
            got = as_array(got, name, f"{label}")
            if label == "product" and got.shape in ((sizes.B,), (sizes.B, 1)):
                if close(got.reshape(sizes.B), jnp.sum(u * v, axis=-1)):
                    raise Mistake(
                        "your product is the dot product u . v (summed over D, one number "
                        "per pair); the exercise asks for the element-wise product u * v, "
                        f"shape {shape_str(u.shape)}: its sum is the dot product."
                    )
            check_shape(got, want.shape, "BD", name, f"{label}")
            if close(got, want):
                continue
            for other, other_want in expected.items():
                if other != label and close(got, other_want):
                    raise Mistake(
                        f"your {label} is {words[other]}: return (u + v, u - v, u * v) in "
                        f"that order."
                    )
            if label == "difference" and close(got, v - u):
                raise Mistake("your difference is v - u; the exercise asks for u - v.")
            raise Mistake(first_difference(got, np.asarray(want), "BD", label) + ".")
    if interaction_answer is None or not str(interaction_answer).strip():
        raise NotImplementedYet(
            "not implemented yet: your three combinations are right; now answer the question "
            "by setting INTERACTION_ANSWER to 'a', 'b' or 'c'."
        )
    answer = " ".join(str(interaction_answer).strip().lower().rstrip(".").split())
    letter = re.match(r"^\(?([abc])\)?(\s|$)", answer)  # "c", "(c)", "c) the product"
    answer = letter.group(1) if letter else answer.strip("()")
    if answer in _INTERACTION_WRONG:
        which = _INTERACTION_WRONG[answer]
        if which == "sum":
            reason = (
                "the sum cannot: a linear model on it computes w . (u + v) = w . u + w . v, "
                "each vector contributing on its own whatever the other one is."
            )
        else:
            reason = (
                "the difference cannot: w . (u - v) = w . u - w . v is still one term for u "
                "plus one for v, with nothing that depends on both."
            )
        raise Mistake(
            f"the three combinations are right, but the interaction answer is not: {reason} "
            f"Which combination is large only when both are large, and has a sign that says "
            f"whether they agree?"
        )
    if answer not in _INTERACTION_RIGHT:
        raise Mistake(
            f"the three combinations are right, but the checker does not understand the "
            f"answer {interaction_answer!r}: set INTERACTION_ANSWER to 'a', 'b' or 'c'."
        )
    return (
        "the sum, the difference and the element-wise product are right, and so is the "
        "answer: only u * v has a term that depends on both vectors at once (an interaction); "
        "summed over D it is the dot product u . v that attention uses as a score."
    )


# ======================================================================= 01 dot-product scores


@checker("dot_product_scores")
def check_dot_product_scores(dot_product_scores) -> str:
    """``dot_product_scores(query [B, T, N, H], key [B, S, N, H]) -> [B, N, T, S]``."""
    name = "dot_product_scores"
    reject_package_function(dot_product_scores, name)
    for sizes, seed in _cases():
        B, T, S, N, H = sizes.B, sizes.T, sizes.S, sizes.N, sizes.H
        q, k = _normal(seed, (B, T, N, H)), _normal(seed + 10, (B, S, N, H))
        inputs = {"query": q, "key": k}
        expected = np.asarray(_scores(q, k))
        got = as_array(call(dot_product_scores, name, inputs), name)
        compare(
            got, expected, axes="BNTS", name=name, what="scores", inputs=inputs,
            ratio_words=lambda c, H=H: sqrt_hint(c, H),
        )
    q2, k2 = _normal(7, q.shape), _normal(8, k.shape)
    check_jit_and_vmap(
        dot_product_scores, name, inputs, {"query": q2, "key": k2}, expected,
        _scores(q2, k2),
    )
    return (
        "your scores match attention.dot_product_scores: shape [B, N, T, S], scaled by "
        "1/sqrt(d_k), and they work under jax.jit and jax.vmap."
    )


# ======================================================================= 02 stable softmax


@checker("stable_softmax")
def check_stable_softmax(stable_softmax) -> str:
    """``stable_softmax(scores [..., S]) -> weights``, over the last axis, never NaN."""
    name = "stable_softmax"
    reject_package_function(stable_softmax, name)
    axes = "BNTS"
    for sizes, seed in _cases():
        B, T, S, N = sizes.B, sizes.T, sizes.S, sizes.N
        x = _normal(seed, (B, N, T, S), scale=2.0)
        inputs = {"scores": x}
        expected = np.asarray(_softmax(x))
        got = as_array(call(stable_softmax, name, inputs), name)
        check_shape(got, expected.shape, axes, name, "weights")
        check_finite(got, expected, name, f"on inputs {describe_inputs(inputs)}", "")
        if (got < -1e-6).any():
            raise Mistake(
                "some of your weights are negative; exp makes every weight positive. Apply "
                "exp to the (shifted) scores before normalising."
            )
        sums = got.sum(axis=-1)
        if not np.allclose(sums, 1.0, atol=1e-4):
            for axis in range(got.ndim - 1):
                if np.allclose(got.sum(axis=axis), 1.0, atol=1e-4):
                    raise Mistake(
                        f"your weights sum to one over axis {axis} ({axes[axis]}) instead of "
                        f"the last axis (S, the keys): use axis=-1 in both the max and the sum."
                    )
            index = tuple(int(i) for i in np.argwhere(~np.isclose(sums, 1.0, atol=1e-4))[0])
            raise Mistake(
                f"your weights do not sum to one over the keys (the last axis): the row at "
                f"[b, n, t] = {list(index)} sums to {float(sums[index]):.4g}. Divide the "
                f"exponentials by their sum over the same row (axis=-1, keepdims=True)."
            )
        compare(got, expected, axes=axes, name=name, what="weights", inputs=inputs)
        stability = [
            (
                x * 5.0 + 1000.0,
                "for large scores (a row near 1000)",
                "exp(1000) overflows float32 (it stops near exp(88)) and inf / inf = NaN. "
                "Subtract each row's maximum before exp: softmax(x) = softmax(x - max(x)).",
            ),
            (
                x * 5.0 - 1000.0,
                "for very negative scores (a row near -1000)",
                "every exp underflows to 0 and you divide 0 by 0. Subtract each row's maximum "
                "before exp, so that the largest exponent is exp(0) = 1.",
            ),
            (
                x + jnp.linspace(-2000.0, 2000.0, T)[:, None],
                "when the rows sit at very different levels (rows from -2000 to 2000)",
                "you subtracted one maximum for the whole array, so rows far below it "
                "underflow to 0 / 0. Subtract each row's own maximum: "
                "jnp.max(x, axis=-1, keepdims=True).",
            ),
        ]
        for hard, situation, hint in stability:
            hard_inputs = {"scores": hard}
            got_hard = as_array(call(stable_softmax, name, hard_inputs), name)
            want_hard = np.asarray(_softmax(hard))
            check_shape(got_hard, want_hard.shape, axes, name, "weights")
            check_finite(got_hard, want_hard, name, situation, hint)
            compare(got_hard, want_hard, axes=axes, name=name, what="weights", inputs=hard_inputs)
    x2 = _normal(9, x.shape)
    check_jit_and_vmap(
        stable_softmax, name, inputs, {"scores": x2}, expected, _softmax(x2)
    )
    return (
        "your softmax matches the package's: rows sum to one over the keys, no NaN for scores "
        "near +-1000, and it works under jax.jit and jax.vmap."
    )


# ======================================================================= 03 masking


def _boolean(got: np.ndarray, name: str) -> None:
    if got.dtype == bool:
        return
    if np.issubdtype(got.dtype, np.floating) and (np.isinf(got).any() or (got < -1e8).any()):
        raise Mistake(
            f"`{name}` returns an additive mask (0 and a large negative number); here a mask "
            f"is boolean, True = may attend. Return the comparison itself."
        )
    raise Mistake(
        f"`{name}` returns dtype {got.dtype}; a mask is boolean (True = may attend). A "
        f"comparison such as `s <= t` gives booleans directly."
    )


def _check_causal_mask(causal_mask) -> None:
    name = "causal_mask"
    for T, S in ((3, 5), (6, 4), (5, 5)):
        inputs = {"T": T, "S": S}
        got = as_array(call(causal_mask, name, inputs), name, "mask")
        check_shape(got, (T, S), "TS", name, "mask")
        _boolean(got, name)
        expected = np.asarray(ref.causal_mask(T, S))
        if close(got, expected):
            continue
        t, s = np.arange(T)[:, None], np.arange(S)[None, :]
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
            (
                "your causal mask is aligned to the bottom-right corner; here query t may attend "
                "keys s <= t, counted from the first key (top-left, as "
                "jax.nn.dot_product_attention(is_causal=True)).",
                lambda: s <= t + (S - T),
            ),
        ])
        index = [int(i) for i in np.argwhere(got != expected)[0]]
        raise Mistake(
            f"your causal mask for T={T}, S={S} is wrong at [t, s] = {index}: you have "
            f"{bool(got[tuple(index)])}, expected {bool(expected[tuple(index)])} (True when "
            f"s <= t)."
        )


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
        _boolean(got, name)
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
    mask = jax.random.bernoulli(jax.random.key(seed), 0.7, shape)
    mask = mask.at[..., 0].set(True)  # every other row keeps at least one key
    return mask.at[0, 0, 1, :].set(False)


def _check_masked_softmax(masked_softmax) -> None:
    name = "masked_softmax"
    for sizes, seed in _cases():
        B, T, S, N = sizes.B, sizes.T, sizes.S, sizes.N
        x = _normal(seed, (B, N, T, S), scale=2.0)
        mask = _random_mask(seed + 20, (B, 1, T, S))
        inputs = {"scores": x, "mask": mask}
        expected = np.asarray(_softmax(x, mask))
        got = as_array(call(masked_softmax, name, inputs), name, "weights")
        check_shape(got, expected.shape, "BNTS", name, "weights")
        full_mask = np.broadcast_to(np.asarray(mask), x.shape)
        some = full_mask.any(axis=-1, keepdims=True)  # rows with at least one allowed key
        leaked = (~full_mask) & some & (np.abs(np.nan_to_num(got)) > 1e-6)
        if leaked.any():
            flipped = np.asarray(_softmax(x, ~mask))
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
        want_hard = np.asarray(_softmax(hard, mask))
        check_shape(got_hard, want_hard.shape, "BNTS", name, "weights")
        check_finite(
            got_hard, want_hard, name, "for large scores (near 1000)",
            "exp overflows float32 above about 88: subtract the row's maximum over the allowed "
            "keys before exp.",
        )
    x2, mask2 = _normal(9, x.shape), _random_mask(10, mask.shape)
    check_jit_and_vmap(
        masked_softmax, name, inputs, {"scores": x2, "mask": mask2}, expected,
        _softmax(x2, mask2),
    )


@checker("masking")
def check_masking(causal_mask, padding_mask, masked_softmax) -> str:
    """``causal_mask(T, S)``, ``padding_mask(lengths, max_len)``, ``masked_softmax(...)``."""
    for fn, name in ((causal_mask, "causal_mask"), (padding_mask, "padding_mask"),
                     (masked_softmax, "masked_softmax")):
        reject_package_function(fn, name)
    _check_causal_mask(causal_mask)
    _check_padding_mask(padding_mask)
    _check_masked_softmax(masked_softmax)
    return (
        "your causal mask, padding mask and masked softmax match the package: True means may "
        "attend, masked keys get weight 0, a fully masked row gives zeros (not NaN), and they "
        "work under jax.jit and jax.vmap."
    )


# ======================================================================= 04 scaled dot-product


def _softmax_over_queries(q, k, v, mask=None):
    scores_BNTS = jnp.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(q.shape[-1])
    weights_BNTS = jax.nn.softmax(scores_BNTS, axis=-2)
    return jnp.einsum("bnts,bsnh->btnh", weights_BNTS, v)


def _check_leak(fn_of_x, x, name: str, what: str) -> None:
    leak = find_future_leak(fn_of_x, x)
    if leak is not None:
        t, s, size = leak
        raise Mistake(
            f"future tokens leak: output position t={t} changes when the {what} at position "
            f"s={s} changes (|d out[{t}] / d {what}[{s}]| = {size:.3g}, expected 0). With a "
            f"causal mask query t may only use positions s <= t, so no gradient may flow from "
            f"a later position."
        )


@checker("scaled_dot_product_attention")
def check_scaled_dot_product_attention(scaled_dot_product_attention) -> str:
    """``scaled_dot_product_attention(query, key, value, mask=None) -> [B, T, N, H]``."""
    fn = scaled_dot_product_attention
    name = "scaled_dot_product_attention"
    reject_package_function(fn, name)
    for sizes, seed in _cases():
        B, T, S, N, H = sizes.B, sizes.T, sizes.S, sizes.N, sizes.H
        q = _normal(seed, (B, T, N, H))
        k = _normal(seed + 10, (B, S, N, H))
        v = _normal(seed + 20, (B, S, N, H))
        inputs = {"query": q, "key": k, "value": v}
        expected = np.asarray(_attention(q, k, v))
        got = as_array(call(fn, name, inputs), name)
        compare(got, expected, axes="BTNH", name=name, what="output", inputs=inputs, variants=[
            (
                f"your output equals attention without the 1/sqrt(d_k) scaling: divide the "
                f"scores by sqrt(d_k) = sqrt({H}) = {math.sqrt(H):.2f} before the softmax "
                f"(section 3.2.1).",
                lambda: _attention(q, k, v, scale=1.0),
            ),
            (
                f"you divided the scores by d_k = {H} instead of sqrt(d_k) = "
                f"{math.sqrt(H):.2f}.",
                lambda: _attention(q, k, v, scale=1.0 / H),
            ),
            (
                "your softmax normalises over the queries (axis T of the scores [B, N, T, S]); "
                "each query's weights must sum to one over the keys, the last axis.",
                lambda: _softmax_over_queries(q, k, v),
            ),
        ])
        # A causal mask: the future must not leak, checked through gradients.
        mask = ref.causal_mask(T, S)
        masked_inputs = inputs | {"mask": mask}
        expected_masked = np.asarray(_attention(q, k, v, mask=mask))
        got = as_array(call(fn, name, masked_inputs), name)
        check_shape(got, expected_masked.shape, "BTNH", name, "output")
        variants = [] if close(got, expected_masked) else [
            (
                "you ignored the mask: your output with a causal mask equals attention without "
                "one. Give the positions where mask is False weight 0.",
                lambda: expected,
            ),
            (
                "your mask has the wrong polarity: True must mean \"may attend\", but your "
                "output equals attention in which only the mask's False positions are seen.",
                lambda: _attention(q, k, v, mask=~mask),
            ),
        ]
        match_variant(got, variants)
        _check_leak(lambda v_: fn(q, k, v_, mask), v, name, "value")
        _check_leak(lambda k_: fn(q, k_, v, mask), k, name, "key")
        compare(got, expected_masked, axes="BTNH", name=name, what="output",
                inputs=masked_inputs)
        # Sequence 0 is all padding: its queries may attend nothing and get zero vectors.
        lengths = jnp.arange(B, dtype=jnp.int32) * S // max(B - 1, 1)
        pad = ref.padding_mask(lengths, S)
        pad_inputs = inputs | {"mask": pad}
        expected_pad = np.asarray(_attention(q, k, v, mask=pad))
        got = as_array(call(fn, name, pad_inputs), name)
        check_shape(got, expected_pad.shape, "BTNH", name, "output")
        check_finite(
            got, expected_pad, name,
            "for a sequence whose keys are all padding (sequence 0, length 0)",
            "A query whose keys are all masked must get a zero vector, not 0 / 0: use a large "
            "finite negative instead of -inf, and weights of 0 for such a row.",
        )
        if np.abs(got[0]).max() > 1e-5 and np.abs(expected_pad[0]).max() <= 1e-6:
            raise Mistake(
                "a query whose keys are all masked (sequence 0 has length 0) gets a non-zero "
                "output, probably the plain average of the values; the package's convention is "
                "a zero vector: such a row of weights is all zeros."
            )
        compare(got, expected_pad, axes="BTNH", name=name, what="output", inputs=pad_inputs)
        big = {"query": q * 30.0, "key": k * 30.0, "value": v}
        got = as_array(call(fn, name, big), name)
        want = np.asarray(_attention(q * 30.0, k * 30.0, v))
        check_shape(got, want.shape, "BTNH", name, "output")
        check_finite(
            got, want, name, "for large queries and keys (scores in the hundreds)",
            "exp of a large score overflows float32: subtract each row's maximum score before "
            "exp (softmax does not change).",
        )
    q2, k2, v2 = _normal(31, q.shape), _normal(32, k.shape), _normal(33, v.shape)
    check_jit_and_vmap(
        fn, name, {"query": q, "key": k, "value": v, "mask": mask},
        {"query": q2, "key": k2, "value": v2, "mask": mask}, expected_masked,
        _attention(q2, k2, v2, mask=mask),
    )
    return (
        "your attention matches attention.dot_product_attention: output [B, T, N, H], scaled "
        "by 1/sqrt(d_k), masks respected (no future leaks, checked through gradients), zeros "
        "for fully masked queries, no NaN for large scores, and it works under jax.jit and "
        "jax.vmap."
    )


# ======================================================================= 05 split / merge heads


@checker("split_merge_heads")
def check_split_merge_heads(split_heads, merge_heads) -> str:
    """``split_heads(x [B, T, D], num_heads) -> [B, T, N, H]`` and its inverse ``merge_heads``."""
    reject_package_function(split_heads, "split_heads")
    reject_package_function(merge_heads, "merge_heads")
    for sizes, seed in _cases():
        B, T, N, H = sizes.B, sizes.T, sizes.N, sizes.H
        x = _normal(seed, (B, T, N * H))
        inputs = {"x": x}
        expected = np.asarray(ref.split_heads(x, N))
        got = as_array(call(split_heads, "split_heads", inputs | {"num_heads": N}), "split_heads")
        compare(got, expected, axes="BTNH", name="split_heads", what="heads", inputs=inputs,
                variants=[
            (
                f"your heads are split along the wrong axis: your head n takes every N-th "
                f"feature (n, n+N, n+2N, ...). Head n must be the contiguous block of features "
                f"n*H .. (n+1)*H - 1: reshape [B, T, D] to [B, T, N, H] = "
                f"[{B}, {T}, {N}, {H}] directly.",
                lambda: x.reshape(B, T, H, N).swapaxes(-1, -2),
            ),
            (
                "you reshaped [B, T, D] to [B, N, T, H] and then moved the axes: that reshape "
                "mixes positions of the sequence into the heads. Reshape to [B, T, N, H].",
                lambda: x.reshape(B, N, T, H).transpose(0, 2, 1, 3),
            ),
        ])
        heads = ref.split_heads(x, N)
        merge_inputs = {"x": heads}
        got = as_array(call(merge_heads, "merge_heads", merge_inputs), "merge_heads")
        compare(got, np.asarray(x), axes="BTD", name="merge_heads", what="merged output",
                inputs=merge_inputs, variants=[
            (
                "your merge_heads interleaves the heads (features h*N + n) instead of putting "
                "head n's block at n*H .. (n+1)*H - 1: merge with a reshape [B, T, N, H] -> "
                "[B, T, N*H], without swapping the last two axes.",
                lambda: heads.swapaxes(-1, -2).reshape(B, T, N * H),
            ),
        ])
    x2 = _normal(9, x.shape)
    check_jit_and_vmap(
        split_heads, "split_heads", inputs, {"x": x2}, expected, ref.split_heads(x2, N),
        static={"num_heads": N},
    )
    check_jit_and_vmap(
        merge_heads, "merge_heads", {"x": heads}, {"x": ref.split_heads(x2, N)}, x, x2
    )
    return (
        "split_heads and merge_heads match the package: [B, T, D] <-> [B, T, N, H] with head n "
        "holding the features n*H .. (n+1)*H - 1, each the inverse of the other, under "
        "jax.jit and jax.vmap too."
    )


# ======================================================================= 06 multi-head attention


def _mha_module(seed: int, num_heads: int, d_model: int) -> ref.MultiHeadAttention:
    return ref.MultiHeadAttention(
        num_heads=num_heads, in_features=d_model, use_bias=False, rngs=nnx.Rngs(seed)
    )


def _weights(mha) -> dict:
    return {
        "w_q": mha.query.kernel[...], "w_k": mha.key.kernel[...],
        "w_v": mha.value.kernel[...], "w_o": mha.out.kernel[...],
    }


def _mha_variant(x, w, N, mask=None, *, strided=False, scale=None, project_out=True,
                 causal=False):
    """Multi-head self-attention with one deliberate mistake, to recognise it."""
    B, T, D = x.shape
    H = D // N

    def heads(y):
        if strided:
            return y.reshape(B, T, H, N).swapaxes(-1, -2)
        return y.reshape(B, T, N, H)

    q, k, v = heads(x @ w["w_q"]), heads(x @ w["w_k"]), heads(x @ w["w_v"])
    if causal:
        mask = ref.causal_mask(T)
    out = _attention(q, k, v, mask=mask, scale=scale)
    if strided:
        out = out.swapaxes(-1, -2)
    merged = out.reshape(B, T, D)
    return merged @ w["w_o"] if project_out else merged


def _mha_variants(x, w, N, mask, *, causal=False):
    D = x.shape[-1]
    H = D // N
    return [
        (
            "your heads are split along the wrong axis: head n takes every N-th feature of "
            "the projection. Head n must be the contiguous block n*H .. (n+1)*H - 1: reshape "
            "[B, T, D] to [B, T, N, H].",
            lambda: _mha_variant(x, w, N, mask, strided=True, causal=causal),
        ),
        (
            f"you scaled the scores by 1/sqrt(d_model) = 1/sqrt({D}); each head's scores must "
            f"be divided by sqrt(d_k) = sqrt(d_model / h) = sqrt({H}).",
            lambda: _mha_variant(x, w, N, mask, scale=1 / math.sqrt(D), causal=causal),
        ),
        (
            f"your output equals multi-head attention without the 1/sqrt(d_k) scaling: divide "
            f"each head's scores by sqrt(d_k) = sqrt({H}).",
            lambda: _mha_variant(x, w, N, mask, scale=1.0, causal=causal),
        ),
        (
            "you forgot the output projection: after merging the heads, multiply by w_o "
            "(Concat(head_1, ..., head_h) W^O).",
            lambda: _mha_variant(x, w, N, mask, project_out=False, causal=causal),
        ),
    ]


@checker("multi_head_attention")
def check_multi_head_attention(multi_head_attention) -> str:
    """``multi_head_attention(x [B, T, D], w_q, w_k, w_v, w_o, num_heads, mask=None)``."""
    fn = multi_head_attention
    name = "multi_head_attention"
    reject_package_function(fn, name)
    for sizes, seed in _cases():
        B, T, N, H = sizes.B, sizes.T, sizes.N, sizes.H
        D = N * H
        mha = _mha_module(seed, N, D)
        w = _weights(mha)
        x = _normal(seed + 10, (B, T, D))
        inputs = {"x": x} | w
        expected = np.asarray(_mha_apply(mha, x))
        got = as_array(call(fn, name, inputs | {"num_heads": N}), name)
        compare(got, expected, axes="BTD", name=name, what="output", inputs=inputs,
                variants=_mha_variants(x, w, N, None))
        lengths = jnp.arange(1, B + 1, dtype=jnp.int32) * T // B
        pad = ref.padding_mask(lengths, T)
        masked = inputs | {"mask": pad}
        expected_masked = np.asarray(_mha_apply(mha, x, mask=pad))
        got = as_array(call(fn, name, inputs | {"num_heads": N}, mask=pad), name)
        check_shape(got, expected_masked.shape, "BTD", name, "output")
        variants = [] if close(got, expected_masked) else [
            (
                "you ignored the mask: your output with a padding mask equals the output "
                "without one. Positions where mask is False must get weight 0.",
                lambda: expected,
            ),
            (
                "your mask has the wrong polarity: True must mean \"may attend\".",
                lambda: _mha_apply(mha, x, mask=~pad),
            ),
        ]
        match_variant(got, variants)
        compare(got, expected_masked, axes="BTD", name=name, what="output",
                inputs=masked | {"num_heads": N}, variants=_mha_variants(x, w, N, pad))
    x2 = _normal(99, x.shape)
    check_jit_and_vmap(
        fn, name, inputs, {"x": x2} | w, expected, _mha_apply(mha, x2), static={"num_heads": N}
    )
    return (
        "your multi-head attention matches attention.MultiHeadAttention (without biases): "
        "project, split into heads of size d_k = d_model / h, attend with 1/sqrt(d_k), merge, "
        "project with W^O; masks respected, under jax.jit and jax.vmap too."
    )


# ======================================================================= 07 sinusoidal positions


@checker("sinusoidal_positions")
def check_sinusoidal_positions(sinusoidal_positions) -> str:
    """``sinusoidal_positions(max_len, d_model) -> [max_len, d_model]``."""
    fn = sinusoidal_positions
    name = "sinusoidal_positions"
    reject_package_function(fn, name)
    for L, D in ((7, 12), (50, 16)):
        inputs = {"max_len": L, "d_model": D}
        expected = np.asarray(ref.sinusoidal_positions(L, D))
        got = as_array(call(fn, name, inputs), name, "table")
        pos = np.arange(L, dtype=np.float64)[:, None]
        i = np.arange(D // 2, dtype=np.float64)[None, :]
        angle_pairs = pos / 10000.0 ** (2 * i / D)  # [L, D/2]

        def interleave(even, odd):
            return np.stack([even, odd], axis=-1).reshape(L, D)

        j = np.arange(D, dtype=np.float64)[None, :]
        compare(got, expected, axes="LD", name=name, what="table", inputs=inputs, variants=[
            (
                "sine and cosine are swapped: even dimensions 2i hold sin(pos / 10000^(2i/d)) "
                "and odd dimensions 2i+1 hold the cos of the same angle.",
                lambda: interleave(np.cos(angle_pairs), np.sin(angle_pairs)),
            ),
            (
                "your table puts all the sines first and all the cosines after; the paper "
                "interleaves them: dimension 2i is a sine and 2i+1 the cosine of the same "
                "angle.",
                lambda: np.concatenate([np.sin(angle_pairs), np.cos(angle_pairs)], axis=-1),
            ),
            (
                "the frequencies are off: the exponent uses the dimension index j, but both "
                "dimensions of a pair (2i, 2i+1) share the angle pos / 10000^(2i/d_model). Use "
                "2i = j - j % 2 (j // 2 * 2), not j.",
                lambda: np.where(j % 2 == 0, np.sin(pos / 10000.0 ** (j / D)),
                                 np.cos(pos / 10000.0 ** (j / D))),
            ),
            (
                "the frequencies are off: the exponent should be 2i/d_model with i the pair "
                "index (0, 0, 1, 1, 2, 2, ... doubled: 0, 0, 2, 2, 4, 4, ...); you used i/d_model.",
                lambda: interleave(np.sin(pos / 10000.0 ** (i / D)),
                                   np.cos(pos / 10000.0 ** (i / D))),
            ),
            (
                "your positions start at 1; the first row is position 0 (sin 0 = 0, cos 0 = 1).",
                lambda: interleave(np.sin((pos + 1) / 10000.0 ** (2 * i / D)),
                                   np.cos((pos + 1) / 10000.0 ** (2 * i / D))),
            ),
        ])
    return (
        "your table matches attention.sinusoidal_positions: [max_len, d_model], sin on even "
        "and cos on odd dimensions with wavelengths from 2 pi to 10000 * 2 pi."
    )


# ======================================================================= 08 causal self-attention


@checker("causal_self_attention")
def check_causal_self_attention(causal_self_attention) -> str:
    """``causal_self_attention(x [B, T, D], w_q, w_k, w_v, w_o, num_heads) -> [B, T, D]``.

    The reference is the decoder's first sub-layer: ``MultiHeadAttention(x, is_causal=True)``
    (without biases), as in :class:`attention.model.decoder.DecoderLayer`.
    """
    fn = causal_self_attention
    name = "causal_self_attention"
    reject_package_function(fn, name)
    for sizes, seed in _cases():
        B, T, N, H = sizes.B, sizes.S, sizes.N, sizes.H  # S (5, 4) as the target length
        D = N * H
        mha = _mha_module(seed, N, D)
        w = _weights(mha)
        x = _normal(seed + 10, (B, T, D))
        inputs = {"x": x} | w
        expected = np.asarray(_mha_apply(mha, x, is_causal=True))
        got = as_array(call(fn, name, inputs | {"num_heads": N}), name)
        check_shape(got, expected.shape, "BTD", name, "output")
        allowed = np.asarray(ref.causal_mask(T))
        variants = [] if close(got, expected) else [
            (
                "your mask has the wrong polarity: True must mean \"may attend\"; your position "
                "t attends only the positions after it.",
                lambda: _mha_apply(mha, x, mask=jnp.asarray(~allowed)),
            ),
            (
                "your causal mask hides the diagonal: position t must attend itself (keys "
                "s <= t, not s < t).",
                lambda: _mha_apply(mha, x, mask=jnp.asarray(np.tril(allowed, -1))),
            ),
        ]
        match_variant(got, variants)
        _check_leak(lambda x_: fn(x_, *w.values(), N), x, name, "input x")
        compare(got, expected, axes="BTD", name=name, what="output", inputs=inputs,
                variants=_mha_variants(x, w, N, None, causal=True))
    x2 = _normal(99, x.shape)
    check_jit_and_vmap(
        fn, name, inputs, {"x": x2} | w, expected, _mha_apply(mha, x2, is_causal=True),
        static={"num_heads": N},
    )
    return (
        "your causal self-attention matches the decoder's masked self-attention "
        "(MultiHeadAttention with is_causal=True): no gradient flows from a later position, "
        "and it works under jax.jit and jax.vmap."
    )


# ======================================================================= 09 greedy decoding

_DECODE_LEN = 6


def _decode_model():
    """A small random Transformer whose greedy output ends some rows with eos and not others."""
    from attention.model.transformer import Transformer

    config = ref.TransformerConfig.tiny(
        vocab_size=7, d_model=16, num_heads=2, d_ff=32, num_layers=1, max_len=16,
        dropout_rate=0.0,
    )
    src = jnp.array([[3, 4, 5, 2, 0], [6, 5, 2, 0, 0], [4, 4, 3, 6, 2]], jnp.int32)
    chosen = None
    for seed in range(20):
        model = Transformer(config, rngs=nnx.Rngs(seed))
        model.eval()
        tokens, _ = ref.greedy_decode(model, src, max_len=_DECODE_LEN)
        ended = np.asarray(tokens[:, :-1] == config.eos_id).any(axis=1)
        chosen = (model, src, np.asarray(tokens))
        if ended.any() and not ended.all():
            break
    return chosen


_DECODE_CACHE: dict = {}


def _greedy_variant(model, src, max_len, *, last_position=False):
    """Greedy decoding that reads the logits of the last input position (a usual mistake)."""
    config = model.config
    B = src.shape[0]
    memory = model.encode(src, deterministic=True)
    inputs = jnp.full((B, 1), config.bos_id, jnp.int32)
    finished = np.zeros(B, bool)
    out = []
    for t in range(max_len):
        logits = model.decode(inputs, memory, src, deterministic=True)
        logits = logits[:, -1] if last_position else logits[:, t]
        logits = logits.at[:, config.pad_id].set(-1e9).at[:, config.bos_id].set(-1e9)
        token = np.where(finished, config.pad_id, np.asarray(jnp.argmax(logits, axis=-1)))
        finished |= token == config.eos_id
        out.append(token)
        inputs = jnp.concatenate([inputs, jnp.asarray(token, jnp.int32)[:, None]], axis=1)
    return np.stack(out, axis=1)


@checker("greedy_decoding")
def check_greedy_decoding(greedy_decode) -> str:
    """``greedy_decode(model, src_tokens [B, S], max_len) -> tokens [B, max_len]``."""
    fn = greedy_decode
    name = "greedy_decode"
    reject_package_function(fn, name)
    if "case" not in _DECODE_CACHE:
        _DECODE_CACHE["case"] = _decode_model()
    model, src, expected = _DECODE_CACHE["case"]
    config = model.config
    inputs = {"model": model, "src_tokens": src, "max_len": _DECODE_LEN}
    got = as_array(call(fn, name, inputs), name, "tokens")
    B, L = expected.shape
    if got.shape == (B, L + 1) and (got[:, 0] == config.bos_id).all():
        raise Mistake(
            f"your tokens start with bos (id {config.bos_id}); return only the generated "
            f"tokens, [B, max_len] = {shape_str((B, L))}, without the leading bos."
        )
    check_shape(got, (B, L), "BL", name, "tokens")
    if not np.issubdtype(got.dtype, np.integer):
        raise Mistake(f"your tokens have dtype {got.dtype}; token ids are integers.")
    if np.array_equal(got, expected):
        return (
            "your greedy decoding gives the same tokens as attention.greedy_decode: argmax at "
            "each step, pad and bos never chosen, pad after eos, no bos in the output."
        )
    for b in range(B):
        row = got[b]
        ends = np.flatnonzero(row == config.eos_id)
        stop = ends[0] if ends.size else L
        if (row[stop + 1:] != config.pad_id).any():
            raise Mistake(
                f"row {b} produced eos (id {config.eos_id}) at step {stop} but you kept "
                f"generating: {row.tolist()}. Once a row has produced eos, every later token "
                f"must be pad_id ({config.pad_id}) (keep a `finished` flag per row)."
            )
        special = np.flatnonzero(np.isin(row[:stop], [config.pad_id, config.bos_id]))
        if special.size:
            t = int(special[0])
            raise Mistake(
                f"row {b} chose token {int(row[t])} (pad or bos) at step {t}; those are never "
                f"generated: set their logits to a large negative number before the argmax."
            )
    if np.array_equal(got, _greedy_variant(model, src, L, last_position=True)):
        raise Mistake(
            "you read the logits of the wrong position: at step t take position t of the "
            "decoder's output (the prediction after input t), not the last position."
        )
    b = int(np.flatnonzero((got != expected).any(axis=1))[0])
    t = int(np.flatnonzero(got[b] != expected[b])[0])
    raise Mistake(
        f"row {b} differs from greedy decoding at step {t}: you produced "
        f"{got[b].tolist()}, expected {expected[b].tolist()}. At each step feed bos and the "
        f"tokens so far to the decoder and take the argmax of the logits at the last input "
        f"position."
    )


# ======================================================================= 10 label smoothing


@jax.jit
def _mean_loss(logits, targets):
    total, count = label_smoothed_cross_entropy(logits, targets, label_smoothing=0.1, pad_id=0)
    return total / count


def _reference_loss(logits, targets, eps, pad_id=0):
    assert eps == 0.1 and pad_id == 0  # the values the checker uses
    return np.asarray(_mean_loss(logits, targets))


@checker("label_smoothing")
def check_label_smoothing(label_smoothed_loss) -> str:
    """``label_smoothed_loss(logits [B, T, V], targets [B, T], label_smoothing, pad_id)``."""
    fn = label_smoothed_loss
    name = "label_smoothed_loss"
    reject_package_function(fn, name)
    for sizes, seed in _cases():
        B, T, V = sizes.B, sizes.T, sizes.N + sizes.H
        logits = _normal(seed, (B, T, V), scale=2.0)
        targets = jax.random.randint(jax.random.key(seed + 10), (B, T), 1, V)
        targets = targets.at[0, -2:].set(0)  # padding at the end of sequence 0
        eps = 0.1
        inputs = {"logits": logits, "targets": targets}
        static = {"label_smoothing": eps, "pad_id": 0}
        expected = _reference_loss(logits, targets, eps)
        got = as_array(call(fn, name, inputs | static), name, "loss")
        if got.shape != ():
            raise Mistake(
                f"your loss has shape {shape_str(got.shape)}; expected one number (shape []): "
                f"the mean over the real (non-padding) target tokens."
            )
        log_p = jax.nn.log_softmax(logits, axis=-1)
        onehot = jax.nn.one_hot(targets, V)
        real = (targets != 0).astype(jnp.float32)

        def loss_with(q, mask=real):
            return jnp.sum(-jnp.sum(q * log_p, axis=-1) * mask) / jnp.sum(mask)

        count = float(real.sum())
        check_finite(got, expected, name, f"on inputs {describe_inputs(inputs)}", "")
        if close(got, expected):
            continue
        match_variant(got, [
            (
                "your loss includes the padding positions: average only over targets != "
                "pad_id (multiply each position's loss by the mask, divide by the number of "
                "real tokens).",
                lambda: loss_with((1 - eps) * onehot + eps / V, jnp.ones_like(real)),
            ),
            (
                "your loss ignores label_smoothing: it is the plain cross-entropy. Use the "
                "smoothed target q = (1 - eps) * onehot + eps / V.",
                lambda: loss_with(onehot),
            ),
            (
                "you spread eps over the V - 1 wrong words; the paper's (and the package's) "
                "smoothed target spreads eps / V over all V words, the correct one included: "
                "q = (1 - eps) * onehot + eps / V.",
                lambda: loss_with((1 - eps) * onehot + eps / (V - 1) * (1 - onehot)),
            ),
            (
                "your smoothing is the wrong way round: the correct word keeps 1 - eps of the "
                "probability (plus its share eps / V), q = (1 - eps) * onehot + eps / V.",
                lambda: loss_with(eps * onehot + (1 - eps) / V),
            ),
            (
                f"your loss is the sum over the {count:g} real tokens; expected their mean "
                f"(divide by the number of non-padding targets).",
                lambda: loss_with((1 - eps) * onehot + eps / V) * count,
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
        got_big, _reference_loss(big, targets, eps), name,
        "for large logits (around +-100)",
        "exp of a large logit overflows, and log of a softmax that underflowed to 0 is -inf: "
        "use jax.nn.log_softmax (it subtracts the maximum) rather than log(softmax(x)).",
    )
    logits2 = _normal(77, logits.shape)
    check_jit_and_vmap(
        fn, name, inputs, {"logits": logits2, "targets": targets}, expected,
        _reference_loss(logits2, targets, eps), static=static,
    )
    return (
        "your loss matches attention.training.loss.label_smoothed_cross_entropy (sum / count): "
        "q = (1 - eps) onehot + eps / V, padding ignored, no NaN for large logits, under "
        "jax.jit and jax.vmap too."
    )


# ======================================================================= 11 grouped-query attention


def _host_normal(seed: int, shape) -> jax.Array:
    """Standard normal float32 drawn by NumPy: jax.random compiles once per shape, which
    dominates a checker's time for the many small shapes used from here on."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, np.float32))



@dataclasses.dataclass(frozen=True)
class _GQASizes:
    """Batch B, lengths T and S, N query heads in K groups, head dim H: outputs all distinct."""

    B: int
    T: int
    S: int
    N: int
    K: int
    H: int


# Groups of 3 and 2 query heads per key head (so that the two head orders differ), and a
# multi-query case K = 1 (Shazeer 2019).
_GQA_SIZES = (
    _GQASizes(B=2, T=3, S=5, N=6, K=2, H=16),
    _GQASizes(B=3, T=7, S=4, N=5, K=1, H=8),
)
_nn_attention = jax.jit(jax.nn.dot_product_attention, static_argnames=("scale", "is_causal"))


def _tiled_heads(x, num_heads: int):
    """The usual wrong repeat: query head n reads key head n % K (jnp.tile, not jnp.repeat)."""
    return jnp.tile(x, (1, 1, num_heads // x.shape[-2], 1))


def _attended_rows(mask_TS: np.ndarray) -> np.ndarray:
    """Queries that may attend at least one key under ``mask_TS`` (others are convention)."""
    return np.asarray(mask_TS).any(axis=-1)


def _match_mask_variant(got, q, k, v, variants) -> None:
    """Raise the message of the wrong mask ``got`` follows, on the queries it lets attend."""
    for message, mask_TS in variants:
        rows = _attended_rows(mask_TS)
        if not rows.any():
            continue
        candidate = np.asarray(_nn_attention(q, k, v, mask=jnp.asarray(mask_TS)[None, None]))
        if close(got[:, rows], candidate[:, rows]):
            raise Mistake(message)


@checker("grouped_query_attention")
def check_grouped_query_attention(grouped_query_attention) -> str:
    """``grouped_query_attention(query [B,T,N,H], key [B,S,K,H], value [B,S,K,H], is_causal)``.

    The reference is ``jax.nn.dot_product_attention``, which takes key/value with K heads:
    query head n uses key/value head ``n // (N // K)`` (Ainslie et al. 2023).
    """
    fn = grouped_query_attention
    name = "grouped_query_attention"
    reject_package_function(fn, name)
    # Not causal, then causal; the multi-query case causal only (fewer compilations).
    causal_cases = ((False, True), (True,))
    for sizes, seed, causal_flags in zip(_GQA_SIZES, (0, 1), causal_cases, strict=True):
        B, T, S, N, K, H = sizes.B, sizes.T, sizes.S, sizes.N, sizes.K, sizes.H
        G = N // K
        q = _host_normal(seed, (B, T, N, H))
        k = _host_normal(seed + 10, (B, S, K, H))
        v = _host_normal(seed + 20, (B, S, K, H))
        inputs = {"query": q, "key": k, "value": v}
        for is_causal in causal_flags:
            static = {"is_causal": is_causal}
            expected = np.asarray(_nn_attention(q, k, v, is_causal=is_causal))
            got = as_array(call(fn, name, inputs, **static), name)
            if got.shape == (B, N, T, H):
                raise Mistake(
                    f"your output has shape {shape_str(got.shape)} = [B, N, T, H], the layout "
                    f"of the scores; the output keeps the layout of the query, [B, T, N, H] = "
                    f"{shape_str((B, T, N, H))}: end with an einsum to '...tnh' (or move the "
                    f"axes back)."
                )
            if got.shape == (B, T, K, H) and K != N:
                raise Mistake(
                    f"your output has K={K} heads, shape {shape_str(got.shape)}; it must have "
                    f"one head per query head, N={N}: repeat each key/value head for its "
                    f"N/K={G} query heads instead of reducing the queries."
                )
            check_shape(got, expected.shape, "BTNH", name, "output")
            check_finite(got, expected, name, f"on inputs {describe_inputs(inputs | static)}",
                         "")
            if close(got, expected):
                continue
            t, s = np.arange(T)[:, None], np.arange(S)[None, :]
            kt, vt = _tiled_heads(k, N), _tiled_heads(v, N)
            match_variant(got, [
                (
                    f"your heads are repeated in the wrong order: query head n reads key/value "
                    f"head n % K (what jnp.tile gives, or reshaping the query heads to "
                    f"[N/K, K]), but the group of query head n is n // (N/K): heads 0..{G - 1} "
                    f"share key head 0, heads {G}..{2 * G - 1} key head 1, ... Use "
                    f"jnp.repeat(key, N // K, axis=2), or reshape the query to "
                    f"[B, T, K, N/K, H].",
                    lambda: _nn_attention(q, kt, vt, is_causal=is_causal),
                ),
                (
                    f"your output equals grouped-query attention without the 1/sqrt(d_k) "
                    f"scaling: divide the scores by sqrt(H) = sqrt({H}) = {math.sqrt(H):.2f} "
                    f"before the softmax.",
                    lambda: _nn_attention(q, k, v, scale=1.0, is_causal=is_causal),
                ),
                (
                    f"you divided the scores by d_k = {H} instead of sqrt(d_k) = "
                    f"{math.sqrt(H):.2f}.",
                    lambda: _nn_attention(q, k, v, scale=1.0 / H, is_causal=is_causal),
                ),
                (
                    "you repeated the heads in the wrong order and forgot the 1/sqrt(d_k) "
                    "scaling: query head n belongs to group n // (N/K) (jnp.repeat, not "
                    "jnp.tile), and the scores are divided by sqrt(H).",
                    lambda: _nn_attention(q, kt, vt, scale=1.0, is_causal=is_causal),
                ),
            ] + ([
                (
                    "you ignored is_causal: with is_causal=True your output equals attention "
                    "without a mask. Query t may attend keys s <= t only.",
                    lambda: _nn_attention(q, k, v),
                ),
            ] if is_causal else [
                (
                    "your function applies a causal mask although is_causal=False: only mask "
                    "when is_causal is True.",
                    lambda: _nn_attention(q, k, v, is_causal=True),
                ),
            ]))
            if is_causal:
                _match_mask_variant(got, q, k, v, [
                    (
                        "your causal mask has the wrong polarity: query t attends the keys "
                        "s > t (the future) instead of s <= t. True must mean \"may attend\".",
                        s > t,
                    ),
                    (
                        "your causal mask hides the diagonal: query t must attend its own "
                        "position (keys s <= t, not s < t).",
                        s < t,
                    ),
                    (
                        "your causal mask is aligned to the bottom-right corner (s <= t + S - "
                        "T); as in jax.nn.dot_product_attention, query t may attend keys "
                        "s <= t counted from the first key.",
                        s <= t + (S - T),
                    ),
                ])
                if seed == 0:  # once: the gradient check compiles a program of its own
                    _check_leak(lambda v_: fn(q, k, v_, True), v, name, "value")
            compare(got, expected, axes="BTNH", name=name, what="output",
                    inputs=inputs | static)
    q2, k2, v2 = _host_normal(31, q.shape), _host_normal(32, k.shape), _host_normal(33, v.shape)
    check_jit_and_vmap(
        fn, name, inputs, {"query": q2, "key": k2, "value": v2},
        _nn_attention(q, k, v, is_causal=True), _nn_attention(q2, k2, v2, is_causal=True),
        static={"is_causal": True},
    )
    return (
        "your grouped-query attention matches jax.nn.dot_product_attention with K key/value "
        "heads: query head n uses key/value head n // (N/K), scaled by 1/sqrt(H), causal when "
        "asked (no future leaks, checked through gradients), for K = 1 (multi-query) too, "
        "under jax.jit and jax.vmap."
    )


# ======================================================================= 12 rotary positions


def _rope_numpy(x, positions, base: float = 10000.0, *, layout: str = "interleaved",
                exponent: str = "2i/H", sign: float = 1.0) -> np.ndarray:
    """RoPE as complex multiplication (Su et al. 2021, section 3.2), with deliberate mistakes.

    The pair i of a head, ``z_i = x_2i + j x_2i+1``, is multiplied by ``exp(j pos theta_i)``
    with ``theta_i = base^(-2i/H)``. ``layout="half"`` pairs ``(x_i, x_i+H/2)`` instead,
    ``exponent`` picks the frequency formula, ``sign=-1`` rotates the other way.
    """
    x = np.asarray(x, np.float64)
    H = x.shape[-1]
    i = np.arange(H // 2, dtype=np.float64)
    theta = {
        "2i/H": base ** (-2 * i / H),
        "i/H": base ** (-i / H),
        "+2i/H": base ** (2 * i / H),
    }[exponent]
    angle_TP = np.asarray(positions, np.float64)[:, None] * theta[None, :]
    rotation_T1P = np.exp(1j * sign * angle_TP)[:, None, :]  # broadcasts over the heads N
    if layout == "interleaved":
        z = (x[..., 0::2] + 1j * x[..., 1::2]) * rotation_T1P
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = z.real, z.imag
        return out
    z = (x[..., : H // 2] + 1j * x[..., H // 2:]) * rotation_T1P
    return np.concatenate([z.real, z.imag], axis=-1)


def _pair_norms(x, *, half: bool = False) -> np.ndarray:
    """|(x_2i, x_2i+1)| for each pair (or |(x_i, x_i+H/2)|): what a rotation keeps."""
    x = np.asarray(x, np.float64)
    if half:
        H = x.shape[-1]
        return np.hypot(x[..., : H // 2], x[..., H // 2:])
    return np.hypot(x[..., 0::2], x[..., 1::2])


def _rope_variants(x, positions):
    T = x.shape[-3]
    return [
        (
            "you rotated the pairs (x_i, x_{i+H/2}), the 'rotate-half' layout of GPT-NeoX and "
            "of Hugging Face's Llama; this exercise and the package follow the RoFormer paper "
            "(Su et al. 2021): pair i is the two neighbouring features (x_2i, x_2i+1), i.e. "
            "x[..., 0::2] and x[..., 1::2].",
            lambda: _rope_numpy(x, positions, layout="half"),
        ),
        (
            "the frequencies are off: you used theta_i = base^(-i/H) with i the pair index; "
            "the paper's theta_i = base^(-2i/H) (i = 0 .. H/2 - 1: exponents 0, 2/H, 4/H, ...), "
            "the wavelengths of the sinusoidal positions.",
            lambda: _rope_numpy(x, positions, exponent="i/H"),
        ),
        (
            "the frequencies are off: theta_i = base^(+2i/H) grows with i; it must shrink, "
            "theta_i = base^(-2i/H) (from 1 radian per position down to about 1/base).",
            lambda: _rope_numpy(x, positions, exponent="+2i/H"),
        ),
        (
            "you rotate by -angle: the rotation by angle a = pos * theta_i is "
            "(x_2i cos a - x_2i+1 sin a, x_2i sin a + x_2i+1 cos a); yours has the signs of the "
            "sin terms swapped.",
            lambda: _rope_numpy(x, positions, sign=-1.0),
        ),
        (
            "you rotated pairs (x_i, x_{i+H/2}) and by -angle: pair i is (x_2i, x_2i+1) and the "
            "rotation is (x_2i cos a - x_2i+1 sin a, x_2i sin a + x_2i+1 cos a).",
            lambda: _rope_numpy(x, positions, layout="half", sign=-1.0),
        ),
        (
            "you used the positions 0, 1, ..., T-1 (jnp.arange(T)) instead of the `positions` "
            "argument: with a cache, new tokens sit at positions that do not start at 0.",
            lambda: _rope_numpy(x, np.arange(T)),
        ),
    ]


def _check_apply_rope(apply_rope) -> tuple[dict, np.ndarray]:
    name = "apply_rope"
    # Unbatched [T, N, H], then batched [B, T, N, H]; positions in no particular order.
    cases = (
        ((5, 3, 8), np.array([4, 0, 9, 2, 7], np.int32)),
        ((2, 7, 3, 10), np.array([30, 1, 12, 5, 0, 21, 3], np.int32)),
    )
    for seed, (shape, positions) in enumerate(cases):
        x = _host_normal(seed, shape)
        pos = jnp.asarray(positions)
        inputs = {"x": x, "positions": pos}
        expected = _rope_numpy(x, positions)
        got = as_array(call(apply_rope, name, inputs), name)
        axes = "TNH" if len(shape) == 3 else "BTNH"
        check_shape(got, expected.shape, axes, name, "result")
        check_finite(got, expected, name, f"on inputs {describe_inputs(inputs)}", "")
        if close(got, expected):
            continue
        match_variant(got, _rope_variants(x, positions))
        keeps_pairs = np.allclose(_pair_norms(got), _pair_norms(x), rtol=1e-3, atol=1e-4)
        keeps_halves = np.allclose(_pair_norms(got, half=True), _pair_norms(x, half=True),
                                   rtol=1e-3, atol=1e-4)
        if not keeps_pairs and not keeps_halves:
            raise Mistake(
                "your result changes the length of the pairs (x_2i, x_2i+1): a rotation keeps "
                "it. Pair i becomes (x_2i cos a - x_2i+1 sin a, x_2i sin a + x_2i+1 cos a) with "
                "a = position * base^(-2i/H): the same angle a for both of its features."
            )
        raise Mistake(
            first_difference(got, expected, axes, "result")
            + f" on inputs {describe_inputs(inputs)}."
        )
    return inputs, expected


def _check_rope_transforms(apply_rope, inputs, expected) -> None:
    x, positions = inputs["x"], np.asarray(inputs["positions"])
    x2, pos2 = _host_normal(9, x.shape), positions[::-1].copy()
    check_jit_and_vmap(
        apply_rope, "apply_rope", inputs, {"x": x2, "positions": jnp.asarray(pos2)}, expected,
        _rope_numpy(x2, pos2),
    )


def _check_rope_attention(rope_attention) -> None:
    name = "rope_attention"
    B, T, N, H = 2, 5, 3, 8
    positions = np.array([2, 3, 4, 5, 6], np.int32)
    q, k, v = (_host_normal(seed, (B, T, N, H)) for seed in (3, 4, 5))
    inputs = {"query": q, "key": k, "value": v, "positions": jnp.asarray(positions)}

    def attend(q_, k_, v_):
        return np.asarray(_nn_attention(jnp.asarray(q_, jnp.float32),
                                        jnp.asarray(k_, jnp.float32),
                                        jnp.asarray(v_, jnp.float32)))

    def rope(x):
        return _rope_numpy(x, positions)

    expected = attend(rope(q), rope(k), v)
    got = as_array(call(rope_attention, name, inputs), name)
    compare(got, expected, axes="BTNH", name=name, what="output", inputs=inputs, variants=[
        (
            "you rotated the values too: RoPE rotates only the queries and the keys, so that "
            "their dot product depends on the distance between positions; the values are "
            "averaged as they are (a rotated value would carry its absolute position into "
            "the output).",
            lambda: attend(rope(q), rope(k), rope(v)),
        ),
        (
            "you rotated only the queries: rotate the keys with their positions too (the "
            "score q_m . k_n depends on m - n only when both are rotated).",
            lambda: attend(rope(q), k, v),
        ),
        (
            "you rotated only the keys: rotate the queries with their positions too.",
            lambda: attend(q, rope(k), v),
        ),
        (
            "you rotated the output of attention; RoPE is applied to the queries and keys "
            "before the scores, not to the result.",
            lambda: rope(attend(q, k, v)),
        ),
        (
            "your output equals attention without RoPE: apply apply_rope to the query and the "
            "key (with `positions`) before attending.",
            lambda: attend(q, k, v),
        ),
        (
            f"you forgot the 1/sqrt(d_k) scaling: divide the scores of the rotated queries and "
            f"keys by sqrt(H) = sqrt({H}).",
            lambda: np.asarray(_nn_attention(jnp.asarray(rope(q), jnp.float32),
                                             jnp.asarray(rope(k), jnp.float32), v, scale=1.0)),
        ),
    ])


@checker("rotary_positions")
def check_rotary_positions(apply_rope, rope_attention=None) -> str:
    """``apply_rope(x [*B, T, N, H], positions [T])`` and ``rope_attention(q, k, v, positions)``.

    The reference is RoPE written with complex numbers in NumPy (Su et al. 2021, eq. 34):
    pair ``(x_2i, x_2i+1)`` as ``x_2i + j x_2i+1``, times ``exp(j pos base^(-2i/H))``.
    """
    reject_package_function(apply_rope, "apply_rope")
    last_inputs, last_expected = _check_apply_rope(apply_rope)
    if rope_attention is None:
        raise NotImplementedYet(
            "not implemented yet: apply_rope is right; now write rope_attention."
        )
    reject_package_function(rope_attention, "rope_attention")
    _check_rope_attention(rope_attention)
    _check_rope_transforms(apply_rope, last_inputs, last_expected)
    return (
        "apply_rope matches the complex-number formula (pairs (x_2i, x_2i+1) rotated by "
        "pos * 10000^(-2i/H)) for [T, N, H] and [B, T, N, H], under jax.jit and jax.vmap, and "
        "rope_attention rotates the queries and keys, never the values."
    )


# ======================================================================= 13 sliding-window mask


@checker("sliding_window_mask")
def check_sliding_window_mask(sliding_window_mask) -> str:
    """``sliding_window_mask(T, window) -> Bool[T, T]``: s <= t and t - s <= window.

    The reference is ``attention.mechanism.masks.local_window_mask(T, T, (window, 0))``, the
    window of ``jax.nn.dot_product_attention(local_window_size=(window, 0), is_causal=True)``.
    """
    from attention.mechanism.masks import local_window_mask

    fn = sliding_window_mask
    name = "sliding_window_mask"
    reject_package_function(fn, name)
    for T, window in ((7, 2), (6, 0), (8, 3), (5, 9)):
        inputs = {"T": T, "window": window}
        got = as_array(call(fn, name, inputs), name, "mask")
        check_shape(got, (T, T), "TS", name, "mask")
        _boolean(got, name)
        expected = np.asarray(local_window_mask(T, T, (window, 0)))
        if close(got, expected):
            continue
        t, s = np.arange(T)[:, None], np.arange(T)[None, :]
        match_variant(got, [
            (
                f"your window is one token short: token t sees {window} tokens counting "
                f"itself. Here token t sees itself AND the `window` tokens before it (keys "
                f"t - window <= s <= t, window + 1 of them), as jax.nn's "
                f"local_window_size=(window, 0) with is_causal=True.",
                lambda: (s <= t) & (t - s < window),
            ),
            (
                "your window is one token too long: token t sees itself and the `window` "
                "tokens before it, keys t - window <= s <= t (use t - s <= window).",
                lambda: (s <= t) & (t - s <= window + 1),
            ),
            (
                "your band is symmetric (|t - s| <= window): it lets token t see the window "
                "tokens after it. A sliding window in a decoder is causal: also require s <= t.",
                lambda: np.abs(t - s) <= window,
            ),
            (
                "your mask lets token t see every later token: t - s <= window is only the "
                "left edge of the window; add the causal condition s <= t.",
                lambda: t - s <= window,
            ),
            (
                "your mask is the plain causal mask: the window is ignored. Token t sees only "
                "keys t - window <= s <= t.",
                lambda: s <= t,
            ),
            (
                "your mask has the wrong polarity: True must mean \"may attend\", and yours is "
                "True exactly outside the window.",
                lambda: ~expected,
            ),
            (
                "your mask hides the diagonal: token t must see itself (keys t - window <= "
                "s <= t, with s = t included).",
                lambda: (s < t) & (t - s <= window),
            ),
            (
                "your mask is transposed: rows are queries t, columns keys s, and query t sees "
                "the keys before it (s <= t), the lower triangle.",
                lambda: expected.T,
            ),
        ])
        index = [int(i) for i in np.argwhere(got != expected)[0]]
        raise Mistake(
            f"your mask for T={T}, window={window} is wrong at [t, s] = {index}: you have "
            f"{bool(got[tuple(index)])}, expected {bool(expected[tuple(index)])} (True when "
            f"t - window <= s <= t)."
        )
    return (
        "your sliding-window mask matches local_window_mask(T, T, (window, 0)): token t sees "
        "itself and the `window` tokens before it, the mask of jax.nn.dot_product_attention("
        "..., is_causal=True, local_window_size=(window, 0)) and of Mistral's sliding window."
    )
