"""Step 0 (data): word vectors, skip-gram with negative sampling trained on the course's English.

Notebook 00 asks whether it makes sense to add, subtract and multiply embeddings. To ask it of
real embeddings, this module trains word2vec's skip-gram with negative sampling (Mikolov,
Sutskever, Chen, Corrado, Dean 2013, "Distributed Representations of Words and Phrases and
their Compositionality", NeurIPS) on the English sentences that ship with the project: the
29,000 Multi30k training captions and the 4,000 Tatoeba training sentences (about 370,000
words). Half a minute to a minute of CPU gives vectors whose neighbours make sense ("dog"
~ "puppy", "poodle"; "red" ~ "blue", "green").

The model (section 2 of the paper). Every word w has two vectors, an input vector v_w (the
one we keep as "the word vector") and an output vector u_w. For each word c of the text and
each word o at most ``window`` positions away, the pair (c, o) is a positive example, and k
words drawn from a noise distribution P_n are negatives::

    loss(c, o) = -log sigma(u_o . v_c) - sum_{i=1..k} log sigma(-u_{n_i} . v_c),
    n_i ~ P_n(w) = count(w)^(3/4) / sum_w' count(w')^(3/4)

The 3/4 power (section 2.2) gives rare words more noise samples than their frequency would.
Frequent words ("a", "the") are subsampled (section 2.3): each occurrence of a word of
relative frequency f(w) is discarded with probability ``1 - sqrt(t / f(w))`` (never for
f(w) <= t), so that the window reaches further and rare words get more updates.

As in the C implementation, each centre word's window is a random size b in 1..``window``
(nearer words count more often), discarded words are removed before windows are taken, and
the input vectors start uniform in (-0.5/D, 0.5/D) and the output vectors at zero. Unlike it,
we train with Adam on mini-batches of pairs (one ``jax.jit``-compiled ``lax.scan`` over
chunks of batches), with a learning rate decaying linearly to zero, which suits a CPU running
XLA better than Hogwild SGD one pair at a time.

Axes: ``V`` vocabulary, ``D`` vector width, ``B`` (centre, context) pairs in a batch, ``k``
negatives per pair (the paper's k), ``C`` batches in a compiled chunk.

Typical use::

    from attention.data import word_vectors as wv

    sentences = wv.load_english_sentences()          # Multi30k + Tatoeba, $ATTENTION_DATA
    vectors = wv.train_word_vectors(sentences, dim=64, epochs=5)
    vectors.nearest("dog", 5)                        # [("collar", 0.8...), ("puppy", ...)...
    vectors.analogy("man", "woman", "boy")           # woman - man + boy ~ girl
    vectors.save("runs/word_vectors.npz")
    vectors = wv.WordVectors.load("runs/word_vectors.npz")
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import importlib.util
import json
import math
import os
import pathlib
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from attention._checks import check_int, check_positive_int, check_real
from attention.mechanism.similarity import cosine_top_k

_FORMAT = "attention.WordVectors/1"  # written into the file so load() can tell what it reads
# Words are runs of letters or digits, with an English clitic kept on ("don't", "man's"): the
# captions are plain English, and a subword model would hide the words we want to look at.
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


# ------------------------------------------------------------------ text and vocabulary


def tokenize_words(text: str) -> list[str]:
    """Lower-cased words of ``text``: runs of ASCII letters and digits, clitics kept.

    Punctuation and other characters separate words and are dropped.

    Raises:
      TypeError: ``text`` not a str.

    >>> tokenize_words("A man's dog, running!  Don't stop.")
    ['a', "man's", 'dog', 'running', "don't", 'stop']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    return _WORD.findall(text.lower())


