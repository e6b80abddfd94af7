"""Step 7h: linear attention, a kernel instead of the softmax (Katharopoulos et al. 2020, 3.2-3.4).

Replace ``exp(q . k)`` by a similarity ``phi(q) . phi(k)`` with a positive feature map
``phi(x) = elu(x) + 1`` (section 3.2.1) and the product can be regrouped::

    out_t = sum_s phi(q_t).phi(k_s) v_s / sum_s phi(q_t).phi(k_s)
          = phi(q_t) (sum_s phi(k_s) v_s^T) / phi(q_t) . (sum_s phi(k_s))       (eq. 5)

Without a mask the two sums are computed once for all queries: time linear in the length
(:func:`linear_attention`). With a causal mask they become running sums, a recurrent network
(section 3.4) with a constant-size state (:class:`LinearState`)::

    S_t = S_{t-1} + phi(k_t) v_t^T    [H, Hv]       z_t = z_{t-1} + phi(k_t)    [H]
    out_t = phi(q_t) S_t / (phi(q_t) . z_t)

:func:`linear_attention_recurrent` runs it with ``jax.lax.scan``; the parallel form with a mask
(any mask: causal, padding) is the masked ``T x S`` similarity matrix, normalised by its rows.
The state is the decode cache: the same size after one token or a million. There are no
softmax weights to plot. The gated successors (RetNet, GLA) decay the state, ``S_t = g S_{t-1}
+ phi(k_t) v_t^T``: :func:`gated_linear_attention_recurrent`, and ``decay=`` of the parallel
form and of :class:`LinearAttention`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int, Shaped

from attention._checks import (
    check_floating,
    check_int_scalar,
    check_kv_heads_divide,
    check_positive_int,
    check_real,
    check_width,
    shape_str,
)
from attention.mechanism.masks import causal_mask, combine_masks
from attention.mechanism.multi_head import merge_heads, split_heads
from attention.mechanism.scores import repeat_kv_heads
from attention.mechanism.weighted_sum import weighted_sum

FeatureMap = Callable[[Array], Array]


class LinearState(NamedTuple):
    """The recurrent state of linear attention, per sequence and key/value head: ``S``
    ``[B, K, H, Hv]``, the sum of ``phi(k_s) v_s^T``, and ``z`` ``[B, K, H]``, the sum of
    ``phi(k_s)`` (section 3.4). Float32 sums; a pytree."""

    S: Float[Array, "B K H Hv"]
    z: Float[Array, "B K H"]


def elu_feature_map(x: Shaped[Array, "..."]) -> Float[Array, "..."]:
    """``phi(x) = elu(x) + 1`` (section 3.2.1), in float32: positive, so every similarity is.

    >>> [round(float(v), 4) for v in elu_feature_map(jnp.array([-1.0, 0.0, 2.0]))]
    [0.3679, 1.0, 3.0]
    """
    return jax.nn.elu(x.astype(jnp.float32)) + 1.0


def _safe_divide(numerator, denominator_expanded):
    """numerator / denominator, 0 where the denominator is 0 (a query that sees no key)."""
    positive = denominator_expanded > 0
    return jnp.where(positive, numerator / jnp.where(positive, denominator_expanded, 1.0), 0.0)


def linear_attention(
    query: Shaped[Array, "*B T N H"],
    key: Shaped[Array, "*B S K H"],
    value: Shaped[Array, "*B S K Hv"],
    mask: Bool[Array, "..."] | None = None,
    *,
    is_causal: bool = False,
    decay: float | None = None,
    feature_map: FeatureMap = elu_feature_map,
) -> Shaped[Array, "*B T N Hv"]:
    """Linear attention in parallel: eq. 5 without a mask, the masked similarities with one.

    Without mask and ``is_causal``: ``phi(Q) (phi(K)^T V) / phi(Q) (phi(K)^T 1)``, linear in
    T and S. Otherwise ``A_ts = phi(q_t) . phi(k_s)`` where allowed, 0 elsewhere, and
    ``out = (A / rowsum(A)) V`` (quadratic, like softmax attention; the recurrent form is the
    linear-time causal one). A query that sees no key gets 0.

    Args:
      query ``[B, T, N, H]``, key ``[B, S, K, H]``, value ``[B, S, K, Hv]`` (K divides N).
      mask: boolean, broadcastable to ``[B, N, T, S]``; ``is_causal``: key s only if s <= t.
      decay: g in (0, 1], the gated form's decay: ``A_ts`` times ``g^(t - s)`` (the parallel
        twin of :func:`gated_linear_attention_recurrent`; keys after the query must be masked).
      feature_map: phi, positive (default :func:`elu_feature_map`).

    Returns:
      ``[B, T, N, Hv]`` in the value's dtype.

    Raises:
      TypeError, ValueError: as :func:`attention.repeat_kv_heads`; a mask that does not
        broadcast; a ``decay`` without a causal mask.

    >>> q = k = jnp.zeros((2, 1, 4))  # phi = 1 everywhere: a plain average
    >>> v = jnp.array([[[2.0]], [[4.0]]])
    >>> linear_attention(q, k, v, is_causal=True)[:, 0, 0].tolist()
    [2.0, 3.0]
    """
    if decay is not None and mask is None and not is_causal:
        raise ValueError(
            f"decay={decay} weighs key s by g^(t - s) for the keys before query t: pass "
            f"is_causal=True or a causal mask."
        )
    N = query.shape[-2]
    phi_query = feature_map(query)                          # [B, T, N, H]
    phi_key = repeat_kv_heads(feature_map(key), N)          # [B, S, N, H]
    if mask is None and not is_causal and decay is None:
        value_BSNE = repeat_kv_heads(value, N).astype(jnp.float32)  # E = Hv
        state_BNHE = jnp.einsum("...SNH,...SNE->...NHE", phi_key, value_BSNE)  # phi(K)^T V
        normalizer_BNH = phi_key.sum(axis=-3)                                    # phi(K)^T 1
        numerator = jnp.einsum("...TNH,...NHE->...TNE", phi_query, state_BNHE)
        denominator = jnp.einsum("...TNH,...NH->...TN", phi_query, normalizer_BNH)
        return _safe_divide(numerator, denominator[..., None]).astype(value.dtype)
    T, S = query.shape[-3], key.shape[-3]
    mask = combine_masks(mask, causal_mask(T, S) if is_causal else None)
    similarity_BNTS = jnp.einsum("...TNH,...SNH->...NTS", phi_query, phi_key)
    if decay is not None:  # g^(t - s): older keys count less (masked keys get no weight)
        distance_TS = jnp.maximum(jnp.arange(T)[:, None] - jnp.arange(S)[None, :], 0)
        similarity_BNTS = similarity_BNTS * jnp.broadcast_to(
            jnp.float32(decay) ** distance_TS, similarity_BNTS.shape)
    if mask is not None:
        similarity_BNTS = jnp.where(jnp.broadcast_to(mask, similarity_BNTS.shape),
                                    similarity_BNTS, 0.0)
    rows_BNT1 = similarity_BNTS.sum(axis=-1, keepdims=True)
    weights_BNTS = _safe_divide(similarity_BNTS, rows_BNT1)
    return weighted_sum(weights_BNTS, value.astype(jnp.float32)).astype(value.dtype)


def init_linear_state(batch_size: int, num_kv_heads: int, head_dim: int,
                      value_head_dim: int) -> LinearState:
    """The empty state: zeros ``S [B, K, H, Hv]`` and ``z [B, K, H]`` (float32).

    >>> init_linear_state(3, 2, 4, 5).S.shape
    (3, 2, 4, 5)
    """
    for name, size in (("batch_size", batch_size), ("num_kv_heads", num_kv_heads),
                       ("head_dim", head_dim), ("value_head_dim", value_head_dim)):
        check_positive_int(name, size)
    return LinearState(jnp.zeros((batch_size, num_kv_heads, head_dim, value_head_dim)),
                       jnp.zeros((batch_size, num_kv_heads, head_dim)))


def gated_linear_attention_recurrent(
    query: Shaped[Array, "B T N H"],
    key: Shaped[Array, "B T K H"],
    value: Shaped[Array, "B T K Hv"],
    decay: Float[Array, " K"] | Float[Array, ""] | float,
    state: LinearState | None = None,
    *,
    feature_map: FeatureMap = elu_feature_map,
) -> tuple[Shaped[Array, "B T N Hv"], LinearState]:
    """The recurrence with a per-head decay ``g`` in (0, 1] (RetNet, GLA's fixed-gate case)::

        S_t = g S_{t-1} + phi(k_t) v_t^T,   z_t = g z_{t-1} + phi(k_t),
        out_t = phi(q_t) S_t / (phi(q_t) . z_t)

    ``g = 1`` is :func:`linear_attention_recurrent`. Older tokens count ``g^(t-s)`` times less.

    Returns:
      ``(out [B, T, N, Hv], the state after the last token)``.

    >>> q = k = jnp.zeros((1, 2, 1, 4))
    >>> v = jnp.array([[[[2.0]], [[4.0]]]])
    >>> out, _ = gated_linear_attention_recurrent(q, k, v, 0.5)
    >>> [round(float(o), 4) for o in out[0, :, 0, 0]]  # (2 / 2 + 4) / (1 / 2 + 1)
    [2.0, 3.3333]
    """
    B, _, N, H = query.shape
    K, Hv = key.shape[-2], value.shape[-1]
    check_kv_heads_divide(K, N)
    if state is None:
        state = init_linear_state(B, K, H, Hv)
    decay_K = jnp.broadcast_to(jnp.asarray(decay, jnp.float32), (K,))
    phi_query_TBNH = jnp.moveaxis(feature_map(query), 1, 0)
    phi_key_TBKH = jnp.moveaxis(feature_map(key), 1, 0)
    value_TBKE = jnp.moveaxis(value.astype(jnp.float32), 1, 0)  # E = Hv

    def step(state, inputs):
        phi_q_BNH, phi_k_BKH, value_BKE = inputs
        S_BKHE = (decay_K[None, :, None, None] * state.S
                  + jnp.einsum("BKH,BKE->BKHE", phi_k_BKH, value_BKE))
        z_BKH = decay_K[None, :, None] * state.z + phi_k_BKH
        S_BNHE = jnp.repeat(S_BKHE, N // K, axis=1)  # head n reads state n // (N / K)
        z_BNH = jnp.repeat(z_BKH, N // K, axis=1)
        numerator_BNE = jnp.einsum("BNH,BNHE->BNE", phi_q_BNH, S_BNHE)
        denominator_BN1 = jnp.einsum("BNH,BNH->BN", phi_q_BNH, z_BNH)[..., None]
        return LinearState(S_BKHE, z_BKH), _safe_divide(numerator_BNE, denominator_BN1)

    state, output_TBNE = jax.lax.scan(
        step, LinearState(*(s.astype(jnp.float32) for s in state)),
        (phi_query_TBNH, phi_key_TBKH, value_TBKE))
    return jnp.moveaxis(output_TBNE, 0, 1).astype(value.dtype), state


def linear_attention_recurrent(
    query: Shaped[Array, "B T N H"],
    key: Shaped[Array, "B T K H"],
    value: Shaped[Array, "B T K Hv"],
    state: LinearState | None = None,
    *,
    feature_map: FeatureMap = elu_feature_map,
) -> tuple[Shaped[Array, "B T N Hv"], LinearState]:
    """Causal linear attention as a recurrent network (section 3.4), one token at a time
    with ``jax.lax.scan``; equal to ``linear_attention(..., is_causal=True)``.

    Args:
      query ``[B, T, N, H]``, key ``[B, T, K, H]``, value ``[B, T, K, Hv]``: T new tokens.
      state: the sums over earlier tokens (None: there are none).

    Returns:
      ``(out [B, T, N, Hv], the state after the last token)``.

    >>> q = k = jnp.zeros((1, 2, 1, 4))
    >>> v = jnp.array([[[[2.0]], [[4.0]]]])
    >>> linear_attention_recurrent(q, k, v)[0][0, :, 0, 0].tolist()
    [2.0, 3.0]
    """
    return gated_linear_attention_recurrent(query, key, value, 1.0, state,
                                            feature_map=feature_map)


class LinearAttention(nnx.Module):
    """Multi-head linear self-attention (Katharopoulos et al. 2020): the projections of
    :class:`attention.MultiHeadAttention` around :func:`linear_attention`.

    Args:
      num_heads: N; in_features: D (input and output width); num_kv_heads: K dividing N.
      head_dim: H (default D / N).
      decay: None, or the gated form's g in (0, 1] (:func:`gated_linear_attention_recurrent`):
        the state decays by g at every token.
      use_bias: biases in the four projections.
      dtype, param_dtype, preferred_element_type: as ``nnx.Linear``.
      rngs: ``nnx.Rngs`` with ``params``.

    Call ``attention(x [B, T, D], mask=, is_causal=)``; decode with :meth:`init_cache` (a
    :class:`LinearState`, whatever the length) and :meth:`append_and_attend`.

    Raises:
      TypeError, ValueError: sizes that are not positive ints, N not dividing D without a
        ``head_dim``, K not dividing N; at the call, a bad input, or ``sow_weights=True``
        (linear attention forms no attention weights).

    >>> attention = LinearAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
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
        decay: float | None = None,
        use_bias: bool = True,
        dtype=None,
        param_dtype=jnp.float32,
        preferred_element_type=None,
        rngs: nnx.Rngs,
    ):
        N = check_positive_int("num_heads", num_heads)
        D = check_positive_int("in_features", in_features)
        K = check_positive_int("num_kv_heads", N if num_kv_heads is None else num_kv_heads)
        check_kv_heads_divide(K, N)
        if head_dim is None and D % N:
            raise ValueError(
                f"the default head_dim is in_features / num_heads, so num_heads={N} must "
                f"divide in_features={D}; pass head_dim."
            )
        H = check_positive_int("head_dim", D // N if head_dim is None else head_dim)
        if decay is not None:
            decay = check_real("decay", decay, low=0.0, high=1.0, low_inclusive=False)
        self.num_heads, self.num_kv_heads, self.head_dim, self.in_features = N, K, H, D
        self.decay = decay
        linear = dict(use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                      preferred_element_type=preferred_element_type, rngs=rngs)
        self.query = nnx.Linear(D, N * H, **linear)
        self.key = nnx.Linear(D, K * H, **linear)
        self.value = nnx.Linear(D, K * H, **linear)
        self.out = nnx.Linear(N * H, D, **linear)

    def _heads(self, x_BTD):
        check_floating("x", x_BTD, axes="BTD")
        check_width("x", x_BTD, self.in_features, "in_features")
        return (split_heads(self.query(x_BTD), self.num_heads),
                split_heads(self.key(x_BTD), self.num_kv_heads),
                split_heads(self.value(x_BTD), self.num_kv_heads))

    def __call__(
        self,
        x: Shaped[Array, "B T D"],
        *,
        mask: Bool[Array, "..."] | None = None,
        is_causal: bool = False,
        deterministic: bool | None = None,
        sow_weights: bool = False,
    ) -> Shaped[Array, "B T D"]:
        if sow_weights:
            raise ValueError(
                "linear attention forms no attention weights (no softmax, no T x S map in "
                "the linear form) so there is nothing to sow; call it with "
                "sow_weights=False, or use attention='standard', 'mla' or 'differential' "
                "for attention maps."
            )
        query_BTNH, key_BTKH, value_BTKH = self._heads(x)
        output_BTNH = linear_attention(query_BTNH, key_BTKH, value_BTKH, mask,
                                       is_causal=is_causal, decay=self.decay)
        return self.out(merge_heads(output_BTNH))

    def init_cache(self, batch_size: int, max_len: int, dtype=jnp.float32) -> LinearState:
        """The empty :class:`LinearState` (float32 sums; ``max_len`` and ``dtype`` are
        checked and kept for the common signature: the state never grows).

        Raises:
          TypeError, ValueError: a size that is not a positive int.
        """
        check_positive_int("max_len", max_len)
        return init_linear_state(batch_size, self.num_kv_heads, self.head_dim, self.head_dim)

    def append_and_attend(
        self, x: Shaped[Array, "B T D"], cache: LinearState, index: int | Int[Array, ""]
    ) -> tuple[Shaped[Array, "B T D"], LinearState]:
        """New positions (``index`` onwards) through the recurrence, from the state of the
        earlier ones; equal, position by position, to the full causal call. ``index`` is
        not needed by the state (the sums have no slots) and only checked.

        Raises:
          TypeError: a state that is not a :class:`LinearState`; an ``index`` not an integer.
          ValueError: a state of another shape.
        """
        check_int_scalar("index", index)
        query_BTNH, key_BTKH, value_BTKH = self._heads(x)
        expected = (x.shape[0], self.num_kv_heads, self.head_dim, self.head_dim)
        if not isinstance(cache, LinearState):
            raise TypeError(
                f"cache must be a LinearState (from init_cache), got {type(cache).__name__}.")
        if tuple(cache.S.shape) != expected or tuple(cache.z.shape) != expected[:3]:
            raise ValueError(
                f"cache must hold S [B, K, H, Hv] = {shape_str(expected)} and z [B, K, H] = "
                f"{shape_str(expected[:3])}; got {shape_str(cache.S.shape)} and "
                f"{shape_str(cache.z.shape)}."
            )
        output_BTNH, cache = gated_linear_attention_recurrent(
            query_BTNH, key_BTKH, value_BTKH, 1.0 if self.decay is None else self.decay, cache)
        return self.out(merge_heads(output_BTNH)), cache
