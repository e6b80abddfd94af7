"""Step 17f: streaming a language model past its context, with attention sinks (StreamingLLM).

Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks", 3.2 and Figure
3: every self-attention layer of a :class:`LanguageModel` keeps the keys and values of the
first ``num_sinks`` tokens and of a rolling window of the last ``window`` tokens (a
:class:`attention.mechanism.streaming_cache.SinkCache`, step 7e), so a model trained on
``config.max_len`` positions reads and writes texts of any length::

    for each token:   x = E[token]                                      # [B, 1, D]
      per layer:      x = x + SelfAttention(LN(x); sinks + window)     (stream_and_attend)
                      x = x + FeedForward(LN(x))
                      logits = LN(x) E^T                                # [B, V]

Positions are those in the cache (at most ``num_sinks + window - 1``), so the model needs
positions that act inside attention: rotary (``positional="rope"``, the paper's case) or
ALiBi. Learned and sinusoidal tables added to the embeddings end at ``max_len`` and are
refused. ``num_sinks=0`` is the plain sliding window, whose perplexity jumps once the first
tokens leave it; ``num_sinks=4`` is StreamingLLM.

* :func:`streaming_step`: one token, compiled once;
* :func:`streaming_log_likelihood`: the per-token negative log-likelihood of a long text, one
  ``lax.scan`` (the curves of the paper's Figure 3);
* :func:`streaming_generate`: greedy or sampled generation for as many steps as wanted.

A token's keys in layers above the first are those it had when it was read: the cache is not
recomputed as the window rolls (the paper's "window attention" and StreamingLLM, not its
"sliding window with re-computation").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from attention._checks import (
    check_integer,
    check_positive_int,
    check_sampling,
    check_tokens,
    shape_str,
)
from attention.mechanism.streaming_cache import (
    SinkCache,
    check_sinks_and_window,
    init_sink_cache,
    stream_and_attend,
)
from attention.model.generation import chooser, forbid_special
from attention.model.language_model import LanguageModel

StreamingCache = tuple[SinkCache, ...]
"""One :class:`SinkCache` per decoder layer."""


def init_streaming_cache(
    model: LanguageModel, batch_size: int, num_sinks: int, window: int
) -> StreamingCache:
    """Empty sink caches for every layer of ``model``: ``[B, n, K, H]`` and ``[B, w, K, H]``.

    Raises:
      TypeError: a model that is not a LanguageModel; sizes that are not ints.
      ValueError: a model with absolute positions (``positional`` "learned" or
        "sinusoidal"); ``batch_size`` or ``window`` below 1, ``num_sinks`` below 0.

    >>> from attention.model.config import TransformerConfig
    >>> config = TransformerConfig.language_model(vocab_size=11, d_model=16, num_heads=2,
    ...                                           d_ff=32, num_layers=3, max_len=8)
    >>> cache = init_streaming_cache(LanguageModel(config, rngs=nnx.Rngs(0)), 2, 4, 5)
    >>> len(cache), cache[0].window_key.shape  # L layers; [B, w, K, H]
    (3, (2, 5, 2, 8))
    """
    check_streaming_model(model)
    check_positive_int("batch_size", batch_size)
    num_sinks, window = check_sinks_and_window(num_sinks, window)
    return tuple(
        init_sink_cache(layer.self_attention, batch_size, num_sinks, window)
        for layer in model.decoder.layers
    )


def streaming_step(
    model: LanguageModel, token_B: Int[Array, " B"], cache: StreamingCache
) -> tuple[Float[Array, "B V"], StreamingCache]:
    """Float32 logits ``[B, V]`` of the token after ``token_B``, and the caches with it written.

    Equals ``model(kept)[:, -1]`` for a one-layer model, where ``kept`` are the tokens the
    cache keeps (the sinks, then the window, itself included); before the window fills it
    equals :meth:`LanguageModel.decode_step`. Compiled once per shape (``nnx.jit``).

    Args:
      token_B: ``[B]`` token ids, the newest token of each stream.
      cache: from :func:`init_streaming_cache` or the previous step.

    Raises:
      TypeError: non-integer tokens; a cache that is not one :class:`SinkCache` per layer.
      ValueError: tokens not ``[B]`` or outside the vocabulary; a cache of another batch or
        model; a model with absolute positions.

    >>> from attention.model.config import TransformerConfig
    >>> config = TransformerConfig.language_model(vocab_size=11, d_model=16, num_heads=2,
    ...                                           d_ff=32, num_layers=1, max_len=8)
    >>> model = LanguageModel(config, rngs=nnx.Rngs(0))
    >>> cache = init_streaming_cache(model, 2, num_sinks=1, window=3)
    >>> for token in range(1, 11):  # 10 tokens through 4 slots
    ...     logits, cache = streaming_step(model, jnp.array([token, 2]), cache)
    >>> logits.shape, int(cache[0].seen)
    ((2, 11), 10)
    """
    check_streaming_model(model)
    check_integer("token_B", token_B, axes="B")
    check_tokens("token_B", token_B[:, None], vocab_size=model.config.tgt_vocab_size)
    check_streaming_cache(model, cache, token_B.shape[0])
    return _step_jit(model, token_B, cache)


def streaming_log_likelihood(
    model: LanguageModel, tokens_BL: Int[Array, "B L"], num_sinks: int, window: int
) -> Float[Array, "B L-1"]:
    """Per-token negative log-likelihoods of a text of any length, read with a sink cache.

    ``nll[b, t] = -log p(tokens[b, t+1] | the tokens kept after t)``, in nats, float32; the
    mean over t of a window is the log of the perplexity that the paper plots against the
    input length (Figure 3). The whole text is one ``lax.scan`` of :func:`streaming_step`'s
    computation, compiled once per (shape, ``num_sinks``, ``window``).

    Args:
      tokens_BL: ``[B, L]`` token ids, L >= 2 and any length (beyond ``config.max_len``).
      num_sinks: n, the first tokens kept (0: the plain sliding window; 4 in the paper).
      window: w, the recent tokens kept.

    Raises:
      TypeError, ValueError: as :func:`init_streaming_cache`; tokens not ``[B, L]`` with
        L >= 2, or outside the vocabulary.

    >>> from attention.model.config import TransformerConfig
    >>> config = TransformerConfig.language_model(vocab_size=11, d_model=16, num_heads=2,
    ...                                           d_ff=32, num_layers=2, max_len=8)
    >>> model = LanguageModel(config, rngs=nnx.Rngs(0))
    >>> tokens = jnp.arange(30).reshape(1, 30) % 9 + 2  # 30 tokens, past max_len=8
    >>> streaming_log_likelihood(model, tokens, num_sinks=2, window=4).shape
    (1, 29)
    """
    check_streaming_model(model)
    num_sinks, window = check_sinks_and_window(num_sinks, window)
    check_tokens("tokens_BL", tokens_BL, vocab_size=model.config.tgt_vocab_size)
    if tokens_BL.shape[1] < 2:
        raise ValueError(
            f"tokens_BL must hold at least 2 tokens per row (one to read, one to score), got "
            f"{shape_str(tokens_BL.shape)}.")
    return _log_likelihood_jit(model, jnp.asarray(tokens_BL, jnp.int32),
                               num_sinks=num_sinks, window=window)


def streaming_generate(
    model: LanguageModel,
    prompt_BP: Int[Array, "B P"],
    steps: int,
    num_sinks: int,
    window: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
) -> Int[Array, "B steps"]:
    """``steps`` new tokens after each prompt, generated with a sink cache: as many as wanted,
    past ``config.max_len``.

    The prompt is read token by token into the cache, then each new token is the argmax
    (``greedy``) or a draw from :func:`attention.model.generation.sampling_log_probs` with the
    key ``fold_in(key(seed), position)``, the convention of :func:`attention.generate` (which
    it equals, token for token, while ``num_sinks + window`` holds the whole text). ``pad``
    and ``bos`` are never chosen; a stream does not stop at ``eos`` (cut it there yourself).

    Args:
      prompt_BP: ``[B, P]`` token ids, every row P real tokens (no padding).
      steps: new tokens per row, >= 1.
      num_sinks, window: the cache, as :func:`streaming_log_likelihood`.
      greedy, temperature, top_k, top_p, seed: as :func:`attention.generate`.

    Returns:
      ``[B, steps]`` int32 token ids.

    Raises:
      TypeError, ValueError: as :func:`init_streaming_cache` and :func:`check_sampling`;
        prompts not ``[B, P]`` integer ids of the vocabulary; ``steps`` not a positive int.

    >>> from attention.model.config import TransformerConfig
    >>> config = TransformerConfig.language_model(vocab_size=11, d_model=16, num_heads=2,
    ...                                           d_ff=32, num_layers=1, max_len=8)
    >>> model = LanguageModel(config, rngs=nnx.Rngs(0))
    >>> streaming_generate(model, jnp.array([[1, 5, 6]]), 20, 2, 4, greedy=True).shape
    (1, 20)
    """
    check_streaming_model(model)
    num_sinks, window = check_sinks_and_window(num_sinks, window)
    check_tokens("prompt_BP", prompt_BP, vocab_size=model.config.tgt_vocab_size)
    steps = check_positive_int("steps", steps)
    V = model.config.tgt_vocab_size
    check_sampling(V, temperature, top_k, top_p)
    return _generate_jit(
        model, jnp.asarray(prompt_BP, jnp.int32), jnp.float32(temperature),
        jnp.int32(V if top_k is None else top_k), jnp.float32(1.0 if top_p is None else top_p),
        jax.random.key(seed), steps=steps, num_sinks=num_sinks, window=window,
        greedy=bool(greedy),
    )


# ------------------------------------------------------------------ the computation


def _step(model: LanguageModel, token_B, cache: StreamingCache):
    """One token through the layers, each with its own sub-layers (as ``DecoderLayer.step``)
    and its sink cache instead of the plain one; dropout off."""
    x_B1D = model.decoder.embed(token_B[:, None])
    new_cache = []
    for layer, layer_cache in zip(model.decoder.layers, cache, strict=True):
        def self_attend(h_B1D, layer=layer, layer_cache=layer_cache):
            return stream_and_attend(layer.self_attention, h_B1D, layer_cache)

        x_B1D, layer_cache = layer.self_attention_residual(
            x_B1D, self_attend, deterministic=True, has_aux=True)
        x_B1D = layer.feed_forward_residual(x_B1D, layer.feed_forward, deterministic=True)
        new_cache.append(layer_cache)
    if model.decoder.final_norm is not None:
        x_B1D = model.decoder.final_norm(x_B1D)
    return model.logits(x_B1D[:, 0]), tuple(new_cache)


_step_jit = nnx.jit(_step)


def _read(model, tokens_BL, cache):
    """Scan :func:`_step` over the columns of ``tokens_BL``: logits ``[L, B, V]``, cache."""
    def body(cache, token_B):
        logits_BV, cache = _step(model, token_B, cache)
        return cache, logits_BV

    cache, logits_LBV = jax.lax.scan(body, cache, tokens_BL.T)
    return logits_LBV, cache


@functools.partial(nnx.jit, static_argnames=("num_sinks", "window"))
def _log_likelihood_jit(model, tokens_BL, *, num_sinks: int, window: int):
    cache = _empty_cache(model, tokens_BL.shape[0], num_sinks, window)
    logits_LBV, _ = _read(model, tokens_BL[:, :-1], cache)
    log_probs_BLV = jax.nn.log_softmax(jnp.swapaxes(logits_LBV, 0, 1), axis=-1)
    return -jnp.take_along_axis(log_probs_BLV, tokens_BL[:, 1:, None], axis=-1)[..., 0]


@functools.partial(nnx.jit, static_argnames=("steps", "num_sinks", "window", "greedy"))
def _generate_jit(model, prompt_BP, temperature, top_k, top_p, key, *, steps: int,
                  num_sinks: int, window: int, greedy: bool):
    B, P = prompt_BP.shape
    cache = _empty_cache(model, B, num_sinks, window)
    _, cache = _read(model, prompt_BP[:, :-1], cache)
    choose = chooser(greedy, temperature, top_k, top_p, key)

    def body(carry, position):  # position: where the chosen token goes in the text
        token_B, cache = carry
        logits_BV, cache = _step(model, token_B, cache)
        log_probs_BV = forbid_special(jax.nn.log_softmax(logits_BV, axis=-1), model.config)
        token_B = choose(log_probs_BV, position).astype(jnp.int32)
        return (token_B, cache), token_B

    positions = P + jnp.arange(steps, dtype=jnp.int32)
    _, tokens_NB = jax.lax.scan(body, (prompt_BP[:, -1], cache), positions)
    return tokens_NB.T


def _empty_cache(model, batch_size, num_sinks, window):
    return tuple(init_sink_cache(layer.self_attention, batch_size, num_sinks, window)
                 for layer in model.decoder.layers)


# ------------------------------------------------------------------ the checks of this step


def check_streaming_model(model) -> None:
    """A :class:`LanguageModel` whose positions act inside attention (RoPE or ALiBi)."""
    if not isinstance(model, LanguageModel):
        raise TypeError(f"model must be a LanguageModel, got {type(model).__name__}.")
    positional = model.config.positional
    if positional not in ("rope", "alibi"):
        raise ValueError(
            f"streaming gives each token its position in the cache, which only positions "
            f"inside attention can take; this model has positional={positional!r}, a table "
            f"of config.max_len={model.config.max_len} rows added to the embeddings. Use a "
            f"model with positional='rope' (the paper's case) or 'alibi'."
        )


def check_streaming_cache(model, cache, batch_size: int) -> None:
    """One :class:`SinkCache` per layer, of this batch (the rest is checked per layer)."""
    layers = len(model.decoder.layers)
    if not isinstance(cache, tuple) or len(cache) != layers or not all(
            isinstance(c, SinkCache) for c in cache):
        got = (f"a tuple of {len(cache)} ({', '.join(type(c).__name__ for c in cache)})"
               if isinstance(cache, tuple) else type(cache).__name__)
        raise TypeError(
            f"cache must be a tuple of {layers} SinkCache, one per layer (from "
            f"init_streaming_cache), got {got}.")
    B = cache[0].window_key.shape[0]
    if B != batch_size:
        raise ValueError(
            f"the cache was made for batch_size={B} streams but token_B has {batch_size} "
            f"tokens; one token per stream.")