def build_vocabulary(
    sentences: Iterable[Sequence[str]], *, min_count: int = 5
) -> tuple[tuple[str, ...], np.ndarray]:
    """The words seen at least ``min_count`` times, most frequent first, and their counts.

    Ties in count are broken alphabetically, so the order does not depend on the corpus order.

    Args:
      sentences: tokenised sentences (lists of words, e.g. from :func:`tokenize_words`).
      min_count: the fewest occurrences a word needs to be kept (a positive int).

    Returns:
      ``(words, counts)``: a tuple of V words and an int64 array ``[V]`` of their counts.

    Raises:
      TypeError, ValueError: ``min_count`` not a positive int.
      ValueError: no word occurs ``min_count`` times (an empty corpus, for one).

    >>> build_vocabulary([["a", "dog"], ["a", "cat"], ["the", "dog"]], min_count=2)
    (('a', 'dog'), array([2, 2]))
    """
    min_count = check_positive_int("min_count", min_count)
    counter = collections.Counter(word for sentence in sentences for word in sentence)
    kept = sorted(((w, n) for w, n in counter.items() if n >= min_count),
                  key=lambda item: (-item[1], item[0]))
    if not kept:
        raise ValueError(
            f"no word occurs at least min_count={min_count} times in the corpus "
            f"({sum(counter.values())} words, {len(counter)} distinct); give more text or a "
            f"smaller min_count."
        )
    words, counts = zip(*kept, strict=True)
    return tuple(words), np.array(counts, dtype=np.int64)


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
    counts = _check_counts(counts)
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
    counts = _check_counts(counts)
    threshold = check_real("threshold", threshold, low=0.0, low_inclusive=False)
    frequency = counts / counts.sum()
    return np.minimum(1.0, np.sqrt(threshold / frequency))


def _check_counts(counts) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size == 0 or not np.all(counts > 0):
        raise ValueError(
            f"counts must be a non-empty [V] array of positive counts, got shape "
            f"{list(counts.shape)}{'' if counts.size == 0 else f' with minimum {counts.min()}'}."
        )
    return counts


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


# ------------------------------------------------------------------ the result


