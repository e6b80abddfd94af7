"""Step 1a: QK-norm and soft-capping, which keep the scores bounded.

A score ``q . k`` grows with the norms of q and k, and in long training runs the scores of
some heads grow until the softmax is one-hot and its gradients vanish ("attention logit
growth", Dehghani et al. 2023, ViT-22B; Wortsman et al. 2023). Today's models bound them in
one of two ways:

* **QK-norm** (:func:`head_norm`, :class:`QKNorm`): each query and key head is normalised over
  its H dims, with a learned scale, before the product, so ``|q . k| <= H |g_q| |g_k|``. Qwen3
  and Gemma 3 use an RMS norm per head (OLMo 2 an RMS norm over the whole projection).
* **Soft-capping** (:func:`soft_cap`): ``cap * tanh(s / cap)`` squashes every score smoothly
  into ``(-cap, cap)`` (Gemma 2, section 3: ``attn_logit_softcapping = 50``).

Step 4's :func:`attention.attention_weights` (and everything after it) takes ``soft_cap=``;
step 7's :class:`attention.MultiHeadAttention` takes ``qk_norm=`` and ``soft_cap=``.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from attention._checks import (
    HEAD_NORMS,
    check_choice,
    check_head_norm_args,
    check_positive_int,
    check_real,
    check_soft_cap,
)


def head_norm(
    x: Float[Array, "*B H"],
    scale: Float[Array, " H"],
    *,
    kind: str = "rms",
    epsilon: float = 1e-6,
) -> Float[Array, "*B H"]:
    """The norm over the last axis (a head's H dims), times a learned ``scale [H]``::

        rms:    y = scale * x / sqrt(mean(x^2) + epsilon)
        layer:  y = scale * (x - mean(x)) / sqrt(var(x) + epsilon)

    Statistics in float32; the result has the dtype of ``x``. For queries ``[B, T, N, H]``
    each head of each position is normalised on its own.

    Raises:
      TypeError: a non-floating ``x`` or ``scale``; ``epsilon`` not a number.
      ValueError: ``kind`` not "rms" or "layer"; ``scale`` not ``[H]``; ``epsilon <= 0``.

    >>> head_norm(jnp.array([[3.0, -3.0]]), jnp.ones(2), epsilon=1e-12).tolist()
    [[1.0, -1.0]]
    """
    epsilon = check_head_norm_args(x, scale, kind, epsilon)
    x32 = x.astype(jnp.float32)
    if kind == "layer":
        x32 = x32 - jnp.mean(x32, axis=-1, keepdims=True)
    y = x32 / jnp.sqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + epsilon)
    return (y * scale.astype(jnp.float32).reshape((1,) * (x.ndim - 1) + scale.shape)).astype(
        x.dtype)


def soft_cap(scores: Float[Array, "*B"], cap: float) -> Float[Array, "*B"]:
    """``cap * tanh(scores / cap)``: about ``scores`` where ``|scores| << cap``, never past
    ``cap`` (Gemma 2, section 3). Its derivative is ``1 - tanh(scores / cap)^2``.

    Raises:
      TypeError: ``cap`` not a number.
      ValueError: ``cap`` not positive and finite.

    >>> soft_cap(jnp.array([0.0, 1000.0]), 50.0).tolist()
    [0.0, 50.0]
    """
    cap = check_soft_cap("cap", cap)
    cap = jnp.asarray(cap, scores.dtype)
    return cap * jnp.tanh(scores / cap)


class QKNorm(nnx.Module):
    """QK-norm: :func:`head_norm` of the query heads and of the key heads, each with its own
    learned scale ``[H]`` (initialised to ones).

    Called as ``qk_norm(query, key, value, query_positions, key_positions) -> (query, key,
    value)`` (the value is untouched), the signature of ``MultiHeadAttention``'s
    ``process_heads`` hook; ``MultiHeadAttention(qk_norm="rms")`` applies one before the hook.

    Args:
      head_dim: H.
      kind: "rms" (Qwen3, Gemma 3) or "layer".
      epsilon: added to the variance.
      param_dtype: dtype of the scales.

    Raises:
      TypeError, ValueError: ``head_dim`` not a positive int; as :func:`head_norm`.

    >>> norm = QKNorm(4)
    >>> q, k, v = norm(jnp.ones((1, 3, 2, 4)), 5 * jnp.ones((1, 3, 2, 4)), jnp.ones((1, 3, 2, 4)))
    >>> float(k[0, 0, 0, 0])
    1.0
    """

    def __init__(self, head_dim: int, *, kind: str = "rms", epsilon: float = 1e-6,
                 param_dtype=jnp.float32):
        head_dim = check_positive_int("head_dim", head_dim)
        self.kind = check_choice("kind", kind, HEAD_NORMS)
        self.epsilon = check_real("epsilon", epsilon, low=0.0, low_inclusive=False)
        self.query_scale = nnx.Param(jnp.ones((head_dim,), param_dtype))
        self.key_scale = nnx.Param(jnp.ones((head_dim,), param_dtype))

    def __call__(self, query, key, value, query_positions=None, key_positions=None):
        norm = dict(kind=self.kind, epsilon=self.epsilon)
        return (head_norm(query, self.query_scale[...], **norm),
                head_norm(key, self.key_scale[...], **norm), value)
