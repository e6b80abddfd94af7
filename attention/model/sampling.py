"""Step 17c: continuing prompts with a language model: sampling, prefill and the cache.

:func:`generate` continues a batch of prompts of different lengths with a decoder-only
:class:`attention.model.language_model.LanguageModel`, as one compiled program:

1. **prefill**: the positions every prompt has, ``0 .. min(lengths) - 2``, in one parallel
   pass that fills the key/value cache (``use_cache=True``);
2. the shared loop of step 17 (:func:`attention.model.generation.decode_loop`): the next
   token of row b is the prompt's own while row b is inside its prompt, then a draw from
   :func:`sampling_log_probs` (temperature, top-k, top-p) or the argmax (``greedy``); each
   step runs the model on the newest position only (or, ``use_cache=False``, on the whole
   buffer: the slow reference the tests hold the cache to).

Position t is drawn with the key ``fold_in(key(seed), t)``, so a seed reproduces the samples,
and the cached and uncached paths draw the same tokens. ``pad`` and ``bos`` are never sampled.
The distribution's functions (:func:`sampling_log_probs`, :func:`top_k_mask`,
:func:`top_p_mask`, :func:`sample_tokens`) live in step 17 and are importable from here too;
their checks are :func:`attention._checks.check_sampling`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from attention._checks import check_integer, check_positive_int, shape_str
from attention.model.generation import (  # noqa: F401 (the distribution, re-exported here)
    check_sampling,
    chooser,
    decode_loop,
    fill_id,
    sample_tokens,
    sampling_log_probs,
    top_k_mask,
    top_p_mask,
)
from attention.model.language_model import LanguageModel

# ------------------------------------------------------------------ generation


def generate(
    model: LanguageModel,
    prompt_tokens: Int[Array, "B P"],
    prompt_lengths: Int[Array, " B"] | None = None,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    seed: int = 0,
    stop_at_eos: bool = True,
    use_cache: bool = True,
) -> tuple[Int[Array, "B N"], Float[Array, " B"]]:
    """Continue each prompt by up to ``max_new_tokens`` sampled (or greedy) tokens.

    Args:
      model: a :class:`LanguageModel` (dropout is off whatever its mode).
      prompt_tokens: ``[B, P]`` token ids, each row a prompt right-padded with ``pad_id``
        (usually starting with ``bos``, as the training sequences do).
      prompt_lengths: ``[B]`` real tokens of each row, ``1 <= length <= P``; default: the
        non-pad tokens of each row (every token, for a config with ``pad_id=None``).
      max_new_tokens: N, new tokens per row at most; ``P + N <= config.max_len``.
      temperature, top_k, top_p: see :func:`sampling_log_probs`.
      greedy: take the most probable token (temperature, top-k and top-p then do nothing).
      seed: the sampling seed; the same seed gives the same tokens.
      stop_at_eos: a row stops after it produces ``eos`` (then pads).
      use_cache: the key/value cache (True) or recomputing the prefix at every step.

    Returns:
      ``(tokens [B, N] int32, log_probs [B] float32)``: each row's new tokens (``tokens[b, 0]``
      follows the last prompt token of row b), ``eos`` included and ``pad`` after it, and the
      log-probability of those tokens under the model's own softmax (temperature 1, no
      filtering), up to and including ``eos``.

    Raises:
      TypeError: a model that is not a LanguageModel; non-integer tokens or lengths; a knob
        of the wrong type.
      ValueError: bad knobs (:func:`check_sampling`); an empty prompt (a length of 0); a
        prompt whose padding is not at its end; ids outside the vocabulary; ``P +
        max_new_tokens`` beyond ``config.max_len`` (the prompt is longer than the context
        leaves room for).

    >>> from attention.model.config import TransformerConfig
    >>> config = TransformerConfig.language_model(vocab_size=11, d_model=16, num_heads=2,
    ...                                           d_ff=32, num_layers=1, max_len=16)
    >>> model = LanguageModel(config, rngs=nnx.Rngs(0))
    >>> prompts = jnp.array([[1, 5, 6], [1, 7, 0]])
    >>> tokens, _ = generate(model, prompts, max_new_tokens=4, top_k=3, seed=1)
    >>> tokens.shape
    (2, 4)
    """
    lengths = check_generate(model, prompt_tokens, prompt_lengths, max_new_tokens,
                              temperature, top_k, top_p)
    config = model.config
    k = config.tgt_vocab_size if top_k is None else int(top_k)
    p = 1.0 if top_p is None else float(top_p)
    return _generate_jit(
        model, jnp.asarray(prompt_tokens, jnp.int32), jnp.asarray(lengths, jnp.int32),
        jnp.float32(temperature), jnp.int32(k), jnp.float32(p), jax.random.key(seed),
        max_new_tokens=int(max_new_tokens), prefill=int(lengths.min()), greedy=bool(greedy),
        stop_at_eos=bool(stop_at_eos), use_cache=bool(use_cache),
    )


def check_generate(model, prompt_tokens, prompt_lengths, max_new_tokens, temperature, top_k,
                   top_p) -> np.ndarray:
    """The checks of :func:`generate` (the command line checks with them too); returns the
    prompts' lengths ``[B]``. Raises what :func:`generate` documents."""
    if not isinstance(model, LanguageModel):
        raise TypeError(
            f"model must be an attention LanguageModel (decoder-only), got "
            f"{type(model).__name__}; translation models sample with "
            f"attention.model.decoding.sample_decode."
        )
    config = model.config
    check_sampling(config.tgt_vocab_size, temperature, top_k, top_p)
    check_integer("prompt_tokens", prompt_tokens, axes="BP")
    tokens = np.asarray(prompt_tokens)
    B, P = tokens.shape
    if B == 0 or P == 0:
        raise ValueError(
            f"prompt_tokens is empty (shape {shape_str(tokens.shape)}); give at least one "
            f"prompt of at least one token (for example [bos])."
        )
    if tokens.min() < 0 or tokens.max() >= config.tgt_vocab_size:
        raise ValueError(
            f"prompt_tokens holds ids outside 0..{config.tgt_vocab_size - 1} (the "
            f"vocabulary), from {tokens.min()} to {tokens.max()}."
        )
    # Without a pad_id every token is real: rows of different lengths need prompt_lengths.
    real = np.ones_like(tokens, bool) if config.pad_id is None else tokens != config.pad_id
    if prompt_lengths is None:
        lengths = real.sum(axis=1)
    else:
        check_integer("prompt_lengths", prompt_lengths, axes="B")
        lengths = np.asarray(prompt_lengths)
        if lengths.shape != (B,):
            raise ValueError(
                f"prompt_lengths must be [B] = [{B}], one length per prompt, got "
                f"{shape_str(lengths.shape)}."
            )
    empty = np.flatnonzero(lengths < 1)
    if empty.size:
        raise ValueError(
            f"prompt {int(empty[0])} is empty (length {int(lengths[empty[0]])}); every prompt "
            f"needs at least one token (for example [bos] to sample from scratch)."
        )
    if lengths.max() > P:
        raise ValueError(f"prompt_lengths must be at most P={P}, got {int(lengths.max())}.")
    if prompt_lengths is None and not np.array_equal(real, np.arange(P)[None] < lengths[:, None]):
        raise ValueError(
            "prompt_tokens must be right-padded: every row's real tokens first, then pad_id "
            f"(={config.pad_id}); a row has pad_id before a real token."
        )
    max_new_tokens = check_positive_int("max_new_tokens", max_new_tokens)
    if P + max_new_tokens > config.max_len:
        room = config.max_len - P
        advice = (f"use max_new_tokens <= {room}" if room > 0
                  else "shorten the prompt")
        raise ValueError(
            f"a prompt of {P} tokens plus max_new_tokens={max_new_tokens} needs "
            f"{P + max_new_tokens} positions but the model's context is config.max_len="
            f"{config.max_len}; {advice}."
        )
    return lengths