@dataclasses.dataclass(frozen=True, eq=False)
class WordVectors:
    """Trained word vectors: ``words[i]`` has the vector ``vectors[i]``.

    Frozen: the lookups (``index``, the normalised rows used by every search) are built once.
    Searches are cosine similarities (:func:`attention.mechanism.similarity.cosine_top_k`).

    Args:
      words: V distinct words, most frequent first.
      vectors: ``[V, D]`` float32, one row per word.
      counts: ``[V]`` how often each word occurred in the training text.
      meta: JSON-safe facts about the training run (settings, corpus size, seconds, losses).

    Raises:
      ValueError: shapes that disagree with ``words``, repeated or empty words, no words.

    >>> toy = WordVectors(("cat", "dog", "car"), np.array([[1.0, 0.1], [1.0, 0.3], [0, 1.0]]),
    ...                   np.array([3, 2, 1]))
    >>> [word for word, _ in toy.nearest("cat", 2)], round(toy.similarity("cat", "car"), 3)
    (['dog', 'car'], 0.1)
    """

    words: tuple[str, ...]
    vectors: Float[np.ndarray, "V D"]
    counts: Int[np.ndarray, " V"]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    index: dict[str, int] = dataclasses.field(init=False, repr=False)
    unit_vectors: Float[Array, "V D"] = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        words = tuple(self.words)
        vectors = np.asarray(self.vectors, dtype=np.float32)
        counts = np.asarray(self.counts, dtype=np.int64)
        if not words:
            raise ValueError("words must hold at least one word, got none.")
        if vectors.ndim != 2 or vectors.shape[0] != len(words) or counts.shape != (len(words),):
            raise ValueError(
                f"vectors must be [V, D] and counts [V] with V={len(words)} (the number of "
                f"words), got vectors {list(vectors.shape)} and counts {list(counts.shape)}."
            )
        index = {word: i for i, word in enumerate(words)}
        if len(index) != len(words) or not all(isinstance(w, str) and w for w in words):
            raise ValueError("words must be distinct non-empty strings.")
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "index", index)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        object.__setattr__(self, "unit_vectors", jnp.asarray(vectors / np.maximum(norms, 1e-12)))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @property
    def dim(self) -> int:
        """D, the width of each vector."""
        return int(self.vectors.shape[1])

    def vector(self, word: str) -> np.ndarray:
        """The ``[D]`` vector of ``word``.

        Raises:
          TypeError: ``word`` not a str.
          KeyError: ``word`` not in the vocabulary (the message names it).
        """
        return self.vectors[self._row(word)]

    def _row(self, word) -> int:
        if not isinstance(word, str):
            raise TypeError(f"word must be a str, got {word!r} ({type(word).__name__}).")
        try:
            return self.index[word]
        except KeyError:
            min_count = self.meta.get("min_count")
            seen = f", each seen at least {min_count} times" if min_count else ""
            raise KeyError(
                f"{word!r} is not in the vocabulary ({len(self)} lower-case words{seen})."
            ) from None

    def similarity(self, a: str, b: str) -> float:
        """The cosine similarity of the vectors of words ``a`` and ``b``, in [-1, 1].

        Raises:
          KeyError: a word not in the vocabulary.
        """
        i, j = self._row(a), self._row(b)
        return float(self.unit_vectors[i] @ self.unit_vectors[j])

    def nearest(
        self, query: str | np.ndarray | Array, k: int = 10, *, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """The k words whose vectors have the largest cosine with ``query``, best first.

        Args:
          query: a word (itself excluded from the answer) or a ``[D]`` vector.
          k: how many words, ``1 <= k <= V - (number excluded)``.
          exclude: more words to leave out of the answer.

        Returns:
          ``[(word, cosine), ...]``, k of them.

        Raises:
          KeyError: the query word, or a word of ``exclude``, not in the vocabulary.
          ValueError: ``k`` out of range; a query vector not of shape ``[D]``.
          TypeError: ``k`` not an int.
        """
        excluded = {self._row(w) for w in exclude}
        if isinstance(query, str):
            excluded.add(self._row(query))
            query_D = self.unit_vectors[self._row(query)]
        else:
            query_D = jnp.asarray(query, dtype=jnp.float32)
            if query_D.shape != (self.dim,):
                raise ValueError(
                    f"query must be a word or a [D] vector with D={self.dim}, got shape "
                    f"{list(query_D.shape)}."
                )
        k = check_int("k", k)
        available = len(self) - len(excluded)
        if not 1 <= k <= available:
            raise ValueError(
                f"k must lie in 1..{available} (the vocabulary's {len(self)} words less "
                f"{len(excluded)} excluded), got k={k}."
            )
        scores, rows = cosine_top_k(query_D, self.unit_vectors, k + len(excluded))
        hits = [(self.words[r], float(s)) for r, s in zip(rows.tolist(), scores.tolist(),
                                                          strict=True) if r not in excluded]
        return hits[:k]

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        """"a is to b as c is to ?": the k words nearest to ``b - a + c``, inputs excluded.

        The vector offset method of Mikolov, Yih, Zweig (2013, "Linguistic Regularities in
        Continuous Space Word Representations"), on unit vectors (3CosAdd): the answer d
        maximises ``cos(d, b - a + c)`` over the vocabulary less a, b and c.

        >>> toy = WordVectors(("man", "woman", "boy", "girl", "dog"),
        ...                   np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [-1, 0, 0.]]),
        ...                   np.array([5, 4, 3, 2, 1]))
        >>> [word for word, _ in toy.analogy("man", "woman", "boy", k=2)]
        ['girl', 'dog']

        Raises:
          KeyError: a word not in the vocabulary.
          ValueError: ``k`` out of range.
        """
        rows = [self._row(w) for w in (a, b, c)]
        query_D = self.unit_vectors[rows[1]] - self.unit_vectors[rows[0]] + self.unit_vectors[
            rows[2]]
        return self.nearest(query_D, k, exclude=(a, b, c))

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> pathlib.Path:
        """Write the vectors to a ``.npz`` file (no pickles: words and meta are JSON).

        The file is written under a temporary name in the same folder and renamed into place,
        so an interrupted save never leaves a half file.

        Args:
          path: the file; missing folders are created.
          overwrite: replace a file already there; without it that is an error.

        Returns:
          The path written.

        Raises:
          FileExistsError: ``path`` exists and ``overwrite`` is false (nothing is written).
        """
        path = pathlib.Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(
                f"{path} already exists; pass overwrite=True to replace it or choose another "
                f"path (nothing was overwritten)."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"format": _FORMAT, "words": list(self.words), "meta": self.meta})
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
        tmp = pathlib.Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, vectors=self.vectors, counts=self.counts,
                         header=np.frombuffer(header.encode("utf-8"), dtype=np.uint8))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordVectors:
        """The vectors that :meth:`save` wrote to ``path``.

        Raises:
          FileNotFoundError: no file there.
          ValueError: the file is not one that :meth:`save` wrote.
        """
        path = pathlib.Path(path)
        with np.load(path, allow_pickle=False) as data:
            if set(data.files) != {"vectors", "counts", "header"}:
                raise ValueError(f"{path} is not a WordVectors file (it holds {data.files}).")
            header = json.loads(data["header"].tobytes().decode("utf-8"))
            if header.get("format") != _FORMAT:
                raise ValueError(
                    f"{path} has format {header.get('format')!r}, expected {_FORMAT!r}."
                )
            return cls(tuple(header["words"]), data["vectors"], data["counts"], header["meta"])


# ------------------------------------------------------------------ training


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


# ------------------------------------------------------------------ the corpus


