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

**Key/value cache (for decoding).** A decoder generates one token at a time, and each new
token's query attends to the keys and values of every earlier token. Those keys and values do
not change once computed, so we keep them in a :class:`KVCache` and, at step t, project only
the new token (one row instead of t): :meth:`MultiHeadAttention.init_cache` makes an empty
cache, :meth:`MultiHeadAttention.append_and_attend` writes the new keys/values at position t
and attends over the cache (decoder self-attention), and :meth:`MultiHeadAttention.project_kv`
with :meth:`MultiHeadAttention.attend_to_cache` computes the cross-attention keys/values of the
encoder output once and reuses them at every step. The cache is an explicit value passed in
and returned, not hidden state in the module: the decoding loop carries it, beam search
reorders it with a gather, and the model's saved state never contains it.

**Grouped-query attention and the cache.** At every decoding step the whole cache is read, and
for long sequences it is the largest thing in memory: ``2 * layers * B * S * N * H`` numbers.
With ``num_kv_heads=K`` (Ainslie et al. 2023; K = 1 is Shazeer 2019's multi-query attention)
the key/value projections produce only K heads, each shared by N / K query heads, and the cache
holds ``[B, S, K, H]``: N / K times smaller, and N / K times less to read per step.

**Positions inside attention.** Today's models often put positions into attention itself
rather than adding them to the embeddings: ``rotary`` rotates queries and keys by an angle
proportional to their position (RoPE, Su et al. 2021), so that their dot product depends only
on the distance between the two positions; ``position_bias`` adds a bias depending on the
positions to the scores (ALiBi, Press et al. 2022); and ``local_window_size`` limits each query
to a sliding window of keys (Beltagy et al. 2020; Mistral, Jiang et al. 2023). The module takes
them as hooks, so that the model chooses the position scheme (attention/model/positional.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Int, Shaped

from attention._checks import (
    check_floating,
    check_int_scalar,
    check_local_window,
    check_positive_int,
    check_real,
    is_traced,
    shape_str,
)
from attention.mechanism.masks import causal_mask, combine_masks, local_window_mask
from attention.mechanism.weighted_sum import weighted_sum
from attention.mechanism.weights import attention_weights

AttentionFn = Callable[..., Array]
# rotary(x [*B, T, N, H], positions [T]) -> x rotated, same shape (RoPE).
RotaryFn = Callable[[Array, Array], Array]
# position_bias(query_positions [T], key_positions [S]) -> bias [N, T, S] (ALiBi).
PositionBiasFn = Callable[[Array, Array], Array]


def split_heads(x: Shaped[Array, "*B T D"], num_heads: int) -> Shaped[Array, "*B T N H"]:
    """Reshape the last axis D into N heads of size H = D / N (head-major, as Flax stores it).

    Raises:
      TypeError: ``num_heads`` not an int.
      ValueError: ``num_heads`` below 1 or not dividing D.

    >>> split_heads(jnp.arange(6.0).reshape(1, 6), 2).tolist()
    [[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]
    """
    num_heads = check_positive_int("num_heads", num_heads)
    if x.shape[-1] % num_heads:
        raise ValueError(
            f"the last axis of x (shape {shape_str(x.shape)}) must divide into "
            f"num_heads={num_heads} equal heads."
        )
    return x.reshape(*x.shape[:-1], num_heads, x.shape[-1] // num_heads)


def merge_heads(x: Shaped[Array, "*B T N H"]) -> Shaped[Array, "*B T D"]:
    """Inverse of :func:`split_heads`: concatenate the heads, ``[..., N, H] -> [..., N * H]``."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


class KVCache(NamedTuple):
    """Projected keys and values of one attention layer, kept between decoding steps.

    Fields:
      key: ``[B, S, K, H]``, the keys ``x W^K`` of positions ``0..S-1`` split into the K
        key/value heads (K = N without grouped-query attention); rotated already when the
        module has a ``rotary`` hook.
      value: ``[B, S, K, H]``, the values ``x W^V``.

    For decoder self-attention ``S`` is the maximum decoding length and slots at and after the
    current step hold zeros (they are masked out); for cross-attention ``S`` is the source
    length and every slot is filled once from the encoder output. A ``NamedTuple`` is a JAX
    pytree, so a cache can be carried through ``lax.while_loop`` and gathered by beam index
    with ``jax.tree.map``.
    """

    key: Shaped[Array, "B S K H"]
    value: Shaped[Array, "B S K H"]


class MultiHeadAttention(nnx.Module):
    """Multi-head attention: project, split into heads, attend, merge, project.

    Args:
      num_heads: ``h``, the number of query heads N.
      in_features: width D of the query inputs.
      qkv_features: total width of the query projection, ``h * d_k`` (default
        ``in_features``); must be divisible by ``num_heads``. The head dim is
        ``H = qkv_features / num_heads``.
      out_features: width of the output (default ``in_features``).
      num_kv_heads: K, the number of key/value heads (default ``num_heads``); must divide
        ``num_heads``. The key and value projections are ``K * H`` wide.
      in_kv_features: width of the key/value inputs for cross-attention (default
        ``in_features``).
      dropout_rate: dropout on the attention weights during training.
      use_bias: biases in the four projections.
      attention_fn: a function with the signature of :func:`attention.dot_product_attention`
        (for example a fast kernel). ``None`` uses the teaching steps, which is the only path
        that can sow the attention weights and apply dropout to them.
      rotary: ``rotary(x [*B, T, N, H], positions [T]) -> same shape``, applied to the queries
        and to the keys (never the values) right after they are projected and split into
        heads, for example RoPE (Su et al. 2021). Positions are int32: ``0..T-1`` for the
        queries and ``0..S-1`` for the keys of a call; in :meth:`append_and_attend` the new
        positions ``index ..`` (the keys are rotated before they enter the cache).
      position_bias: ``position_bias(query_positions [T], key_positions [S]) -> [N, T, S]``,
        a floating bias added to the scores, for example ALiBi (Press et al. 2022); the same
        positions as ``rotary``, keys ``0..S-1``.
      local_window_size: ``w`` (= ``(w, w)``) or ``(left, right)``: query t attends only keys
        ``t - left .. t + right`` (a sliding window, Beltagy et al. 2020); in
        :meth:`append_and_attend`, t is the query's position ``index + t``.
      dtype, preferred_element_type: the four projections' input and accumulation dtypes, as
        ``nnx.Linear``. Mixed precision (:mod:`attention.model.precision`) is ``bfloat16``
        and ``float32``: bfloat16 products, float32 outputs; an ``attention_fn`` then gets
        bfloat16 queries, keys and values and accumulates in float32, while the teaching
        steps score and mix in float32 (their products are small next to the projections).
      param_dtype: storage dtype of the weights.
      rngs: ``nnx.Rngs`` with ``params`` (and ``dropout`` if ``dropout_rate > 0``).

    Call ``mha(inputs_q [B, T, D], inputs_kv [B, S, Dkv] = None, mask=..., is_causal=...)``;
    without ``inputs_kv`` it is self-attention. With ``sow_weights=True`` inside
    ``nnx.capture(..., nnx.Intermediate)`` the weights ``[B, N, T, S]`` are recorded under
    ``"attention_weights"``. The position hooks (``rotary``, ``position_bias``,
    ``local_window_size``) are meant for self-attention, where queries and keys index the same
    sequence; the model gives them to self-attention only.

    **Grouped-query attention** (Ainslie et al. 2023). With ``num_kv_heads=K < N`` each
    key/value head is shared by N / K consecutive query heads (query head n uses key/value
    head ``n // (N / K)``); K = 1 is multi-query attention (Shazeer 2019). The key/value
    projections shrink by N / K, and above all the decoding cache does: it holds
    ``[B, S, K, H]`` per layer instead of ``[B, S, N, H]``, the memory and the reading that
    bound the speed of generating long sequences.

    For decoding one token at a time, :meth:`init_cache` + :meth:`append_and_attend` (causal
    self-attention) and :meth:`project_kv` + :meth:`attend_to_cache` (cross-attention) reuse
    keys and values computed at earlier steps; see :class:`KVCache`. These cached paths always
    attend with the teaching steps, whatever ``attention_fn`` is: a decoding step has one query
    per sequence against at most ``max_len`` cached keys, where a tiled kernel has nothing to
    tile, and the cache slots not yet written are masked per step (a mask the fused kernels
    take in another form). Training and the uncached call use ``attention_fn``; it gets
    ``bias=`` only when ``position_bias`` is set and ``local_window_size=`` only when that is.

    Raises:
      TypeError: a width, ``num_heads`` or ``num_kv_heads`` that is not an int (``True`` is not
        a count), a ``dropout_rate`` that is not a number, a ``rotary`` or ``position_bias``
        that is not callable, a window that is not an int or a pair of ints.
      ValueError: a width or head count below 1; ``num_heads`` does not divide
        ``qkv_features``; ``num_kv_heads`` does not divide ``num_heads``; ``dropout_rate``
        outside [0, 1); a negative window side; inputs whose last axis is not the configured
        width; batch sizes of query and key/value inputs that differ; a hook whose output has
        the wrong shape.

    >>> from flax import nnx
    >>> mha = MultiHeadAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
    >>> mha(jnp.ones((3, 5, 8))).shape
    (3, 5, 8)
    >>> gqa = MultiHeadAttention(num_heads=4, in_features=8, num_kv_heads=2, rngs=nnx.Rngs(0))
    >>> gqa.key.kernel.shape, gqa.init_cache(3, 5).key.shape  # K * H = 2 * 2; [B, S, K, H]
    ((8, 4), (3, 5, 2, 2))
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
        attention_fn: AttentionFn | None = None,
        rotary: RotaryFn | None = None,
        position_bias: PositionBiasFn | None = None,
        local_window_size: int | tuple[int, int] | None = None,
        dtype=None,
        param_dtype=jnp.float32,
        preferred_element_type=None,
        kernel_init=nnx.initializers.xavier_uniform(),
        rngs: nnx.Rngs,
    ):
        num_heads = check_positive_int("num_heads", num_heads)
        in_features = check_positive_int("in_features", in_features)
        qkv_features = check_positive_int(
            "qkv_features", in_features if qkv_features is None else qkv_features
        )
        out_features = check_positive_int(
            "out_features", in_features if out_features is None else out_features
        )
        in_kv_features = check_positive_int(
            "in_kv_features", in_features if in_kv_features is None else in_kv_features
        )
        num_kv_heads = check_positive_int(
            "num_kv_heads", num_heads if num_kv_heads is None else num_kv_heads
        )
        if qkv_features % num_heads:
            raise ValueError(
                f"num_heads={num_heads} must divide the projection width "
                f"qkv_features={qkv_features} (d_model) into equal heads; try a num_heads "
                f"among {_divisors(qkv_features)}."
            )
        if num_heads % num_kv_heads:
            raise ValueError(
                f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads}, so that each "
                f"key/value head serves the same number of query heads (grouped-query "
                f"attention); try a num_kv_heads among {_divisors(num_heads)}."
            )
        for name, hook in (("rotary", rotary), ("position_bias", position_bias)):
            if hook is not None and not callable(hook):
                raise TypeError(
                    f"{name} must be None or a callable, got {hook!r} ({type(hook).__name__})."
                )
        dropout_rate = check_real("dropout_rate", dropout_rate, low=0.0, high=1.0,
                                  high_inclusive=False)
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = qkv_features // num_heads
        self.in_features = in_features
        self.in_kv_features = in_kv_features
        self.attention_fn = attention_fn
        self.rotary = rotary
        self.position_bias = position_bias
        self.local_window_size = check_local_window(local_window_size)  # (left, right) | None
        self.dropout_rate = dropout_rate
        linear = dict(
            use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, kernel_init=kernel_init,
            preferred_element_type=preferred_element_type, rngs=rngs,
        )
        self.dtype = dtype
        self.preferred_element_type = preferred_element_type
        kv_features = num_kv_heads * self.head_dim
        self.query = nnx.Linear(in_features, qkv_features, **linear)    # W^Q, N heads
        self.key = nnx.Linear(in_kv_features, kv_features, **linear)    # W^K, K heads
        self.value = nnx.Linear(in_kv_features, kv_features, **linear)  # W^V, K heads
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
        T, S = inputs_q.shape[-2], inputs_kv.shape[-2]
        query_positions_T = jnp.arange(T, dtype=jnp.int32)
        key_positions_S = jnp.arange(S, dtype=jnp.int32)
        if inputs_kv is inputs_q:
            query_BTD, key_BSD, value_BSD = self._project_self(inputs_q)
        else:
            query_BTD, key_BSD, value_BSD = (
                self.query(inputs_q), self.key(inputs_kv), self.value(inputs_kv))
        query_BTNH = self._rotate(
            "queries", split_heads(query_BTD, self.num_heads), query_positions_T
        )
        key_BSKH = self._rotate(
            "keys", split_heads(key_BSD, self.num_kv_heads), key_positions_S
        )
        value_BSKH = split_heads(value_BSD, self.num_kv_heads)
        bias = self._position_bias(query_positions_T, key_positions_S, batched=inputs_q.ndim == 3)
        if self.attention_fn is None:
            output_BTNH = self._attend_reference(
                query_BTNH, key_BSKH, value_BSKH, mask, bias=bias, is_causal=is_causal,
                local_window_size=self.local_window_size, deterministic=deterministic,
                sow_weights=sow_weights,
            )
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
            # Only the options in use are passed, so that a kernel without them still works.
            options = {}
            if bias is not None:
                options["bias"] = bias
            if self.local_window_size is not None:
                options["local_window_size"] = self.local_window_size
            if self.preferred_element_type is not None and self.dtype is not None:
                # Mixed precision: the kernel's products get the narrow inputs and accumulate
                # in float32 (every kernel's contract for half-precision inputs).
                query_BTNH, key_BSKH, value_BSKH = (
                    x.astype(self.dtype) for x in (query_BTNH, key_BSKH, value_BSKH))
            output_BTNH = self.attention_fn(
                query_BTNH, key_BSKH, value_BSKH, mask=mask, is_causal=is_causal, **options
            )
        return self.out(merge_heads(output_BTNH))

    def _project_self(self, x_BTD):
        """``x W^Q, x W^K, x W^V`` of self-attention as one product with ``[W^Q | W^K | W^V]``.

        The three projections read the same input, so one wide matrix product does their
        work: the input is read once, the backward pass makes one product for the input's
        gradient instead of three products and two sums, and the CPU's matmul runs at a
        better rate on a 3x wider output (``benchmarks/train_throughput.py --breakdown``).
        The parameters stay three ``nnx.Linear`` layers (checkpoints and the course name
        them), concatenated here on every call; their gradients come out split.
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

    def _attend_reference(
        self, query_BTNH, key_BSKH, value_BSKH, mask, *, bias=None, is_causal=False,
        local_window_size=None, deterministic=None, sow_weights=False,
    ):
        """The teaching steps: weights (sown for plots), dropout on them, weighted sum."""
        weights_BNTS = attention_weights(
            query_BTNH, key_BSKH, mask, bias=bias, is_causal=is_causal,
            local_window_size=local_window_size,
        )
        if sow_weights:
            self.sow(nnx.Intermediate, "attention_weights", weights_BNTS)
        weights_BNTS = self.dropout(weights_BNTS, deterministic=deterministic)
        return weighted_sum(weights_BNTS, value_BSKH)

    def _rotate(self, what, x_BTNH, positions_T):
        """The ``rotary`` hook on queries or keys (identity without one), its shape checked."""
        if self.rotary is None:
            return x_BTNH
        rotated = self.rotary(x_BTNH, positions_T)
        if getattr(rotated, "shape", None) != x_BTNH.shape:
            got = shape_str(rotated.shape) if hasattr(rotated, "shape") else type(rotated).__name__
            raise ValueError(
                f"rotary(x, positions) must return an array of the shape of x; for the {what} "
                f"{shape_str(x_BTNH.shape)} it returned {got}."
            )
        return rotated

    def _position_bias(self, query_positions_T, key_positions_S, *, batched: bool):
        """The ``position_bias`` hook as a bias for the scores: ``[1, N, T, S]`` (or ``[N, T, S]``
        for unbatched inputs), or None without one."""
        if self.position_bias is None:
            return None
        bias_NTS = self.position_bias(query_positions_T, key_positions_S)
        expected = (self.num_heads, query_positions_T.shape[0], key_positions_S.shape[0])
        check_floating("position_bias(query_positions, key_positions)", bias_NTS)
        if bias_NTS.shape != expected:
            raise ValueError(
                f"position_bias(query_positions, key_positions) must return a bias [N, T, S] = "
                f"{shape_str(expected)}, got {shape_str(bias_NTS.shape)}."
            )
        return bias_NTS[None] if batched else bias_NTS

    # ----------------------------------------------------------------- key/value cache

    def init_cache(self, batch_size: int, max_len: int, *, dtype=jnp.float32) -> KVCache:
        """An empty self-attention cache of ``max_len`` slots: two zero arrays ``[B, S, K, H]``.

        K is ``num_kv_heads``: with grouped-query attention the cache is N / K times smaller
        than with one key/value head per query head.

        Raises:
          TypeError: ``batch_size`` or ``max_len`` not an int.
          ValueError: ``batch_size`` or ``max_len`` below 1.

        >>> mha = MultiHeadAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
        >>> mha.init_cache(3, 5).key.shape
        (3, 5, 2, 4)
        """
        batch_size = check_positive_int("batch_size", batch_size)
        max_len = check_positive_int("max_len", max_len)
        shape = (batch_size, max_len, self.num_kv_heads, self.head_dim)
        return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))

    def project_kv(self, inputs_kv: Shaped[Array, "B S Dkv"]) -> KVCache:
        """Keys and values of a fixed sequence (the encoder output), computed once.

        Cross-attention in the decoder looks at the same encoder output at every step, so its
        keys ``memory W^K`` and values ``memory W^V`` are projected once before decoding and
        then read by :meth:`attend_to_cache` at each step. A ``rotary`` hook, if the module
        has one, rotates the keys at positions ``0..S-1``, as in the call.

        Args:
          inputs_kv: ``[B, S, Dkv]``.

        Returns:
          :class:`KVCache` with key and value ``[B, S, K, H]``.

        Raises:
          TypeError, ValueError: as the call (non-floating input, wrong width or rank).
        """
        check_floating("inputs_kv", inputs_kv, axes="BSD")
        self._check_width("inputs_kv", inputs_kv, self.in_kv_features, "in_kv_features")
        key_positions_S = jnp.arange(inputs_kv.shape[1], dtype=jnp.int32)
        return KVCache(
            self._rotate(
                "keys", split_heads(self.key(inputs_kv), self.num_kv_heads), key_positions_S
            ),
            split_heads(self.value(inputs_kv), self.num_kv_heads),
        )

    def attend_to_cache(
        self,
        inputs_q: Shaped[Array, "B T D"],
        cache: KVCache,
        *,
        mask: Bool[Array, "..."] | None = None,
    ) -> Shaped[Array, "B T Dout"]:
        """Attention of new queries over keys/values already in ``cache`` (cross-attention).

        Equals ``self(inputs_q, inputs_kv, mask=mask)`` when ``cache = project_kv(inputs_kv)``
        (without dropout: this is the decoding path, always deterministic); position hooks, if
        the module has any, see the queries at positions ``0..T-1`` as in that call. It attends
        with the teaching steps, not ``attention_fn`` (see the class docstring).

        Args:
          inputs_q: ``[B, T, D]``, usually one new position (T = 1).
          cache: from :meth:`project_kv`, key and value ``[B, S, K, H]``.
          mask: boolean, broadcastable to ``[B, N, T, S]`` (a source padding mask).

        Returns:
          ``[B, T, Dout]``.

        Raises:
          TypeError: ``cache`` not a :class:`KVCache`; as the call.
          ValueError: a cache of another batch size, head count K or head dim; as the call.
        """
        query_BTNH = self._project_query(inputs_q, cache)
        T, S = inputs_q.shape[1], cache.key.shape[1]
        query_positions_T = jnp.arange(T, dtype=jnp.int32)
        query_BTNH = self._rotate("queries", query_BTNH, query_positions_T)
        bias = self._position_bias(
            query_positions_T, jnp.arange(S, dtype=jnp.int32), batched=True
        )
        output_BTNH = self._attend_reference(
            query_BTNH, cache.key, cache.value, mask, bias=bias,
            local_window_size=self.local_window_size, deterministic=True,
        )
        return self.out(merge_heads(output_BTNH))

    def append_and_attend(
        self,
        inputs_q: Shaped[Array, "B T D"],
        cache: KVCache,
        index: int | Int[Array, ""],
        *,
        mask: Bool[Array, "..."] | None = None,
    ) -> tuple[Shaped[Array, "B T Dout"], KVCache]:
        """Causal self-attention for new positions ``index .. index+T-1``, using a cache.

        The keys and values of the new positions are written into ``cache`` at ``index``
        (``lax.dynamic_update_slice``, so ``index`` may be a traced step counter), and each new
        query t attends the cache slots ``s <= index + t``:
        :func:`attention.causal_mask` ``(T, S, offset=index)``. Slots not yet written are
        masked, so their zeros never enter the softmax. Feeding a sequence one position at a
        time through this method equals ``self(x, is_causal=True)`` on the whole sequence. It
        attends with the teaching steps, not ``attention_fn`` (see the class docstring).

        The position hooks see the new positions ``index + arange(T)``: ``rotary`` rotates the
        new queries and keys there (the cache holds rotated keys, so earlier keys are never
        rotated again), ``position_bias`` gets them as query positions against key positions
        ``0..S-1``, and the sliding window is
        :func:`attention.mechanism.masks.local_window_mask` ``(T, S, window, offset=index)``.

        Args:
          inputs_q: ``[B, T, D]``, the new positions (T = 1 when decoding token by token).
          cache: from :meth:`init_cache` or the previous step, ``[B, S, K, H]`` with
            ``index + T <= S``.
          index: how many positions the cache already holds (concrete or traced int).
          mask: optional extra boolean mask broadcastable to ``[B, N, T, S]``.

        Returns:
          ``(output [B, T, Dout], updated cache)``.

        Raises:
          TypeError: an ``index`` that is neither an int nor an integer scalar array.
          ValueError: a cache of another batch size, head count K or head dim; a concrete
            ``index`` below 0 or ``index + T`` beyond the cache length (a traced index is
            clamped by ``dynamic_update_slice`` instead: keep it in ``0..S-T``).

        >>> mha = MultiHeadAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
        >>> x = jnp.ones((3, 1, 8))
        >>> out, cache = mha.append_and_attend(x, mha.init_cache(3, 5), 0)
        >>> out.shape, cache.key.shape
        ((3, 1, 8), (3, 5, 2, 4))
        """
        if self.in_kv_features != self.in_features:
            raise ValueError(
                f"append_and_attend is self-attention: it needs in_kv_features == in_features, "
                f"but this module has in_kv_features={self.in_kv_features} and "
                f"in_features={self.in_features}; use project_kv + attend_to_cache instead."
            )
        query_BTNH = self._project_query(inputs_q, cache)
        check_int_scalar("index", index, what="an int or an integer scalar array (the step)")
        T, S = inputs_q.shape[1], cache.key.shape[1]
        if not is_traced(index) and int(index) < 0:
            raise ValueError(f"index must be >= 0 (positions already cached), got {int(index)}.")
        if not is_traced(index) and int(index) + T > S:
            raise ValueError(
                f"the cache holds S={S} positions but index={int(index)} plus {T} new "
                f"position(s) would need {int(index) + T}; make the cache longer."
            )
        positions_T = jnp.asarray(index, jnp.int32) + jnp.arange(T, dtype=jnp.int32)
        query_BTNH = self._rotate("queries", query_BTNH, positions_T)
        new_key_BTKH = self._rotate(
            "keys", split_heads(self.key(inputs_q), self.num_kv_heads), positions_T
        ).astype(cache.key.dtype)
        new_value_BTKH = split_heads(self.value(inputs_q), self.num_kv_heads).astype(
            cache.value.dtype
        )
        start = (0, index, 0, 0)
        cache = KVCache(
            jax.lax.dynamic_update_slice(cache.key, new_key_BTKH, start),
            jax.lax.dynamic_update_slice(cache.value, new_value_BTKH, start),
        )
        window_TS = (
            None if self.local_window_size is None
            else local_window_mask(T, S, self.local_window_size, offset=index)
        )
        mask = combine_masks(mask, causal_mask(T, S, offset=index), window_TS)
        bias = self._position_bias(positions_T, jnp.arange(S, dtype=jnp.int32), batched=True)
        output_BTNH = self._attend_reference(
            query_BTNH, cache.key, cache.value, mask, bias=bias, deterministic=True
        )
        return self.out(merge_heads(output_BTNH)), cache

    def _project_query(self, inputs_q, cache: KVCache):
        """Project queries after checking that the cache fits this module and this batch."""
        check_floating("inputs_q", inputs_q, axes="BTD")
        self._check_width("inputs_q", inputs_q, self.in_features, "in_features")
        if not isinstance(cache, KVCache):
            raise TypeError(
                f"cache must be a KVCache (from init_cache or project_kv), got "
                f"{type(cache).__name__}."
            )
        expected = (inputs_q.shape[0], cache.key.shape[1], self.num_kv_heads, self.head_dim)
        if cache.key.shape != expected or cache.value.shape != expected:
            raise ValueError(
                f"cache key/value must be [B, S, K, H] = {shape_str(expected)} for inputs_q "
                f"{shape_str(inputs_q.shape)} and this module's num_kv_heads="
                f"{self.num_kv_heads} key/value heads of size {self.head_dim}; got key "
                f"{shape_str(cache.key.shape)} and value {shape_str(cache.value.shape)}."
            )
        return split_heads(self.query(inputs_q), self.num_heads)

    def _check_width(self, name, x, width, attribute) -> None:
        if x.shape[-1] != width:
            raise ValueError(
                f"{name} has width {x.shape[-1]} (shape {shape_str(x.shape)}) but this module "
                f"was built with {attribute}={width}."
            )

    def _check_inputs(self, inputs_q, inputs_kv) -> None:
        check_floating("inputs_q", inputs_q)
        check_floating("inputs_kv", inputs_kv)
        if inputs_q.ndim not in (2, 3) or inputs_kv.ndim != inputs_q.ndim:
            raise ValueError(
                f"inputs_q must be [B, T, D] and inputs_kv [B, S, Dkv] (or both unbatched); got "
                f"inputs_q {shape_str(inputs_q.shape)} and inputs_kv {shape_str(inputs_kv.shape)}."
            )
        self._check_width("inputs_q", inputs_q, self.in_features, "in_features")
        self._check_width("inputs_kv", inputs_kv, self.in_kv_features, "in_kv_features")
        if inputs_q.ndim == 3 and inputs_q.shape[0] != inputs_kv.shape[0]:
            raise ValueError(
                f"inputs_q {shape_str(inputs_q.shape)} and inputs_kv "
                f"{shape_str(inputs_kv.shape)} must have the same batch size B."
            )


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
