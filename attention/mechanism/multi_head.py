"""Step 7: multi-head attention, h attentions side by side (Vaswani et al. 2017, 3.2.2).

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

The projections of all heads are one ``[D, N * H]`` matrix each, split into heads by a reshape
(:func:`split_heads`): four matrix products around the attention of step 6. With
``num_kv_heads=K`` the key/value projections have K heads shared by the N query heads
(grouped-query attention, step 1). Positions that act inside attention enter through two
hooks: ``process_heads`` on the projected heads (RoPE, step 8) and ``position_bias`` on the
scores (ALiBi, step 8). Decoding with a key/value cache is step 7a (``kv_cache.py``).
Today's models add four switches: ``qk_norm`` (step 1a, before ``process_heads``),
``soft_cap`` (step 1a), learned ``sink_logits`` (step 3a) and an ``output_gate`` (step 6a).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Shaped

from attention._checks import (
    check_attention_fn_call,
    check_attention_options,
    check_local_window,
    check_multi_head_args,
    check_multi_head_inputs,
    check_position_bias,
    check_processed_heads,
    check_split_heads,
)
from attention.mechanism.bounded_scores import QKNorm
from attention.mechanism.output_gate import gate_output
from attention.mechanism.weighted_sum import weighted_sum
from attention.mechanism.weights import attention_weights

AttentionFn = Callable[..., Array]
# process_heads(query [*B, T, N, H], key [*B, S, K, H], value [*B, S, K, H],
#               query_positions [T], key_positions [S]) -> (query, key, value), e.g. RoPE.
ProcessHeadsFn = Callable[[Array, Array, Array, Array, Array], tuple[Array, Array, Array]]
# position_bias(query_positions [T], key_positions [S]) -> bias [N, T, S], e.g. ALiBi.
PositionBiasFn = Callable[[Array, Array], Array]


def split_heads(x: Shaped[Array, "*B T D"], num_heads: int) -> Shaped[Array, "*B T N H"]:
    """Reshape the last axis D into N heads of size H = D / N (head-major, as Flax stores it).

    Raises:
      TypeError: ``num_heads`` not an int.
      ValueError: ``num_heads`` below 1 or not dividing D.

    >>> split_heads(jnp.arange(6.0).reshape(1, 6), 2).tolist()
    [[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]
    """
    num_heads = check_split_heads(x, num_heads)
    return x.reshape(*x.shape[:-1], num_heads, x.shape[-1] // num_heads)


def merge_heads(x: Shaped[Array, "*B T N H"]) -> Shaped[Array, "*B T D"]:
    """Inverse of :func:`split_heads`: concatenate the heads, ``[..., N, H] -> [..., N * H]``."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


class MultiHeadAttention(nnx.Module):
    """Multi-head attention: project, split into heads, process heads, attend, merge, project.

    Args:
      num_heads: ``h``, the number of query heads N.
      in_features: width D of the query inputs.
      qkv_features: width ``h * d_k`` of the query projection (default ``in_features``),
        divisible by ``num_heads``; the head dim is ``H = qkv_features / num_heads``.
      out_features: width of the output (default ``in_features``).
      num_kv_heads: K key/value heads (default ``num_heads``), dividing ``num_heads``.
      in_kv_features: width of the key/value inputs (default ``in_features``).
      dropout_rate: dropout on the attention weights during training.
      use_bias: biases in the four projections.
      out_bias: a bias in ``W^O`` (default ``use_bias``); Qwen2 has biases in ``W^Q, W^K,
        W^V`` and none in ``W^O``.
      attention_fn: a function with the signature of :func:`attention.dot_product_attention`
        (a fast kernel); None uses the teaching steps, the only path that sows the weights
        and drops them out. It gets ``bias=`` / ``local_window_size=`` only when they are set.
      process_heads: ``process_heads(query, key, value, query_positions, key_positions) ->
        (query, key, value)``, applied to the heads right after the projections, for example
        RoPE (:class:`attention.model.positional.RotaryEmbedding`). Positions are int32
        ``0..T-1`` and ``0..S-1`` (when decoding, those of the new tokens).
      position_bias: ``position_bias(query_positions [T], key_positions [S]) -> [N, T, S]``,
        a floating bias added to the scores, for example ALiBi.
      local_window_size: ``w`` or ``(left, right)``: query t attends keys ``t - left ..
        t + right`` (:func:`attention.mechanism.masks.local_window_mask`).
      qk_norm: None, "rms" or "layer": a :class:`QKNorm` of the query and key heads, applied
        before ``process_heads`` (Qwen3, OLMo 2, Gemma 3).
      soft_cap: None or ``cap``: scores ``cap * tanh(s / cap)`` (Gemma 2).
      sink_logits: learn one sink logit per head (``nnx.Param [N]``, zeros), an extra softmax
        column with no value (gpt-oss).
      output_gate: learn ``W_g [D, N H]`` and gate each head's output by ``sigmoid(x W_g)``
        before ``W^O`` (Qiu et al. 2025, Qwen3-Next).
      dtype, preferred_element_type: the projections' input and accumulation dtypes (as
        ``nnx.Linear``); with both set (mixed precision) an ``attention_fn`` gets queries,
        keys and values in ``dtype``. ``soft_cap`` / ``sink_logits`` reach an
        ``attention_fn`` only when set.
      param_dtype: storage dtype of the weights.
      rngs: ``nnx.Rngs`` with ``params`` (and ``dropout`` if ``dropout_rate > 0``).

    Call ``mha(inputs_q [B, T, D], inputs_kv [B, S, Dkv] = None, mask=, is_causal=)``; without
    ``inputs_kv`` it is self-attention. With ``sow_weights=True`` inside
    ``nnx.capture(..., nnx.Intermediate)`` the weights ``[B, N, T, S]`` are recorded under
    ``"attention_weights"``.

    Raises:
      TypeError: a size or head count that is not an int, a ``dropout_rate`` that is not a
        number, a hook that is not callable, a window that is not an int or pair of ints; a
        ``soft_cap`` that is not a number, a ``sink_logits`` / ``output_gate`` not a bool.
      ValueError: a size below 1; ``num_heads`` not dividing ``qkv_features``;
        ``num_kv_heads`` not dividing ``num_heads``; ``dropout_rate`` outside [0, 1); a
        negative window side; a ``qk_norm`` other than "rms" or "layer"; a ``soft_cap`` that
        is not positive and finite; at the call, inputs of another width or batch, a hook
        output of the wrong shape.

    >>> mha = MultiHeadAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
    >>> mha(jnp.ones((3, 5, 8))).shape
    (3, 5, 8)
    >>> gqa = MultiHeadAttention(num_heads=4, in_features=8, num_kv_heads=2, rngs=nnx.Rngs(0))
    >>> gqa.key.kernel.shape  # K * H = 2 * 2
    (8, 4)
    """

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        qkv_features: int | None = None,
        out_features: int | None = None,
        *,
        num_kv_heads: int | None = None,
        in_kv_features: int | None = None,
        dropout_rate: float = 0.0,
        use_bias: bool = True,
        out_bias: bool | None = None,
        attention_fn: AttentionFn | None = None,
        process_heads: ProcessHeadsFn | None = None,
        position_bias: PositionBiasFn | None = None,
        local_window_size: int | tuple[int, int] | None = None,
        qk_norm: str | None = None,
        soft_cap: float | None = None,
        sink_logits: bool = False,
        output_gate: bool = False,
        dtype=None,
        param_dtype=jnp.float32,
        preferred_element_type=None,
        kernel_init=nnx.initializers.xavier_uniform(),
        rngs: nnx.Rngs,
    ):
        (num_heads, in_features, qkv_features, out_features, num_kv_heads, in_kv_features,
         dropout_rate) = check_multi_head_args(
            num_heads, in_features, qkv_features, out_features, num_kv_heads, in_kv_features,
            dropout_rate=dropout_rate, process_heads=process_heads, position_bias=position_bias,
        )
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = qkv_features // num_heads
        self.in_features, self.in_kv_features = in_features, in_kv_features
        self.attention_fn = attention_fn
        self.process_heads = process_heads
        self.position_bias = position_bias
        self.local_window_size = check_local_window(local_window_size)  # (left, right) | None
        self.soft_cap = check_attention_options(qk_norm, soft_cap, sink_logits, output_gate)
        self.qk_norm = (None if qk_norm is None
                        else QKNorm(self.head_dim, kind=qk_norm, param_dtype=param_dtype))
        self.sink_logits = (nnx.Param(jnp.zeros((num_heads,), param_dtype)) if sink_logits
                            else None)
        self.dropout_rate = dropout_rate
        self.dtype, self.preferred_element_type = dtype, preferred_element_type
        linear = dict(
            use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, kernel_init=kernel_init,
            preferred_element_type=preferred_element_type, rngs=rngs,
        )
        kv_features = num_kv_heads * self.head_dim
        self.query = nnx.Linear(in_features, qkv_features, **linear)    # W^Q, N heads
        self.key = nnx.Linear(in_kv_features, kv_features, **linear)    # W^K, K heads
        self.value = nnx.Linear(in_kv_features, kv_features, **linear)  # W^V, K heads
        out_linear = linear | {"use_bias": use_bias if out_bias is None else out_bias}
        self.out = nnx.Linear(qkv_features, out_features, **out_linear)  # W^O
        self.gate = nnx.Linear(in_features, qkv_features, **linear) if output_gate else None
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
        self_attention = inputs_kv is None
        inputs_kv = inputs_q if self_attention else inputs_kv
        check_multi_head_inputs(inputs_q, inputs_kv, self.in_features, self.in_kv_features)
        if self_attention:
            query_BTD, key_BSD, value_BSD = self._project_self(inputs_q)
        else:
            query_BTD, key_BSD, value_BSD = (
                self.query(inputs_q), self.key(inputs_kv), self.value(inputs_kv))
        query_BTNH = split_heads(query_BTD, self.num_heads)
        key_BSKH = split_heads(key_BSD, self.num_kv_heads)
        value_BSKH = split_heads(value_BSD, self.num_kv_heads)
        query_positions_T = jnp.arange(inputs_q.shape[-2], dtype=jnp.int32)
        key_positions_S = jnp.arange(inputs_kv.shape[-2], dtype=jnp.int32)
        query_BTNH, key_BSKH, value_BSKH = self.apply_process_heads(
            query_BTNH, key_BSKH, value_BSKH, query_positions_T, key_positions_S)
        bias_NTS = self.bias_for(query_positions_T, key_positions_S)
        if bias_NTS is not None and inputs_q.ndim == 3:
            bias_NTS = bias_NTS[None]  # [1, N, T, S]
        output_BTNH = self.attend(
            query_BTNH, key_BSKH, value_BSKH, mask, bias=bias_NTS, is_causal=is_causal,
            deterministic=deterministic, sow_weights=sow_weights,
        )
        return self.project_out(inputs_q, output_BTNH)

    def project_out(self, inputs_q, output_BTNH):
        """``Concat(heads) W^O``, each head first gated by ``sigmoid(x W_g)`` if
        ``output_gate`` (step 6a; the gate reads the layer input ``inputs_q``)."""
        if self.gate is not None:
            gate_BTNH = split_heads(self.gate(inputs_q), self.num_heads)
            output_BTNH = gate_output(output_BTNH, gate_BTNH)
        return self.out(merge_heads(output_BTNH))

    def score_options(self) -> dict:
        """``soft_cap`` and ``sink_logits`` for the attention functions, only those set."""
        options = {"soft_cap": self.soft_cap,
                   "sink_logits": None if self.sink_logits is None else self.sink_logits[...]}
        return {name: value for name, value in options.items() if value is not None}

    def apply_process_heads(self, query_BTNH, key_BSKH, value_BSKH, query_positions_T,
                            key_positions_S):
        """QK-norm if ``qk_norm`` (step 1a), then the ``process_heads`` hook (the identity
        without one), its output checked."""
        if self.qk_norm is not None:
            query_BTNH, key_BSKH, value_BSKH = self.qk_norm(query_BTNH, key_BSKH, value_BSKH)
        if self.process_heads is None:
            return query_BTNH, key_BSKH, value_BSKH
        given = (query_BTNH, key_BSKH, value_BSKH)
        processed = self.process_heads(*given, query_positions_T, key_positions_S)
        check_processed_heads(given, processed)
        return tuple(processed)

    def bias_for(self, query_positions_T, key_positions_S):
        """The ``position_bias`` hook's ``[N, T, S]`` (checked), or None without one."""
        if self.position_bias is None:
            return None
        bias_NTS = self.position_bias(query_positions_T, key_positions_S)
        check_position_bias(
            bias_NTS, (self.num_heads, query_positions_T.shape[0], key_positions_S.shape[0]))
        return bias_NTS

    def attend(
        self, query_BTNH, key_BSKH, value_BSKH, mask=None, *, bias=None, is_causal=False,
        deterministic=None, sow_weights=False,
    ):
        """Attention over the heads: the teaching steps (weights sown for plots, dropout on
        them), or ``attention_fn`` given only the options in use."""
        if self.attention_fn is None:
            weights_BNTS = attention_weights(
                query_BTNH, key_BSKH, mask, bias=bias, is_causal=is_causal,
                local_window_size=self.local_window_size, **self.score_options(),
            )
            if sow_weights:
                self.sow(nnx.Intermediate, "attention_weights", weights_BNTS)
            weights_BNTS = self.dropout(weights_BNTS, deterministic=deterministic)
            return weighted_sum(weights_BNTS, value_BSKH)
        check_attention_fn_call(
            sow_weights=sow_weights, dropout_rate=self.dropout_rate,
            dropout_on=not self.dropout.deterministic and not deterministic,
        )
        options = {"bias": bias, "local_window_size": self.local_window_size}
        options = {name: value for name, value in options.items() if value is not None}
        options |= self.score_options()
        if self.preferred_element_type is not None and self.dtype is not None:
            # Mixed precision: the kernel multiplies the narrow inputs, accumulates in float32.
            query_BTNH, key_BSKH, value_BSKH = (
                x.astype(self.dtype) for x in (query_BTNH, key_BSKH, value_BSKH))
        return self.attention_fn(
            query_BTNH, key_BSKH, value_BSKH, mask=mask, is_causal=is_causal, **options
        )

    def _project_self(self, x_BTD):
        """``x W^Q, x W^K, x W^V`` of self-attention as one product with ``[W^Q | W^K | W^V]``.

        One wide product reads the input once and makes one product for its gradient instead
        of three (``benchmarks/train_throughput.py --breakdown``); the parameters stay three
        ``nnx.Linear`` layers, concatenated here on every call.
        """
        parts = (self.query, self.key, self.value)
        kernel = jnp.concatenate([p.kernel[...] for p in parts], axis=-1)
        bias = (None if self.query.bias is None
                else jnp.concatenate([p.bias[...] for p in parts], axis=-1))
        if self.dtype is not None:
            x_BTD, kernel = x_BTD.astype(self.dtype), kernel.astype(self.dtype)
            bias = None if bias is None else bias.astype(self.dtype)
        y = jnp.einsum("...D,DF->...F", x_BTD, kernel,
                       preferred_element_type=self.preferred_element_type)
        y = y if bias is None else y + bias.reshape((1,) * (y.ndim - 1) + bias.shape)
        widths = [p.kernel.shape[-1] for p in parts]
        return jnp.split(y, [widths[0], widths[0] + widths[1]], axis=-1)
