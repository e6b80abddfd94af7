"""Step 7f: differential attention, the difference of two softmax maps (Ye et al. 2024, 2.1).

Each head splits its query and key into two halves and forms two attention maps; their
difference cancels the attention both give to irrelevant keys ("attention noise")::

    [Q1; Q2] = X W^Q,  [K1; K2] = X W^K,  V = X W^V        Q_i, K_i [T, H],  V [S, 2H]
    DiffAttn(X) = (softmax(Q1 K1^T / sqrt(H)) - lambda softmax(Q2 K2^T / sqrt(H))) V
    lambda      = exp(lq1 . lk1) - exp(lq2 . lk2) + lambda_init        (learned, one a layer)
    lambda_init = 0.8 - 0.6 exp(-0.3 (l - 1))                           (layer l = 1, 2, ...)
    head_n      = (1 - lambda_init) RMSNorm(DiffAttn_n(X))              (per head, learned scale)
    output      = Concat(head_1, ..., head_N) W^O

Each map is step 4's :func:`attention_weights` (masks and grouped heads come with it), the sum
is step 5's. The difference is what the layer sows as ``"attention_weights"`` (so the plots
draw it), both maps under ``"attention_weights_1"`` and ``"attention_weights_2"``. The decode
cache is step 7a's :class:`KVCache` with keys ``[B, S, K, 2H]``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int, Shaped

from attention._checks import (
    check_cache_index,
    check_floating,
    check_int,
    check_positive_int,
    check_width,
    shape_str,
)
from attention.mechanism.bounded_scores import head_norm
from attention.mechanism.kv_cache import KVCache, init_kv_cache, update_kv_cache
from attention.mechanism.masks import causal_mask
from attention.mechanism.multi_head import ProcessHeadsFn, merge_heads, split_heads
from attention.mechanism.weighted_sum import weighted_sum
from attention.mechanism.weights import attention_weights


def lambda_init(layer: int) -> float:
    """``lambda_init = 0.8 - 0.6 exp(-0.3 (l - 1))`` of layer ``l`` (1-based; section 2.1).

    Raises:
      TypeError, ValueError: ``layer`` not an int >= 1.

    >>> round(lambda_init(1), 4), round(lambda_init(12), 4)
    (0.2, 0.7779)
    """
    layer = check_int("layer", layer, minimum=1, what="an int >= 1 (layers count from 1)")
    return 0.8 - 0.6 * math.exp(-0.3 * (layer - 1))


def differential_lambda(
    lambda_q1: Float[Array, " H"],
    lambda_k1: Float[Array, " H"],
    lambda_q2: Float[Array, " H"],
    lambda_k2: Float[Array, " H"],
    init: float,
) -> Float[Array, ""]:
    """``lambda = exp(lq1 . lk1) - exp(lq2 . lk2) + lambda_init``, in float32 (section 2.1).

    >>> zero = jnp.zeros(4)
    >>> round(float(differential_lambda(zero, zero, zero, zero, 0.2)), 4)  # 1 - 1 + 0.2
    0.2
    """
    dot_1 = jnp.dot(lambda_q1.astype(jnp.float32), lambda_k1.astype(jnp.float32))
    dot_2 = jnp.dot(lambda_q2.astype(jnp.float32), lambda_k2.astype(jnp.float32))
    return jnp.exp(dot_1) - jnp.exp(dot_2) + init


def differential_weights(
    query1: Shaped[Array, "*B T N H"],
    key1: Shaped[Array, "*B S K H"],
    query2: Shaped[Array, "*B T N H"],
    key2: Shaped[Array, "*B S K H"],
    lambda_: Float[Array, ""] | float,
    mask: Bool[Array, "..."] | None = None,
    *,
    is_causal: bool = False,
) -> tuple[Shaped[Array, "*B N T S"], Shaped[Array, "*B N T S"], Shaped[Array, "*B N T S"]]:
    """The two maps and their difference::

        A1 = softmax(Q1 K1^T / sqrt(H)),  A2 = softmax(Q2 K2^T / sqrt(H)),  A1 - lambda A2

    Args:
      query1, query2: the two halves of the queries ``[B, T, N, H]``.
      key1, key2: the two halves of the keys ``[B, S, K, H]`` (K divides N, step 1).
      lambda_: the scalar lambda (:func:`differential_lambda`).
      mask: boolean, broadcastable to ``[B, N, T, S]`` (True = may attend).
      is_causal: query t sees keys ``s <= t``.

    Returns:
      ``(A1, A2, A1 - lambda A2)``, each ``[B, N, T, S]``; a row with every key masked is 0
      in all three. The rows of the difference sum to ``1 - lambda``.

    Raises:
      TypeError, ValueError: as :func:`attention_weights`, for either half.

    >>> q = k = jnp.zeros((1, 2, 1, 4))
    >>> a1, a2, d = differential_weights(q, k, q, k, 0.5, is_causal=True)
    >>> d[0, 0].tolist()  # (1 - 0.5) of the uniform causal map
    [[0.5, 0.0], [0.25, 0.25]]
    """
    weights1_BNTS = attention_weights(query1, key1, mask, is_causal=is_causal)
    weights2_BNTS = attention_weights(query2, key2, mask, is_causal=is_causal)
    difference_BNTS = weights1_BNTS - jnp.asarray(lambda_, weights1_BNTS.dtype) * weights2_BNTS
    return weights1_BNTS, weights2_BNTS, difference_BNTS


def differential_attention(
    query1: Shaped[Array, "*B T N H"],
    key1: Shaped[Array, "*B S K H"],
    query2: Shaped[Array, "*B T N H"],
    key2: Shaped[Array, "*B S K H"],
    value: Shaped[Array, "*B S K Hv"],
    lambda_: Float[Array, ""] | float,
    mask: Bool[Array, "..."] | None = None,
    *,
    is_causal: bool = False,
) -> Shaped[Array, "*B T N Hv"]:
    """``DiffAttn = (A1 - lambda A2) V`` (section 2.1, eq. 1), before the per-head norm.

    Args and errors as :func:`differential_weights`; ``value [B, S, K, Hv]``.

    >>> q = k = jnp.zeros((2, 1, 4))
    >>> v = jnp.array([[[2.0]], [[4.0]]])  # [S=2, K=1, Hv=1]
    >>> differential_attention(q, k, q, k, v, 0.5).tolist()  # (1 - 0.5) * mean(2, 4)
    [[[1.5]], [[1.5]]]
    """
    *_, difference_BNTS = differential_weights(
        query1, key1, query2, key2, lambda_, mask, is_causal=is_causal)
    return weighted_sum(difference_BNTS, value)


class DifferentialAttention(nnx.Module):
    """Differential multi-head self-attention (Ye et al. 2024, section 2.1).

    Args:
      num_heads: N query heads.
      in_features: width D of the input (and of the output).
      head_dim: H, the size of each query/key half; the value heads are ``2H``. Default
        ``D / (2N)``, the paper's (the parameters of a standard layer with N heads).
      num_kv_heads: K key/value heads dividing N (default N).
      layer: the layer's number l, 1-based, that sets ``lambda_init``.
      use_bias: biases in the four projections.
      process_heads: a hook ``(query, key, value, query_positions, key_positions) ->
        (query, key, value)`` such as RoPE, applied to the halves as 2N query heads and 2K
        key heads of size H (``RotaryEmbedding(H)``).
      epsilon: the head norm's epsilon.
      dtype, param_dtype, preferred_element_type: as ``nnx.Linear``.
      rngs: ``nnx.Rngs`` with ``params``.

    Call ``attention(x [B, T, D], mask=, is_causal=, sow_weights=)``; decode with
    :meth:`init_cache` and :meth:`append_and_attend`.

    Raises:
      TypeError, ValueError: a size that is not a positive int; ``2N`` not dividing D without a
        ``head_dim``; K not dividing N; at the call, an input not ``[B, T, D]`` floating.

    >>> attention = DifferentialAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
    >>> attention(jnp.ones((3, 5, 8)), is_causal=True).shape
    (3, 5, 8)
    """

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        *,
        head_dim: int | None = None,
        num_kv_heads: int | None = None,
        layer: int = 1,
        use_bias: bool = False,
        process_heads: ProcessHeadsFn | None = None,
        epsilon: float = 1e-5,
        dtype=None,
        param_dtype=jnp.float32,
        preferred_element_type=None,
        rngs: nnx.Rngs,
    ):
        num_heads = check_positive_int("num_heads", num_heads)
        in_features = check_positive_int("in_features", in_features)
        num_kv_heads = check_positive_int(
            "num_kv_heads", num_heads if num_kv_heads is None else num_kv_heads)
        if num_heads % num_kv_heads:
            raise ValueError(
                f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads} (each key/value "
                f"head serves num_heads / num_kv_heads query heads)."
            )
        if head_dim is None:
            if in_features % (2 * num_heads):
                raise ValueError(
                    f"the default head_dim is in_features / (2 num_heads), so 2 * num_heads = "
                    f"{2 * num_heads} must divide in_features={in_features}; pass head_dim."
                )
            head_dim = in_features // (2 * num_heads)
        head_dim = check_positive_int("head_dim", head_dim)
        if process_heads is not None and not callable(process_heads):
            raise TypeError(
                f"process_heads must be callable or None, got {type(process_heads).__name__}.")
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.in_features = in_features
        self.lambda_init = lambda_init(layer)
        self.process_heads = process_heads
        self.epsilon = epsilon
        linear = dict(use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                      preferred_element_type=preferred_element_type, rngs=rngs)
        H2 = 2 * head_dim
        self.query = nnx.Linear(in_features, num_heads * H2, **linear)    # [W^Q1 | W^Q2]
        self.key = nnx.Linear(in_features, num_kv_heads * H2, **linear)   # [W^K1 | W^K2]
        self.value = nnx.Linear(in_features, num_kv_heads * H2, **linear)  # W^V, heads of 2H
        self.out = nnx.Linear(num_heads * H2, in_features, **linear)       # W^O
        init = nnx.initializers.normal(0.1)
        self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2 = (
            nnx.Param(init(key, (head_dim,), param_dtype))
            for key in jax.random.split(rngs.params(), 4))
        self.norm_scale = nnx.Param(jnp.ones((H2,), param_dtype))  # the head norm's gain

    def lambda_(self) -> Float[Array, ""]:
        """This layer's lambda (:func:`differential_lambda`)."""
        return differential_lambda(self.lambda_q1[...], self.lambda_k1[...],
                                   self.lambda_q2[...], self.lambda_k2[...], self.lambda_init)

    def _heads(self, x_BTD, positions_T):
        """The projected halves ``[B, T, N, H]`` x2, ``[B, T, K, H]`` x2 and values
        ``[B, T, K, 2H]``, the hook applied to the halves (keys and queries at ``positions``)."""
        B, T, H = x_BTD.shape[0], x_BTD.shape[1], self.head_dim
        query_BTNH = self.query(x_BTD).reshape(B, T, 2 * self.num_heads, H)  # [B, T, 2N, H]
        key_BTKH = self.key(x_BTD).reshape(B, T, 2 * self.num_kv_heads, H)   # [B, T, 2K, H]
        value_BTKH = split_heads(self.value(x_BTD), self.num_kv_heads)
        if self.process_heads is not None:
            query_BTNH, key_BTKH, _ = self.process_heads(
                query_BTNH, key_BTKH, key_BTKH, positions_T, positions_T)
        # Head n's halves are heads 2n and 2n + 1 of the [B, T, 2N, H] view.
        return (query_BTNH[:, :, 0::2], key_BTKH[:, :, 0::2], query_BTNH[:, :, 1::2],
                key_BTKH[:, :, 1::2], value_BTKH)

    def _output(self, output_BTNH):
        """``W^O`` of the normed heads: ``(1 - lambda_init) RMSNorm(head_n)``, concatenated."""
        normed_BTNH = head_norm(output_BTNH, self.norm_scale[...], epsilon=self.epsilon)
        return self.out(merge_heads((1.0 - self.lambda_init) * normed_BTNH))

    def __call__(
        self,
        x: Shaped[Array, "B T D"],
        *,
        mask: Bool[Array, "..."] | None = None,
        is_causal: bool = False,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Shaped[Array, "B T D"]:
        check_floating("x", x, axes="BTD")
        check_width("x", x, self.in_features, "in_features")
        positions_T = jnp.arange(x.shape[1], dtype=jnp.int32)
        query1, key1, query2, key2, value_BSKH = self._heads(x, positions_T)
        weights1_BNTS, weights2_BNTS, difference_BNTS = differential_weights(
            query1, key1, query2, key2, self.lambda_(), mask, is_causal=is_causal)
        if sow_weights:
            self.sow(nnx.Intermediate, "attention_weights", difference_BNTS)
            self.sow(nnx.Intermediate, "attention_weights_1", weights1_BNTS)
            self.sow(nnx.Intermediate, "attention_weights_2", weights2_BNTS)
        return self._output(weighted_sum(difference_BNTS, value_BSKH))

    def init_cache(self, batch_size: int, max_len: int, dtype=jnp.float32) -> KVCache:
        """An empty cache: keys ``[B, S, K, 2H]`` (both halves), values ``[B, S, K, 2H]``.

        Raises:
          TypeError, ValueError: a size that is not a positive int.
        """
        batch_size = check_positive_int("batch_size", batch_size)
        max_len = check_positive_int("max_len", max_len)
        return init_kv_cache(batch_size, max_len, self.num_kv_heads, 2 * self.head_dim, dtype)

    def append_and_attend(
        self, x: Shaped[Array, "B T D"], cache: KVCache, index: int | Int[Array, ""]
    ) -> tuple[Shaped[Array, "B T D"], KVCache]:
        """Causal attention of new positions ``index .. index+T-1`` over the cache (their
        keys and values written at ``index``); equal, position by position, to the full
        causal call.

        Raises:
          TypeError: a cache that is not a :class:`KVCache`; an ``index`` not an integer.
          ValueError: a cache of another shape; ``index + T`` beyond the cache.
        """
        check_floating("x", x, axes="BTD")
        check_width("x", x, self.in_features, "in_features")
        _check_kv_cache(cache, (x.shape[0], None, self.num_kv_heads, 2 * self.head_dim))
        T, S = x.shape[1], cache.key.shape[1]
        check_cache_index(index, T, S)
        positions_T = jnp.asarray(index, jnp.int32) + jnp.arange(T, dtype=jnp.int32)
        query1, key1, query2, key2, value_BTKH = self._heads(x, positions_T)
        # Keys stored as [K, 2H]: half 1 then half 2, each head's halves side by side.
        key_BTKH = jnp.concatenate([key1, key2], axis=-1)
        cache = update_kv_cache(cache, key_BTKH, value_BTKH, index)
        H = self.head_dim
        output_BTNH = differential_attention(
            query1, cache.key[..., :H], query2, cache.key[..., H:], cache.value, self.lambda_(),
            causal_mask(T, S, offset=index))
        return self._output(output_BTNH), cache


def _check_kv_cache(cache, expected) -> None:
    """A :class:`KVCache` of ``[B, S, K, 2H]`` keys and values (S any)."""
    if not isinstance(cache, KVCache):
        raise TypeError(
            f"cache must be a KVCache (from init_cache), got {type(cache).__name__}.")
    expected = tuple(cache.key.shape[1] if e is None else e for e in expected)
    if cache.key.shape != expected or cache.value.shape != expected:
        raise ValueError(
            f"cache key/value must be [B, S, K, 2H] = {shape_str(expected)} for this input and "
            f"module; got key {shape_str(cache.key.shape)} and value "
            f"{shape_str(cache.value.shape)}."
        )
