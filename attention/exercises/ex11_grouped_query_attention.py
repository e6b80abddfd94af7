"""Exercise 11, grouped-query attention: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/11_grouped_query_attention``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np

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
    check_leak,
    host_normal,
    nn_attention,
)


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
        candidate = np.asarray(nn_attention(q, k, v, mask=jnp.asarray(mask_TS)[None, None]))
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
        q = host_normal(seed, (B, T, N, H))
        k = host_normal(seed + 10, (B, S, K, H))
        v = host_normal(seed + 20, (B, S, K, H))
        inputs = {"query": q, "key": k, "value": v}
        for is_causal in causal_flags:
            static = {"is_causal": is_causal}
            expected = np.asarray(nn_attention(q, k, v, is_causal=is_causal))
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
                    lambda: nn_attention(q, kt, vt, is_causal=is_causal),
                ),
                (
                    f"your output equals grouped-query attention without the 1/sqrt(d_k) "
                    f"scaling: divide the scores by sqrt(H) = sqrt({H}) = {math.sqrt(H):.2f} "
                    f"before the softmax.",
                    lambda: nn_attention(q, k, v, scale=1.0, is_causal=is_causal),
                ),
                (
                    f"you divided the scores by d_k = {H} instead of sqrt(d_k) = "
                    f"{math.sqrt(H):.2f}.",
                    lambda: nn_attention(q, k, v, scale=1.0 / H, is_causal=is_causal),
                ),
                (
                    "you repeated the heads in the wrong order and forgot the 1/sqrt(d_k) "
                    "scaling: query head n belongs to group n // (N/K) (jnp.repeat, not "
                    "jnp.tile), and the scores are divided by sqrt(H).",
                    lambda: nn_attention(q, kt, vt, scale=1.0, is_causal=is_causal),
                ),
            ] + ([
                (
                    "you ignored is_causal: with is_causal=True your output equals attention "
                    "without a mask. Query t may attend keys s <= t only.",
                    lambda: nn_attention(q, k, v),
                ),
            ] if is_causal else [
                (
                    "your function applies a causal mask although is_causal=False: only mask "
                    "when is_causal is True.",
                    lambda: nn_attention(q, k, v, is_causal=True),
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
                        "T). That is a real convention (FlashAttention >= 2.1, PyTorch's "
                        "causal_lower_right: the queries are the last T of S positions), but "
                        "not this function's: its contract is jax.nn.dot_product_attention("
                        "is_causal=True), which aligns to the top-left (query t may attend "
                        "keys s <= t counted from the first key), and with T > S yours leaves "
                        "the first T - S queries with no key at all.",
                        s <= t + (S - T),
                    ),
                ])
                if seed == 0:  # once: the gradient check compiles a program of its own
                    check_leak(fn, (q, k, v, True), 2, name, "value")
            compare(got, expected, axes="BTNH", name=name, what="output",
                    inputs=inputs | static)
    q2, k2, v2 = host_normal(31, q.shape), host_normal(32, k.shape), host_normal(33, v.shape)
    check_jit_and_vmap(
        fn, name, inputs, {"query": q2, "key": k2, "value": v2},
        nn_attention(q, k, v, is_causal=True), nn_attention(q2, k2, v2, is_causal=True),
        static={"is_causal": True},
    )
    return (
        "your grouped-query attention matches jax.nn.dot_product_attention with K key/value "
        "heads: query head n uses key/value head n // (N/K), scaled by 1/sqrt(H), causal when "
        "asked (no future leaks, checked through gradients), for K = 1 (multi-query) too, "
        "under jax.jit and jax.vmap."
    )


EXERCISE = Exercise(
    name="grouped_query_attention",
    title="Grouped-query attention",
    notebook="11_grouped_query_attention",
    names=("grouped_query_attention",),
    check=check_grouped_query_attention,
    minutes=30,
    forbidden=("jax.nn.dot_product_attention",),
    instead=(
        "share each key/value head among its group of query heads yourself (head n reads key "
        "head n // (N/K)), then attend"
    ),
)
