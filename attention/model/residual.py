"""Step 12b: residual connections and layer norm around every sub-layer (Vaswani et al. 3.1, 5.4).

Each sub-layer (attention or feed-forward) is wrapped in a residual connection and a layer
normalisation. The paper normalises *after* the residual add (post-LN)::

    y = LayerNorm(x + Dropout(Sublayer(x)))              # post-LN, the paper (3.1, 5.4)

Normalising the sub-layer *input* instead (pre-LN: tensor2tensor soon after the paper, Wang
et al. 2019, GPT-2) keeps the residual path an identity and, as Xiong et al. 2020 ("On Layer
Normalization in the Transformer Architecture") analysed, trains stably without a long
warm-up; the stack then needs one final LayerNorm::

    y = x + Dropout(Sublayer(LayerNorm(x)))              # pre-LN, config.norm_first=True

Residual dropout (P_drop) is applied to each sub-layer output before the add (section 5.4).
The residual path is why a deep stack trains at all: the gradient reaches every layer through
the identity, whatever the sub-layers do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flax import nnx
from jaxtyping import Array, Float

from attention.model.config import TransformerConfig
from attention.model.dropout import Dropout


def make_layer_norm(config: TransformerConfig, *, rngs: nnx.Rngs) -> nnx.LayerNorm | nnx.RMSNorm:
    """``nnx.LayerNorm``, or ``nnx.RMSNorm`` for ``config.norm="rms_norm"`` (step 12)."""
    if config.norm == "rms_norm":
        return nnx.RMSNorm(
            config.d_model, epsilon=config.layer_norm_epsilon, dtype=config.jnp_dtype,
            param_dtype=config.jnp_param_dtype, rngs=rngs,
        )
    return nnx.LayerNorm(
        config.d_model, epsilon=config.layer_norm_epsilon, dtype=config.jnp_dtype,
        param_dtype=config.jnp_param_dtype, rngs=rngs,
    )


class Residual(nnx.Module):
    """Residual connection around a sub-layer, with layer norm and dropout (3.1, 5.4).

    ``norm_first=False`` (post-LN, the paper): ``LayerNorm(x + Dropout(sublayer(x)))``.
    ``norm_first=True`` (pre-LN): ``x + Dropout(sublayer(LayerNorm(x)))``.

    Call ``residual(x, sublayer, deterministic=...)`` with any ``sublayer: [B, T, D] ->
    [B, T, D]``; with ``has_aux=True`` the sublayer returns ``(y, aux)`` and so does the call
    (used to thread a key/value cache through).

    >>> cfg = TransformerConfig.tiny(vocab_size=10)
    >>> res = Residual(cfg, rngs=nnx.Rngs(0))
    >>> import jax.numpy as jnp
    >>> res(jnp.ones((2, 3, 128)), lambda h: 2 * h, deterministic=True).shape
    (2, 3, 128)
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        self.norm_first = config.norm_first
        self.norm = make_layer_norm(config, rngs=rngs)
        self.dropout = Dropout(config.dropout_rate, rngs=rngs)

    def __call__(
        self,
        x: Float[Array, "B T D"],
        sublayer: Callable[[Array], Any],
        *,
        deterministic: bool | None = None,
        has_aux: bool = False,
    ):
        inputs = self.norm(x) if self.norm_first else x
        y, aux = sublayer(inputs) if has_aux else (sublayer(inputs), None)
        x = x + self.dropout(y, deterministic=deterministic)
        x = x if self.norm_first else self.norm(x)
        return (x, aux) if has_aux else x
