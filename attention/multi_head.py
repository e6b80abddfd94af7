"""Step 7: multi-head attention, several attentions side by side (Vaswani et al. 2017, 3.2.2).

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

One attention computes one weighted average per query, so it can follow one relation at a
time. Multi-head attention projects the inputs into ``h`` smaller subspaces (of size
``d_k = d_model / h``), attends in each independently, and mixes the results with an output
projection; the cost is about that of one full-width head.

The projections W_i for all heads are stored as one ``[D, N * H]`` matrix and the result is
split into heads with a reshape (:func:`split_heads`), so the whole thing is four matrix
products around :func:`attention.dot_product_attention`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Shaped

from attention._checks import check_floating, shape_str
from attention.weighted_sum import weighted_sum
from attention.weights import attention_weights

AttentionFn = Callable[..., Array]


def split_heads(x: Shaped[Array, "*B T D"], num_heads: int) -> Shaped[Array, "*B T N H"]:
    """Reshape the last axis D into N heads of size H = D / N (head-major, as Flax stores it).

    >>> split_heads(jnp.arange(6.0).reshape(1, 6), 2).tolist()
    [[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]
    """
    if x.shape[-1] % num_heads:
        raise ValueError(
            f"the last axis of x (shape {shape_str(x.shape)}) must divide into "
            f"num_heads={num_heads} equal heads."
        )
    return x.reshape(*x.shape[:-1], num_heads, x.shape[-1] // num_heads)


def merge_heads(x: Shaped[Array, "*B T N H"]) -> Shaped[Array, "*B T D"]:
    """Inverse of :func:`split_heads`: concatenate the heads, ``[..., N, H] -> [..., N * H]``."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


class MultiHeadAttention(nnx.Module):
    """Multi-head attention: project, split into heads, attend, merge, project.

    Args:
      num_heads: ``h``, the number of heads N.
      in_features: width D of the query inputs.
      qkv_features: total width of the query/key/value projections, ``h * d_k`` (default
        ``in_features``); must be divisible by ``num_heads``.
      out_features: width of the output (default ``in_features``).
      in_kv_features: width of the key/value inputs for cross-attention (default
        ``in_features``).
      dropout_rate: dropout on the attention weights during training.
      use_bias: biases in the four projections.
      attention_fn: a function with the signature of :func:`attention.dot_product_attention`
        (for example a fast kernel). ``None`` uses the teaching steps, which is the only path
        that can sow the attention weights and apply dropout to them.
      rngs: ``nnx.Rngs`` with ``params`` (and ``dropout`` if ``dropout_rate > 0``).

    Call ``mha(inputs_q [B, T, D], inputs_kv [B, S, Dkv] = None, mask=..., is_causal=...)``;
    without ``inputs_kv`` it is self-attention. With ``sow_weights=True`` inside
    ``nnx.capture(..., nnx.Intermediate)`` the weights ``[B, N, T, S]`` are recorded under
    ``"attention_weights"``.

    Raises:
      ValueError: ``num_heads`` does not divide ``qkv_features``; inputs whose last axis is
        not the configured width; batch sizes of query and key/value inputs that differ.

    >>> from flax import nnx
    >>> mha = MultiHeadAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
    >>> mha(jnp.ones((3, 5, 8))).shape
    (3, 5, 8)
    """

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        qkv_features: int | None = None,
        out_features: int | None = None,
        *,
        in_kv_features: int | None = None,
        dropout_rate: float = 0.0,
        use_bias: bool = True,
        attention_fn: AttentionFn | None = None,
        dtype=None,
        param_dtype=jnp.float32,
        kernel_init=nnx.initializers.xavier_uniform(),
        rngs: nnx.Rngs,
    ):
        qkv_features = in_features if qkv_features is None else qkv_features
        out_features = in_features if out_features is None else out_features
        in_kv_features = in_features if in_kv_features is None else in_kv_features
        if not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive int, got {num_heads!r}.")
        if qkv_features % num_heads:
            raise ValueError(
                f"num_heads={num_heads} must divide the projection width "
                f"qkv_features={qkv_features} (d_model) into equal heads; try a num_heads "
                f"among {[n for n in range(1, qkv_features + 1) if qkv_features % n == 0]}."
            )
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}.")
        self.num_heads = num_heads
        self.head_dim = qkv_features // num_heads
        self.in_features = in_features
        self.in_kv_features = in_kv_features
        self.attention_fn = attention_fn
        self.dropout_rate = dropout_rate
        linear = dict(
            use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, kernel_init=kernel_init,
            rngs=rngs,
        )
        self.query = nnx.Linear(in_features, qkv_features, **linear)    # W^Q, all heads
        self.key = nnx.Linear(in_kv_features, qkv_features, **linear)   # W^K
        self.value = nnx.Linear(in_kv_features, qkv_features, **linear)  # W^V
        self.out = nnx.Linear(qkv_features, out_features, **linear)     # W^O
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

    def __call__(
        self,
        inputs_q: Shaped[Array, "*B T D"],
        inputs_kv: Shaped[Array, "*B S Dkv"] | None = None,
        *,
        mask: Bool[Array, "..."] | None = None,
        is_causal: bool = False,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Shaped[Array, "*B T Dout"]:
        inputs_kv = inputs_q if inputs_kv is None else inputs_kv
        self._check_inputs(inputs_q, inputs_kv)
        query_BTNH = split_heads(self.query(inputs_q), self.num_heads)
        key_BSNH = split_heads(self.key(inputs_kv), self.num_heads)
        value_BSNH = split_heads(self.value(inputs_kv), self.num_heads)
        if self.attention_fn is None:
            weights_BNTS = attention_weights(query_BTNH, key_BSNH, mask, is_causal=is_causal)
            if sow_weights:
                self.sow(nnx.Intermediate, "attention_weights", weights_BNTS)
            weights_BNTS = self.dropout(weights_BNTS, deterministic=deterministic)
            output_BTNH = weighted_sum(weights_BNTS, value_BSNH)
        else:
            if sow_weights:
                raise ValueError(
                    "sow_weights=True needs the weights, which a fused attention_fn never "
                    "forms; build the module with attention_fn=None to plot them."
                )
            if self.dropout_rate > 0 and not self.dropout.deterministic and not deterministic:
                raise ValueError(
                    f"dropout_rate={self.dropout_rate} on attention weights needs "
                    "attention_fn=None (fused kernels never form the weights); set "
                    "dropout_rate=0 or call with deterministic=True."
                )
            output_BTNH = self.attention_fn(
                query_BTNH, key_BSNH, value_BSNH, mask=mask, is_causal=is_causal
            )
        return self.out(merge_heads(output_BTNH))

    def _check_inputs(self, inputs_q, inputs_kv) -> None:
        check_floating("inputs_q", inputs_q)
        check_floating("inputs_kv", inputs_kv)
        if inputs_q.ndim not in (2, 3) or inputs_kv.ndim != inputs_q.ndim:
            raise ValueError(
                f"inputs_q must be [B, T, D] and inputs_kv [B, S, Dkv] (or both unbatched); got "
                f"inputs_q {shape_str(inputs_q.shape)} and inputs_kv {shape_str(inputs_kv.shape)}."
            )
        if inputs_q.shape[-1] != self.in_features:
            raise ValueError(
                f"inputs_q has width {inputs_q.shape[-1]} (shape {shape_str(inputs_q.shape)}) "
                f"but this module was built with in_features={self.in_features}."
            )
        if inputs_kv.shape[-1] != self.in_kv_features:
            raise ValueError(
                f"inputs_kv has width {inputs_kv.shape[-1]} (shape "
                f"{shape_str(inputs_kv.shape)}) but this module was built with "
                f"in_kv_features={self.in_kv_features}."
            )
        if inputs_q.ndim == 3 and inputs_q.shape[0] != inputs_kv.shape[0]:
            raise ValueError(
                f"inputs_q {shape_str(inputs_q.shape)} and inputs_kv "
                f"{shape_str(inputs_kv.shape)} must have the same batch size B."
            )
