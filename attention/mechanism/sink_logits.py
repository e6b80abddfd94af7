"""Step 3a: learned sink logits, a softmax column per head that takes weight but has no value.

A softmax must give its whole weight to the keys, even when no key is relevant; trained models
then park it on the first token, an "attention sink" (Xiao et al. 2023, "Efficient Streaming
Language Models with Attention Sinks", section 3.1). gpt-oss (OpenAI 2025) gives each head a
learned logit ``sink_n`` instead: one more column in the softmax, whose value is zero::

    weights_s = exp(x_s - m) / (exp(sink_n - m) + sum_s' exp(x_s' - m)),  m = max(sink_n, x)

so a head's weights over the S real keys sum to ``1 - p_sink < 1``, and a head can attend to
nothing. Step 4's :func:`attention.attention_weights` (and everything after it) takes
``sink_logits=``; step 7's :class:`attention.MultiHeadAttention` learns them
(``sink_logits=True``).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from attention._checks import accumulation_dtype, check_sink_softmax_args
from attention.mechanism.softmax import masked_softmax


def softmax_with_sink(
    scores: Float[Array, "*B N T S"],
    sink_logits: Float[Array, " N"],
    mask: Bool[Array, "..."] | None = None,
) -> Float[Array, "*B N T S"]:
    """Softmax over the S keys and one sink column ``sink_logits[n]`` per head (gpt-oss).

    The sink is one more key that every query may see, with logit ``sink_logits[n]``; its
    weight is dropped, so each row of the result sums to less than one. Computed with
    :func:`attention.masked_softmax` (float32 for half precision; masked entries get 0). A
    row with every key masked gives all its weight to the sink: all zeros, no NaN.

    Args:
      scores: ``[B, N, T, S]`` (or ``[N, T, S]``), floating.
      sink_logits: ``[N]``, one logit per head.
      mask: boolean, broadcastable to ``scores``, True = may attend.

    Returns:
      ``[B, N, T, S]`` in the dtype of ``scores``.

    Raises:
      TypeError: non-floating ``scores`` or ``sink_logits``; a non-boolean mask.
      ValueError: ``scores`` of rank below 3; ``sink_logits`` not ``[N]``; a mask that does not
        broadcast to ``scores``.

    >>> softmax_with_sink(jnp.zeros((1, 1, 3)), jnp.zeros(1)).tolist()  # [N, T, S]
    [[[0.25, 0.25, 0.25]]]
    """
    check_sink_softmax_args(scores, sink_logits, mask)
    x = scores.astype(accumulation_dtype(scores.dtype))
    sink_N11 = sink_logits.astype(x.dtype).reshape(-1, 1, 1)
    sink_BNT1 = jnp.broadcast_to(sink_N11, (*x.shape[:-1], 1))
    with_sink_BNTS1 = jnp.concatenate([x, sink_BNT1], axis=-1)  # the sink is key S
    if mask is not None:
        mask = jnp.broadcast_to(mask, x.shape)
        mask = jnp.concatenate([mask, jnp.ones_like(mask[..., :1])], axis=-1)
    weights_BNTS1 = masked_softmax(with_sink_BNTS1, mask)
    return weights_BNTS1[..., :-1].astype(scores.dtype)  # the sink's weight has no value
