"""Step 0c: training skip-gram word vectors on English sentences, with Adam.

:func:`train_word_vectors` puts steps 0 to 0b together: tokenise the text and keep the words
seen ``min_count`` times (step 0), draw each epoch's (centre, context) pairs with subsampling
and random windows, and minimise the mean skip-gram loss over batches of pairs (step 0a); the
input vectors it learns are a :class:`~attention.vectors.WordVectors` (step 0b). Half a minute
to a minute of CPU on the course's 370,000 words gives vectors whose neighbours make sense
("dog" ~ "puppy", "poodle"; "red" ~ "blue", "green").

As in the C implementation of word2vec, the input vectors start uniform in (-0.5/D, 0.5/D) and
the output vectors at zero, and the learning rate decays linearly to zero. Unlike it, we train
with Adam (``optax.adam``) on mini-batches of pairs, one ``jax.jit``-compiled ``lax.scan`` over
chunks of batches, which suits a CPU running XLA better than Hogwild SGD one pair at a time.

Axes: ``V`` vocabulary, ``D`` vector width, ``B`` (centre, context) pairs in a batch, ``k``
negatives per pair, ``C`` batches in a compiled chunk.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from attention._checks import check_int, check_positive_int, check_real
from attention.vectors.corpus import build_vocabulary, tokenize_words
from attention.vectors.skipgram import (
    keep_probabilities,
    noise_distribution,
    skipgram_loss,
    skipgram_pairs,
)
from attention.vectors.word_vectors import WordVectors


def _batch_loss(params, centers_B, contexts_B, weights_B, noise_cdf, key, negatives: int):
    uniform_Bk = jax.random.uniform(key, (centers_B.shape[0], negatives))
    # Inverse-CDF sampling: a search in the cumulative noise distribution per draw, instead of
    # a categorical over all V words per draw.
    noise_Bk = jnp.minimum(jnp.searchsorted(noise_cdf, uniform_Bk), noise_cdf.shape[0] - 1)
    losses_B = skipgram_loss(params["input"][centers_B], params["output"][contexts_B],
                             params["output"][noise_Bk])
    return jnp.sum(weights_B * losses_B) / jnp.maximum(jnp.sum(weights_B), 1.0)


@functools.partial(jax.jit, static_argnames=("optimizer", "negatives"))
def _train_chunk(params, opt_state, centers_CB, contexts_CB, weights_CB, noise_cdf, key,
                 optimizer, negatives: int):
    def step(carry, batch):
        params, opt_state, key = carry
        key, sub = jax.random.split(key)
        centers_B, contexts_B, weights_B = batch
        loss, grads = jax.value_and_grad(_batch_loss)(
            params, centers_B, contexts_B, weights_B, noise_cdf, sub, negatives)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), loss

    (params, opt_state, _), losses_C = jax.lax.scan(
        step, (params, opt_state, key), (centers_CB, contexts_CB, weights_CB))
    return params, opt_state, losses_C


def train_word_vectors(
    sentences: Iterable[str],
    *,
    dim: int = 64,
    window: int = 5,
    negatives: int = 5,
    min_count: int = 5,
    subsample: float = 1e-3,
    epochs: int = 5,
    batch_size: int = 1024,
    learning_rate: float = 0.005,
    seed: int = 0,
) -> WordVectors:
    """Train skip-gram with negative sampling (Mikolov et al. 2013) on English ``sentences``.

    Tokenises with :func:`tokenize_words`, keeps the words seen ``min_count`` times
    (:func:`build_vocabulary`), draws each epoch's pairs with subsampling and random windows
    (:func:`skipgram_pairs`), and minimises the mean :func:`skipgram_loss` over batches of
    pairs with Adam, the learning rate decaying linearly to 0 as in the paper's code. The
    batches run ``jax.jit``-compiled, a chunk of them per call (``lax.scan``).

    On the course's 33,000 sentences (:func:`load_english_sentences`, 760,000 pairs an
    epoch) the defaults take about 20 s on two CPU cores; notebook 00's ``dim=100,
    epochs=10`` about 35-50 s.

    Args:
      sentences: raw English text, one sentence per string.
      dim: D, the width of the vectors.
      window: the largest distance between a centre word and a context word.
      negatives: k, noise words per pair (the paper: 5-20 for small data).
      min_count: rarer words are dropped from the text before training.
      subsample: the subsampling threshold t (:func:`keep_probabilities`).
      epochs: passes over the text.
      batch_size: pairs per update.
      learning_rate: Adam's initial step size.
      seed: everything random (initial vectors, subsampling, windows, negatives) follows it.

    Returns:
      The :class:`WordVectors` (the input vectors ``v_w``), with the settings, the corpus
      size, the seconds taken and the mean loss of each epoch in ``meta``.

    Raises:
      TypeError, ValueError: a size not a positive int, ``subsample`` or ``learning_rate``
        not positive.
      ValueError: an empty corpus, or no word seen ``min_count`` times.

    >>> vectors = train_word_vectors(load_english_sentences(), dim=100, epochs=10)  # doctest: +SKIP
    >>> vectors.analogy("man", "woman", "boy")  # doctest: +SKIP
    [('girl', 0.75...)]
    """
    dim = check_positive_int("dim", dim)
    window = check_positive_int("window", window)
    negatives = check_positive_int("negatives", negatives)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    seed = check_int("seed", seed)
    subsample = check_real("subsample", subsample, low=0.0, low_inclusive=False)
    learning_rate = check_real("learning_rate", learning_rate, low=0.0, low_inclusive=False)
    if isinstance(sentences, str):
        raise TypeError("sentences must be an iterable of strings, got one str.")
    start = time.perf_counter()
    tokenized = [tokenize_words(s) for s in sentences]
    num_words = sum(len(s) for s in tokenized)
    if num_words == 0:
        raise ValueError(
            f"the corpus is empty: {len(tokenized)} sentences with no words in them."
        )
    words, counts = build_vocabulary(tokenized, min_count=min_count)
    if len(words) < 2:
        raise ValueError(
            f"only {len(words)} word occurs at least min_count={min_count} times; skip-gram "
            f"needs at least two."
        )
    index = {w: i for i, w in enumerate(words)}
    id_sentences = [np.array([index[w] for w in s if w in index], np.int32) for s in tokenized]
    id_sentences = [s for s in id_sentences if s.shape[0] > 1]
    keep = keep_probabilities(counts, subsample)
    noise_cdf = jnp.asarray(np.cumsum(noise_distribution(counts)), jnp.float32)

    rng = np.random.default_rng(seed)
    # Every epoch's pairs are drawn first, so the total number of updates, and with it the
    # linear decay of the learning rate, is known before the first one.
    epoch_pairs = [skipgram_pairs(id_sentences, keep, window=window, rng=rng)
                   for _ in range(epochs)]
    if sum(c.shape[0] for c, _ in epoch_pairs) == 0:
        raise ValueError("the corpus gives no (centre, context) pairs: no sentence has two "
                         "words of the vocabulary.")
    chunk = 64  # batches per compiled call: long enough to hide Python, short for progress
    batch_size = min(batch_size, max(c.shape[0] for c, _ in epoch_pairs))
    steps = [-(-c.shape[0] // (batch_size * chunk)) * chunk for c, _ in epoch_pairs]
    optimizer = optax.adam(optax.linear_schedule(learning_rate, 0.0, sum(steps)))
    key = jax.random.key(seed)
    key, init_key = jax.random.split(key)
    V = len(words)
    params = {
        "input": jax.random.uniform(init_key, (V, dim), jnp.float32, -0.5 / dim, 0.5 / dim),
        "output": jnp.zeros((V, dim), jnp.float32),
    }
    opt_state = optimizer.init(params)
    epoch_losses = []
    for (centers, contexts), num_steps in zip(epoch_pairs, steps, strict=True):
        total = num_steps * batch_size
        # Pad the epoch to whole chunks with pairs of weight 0, so every call has one shape.
        weights = np.zeros(total, np.float32)
        weights[: centers.shape[0]] = 1.0
        pad = total - centers.shape[0]
        centers = np.concatenate([centers, np.zeros(pad, np.int32)])
        contexts = np.concatenate([contexts, np.zeros(pad, np.int32)])
        shape = (num_steps // chunk, chunk, batch_size)
        losses = []
        for c in range(shape[0]):
            key, sub = jax.random.split(key)
            params, opt_state, losses_C = _train_chunk(
                params, opt_state, centers.reshape(shape)[c], contexts.reshape(shape)[c],
                weights.reshape(shape)[c], noise_cdf, sub, optimizer, negatives)
            losses.append(losses_C)
        batch_weights = weights.reshape(num_steps, batch_size).sum(axis=1)
        losses_all = np.asarray(jnp.concatenate(losses))
        epoch_losses.append(float((losses_all * batch_weights).sum() / batch_weights.sum()))
    vectors = np.asarray(params["input"])
    meta = {
        "method": "skip-gram with negative sampling (Mikolov et al. 2013)",
        "dim": dim, "window": window, "negatives": negatives, "min_count": min_count,
        "subsample": subsample, "epochs": epochs, "batch_size": batch_size,
        "learning_rate": learning_rate, "seed": seed,
        "sentences": len(tokenized), "words_in_corpus": num_words, "vocabulary": V,
        "pairs_per_epoch": [int(c.shape[0]) for c, _ in epoch_pairs],
        "epoch_losses": epoch_losses,
        "seconds": round(time.perf_counter() - start, 2),
    }
    return WordVectors(words, vectors, counts, meta)
