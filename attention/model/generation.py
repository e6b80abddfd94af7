"""Step 17: generating tokens one at a time: the next-token distribution and the shared loop.

Both model families generate the same way: run the model on the tokens so far, turn the
scores of the next position into log-probabilities, choose a token, write it, repeat::

    log p = log_softmax(logits_t)   pad, bos forbidden         # [B, V]
    y_{t+1} = argmax log p   (greedy)   or   y_{t+1} ~ filter(log p)   (sampling)

The filters reshape the distribution before a draw, in this order: temperature tau
(``softmax(logits / tau)``), top-k (Fan et al. 2018, 5), nucleus top-p (Holtzman et al. 2020,
3.1: the smallest set of most probable tokens whose mass reaches p). Removed and forbidden
tokens get :data:`FORBIDDEN`, a large finite negative, never ``-inf`` (``inf - inf`` is NaN).

:func:`decode_loop` is the one ``lax.while_loop`` behind greedy and sampled translation
(:mod:`attention.model.decoding`, step 17a) and language-model generation
(:mod:`attention.model.sampling`, step 17c). Notebooks 09 and 12 teach both.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from attention._checks import check_sampling
from attention.model.config import TransformerConfig

FORBIDDEN = -1e9
"""Log-probability of a token that may not be chosen (finite: ``-inf`` arithmetic gives NaN)."""


def forbid_special(log_probs: Float[Array, "*B V"], config: TransformerConfig):
    """``log_probs`` with ``pad`` and ``bos`` set to :data:`FORBIDDEN`: never generated.

    >>> from attention.model.config import TransformerConfig
    >>> config = TransformerConfig.tiny(vocab_size=4)
    >>> forbid_special(jnp.zeros(4), config).tolist()
    [-1000000000.0, -1000000000.0, 0.0, 0.0]
    """
    for token in (config.pad_id, config.bos_id):  # None: the config has no such token
        if token is not None:
            log_probs = log_probs.at[..., token].set(FORBIDDEN)
    return log_probs


def fill_id(config: TransformerConfig) -> int:
    """The token written after a row has stopped: ``pad_id``, else ``eos_id``, else 0 (a
    config without padding, such as a loaded checkpoint's; read the lengths, not the ids)."""
    for token in (config.pad_id, config.eos_id):
        if token is not None:
            return token
    return 0


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

    Removed tokens get :data:`FORBIDDEN`, not ``-inf``. Traced knobs (inside ``jit``) are
    not checked: the public functions check them before.

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
    scaled = logits.astype(jnp.float32) / temperature
    if top_k is not None:
        scaled = jnp.where(top_k_mask(scaled, top_k), scaled, FORBIDDEN)
    if top_p is not None:
        scaled = jnp.where(top_p_mask(scaled, top_p), scaled, FORBIDDEN)
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


def chooser(greedy: bool, temperature, top_k, top_p, key) -> Callable:
    """``choose(log_probs_BV, position) -> tokens_B`` for :func:`decode_loop`: the argmax,
    or a draw from :func:`sampling_log_probs` with the key ``fold_in(key, position)`` (a seed
    reproduces the samples, with or without the cache)."""
    if greedy:
        return lambda log_probs_BV, position: jnp.argmax(log_probs_BV, axis=-1)

    def draw(log_probs_BV, position):
        sampling_BV = sampling_log_probs(log_probs_BV, temperature=temperature, top_k=top_k,
                                         top_p=top_p)
        return jax.random.categorical(jax.random.fold_in(key, position), sampling_BV, axis=-1)

    return draw


# ------------------------------------------------------------------ the loop


def decode_loop(
    next_logits: Callable,
    choose: Callable,
    buffer_BL: Int[Array, "B L"],
    lengths_B: Int[Array, " B"],
    cache,
    *,
    start: int,
    max_new_tokens: int,
    config: TransformerConfig,
    stop_at_eos: bool = True,
) -> tuple[Int[Array, "B L"], Float[Array, " B"]]:
    """Fill ``buffer_BL`` after each row's first ``lengths_B`` tokens, one position per step.

    Step t reads positions ``0..t`` and writes position t+1: ``next_logits(buffer_BL, t,
    cache) -> (logits_BV, cache)`` scores it, :func:`forbid_special` and ``choose`` pick a
    token; a row still inside its prompt (``t + 1 < length``) keeps its own token. A row stops
    after ``max_new_tokens`` new tokens or (``stop_at_eos``) after ``eos``, and pads from
    then on. The loop starts at ``t = start`` (the last position every row has) and ends when
    every row has stopped.

    Returns:
      ``(buffer_BL, log_probs_B)``: the filled buffer and each row's ``log P`` of its new
      tokens under the model's softmax (pad and bos in the normaliser), eos included.
    """
    B, L = buffer_BL.shape
    end_B = lengths_B + max_new_tokens  # row b stops once position end_b - 1 is written

    def cond(carry):
        t, _, finished_B, _, _ = carry
        return (t + 1 < L) & ~jnp.all(finished_B)

    def body(carry):
        t, buffer_BL, finished_B, log_probs_B, cache = carry
        logits_BV, cache = next_logits(buffer_BL, t, cache)
        model_BV = forbid_special(jax.nn.log_softmax(logits_BV, axis=-1), config)
        position = t + 1
        chosen_B = choose(model_BV, position).astype(jnp.int32)
        in_prompt_B = position < lengths_B
        prompt_B = jax.lax.dynamic_index_in_dim(buffer_BL, position, axis=1, keepdims=False)
        generating_B = ~in_prompt_B & ~finished_B
        next_B = jnp.where(in_prompt_B, prompt_B, jnp.where(finished_B, fill_id(config), chosen_B))
        chosen_log_p_B = jnp.take_along_axis(model_BV, chosen_B[:, None], axis=-1)[:, 0]
        log_probs_B = log_probs_B + jnp.where(generating_B, chosen_log_p_B, 0.0)
        buffer_BL = jax.lax.dynamic_update_index_in_dim(buffer_BL, next_B, position, axis=1)
        stops = stop_at_eos and config.eos_id is not None
        eos_B = generating_B & (next_B == config.eos_id) if stops else False
        finished_B = finished_B | eos_B | (position + 1 >= end_B)
        return position, buffer_BL, finished_B, log_probs_B, cache

    carry = (jnp.int32(start), buffer_BL, jnp.zeros(B, bool), jnp.zeros(B, jnp.float32), cache)
    _, buffer_BL, _, log_probs_B, _ = jax.lax.while_loop(cond, body, carry)
    return buffer_BL, log_probs_B