@functools.partial(
    nnx.jit, static_argnames=("max_new_tokens", "prefill", "greedy", "stop_at_eos", "use_cache")
)
def _generate_jit(model: LanguageModel, prompts_BP, lengths_B, temperature, top_k, top_p, key,
                  *, max_new_tokens: int, prefill: int, greedy: bool, stop_at_eos: bool,
                  use_cache: bool):
    config = model.config
    B, P = prompts_BP.shape
    L = P + max_new_tokens  # the buffer: every prompt, then room for its new tokens
    buffer_BL = jnp.full((B, L), fill_id(config), jnp.int32).at[:, :P].set(prompts_BP)
    cache = model.init_decode_cache(B, L) if use_cache else None
    if use_cache and prefill > 1:  # positions every prompt has, but the last, in one pass
        _, cache = model.prefill(buffer_BL[:, : prefill - 1], cache, 0)

    def next_logits(buffer_BL, t, cache):  # scores of position t + 1 given positions 0..t
        if cache is not None:
            tokens_B = jax.lax.dynamic_index_in_dim(buffer_BL, t, axis=1, keepdims=False)
            return model.decode_step(tokens_B, cache, t)
        # Teaching path: the whole buffer again; the causal mask makes the positions after t
        # (pads or stale) irrelevant to row t.
        all_BLV = model(buffer_BL, deterministic=True)
        return jax.lax.dynamic_index_in_dim(all_BLV, t, axis=1, keepdims=False), cache

    buffer_BL, log_probs_B = decode_loop(
        next_logits, chooser(greedy, temperature, top_k, top_p, key), buffer_BL, lengths_B,
        cache, start=prefill - 1, max_new_tokens=max_new_tokens, config=config,
        stop_at_eos=stop_at_eos,
    )
    columns_BN = lengths_B[:, None] + jnp.arange(max_new_tokens)[None]
    return jnp.take_along_axis(buffer_BL, columns_BN, axis=1), log_probs_B
