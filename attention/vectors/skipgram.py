"""Step 0a: skip-gram with negative sampling, word2vec's model: its loss and its training pairs.

Mikolov, Sutskever, Chen, Corrado, Dean 2013, "Distributed Representations of Words and Phrases
and their Compositionality", NeurIPS, section 2. Every word w has two vectors, an input vector
v_w (the one we keep as "the word vector") and an output vector u_w. For each word c of the
text and each word o at most ``window`` positions away, the pair (c, o) is a positive example,
and k words drawn from a noise distribution P_n are negatives::

    loss(c, o) = -log sigma(u_o . v_c) - sum_{i=1..k} log sigma(-u_{n_i} . v_c),
    n_i ~ P_n(w) = count(w)^(3/4) / sum_w' count(w')^(3/4)

The 3/4 power (section 2.2) gives rare words more noise samples than their frequency would.
Frequent words ("a", "the") are subsampled (section 2.3): each occurrence of a word of
relative frequency f(w) is discarded with probability ``1 - sqrt(t / f(w))`` (never for
f(w) <= t), so that the window reaches further and rare words get more updates.

As in the C implementation, each centre word's window is a random size b in 1..``window``
(nearer words count more often), and discarded words are removed before windows are taken.
:func:`attention.vectors.train_word_vectors` (the next steps) minimises this loss.

Axes: ``V`` vocabulary, ``D`` vector width, ``B`` (centre, context) pairs in a batch, ``k``
negatives per pair (the paper's k).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from attention._checks import check_counts, check_positive_int, check_real


def noise_distribution(counts: Int[np.ndarray, " V"], power: float = 0.75) -> np.ndarray:
    """Negative sampling's noise distribution ``P_n(w) = c_w^power / sum_w' c_w'^power``.

    Mikolov et al. (2013), section 2.2: the unigram distribution raised to the 3/4 power
    "outperformed significantly the unigram and the uniform distributions".

    Args:
      counts: ``[V]`` positive word counts.
      power: the exponent; 0.75 in the paper, 1 the unigram distribution, 0 uniform.

    Returns:
      A float64 array ``[V]`` that sums to 1.

    Raises:
      ValueError: ``counts`` empty, not one-dimensional, or not all positive.

    >>> noise_distribution(np.array([16, 1]), power=0.75).round(3).tolist()
    [0.889, 0.111]
    """
    counts = check_counts(counts)
    power = check_real("power", power)
    weights = counts.astype(np.float64) ** power
    return weights / weights.sum()


def keep_probabilities(counts: Int[np.ndarray, " V"], threshold: float = 1e-3) -> np.ndarray:
    """Subsampling: the probability that one occurrence of each word is kept.

    Mikolov et al. (2013), section 2.3, discard each occurrence of word w with probability
    ``P(w) = 1 - sqrt(t / f(w))``, where ``f(w)`` is the word's share of all occurrences and
    ``t`` the threshold; so it is kept with probability ``min(1, sqrt(t / f(w)))``. The paper
    uses t = 1e-5 on a billion words; on our 370,000 words 1e-3 leaves only the hundred or so
    most frequent words subsampled.

    Args:
      counts: ``[V]`` positive word counts.
      threshold: ``t``, a positive number.

    Returns:
      A float64 array ``[V]`` of probabilities in (0, 1].

    Raises:
      ValueError: ``counts`` empty, not one-dimensional or not all positive; ``threshold``
        not positive.

    >>> keep_probabilities(np.array([90, 10]), threshold=0.025).round(3).tolist()
    [0.167, 0.5]
    """
    counts = check_counts(counts)
    threshold = check_real("threshold", threshold, low=0.0, low_inclusive=False)
    frequency = counts / counts.sum()
    return np.minimum(1.0, np.sqrt(threshold / frequency))


# ------------------------------------------------------------------ the model


def skipgram_loss(
    center_BD: Float[Array, "B D"],
    context_BD: Float[Array, "B D"],
    negatives_BkD: Float[Array, "B k D"],
) -> Float[Array, " B"]:
    """Skip-gram with negative sampling, one loss per (centre, context) pair.

    Mikolov et al. (2013), equation 4, with ``v_c`` the centre word's input vector, ``u_o``
    the context word's output vector and ``u_1..u_k`` the output vectors of k noise words::

        loss = -log sigma(u_o . v_c) - sum_i log sigma(-u_i . v_c)

    (the paper maximises the negative of this). ``log sigma`` is computed as
    ``jax.nn.log_sigmoid``, which does not overflow for large scores.

    Args:
      center_BD: ``[B, D]`` input vectors ``v_c`` of the centre words.
      context_BD: ``[B, D]`` output vectors ``u_o`` of their context words.
      negatives_BkD: ``[B, k, D]`` output vectors of k noise words per pair.

    Returns:
      ``[B]`` losses, each >= 0.

    Raises:
      ValueError: the three shapes do not agree.

    >>> import jax.numpy as jnp
    >>> v = jnp.zeros((2, 3))
    >>> [round(x, 4) for x in skipgram_loss(v, v, jnp.zeros((2, 5, 3))).tolist()]  # 6 log 2
    [4.1589, 4.1589]
    """
    B, D = center_BD.shape
    if context_BD.shape != (B, D) or negatives_BkD.ndim != 3 or (
        negatives_BkD.shape[0] != B or negatives_BkD.shape[2] != D
    ):
        raise ValueError(
            f"expected center_BD [B, D], context_BD [B, D] and negatives_BkD [B, k, D] with one "
            f"B and D; got {list(center_BD.shape)}, {list(context_BD.shape)} and "
            f"{list(negatives_BkD.shape)}."
        )
    positive_B = jnp.einsum("BD,BD->B", center_BD, context_BD)
    negative_Bk = jnp.einsum("BD,BkD->Bk", center_BD, negatives_BkD)
    return -jax.nn.log_sigmoid(positive_B) - jnp.sum(jax.nn.log_sigmoid(-negative_Bk), axis=1)


def skipgram_pairs(
    sentences: Sequence[np.ndarray],
    keep: np.ndarray,
    *,
    window: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's (centre, context) pairs: subsample, then random windows, then shuffle.

    Each occurrence of word w is kept with probability ``keep[w]``; then, within what is
    left of each sentence, every kept word c draws a window size b uniform in 1..``window``
    and pairs with the words up to b positions before and after it (the C code's "dynamic
    window", which weights near words more).

    Args:
      sentences: int arrays of word ids, one per sentence.
      keep: ``[V]`` keep probabilities (:func:`keep_probabilities`).
      window: the largest window size, a positive int.
      rng: the NumPy generator that makes the epoch's draws.

    Returns:
      ``(centers, contexts)``, two int32 arrays of the same length, shuffled.

    >>> centers, contexts = skipgram_pairs([np.array([0, 1, 2])], np.ones(3), window=1,
    ...                                    rng=np.random.default_rng(0))
    >>> sorted(zip(centers.tolist(), contexts.tolist()))
    [(0, 1), (1, 0), (1, 2), (2, 1)]
    """
    window = check_positive_int("window", window)
    if not sentences:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    ids = np.concatenate(sentences).astype(np.int32)
    sentence_of = np.repeat(np.arange(len(sentences)), [len(s) for s in sentences])
    kept = rng.random(ids.shape[0]) < keep[ids]
    ids, sentence_of = ids[kept], sentence_of[kept]
    reach = rng.integers(1, window + 1, size=ids.shape[0])  # each centre's window size b
    centers, contexts = [], []
    for offset in range(1, window + 1):
        same = sentence_of[offset:] == sentence_of[:-offset]
        left, right = ids[:-offset], ids[offset:]
        forward = same & (reach[:-offset] >= offset)  # centre on the left, context right
        backward = same & (reach[offset:] >= offset)  # centre on the right, context left
        centers += [left[forward], right[backward]]
        contexts += [right[forward], left[backward]]
    centers_all, contexts_all = np.concatenate(centers), np.concatenate(contexts)
    order = rng.permutation(centers_all.shape[0])
    return centers_all[order], contexts_all[order]
