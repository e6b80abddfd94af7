"""Step 17b: sampling text from a model: temperature, top-k, nucleus (top-p), and the cache.

A language model gives, at every step, a distribution over the next token,
``p = softmax(logits)``. Greedy decoding takes its argmax; *sampling* draws from it, which
gives varied text and, unlike greedy, does not fall into loops of the most likely phrase.
Three knobs reshape the distribution before the draw, in this order:

* **temperature** tau > 0 (Ackley et al. 1985; Hinton et al. 2015): ``softmax(logits / tau)``.
  tau = 1 is the model's distribution; tau -> 0 concentrates on the argmax (greedy, given
  as ``greedy=True``); tau > 1 flattens it.
* **top-k** (Fan et al. 2018, section 5): keep the k highest-scoring tokens, renormalise.
* **nucleus, top-p** (Holtzman et al. 2020, section 3.1): keep the *smallest* set of the most
  probable tokens whose probability reaches p, renormalise; the set is small where the model
  is sure and large where it is not, which a fixed k cannot do.

:func:`sampling_log_probs` is the resulting distribution, a pure function of the logits
(the tests compare the sampler's empirical frequencies with it); :func:`sample_tokens` draws
from it. Ties at the k-th score are all kept (the kept set may then exceed k).

:func:`generate` continues a batch of prompts of different lengths with a decoder-only
:class:`attention.model.language_model.LanguageModel`, as one compiled program:

1. **prefill**: the positions every prompt has, ``0 .. min(lengths) - 1``, in one parallel
   pass that fills the key/value cache (``use_cache=True``);
2. a ``lax.while_loop`` over positions: the next token of row b is the prompt's own token
   while row b is still inside its prompt, and a sample after that; each step runs the model
   on the newest position only (or, ``use_cache=False``, on the whole buffer: the slow
   reference the tests hold the cache to). It stops when every row has ``max_new_tokens`` new
   tokens or has produced ``eos``.

Position t+1 is drawn with the key ``fold_in(key(seed), t + 1)``, so a seed reproduces the
samples, and the cached and uncached paths draw the same tokens. ``pad`` and ``bos`` are
never sampled.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from attention._checks import (
    check_int,
    check_integer,
    check_positive_int,
    check_real,
    is_traced,
    shape_str,
)
from attention.model.language_model import LanguageModel

# A large finite negative for removed tokens: -inf arithmetic could produce NaN (inf - inf).
_NEG = -1e9


# ------------------------------------------------------------------ the distribution


def top_k_mask(logits: Float[Array, "*B V"], k: int | Int[Array, ""]) -> Bool[Array, "*B V"]:
    """True at the k highest logits of each row (ties with the k-th are kept too).

    ``k`` may be traced (one compiled program for every k): the threshold is read from the
    sorted row at index ``k - 1`` rather than taken with ``lax.top_k``, whose k is static.

    >>> top_k_mask(jnp.array([1.0, 3.0, 2.0, 0.0]), 2).tolist()
    [False, True, True, False]
    """
    sorted_desc = -jnp.sort(-logits, axis=-1)
    kth = jnp.take(sorted_desc, jnp.asarray(k, jnp.int32) - 1, axis=-1)
    return logits >= kth[..., None]


def top_p_mask(logits: Float[Array, "*B V"], p: float | Float[Array, ""]) -> Bool[Array, "*B V"]:
    """True on the nucleus: the smallest set of most probable tokens whose mass reaches p.

    Sorted by probability, token i is kept when the mass of the tokens before it is still
    below p (so the most probable token is always kept, and p = 1 keeps every token).
    Holtzman et al. (2020), eq. 2: the smallest ``V^(p)`` with ``sum_{V^(p)} P >= p``.

    >>> top_p_mask(jnp.log(jnp.array([0.1, 0.5, 0.3, 0.1])), 0.7).tolist()
    [False, True, True, False]
    """
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    order = jnp.argsort(-probs, axis=-1)
    sorted_probs = jnp.take_along_axis(probs, order, axis=-1)
    mass_before = jnp.cumsum(sorted_probs, axis=-1) - sorted_probs
    keep_sorted = mass_before < p
    # Scatter back to vocabulary order: rank of each token = inverse permutation.
    rank = jnp.argsort(order, axis=-1)
    return jnp.take_along_axis(keep_sorted, rank, axis=-1)


def sampling_log_probs(
    logits: Float[Array, "*B V"],
    *,
    temperature: float | Float[Array, ""] = 1.0,
    top_k: int | Int[Array, ""] | None = None,
    top_p: float | Float[Array, ""] | None = None,
) -> Float[Array, "*B V"]:
    """Log-probabilities the sampler draws from: ``log softmax(logits / tau)`` restricted to
    the top-k tokens, then to the nucleus of mass ``top_p``, renormalised.

    Removed tokens get a large negative log-probability (``-1e9``), not ``-inf``.

    Args:
      logits: ``[..., V]`` scores.
      temperature: tau > 0.
      top_k: k in 1..V, or None for no top-k.
      top_p: p in (0, 1], or None (1 keeps everything).

    Raises:
      TypeError, ValueError: see :func:`check_sampling`.

    >>> lp = sampling_log_probs(jnp.array([0.0, 1.0, 2.0]), top_k=2)
    >>> [round(float(x), 3) for x in jnp.exp(lp)]
    [0.0, 0.269, 0.731]
    """
    check_sampling(logits.shape[-1], temperature, top_k, top_p)
    return _sampling_log_probs(logits, temperature, top_k, top_p)


def _sampling_log_probs(logits, temperature, top_k, top_p):
    scaled = logits.astype(jnp.float32) / temperature
    if top_k is not None:
        scaled = jnp.where(top_k_mask(scaled, top_k), scaled, _NEG)
    if top_p is not None:
        scaled = jnp.where(top_p_mask(scaled, top_p), scaled, _NEG)
    return jax.nn.log_softmax(scaled, axis=-1)


def sample_tokens(
    key: Array,
    logits: Float[Array, "B V"],
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Int[Array, " B"]:
    """One token per row, drawn from :func:`sampling_log_probs` (Gumbel-max, via
    ``jax.random.categorical``).

    >>> t = sample_tokens(jax.random.key(0), jnp.array([[0.0, 9.0, 0.0]]), top_k=1)
    >>> t.tolist()
    [1]
    """
    log_probs = sampling_log_probs(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    return jax.random.categorical(key, log_probs, axis=-1).astype(jnp.int32)


def check_sampling(vocab_size: int, temperature, top_k, top_p) -> None:
    """The checks of the sampling knobs, with one wording everywhere (CLI included).

    Raises:
      TypeError: a temperature or top_p that is not a number, a top_k that is not an int.
      ValueError: ``temperature <= 0`` (use greedy instead), ``top_k`` outside
        ``1..vocab_size``, ``top_p`` outside ``(0, 1]``.
    """
    # Traced values (inside jit) cannot be inspected; the public functions check before.
    if not is_traced(temperature) and not check_real("temperature", temperature) > 0:
        raise ValueError(
            f"temperature must be > 0, got {temperature}; for the most probable token at "
            f"every step use greedy decoding (greedy=True, or --greedy) instead of "
            f"temperature 0."
        )
    if top_k is not None and not is_traced(top_k):
        check_int("top_k", top_k, what=f"an int in 1..{vocab_size} (the vocabulary size)")
        if not 1 <= top_k <= vocab_size:
            raise ValueError(
                f"top_k must be an int in 1..{vocab_size} (the vocabulary size), got {top_k}."
            )
    if top_p is not None and not is_traced(top_p):
        check_real("top_p", top_p, low=0.0, high=1.0, low_inclusive=False)


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
        non-pad tokens of each row.
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
    lengths = _check_generate(model, prompt_tokens, prompt_lengths, max_new_tokens,
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


def _check_generate(model, prompt_tokens, prompt_lengths, max_new_tokens, temperature, top_k,
                    top_p) -> np.ndarray:
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
    real = tokens != config.pad_id
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


def _forbid_special(log_probs_BV, config):
    return log_probs_BV.at[..., config.pad_id].set(_NEG).at[..., config.bos_id].set(_NEG)


@functools.partial(
    nnx.jit, static_argnames=("max_new_tokens", "prefill", "greedy", "stop_at_eos", "use_cache")
)
def _generate_jit(model: LanguageModel, prompts_BP, lengths_B, temperature, top_k, top_p, key,
                  *, max_new_tokens: int, prefill: int, greedy: bool, stop_at_eos: bool,
                  use_cache: bool):
    config = model.config
    B, P = prompts_BP.shape
    L = P + max_new_tokens  # the buffer: every prompt, then room for its new tokens
    buffer_BL = jnp.full((B, L), config.pad_id, jnp.int32).at[:, :P].set(prompts_BP)
    end_B = lengths_B + max_new_tokens  # row b is done once position end_b - 1 is written

    if use_cache:
        cache = model.init_decode_cache(B, L)
        logits_BTV, cache = model.prefill(buffer_BL[:, :prefill], cache, 0)
        logits_BV = logits_BTV[:, -1]
    else:
        cache = None
        logits_BV = model(buffer_BL, deterministic=True)[:, prefill - 1]

    def cond(carry):
        t, _, finished_B, _, _, _ = carry
        return (t + 1 < L) & ~jnp.all(finished_B)

    def body(carry):
        # logits_BV scores position t + 1 given the tokens at positions 0..t.
        t, buffer_BL, finished_B, log_probs_B, logits_BV, cache = carry
        model_BV = _forbid_special(jax.nn.log_softmax(logits_BV, axis=-1), config)
        if greedy:
            sampled_B = jnp.argmax(model_BV, axis=-1).astype(jnp.int32)
        else:
            sampling_BV = _sampling_log_probs(model_BV, temperature, top_k, top_p)
            step_key = jax.random.fold_in(key, t + 1)
            sampled_B = jax.random.categorical(step_key, sampling_BV, axis=-1).astype(jnp.int32)
        position = t + 1
        in_prompt_B = position < lengths_B
        prompt_B = jax.lax.dynamic_index_in_dim(buffer_BL, position, axis=1, keepdims=False)
        generating_B = ~in_prompt_B & ~finished_B
        next_B = jnp.where(in_prompt_B, prompt_B,
                           jnp.where(finished_B, config.pad_id, sampled_B))
        chosen_B = jnp.take_along_axis(model_BV, sampled_B[:, None], axis=-1)[:, 0]
        log_probs_B = log_probs_B + jnp.where(generating_B, chosen_B, 0.0)
        buffer_BL = jax.lax.dynamic_update_index_in_dim(buffer_BL, next_B, position, axis=1)
        eos_B = generating_B & (next_B == config.eos_id) if stop_at_eos else False
        finished_B = finished_B | eos_B | (position + 1 >= end_B)
        if cache is not None:
            logits_BV, cache = model.decode_step(next_B, cache, position)
        else:
            # Teaching path: the whole buffer again; the causal mask makes the positions after
            # ``position`` (pads or stale) irrelevant to row ``position``.
            all_BLV = model(buffer_BL, deterministic=True)
            logits_BV = jax.lax.dynamic_index_in_dim(all_BLV, position, axis=1, keepdims=False)
        return position, buffer_BL, finished_B, log_probs_B, logits_BV, cache

    carry = (jnp.int32(prefill - 1), buffer_BL, jnp.zeros(B, bool), jnp.zeros(B, jnp.float32),
             logits_BV, cache)
    _, buffer_BL, _, log_probs_B, _, _ = jax.lax.while_loop(cond, body, carry)
    columns_BN = lengths_B[:, None] + jnp.arange(max_new_tokens)[None]
    return jnp.take_along_axis(buffer_BL, columns_BN, axis=1), log_probs_B
