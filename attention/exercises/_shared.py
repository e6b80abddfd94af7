"""What several exercises' checkers share: the input sizes, the seeds, the package's reference
functions compiled once, and the known wrong versions of multi-head attention."""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import attention as ref
from attention.exercises._checking import (
    Mistake,
    find_future_leak,
)


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
# The grader mixes a secret of each grading run into every seed (``secret_seed``), so that a
# table of the notebook's inputs and answers recorded by a student matches nothing; the
# notebooks keep the fixed seeds.
_SECRET = [0]


@contextlib.contextmanager
def secret_seed(secret: int):
    """Within the block, every checker input is drawn from ``secret`` mixed into its seed."""
    if not isinstance(secret, int) or secret < 0:
        raise ValueError(f"secret must be a non-negative int, got {secret!r}.")
    saved, _SECRET[0] = _SECRET[0], secret
    try:
        yield
    finally:
        _SECRET[0] = saved


def seed_of(seed: int) -> int:
    """``seed`` itself, or mixed with the grading run's secret."""
    if not _SECRET[0]:
        return seed
    digest = hashlib.sha256(f"{seed}:{_SECRET[0]}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


# The package's functions, compiled: one compilation per input shape instead of one per
# operation (the checks run on several shapes, and eager compilation dominates their time).
attention_reference = jax.jit(ref.dot_product_attention, static_argnames=("scale", "is_causal"))
scores_reference = jax.jit(ref.dot_product_scores)
masked_softmax_reference = jax.jit(ref.masked_softmax)


@nnx.jit(static_argnames=("is_causal",))
def mha_apply(mha, x, mask=None, is_causal=False):
    return mha(x, mask=mask, is_causal=is_causal)


def normal(seed: int, shape, scale: float = 1.0) -> jax.Array:
    return scale * jax.random.normal(jax.random.key(seed_of(seed)), shape, jnp.float32)


def cases():
    return zip(SIZES, SEEDS, strict=True)



def check_boolean(got: np.ndarray, name: str) -> None:
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


def check_leak(fn, args: tuple, wrt: int, name: str, what: str) -> None:
    leak = find_future_leak(fn, name, args, wrt)
    if leak is not None:
        t, s, size = leak
        raise Mistake(
            f"future tokens leak: output position t={t} changes when the {what} at position "
            f"s={s} changes (|d out[{t}] / d {what}[{s}]| = {size:.3g}, expected 0). With a "
            f"causal mask query t may only use positions s <= t, so no gradient may flow from "
            f"a later position."
        )


def mha_module(seed: int, num_heads: int, d_model: int) -> ref.MultiHeadAttention:
    return ref.MultiHeadAttention(
        num_heads=num_heads, in_features=d_model, use_bias=False,
        rngs=nnx.Rngs(seed_of(seed)),
    )


def mha_weights(mha) -> dict:
    return {
        "w_q": mha.query.kernel[...], "w_k": mha.key.kernel[...],
        "w_v": mha.value.kernel[...], "w_o": mha.out.kernel[...],
    }


def mha_variant(x, w, N, mask=None, *, strided=False, scale=None, project_out=True,
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
    out = attention_reference(q, k, v, mask=mask, scale=scale)
    if strided:
        out = out.swapaxes(-1, -2)
    merged = out.reshape(B, T, D)
    return merged @ w["w_o"] if project_out else merged


def mha_variants(x, w, N, mask, *, causal=False):
    D = x.shape[-1]
    H = D // N
    return [
        (
            "your heads are split along the wrong axis: head n takes every N-th feature of "
            "the projection. Head n must be the contiguous block n*H .. (n+1)*H - 1: reshape "
            "[B, T, D] to [B, T, N, H].",
            lambda: mha_variant(x, w, N, mask, strided=True, causal=causal),
        ),
        (
            f"you scaled the scores by 1/sqrt(d_model) = 1/sqrt({D}); each head's scores must "
            f"be divided by sqrt(d_k) = sqrt(d_model / h) = sqrt({H}).",
            lambda: mha_variant(x, w, N, mask, scale=1 / math.sqrt(D), causal=causal),
        ),
        (
            f"your output equals multi-head attention without the 1/sqrt(d_k) scaling: divide "
            f"each head's scores by sqrt(d_k) = sqrt({H}).",
            lambda: mha_variant(x, w, N, mask, scale=1.0, causal=causal),
        ),
        (
            "you forgot the output projection: after merging the heads, multiply by w_o "
            "(Concat(head_1, ..., head_h) W^O).",
            lambda: mha_variant(x, w, N, mask, project_out=False, causal=causal),
        ),
    ]


def host_normal(seed: int, shape) -> jax.Array:
    """Standard normal float32 drawn by NumPy: jax.random compiles once per shape, which
    dominates a checker's time for the many small shapes used from here on."""
    rng = np.random.default_rng(seed_of(seed))
    return jnp.asarray(rng.standard_normal(shape, np.float32))


nn_attention = jax.jit(jax.nn.dot_product_attention, static_argnames=("scale", "is_causal"))