def load_english_sentences(
    data_dir: str | os.PathLike | None = None, *, limit: int | None = None
) -> list[str]:
    """The English training text of the course: Multi30k's 29,000 training captions, then the
    4,000 English sentences of the Tatoeba training split (33,000 sentences, 370,000 words).

    Only training splits are used, so the validation and test sentences stay unseen by the
    vectors (notebook 00 builds its pair task from them).

    Args:
      data_dir: the folder that holds ``multi30k/`` and ``tatoeba_en_de_small/``; default
        ``$ATTENTION_DATA`` (see :mod:`attention.data.files`).
      limit: keep only the first ``limit`` sentences of each corpus (for a quick run).

    Raises:
      DatasetNotFoundError: the files are not there (the message says where it looked).

    >>> sentences = load_english_sentences()  # doctest: +SKIP
    >>> len(sentences), sentences[0]  # doctest: +SKIP
    (33000, 'Two young, White males are outside near many bushes.')
    """
    from attention.data.multi30k import load_multi30k
    from attention.data.tatoeba import load_tatoeba

    if limit is not None:
        limit = check_positive_int("limit", limit)
    download = data_dir is None
    multi30k = [en for _, en in load_multi30k("train", data_dir=data_dir, download=download)]
    tatoeba = [en for _, en in load_tatoeba("train", data_dir=data_dir)]
    return multi30k[:limit] + tatoeba[:limit]


# ------------------------------------------------------------------ evaluation

# Hand-made word pairs with similarity ratings on WordSim-353's 0-10 scale, chosen among words
# the captions use often; the ratings are ours (one rater), so read the score as a sanity check,
# not a benchmark. High: near-synonyms and close kinds; middle: related things; low: unrelated.
WORD_SIMILARITY_PAIRS: tuple[tuple[str, str, float], ...] = (
    ("man", "guy", 9.0), ("woman", "lady", 9.0), ("boy", "kid", 8.0), ("dog", "puppy", 8.5),
    ("shirt", "jacket", 6.5), ("street", "road", 8.5), ("ocean", "sea", 9.5),
    ("car", "truck", 7.0), ("bike", "bicycle", 9.5), ("little", "small", 9.5),
    ("big", "large", 9.5), ("running", "jogging", 8.0), ("talking", "speaking", 8.5),
    ("red", "blue", 6.0), ("two", "three", 6.5), ("food", "meal", 8.0),
    ("sitting", "standing", 5.0), ("girl", "boy", 6.5), ("beach", "sand", 6.5),
    ("guitar", "drum", 6.0), ("snow", "winter", 7.0), ("grass", "field", 6.5),
    ("child", "baby", 7.0), ("water", "pool", 6.0), ("dog", "cat", 6.5),
    ("hat", "helmet", 6.0), ("city", "building", 5.5), ("ball", "soccer", 6.0),
    ("camera", "picture", 6.0), ("dog", "shirt", 1.0), ("guitar", "snow", 0.5),
    ("beach", "book", 1.0), ("car", "baby", 1.5), ("water", "jacket", 1.0),
    ("red", "dog", 1.0), ("food", "bicycle", 0.5), ("street", "ocean", 2.5),
    ("hat", "grass", 1.0), ("sitting", "blue", 0.5), ("camera", "soccer", 1.5),
)

# The copies of the public word-similarity lists inside gensim's wheel (its test data), read as
# plain text without importing gensim: "word1<TAB>word2<TAB>mean rating" lines, "#" comments.
WORD_SIMILARITY_FILES = {
    "wordsim353": "test/test_data/wordsim353.tsv",  # Finkelstein et al. 2002, 0-10
    "simlex999": "test/test_data/simlex999.txt",  # Hill, Reichart, Korhonen 2015, 0-10
}


