"""Step 17a: generating translations, greedy decoding and beam search (Vaswani et al. 2017, 6.1).

A trained model gives ``P(y_t | y_<t, x)``; to translate, we pick tokens one at a time and
feed each back in as the next decoder input, until ``eos`` or ``max_len`` tokens.

* :func:`greedy_decode` takes the most probable token at every step.
* :func:`beam_search` keeps the ``beam_size`` best partial translations at every step and
  returns the best finished one, scored with the length penalty of Wu et al. (2016)::

      score(Y) = log P(Y | X) / lp(Y),    lp(Y) = (5 + |Y|)^alpha / (5 + 1)^alpha

  (the paper used beam 4 and alpha 0.6). ``alpha = 0`` ranks by plain log-probability, which
  favours short outputs; larger alpha favours longer ones.

Both run as one compiled program (``nnx.jit``, with ``max_len``, ``beam_size`` and
``use_cache`` static) around a ``lax.while_loop`` that stops early once every row has
produced ``eos``; greedy decoding and sampling share the loop of step 17
(:func:`attention.model.generation.decode_loop`). With ``use_cache=True`` each step runs the
decoder on the newest position only, reading earlier keys/values from a
:class:`attention.model.decoder.DecodeCache`; with ``use_cache=False`` it re-runs the decoder
on the whole prefix every step (slower; the reference the cached path is tested against: both
give the same tokens, for every ``config.positional`` and for grouped-query heads).

Conventions:

* the returned tokens **exclude** the leading ``bos``: ``tokens[:, 0]`` is the first
  generated token. They include the ``eos`` and are ``pad_id`` after it.
* ``pad_id`` and ``bos_id`` are never generated (their log-probabilities are set to a large
  negative number before choosing), so the cached and uncached paths see the same inputs.
* log-probabilities are those of the model's full softmax (pad and bos included in the
  normaliser), summed over the generated tokens up to and including ``eos``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from attention._checks import (
    check_beam_search,
    check_int,
    check_sampling,
    check_tokens,
)
from attention.model.generation import (
    FORBIDDEN,
    chooser,
    decode_loop,
    forbid_special,
)
from attention.model.transformer import Transformer


def length_penalty_factor(
    length: Int[Array, "..."], alpha: float | Float[Array, ""]
) -> Float[Array, "..."]:
    """Wu et al. (2016), eq. 14: ``lp(Y) = (5 + |Y|)^alpha / (5 + 1)^alpha``.

    >>> float(length_penalty_factor(jnp.array(1), 0.6))
    1.0
    """
    return ((5.0 + length.astype(jnp.float32)) / 6.0) ** alpha


def greedy_decode(
    model: Transformer,
    src_tokens: Int[Array, "B S"],
    *,
    max_len: int,
    use_cache: bool = True,
) -> tuple[Int[Array, "B L"], Float[Array, " B"]]:
    """The most probable next token at every step, batched, until eos or ``max_len``.

    Args:
      model: a :class:`attention.Transformer` (dropout is off during decoding whatever its
        train/eval mode).
      src_tokens: ``[B, S]`` source token ids, padded with ``pad_id``.
      max_len: number of tokens to generate at most, L (``<= model.config.max_len``).
      use_cache: decode with the key/value cache (True) or recompute the prefix (False).

    Returns:
      ``(tokens [B, L] int32, log_probs [B] float32)``: tokens after bos (see the module
      docstring), and ``log P`` of each row's tokens up to and including eos.

    Raises:
      TypeError, ValueError: a model that is not a Transformer; bad ``src_tokens`` (see
        :func:`attention._checks.check_tokens`); ``max_len`` not in
        ``1..model.config.max_len``.

    >>> from attention.model.config import TransformerConfig
    >>> model = Transformer(TransformerConfig.tiny(vocab_size=13), rngs=nnx.Rngs(0))
    >>> tokens, log_probs = greedy_decode(model, jnp.array([[5, 6, 2]]), max_len=4)
    >>> tokens.shape, log_probs.shape
    ((1, 4), (1,))
    """
    _check_decode_args(model, src_tokens, max_len)
    return _greedy_decode_jit(model, src_tokens, max_len=max_len, use_cache=bool(use_cache))


def beam_search(
    model: Transformer,
    src_tokens: Int[Array, "B S"],
    *,
    beam_size: int = 4,
    max_len: int,
    length_penalty: float = 0.6,
    use_cache: bool = True,
) -> tuple[Int[Array, "B L"], Float[Array, " B"]]:
    """Beam search with the Wu et al. (2016) length penalty; the best beam of each example.

    At step t every live beam is extended by every token; the ``beam_size`` best candidates by
    ``log P / lp(length)`` survive. A finished beam (it produced eos) stays in the beam with
    its score frozen and competes with the live ones; it extends only with padding. The loop
    ends when every beam of every example is finished or after ``max_len`` tokens; the
    highest-scoring beam is returned (an unfinished beam counts with length ``max_len``).
    With ``beam_size=1`` this is exactly :func:`greedy_decode`.

    Args:
      model, src_tokens, max_len, use_cache: as :func:`greedy_decode`.
      beam_size: number of beams K, ``1 <= K <= tgt_vocab_size - 2`` (pad and bos are never
        generated).
      length_penalty: alpha >= 0 (0.6 in the paper; 0 ranks by plain log-probability).

    Returns:
      ``(tokens [B, L] int32, scores [B] float32)``, scores = ``log P(Y|X) / lp(Y)``.

    Raises:
      TypeError, ValueError: as :func:`greedy_decode`; ``beam_size`` or ``length_penalty``
        out of range.
    """
    _check_decode_args(model, src_tokens, max_len)
    check_beam_search(model.config.tgt_vocab_size, beam_size, length_penalty)
    return _beam_search_jit(
        model, src_tokens, jnp.float32(length_penalty), max_len=max_len, beam_size=beam_size,
        use_cache=bool(use_cache),
    )


def sample_decode(
    model: Transformer,
    src_tokens: Int[Array, "B S"],
    *,
    max_len: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    use_cache: bool = True,
) -> tuple[Int[Array, "B L"], Float[Array, " B"]]:
    """Sampled translations: each next token drawn from the temperature / top-k / top-p
    distribution of :func:`attention.model.generation.sampling_log_probs`, until eos or
    ``max_len``; the translation model's counterpart of
    :func:`attention.model.sampling.generate`.

    Decoder position t (1 for the first token after bos) is drawn with the key
    ``fold_in(key(seed), t)``: a seed reproduces the samples,
    with or without the cache. Sampling shows the spread of translations the model finds
    likely (several draws of one sentence), where greedy and beam search show one.

    Args:
      model, src_tokens, max_len, use_cache: as :func:`greedy_decode`.
      temperature, top_k, top_p: see :func:`attention.model.generation.sampling_log_probs`.
      seed: the sampling seed.

    Returns:
      ``(tokens [B, L] int32, log_probs [B] float32)`` as :func:`greedy_decode`: the
      log-probability of the sampled tokens under the model's own softmax.

    Raises:
      TypeError, ValueError: as :func:`greedy_decode`; bad sampling knobs (temperature <= 0:
        use greedy).

    >>> from attention.model.config import TransformerConfig
    >>> model = Transformer(TransformerConfig.tiny(vocab_size=13), rngs=nnx.Rngs(0))
    >>> tokens, _ = sample_decode(model, jnp.array([[5, 6, 2]]), max_len=4, top_k=5, seed=1)
    >>> tokens.shape
    (1, 4)
    """
    _check_decode_args(model, src_tokens, max_len)
    vocab_size = model.config.tgt_vocab_size
    check_sampling(vocab_size, temperature, top_k, top_p)
    return _sample_decode_jit(
        model, src_tokens, jnp.float32(temperature),
        jnp.int32(vocab_size if top_k is None else top_k),
        jnp.float32(1.0 if top_p is None else top_p), jax.random.key(seed),
        max_len=max_len, use_cache=bool(use_cache),
    )


# ----------------------------------------------------------------------------- internals


def _check_decode_args(model, src_tokens, max_len) -> None:
    if not isinstance(model, Transformer):
        hint = ("; a decoder-only LanguageModel continues text with "
                "attention.model.sampling.generate" if getattr(getattr(model, "config", None),
                                                               "is_language_model", False)
                else "")
        raise TypeError(
            f"model must be an attention.Transformer, got {type(model).__name__}{hint}."
        )
    config = model.config
    check_tokens(
        "src_tokens", src_tokens, vocab_size=config.src_vocab_size, max_len=config.max_len
    )
    check_int("max_len", max_len, what=f"an int in 1..model.config.max_len={config.max_len}")
    if not 1 <= max_len <= config.max_len:
        raise ValueError(
            f"max_len must be an int in 1..model.config.max_len={config.max_len} (the decoder "
            f"has that many positions), got {max_len!r}."
        )


def _start(model: Transformer, src_tokens, max_len: int, use_cache: bool, repeat: int = 1):
    """Encode once; build the decoder-input buffer, the source mask and (maybe) the cache."""
    memory_BSD = model.encode(src_tokens, deterministic=True)
    src_mask_B11S = model.source_mask(src_tokens)
    cache = model.init_decode_cache(memory_BSD, max_len) if use_cache else None
    if repeat > 1:  # one copy per beam, beams of example b at rows b*K .. b*K+K-1
        memory_BSD, src_mask_B11S, cache = jax.tree.map(
            lambda x: jnp.repeat(x, repeat, axis=0), (memory_BSD, src_mask_B11S, cache)
        )
    return memory_BSD, src_mask_B11S, cache


def _next_logits(model: Transformer, memory, src_mask, max_len: int, use_cache: bool):
    """``next_logits(inputs_BL, t, cache)`` for :func:`decode_loop`: the logits ``[B, V]`` of
    decoder position t+1 given inputs ``0..t`` (bos at 0), and the new cache."""

    def cached(inputs_BL, t, cache):
        tokens_B = jax.lax.dynamic_index_in_dim(inputs_BL, t, axis=1, keepdims=False)
        return model.decode_step(tokens_B, cache, t, src_mask)

    def recomputed(inputs_BL, t, cache):
        # Teaching path: the whole buffer through the decoder, then read position t. The
        # causal mask makes positions after t irrelevant, so this equals the cached step.
        # (Only position t is projected to the vocabulary: that part is not what a cache
        # saves, and projecting all L positions would inflate the cache's advantage.)
        hidden_BLD = model.decoder(inputs_BL[:, :max_len], memory, src_mask, deterministic=True)
        hidden_BD = jax.lax.dynamic_index_in_dim(hidden_BLD, t, axis=1, keepdims=False)
        return model.logits(hidden_BD), cache

    return cached if use_cache else recomputed


def _translate_loop(model: Transformer, src_tokens, choose, *, max_len: int, use_cache: bool):
    """Encode once, then :func:`decode_loop` from ``[bos]``: tokens ``[B, L]`` after bos."""
    config = model.config
    B = src_tokens.shape[0]
    memory, src_mask, cache = _start(model, src_tokens, max_len, use_cache)
    inputs_BL = jnp.full((B, max_len + 1), config.pad_id, jnp.int32).at[:, 0].set(config.bos_id)
    inputs_BL, log_probs_B = decode_loop(
        _next_logits(model, memory, src_mask, max_len, use_cache), choose, inputs_BL,
        jnp.ones(B, jnp.int32), cache, start=0, max_new_tokens=max_len, config=config,
    )
    return inputs_BL[:, 1:], log_probs_B


@functools.partial(nnx.jit, static_argnames=("max_len", "use_cache"))
def _greedy_decode_jit(model: Transformer, src_tokens, *, max_len: int, use_cache: bool):
    choose = chooser(True, None, None, None, None)
    return _translate_loop(model, src_tokens, choose, max_len=max_len, use_cache=use_cache)


@functools.partial(nnx.jit, static_argnames=("max_len", "beam_size", "use_cache"))
def _beam_search_jit(
    model: Transformer, src_tokens, alpha, *, max_len: int, beam_size: int, use_cache: bool
):
    config = model.config
    B, K, V = src_tokens.shape[0], beam_size, config.tgt_vocab_size
    memory, src_mask, cache = _start(model, src_tokens, max_len, use_cache, repeat=K)
    next_logits = _next_logits(model, memory, src_mask, max_len, use_cache)
    inputs_BKL = jnp.full((B, K, max_len + 1), config.pad_id, jnp.int32)
    inputs_BKL = inputs_BKL.at[:, :, 0].set(config.bos_id)
    # All beams start identical; only beam 0 may expand at the first step, or the K beams
    # would be K copies of the same hypothesis.
    log_p_BK = jnp.tile(jnp.array([0.0] + [FORBIDDEN] * (K - 1), jnp.float32), (B, 1))
    # A finished beam continues only with pad, at no cost: its log P stays as it was.
    finished_row_V = jnp.full((V,), FORBIDDEN, jnp.float32).at[config.pad_id].set(0.0)
    rows_B1 = (jnp.arange(B)[:, None] * K).astype(jnp.int32)  # flat row of each example's beam 0

    def cond(carry):
        t, _, _, finished_BK, _, _ = carry
        return (t < max_len) & ~jnp.all(finished_BK)

    def body(carry):
        t, inputs_BKL, log_p_BK, finished_BK, length_BK, cache = carry
        logits_NV, cache = next_logits(inputs_BKL.reshape(B * K, max_len + 1), t, cache)
        step_NV = forbid_special(jax.nn.log_softmax(logits_NV, axis=-1), config)
        step_BKV = step_NV.reshape(B, K, V)
        step_BKV = jnp.where(finished_BK[..., None], finished_row_V[None, None], step_BKV)
        candidate_BKV = log_p_BK[..., None] + step_BKV
        candidate_length_BK = jnp.where(finished_BK, length_BK, t + 1)
        rank_BKV = candidate_BKV / length_penalty_factor(candidate_length_BK, alpha)[..., None]
        _, best_BK = jax.lax.top_k(rank_BKV.reshape(B, K * V), K)
        beam_BK, token_BK = best_BK // V, (best_BK % V).astype(jnp.int32)

        log_p_BK = jnp.take_along_axis(candidate_BKV.reshape(B, K * V), best_BK, axis=1)
        was_finished_BK = jnp.take_along_axis(finished_BK, beam_BK, axis=1)
        length_BK = jnp.where(
            was_finished_BK, jnp.take_along_axis(length_BK, beam_BK, axis=1), t + 1
        )
        inputs_BKL = jnp.take_along_axis(inputs_BKL, beam_BK[..., None], axis=1)
        inputs_BKL = inputs_BKL.at[:, :, t + 1].set(token_BK)
        finished_BK = was_finished_BK | (token_BK == config.eos_id)
        if cache is not None:  # each surviving beam continues from its parent's keys/values
            parent_N = (rows_B1 + beam_BK).reshape(B * K)
            cache = cache._replace(
                self_attention=jax.tree.map(lambda x: x[parent_N], cache.self_attention)
            )
        return t + 1, inputs_BKL, log_p_BK, finished_BK, length_BK, cache

    carry = (
        jnp.int32(0), inputs_BKL, log_p_BK, jnp.zeros((B, K), bool),
        jnp.zeros((B, K), jnp.int32), cache,
    )
    _, inputs_BKL, log_p_BK, _, length_BK, _ = jax.lax.while_loop(cond, body, carry)
    score_BK = log_p_BK / length_penalty_factor(length_BK, alpha)
    best_B = jnp.argmax(score_BK, axis=1)
    tokens_BL = jnp.take_along_axis(inputs_BKL, best_B[:, None, None], axis=1)[:, 0, 1:]
    return tokens_BL, jnp.take_along_axis(score_BK, best_B[:, None], axis=1)[:, 0]


@functools.partial(nnx.jit, static_argnames=("max_len", "use_cache"))
def _sample_decode_jit(model: Transformer, src_tokens, temperature, top_k, top_p, key, *,
                       max_len: int, use_cache: bool):
    choose = chooser(False, temperature, top_k, top_p, key)
    return _translate_loop(model, src_tokens, choose, max_len=max_len, use_cache=use_cache)