def load_word_similarity(
    name: str, path: str | os.PathLike | None = None
) -> list[tuple[str, str, float]]:
    """A public word-similarity list: ``[(word1, word2, human rating), ...]``, lower-cased.

    ``"wordsim353"`` (WordSim-353, Finkelstein et al. 2002: relatedness and similarity mixed)
    or ``"simlex999"`` (SimLex-999, Hill et al. 2015: similarity only, "cup" and "coffee"
    rated low). Both ship inside the ``gensim`` package from PyPI (``pip install gensim``),
    whose files are read here as text; or pass ``path`` to a file of the same format.

    Raises:
      ValueError: an unknown ``name``, or a line that is not ``word<TAB>word<TAB>number``.
      FileNotFoundError: gensim is not installed (and no ``path`` was given).

    >>> load_word_similarity("simlex999")[:2]  # doctest: +SKIP
    [('old', 'new', 1.58), ('smart', 'intelligent', 9.2)]
    """
    if name not in WORD_SIMILARITY_FILES:
        raise ValueError(f"name must be one of {tuple(WORD_SIMILARITY_FILES)}, got {name!r}.")
    if path is None:
        spec = importlib.util.find_spec("gensim")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"{name} is read from the copy inside the gensim package, which is not "
                f"installed; `pip install gensim`, or pass path= to your own copy."
            )
        path = pathlib.Path(list(spec.submodule_search_locations)[0]) / WORD_SIMILARITY_FILES[name]
    path = pathlib.Path(path)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        try:
            rows.append((fields[0].lower(), fields[1].lower(), float(fields[2])))
        except (IndexError, ValueError):
            raise ValueError(
                f"{path}, line {number}: expected 'word<TAB>word<TAB>rating', got {line!r}."
            ) from None
    return rows


def spearman_correlation(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties share the mean
    rank), the usual score of word vectors on a word-similarity list.

    Raises:
      ValueError: fewer than two values, different lengths, or a constant sequence.

    >>> spearman_correlation([1.0, 2.0, 3.0, 4.0], [10.0, 30.0, 20.0, 40.0])
    0.8
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.shape[0] < 2:
        raise ValueError(
            f"x and y must be two sequences of one length >= 2, got lengths "
            f"{x.shape} and {y.shape}."
        )
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if denominator == 0.0:
        raise ValueError("a constant sequence has no rank correlation.")
    return round(float(rx @ ry) / denominator, 12)


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty_like(values)
    ranks[order] = np.arange(1, values.shape[0] + 1)
    for value in np.unique(values):  # ties: the mean of the ranks they span
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


@dataclasses.dataclass(frozen=True)
class SimilarityScore:
    """How well cosines rank word pairs like people do.

    Attributes:
      spearman: Spearman's rank correlation of cosine and human rating, over the pairs used.
      pairs: how many pairs had both words in the vocabulary (the ones scored).
      missing: how many pairs were skipped because a word is not in the vocabulary.
    """

    spearman: float
    pairs: int
    missing: int


def evaluate_similarity(
    vectors: WordVectors, pairs: Iterable[tuple[str, str, float]]
) -> SimilarityScore:
    """Score ``vectors`` on a word-similarity list: Spearman's correlation between the cosine
    of each pair and its human rating, over the pairs whose two words are in the vocabulary.

    Raises:
      ValueError: fewer than two pairs have both words in the vocabulary.

    >>> toy = WordVectors(("cat", "dog", "car"), np.array([[1.0, 0.1], [1.0, 0.3], [0, 1.0]]),
    ...                   np.array([3, 2, 1]))
    >>> evaluate_similarity(toy, [("cat", "dog", 8.0), ("cat", "car", 1.0), ("dog", "car", 2.0),
    ...                           ("cat", "zebra", 5.0)])
    SimilarityScore(spearman=1.0, pairs=3, missing=1)
    """
    cosines, ratings, missing = [], [], 0
    for a, b, rating in pairs:
        if a in vectors and b in vectors:
            cosines.append(vectors.similarity(a, b))
            ratings.append(float(rating))
        else:
            missing += 1
    if len(cosines) < 2:
        raise ValueError(
            f"only {len(cosines)} pairs have both words in the vocabulary ({missing} missing); "
            f"a rank correlation needs at least two."
        )
    return SimilarityScore(spearman_correlation(cosines, ratings), len(cosines), missing)


def sentence_vectors(vectors: WordVectors, sentences: Sequence[str]) -> np.ndarray:
    """``[len(sentences), D]``: each sentence as the mean of its known words' vectors.

    The simplest sentence embedding, and a strong baseline (Arora et al. 2017, "A Simple but
    Tough-to-Beat Baseline for Sentence Embeddings"). Words not in the vocabulary are skipped;
    a sentence with none of its words known is the zero vector.

    >>> toy = WordVectors(("cat", "dog"), np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([2, 1]))
    >>> sentence_vectors(toy, ["A cat, a dog!", "zebra"]).tolist()
    [[0.5, 0.5], [0.0, 0.0]]
    """
    out = np.zeros((len(sentences), vectors.dim), np.float32)
    for i, sentence in enumerate(sentences):
        rows = [vectors.index[w] for w in tokenize_words(sentence) if w in vectors.index]
        if rows:
            out[i] = vectors.vectors[rows].mean(axis=0)
    return out
