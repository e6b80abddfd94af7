"""Step 0b: word vectors, a table of words and their vectors, and the questions it answers.

:class:`WordVectors` holds what training (the next step) gives: one vector per word. It answers
the questions notebook 00 asks of embeddings: how similar two words are (the cosine of their
vectors), which words are nearest to a word or to any vector (the largest cosines), and
"a is to b as c is to ?" (the word nearest to ``b - a + c``). :func:`sentence_vectors` averages
the vectors of a sentence's words, the simplest sentence embedding.

The searches here compute every cosine and rank them all, which is instant for a vocabulary of
ten thousand words; step 0h (:func:`attention.vectors.cosine_top_k`) is the fast search for a
database of millions.

Axes: ``V`` vocabulary, ``D`` vector width.

Typical use::

    from attention import vectors as wv

    sentences = wv.load_english_sentences()          # Multi30k + Tatoeba, $ATTENTION_DATA
    vectors = wv.train_word_vectors(sentences, dim=64, epochs=5)
    vectors.nearest("dog", 5)                        # [("collar", 0.8...), ("puppy", ...)...
    vectors.analogy("man", "woman", "boy")           # woman - man + boy ~ girl
    vectors.save("runs/word_vectors.npz")
    vectors = wv.WordVectors.load("runs/word_vectors.npz")
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from attention._checks import check_int
from attention.vectors.corpus import tokenize_words

_FORMAT = "attention.WordVectors/1"  # written into the file so load() can tell what it reads


@dataclasses.dataclass(frozen=True, eq=False)
class WordVectors:
    """Trained word vectors: ``words[i]`` has the vector ``vectors[i]``.

    Frozen: the lookups (``index``, the normalised rows used by every search) are built once.
    Searches compute the cosine of the query with every word and keep the largest.

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
          ValueError: ``k`` out of range; a query vector not of shape ``[D]``, or not finite.
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
            if not bool(jnp.all(jnp.isfinite(query_D))):
                raise ValueError(
                    "query must be a finite [D] vector, got one holding a NaN or infinity: a NaN "
                    "has no cosine with anything."
                )
        k = check_int("k", k)
        available = len(self) - len(excluded)
        if not 1 <= k <= available:
            raise ValueError(
                f"k must lie in 1..{available} (the vocabulary's {len(self)} words less "
                f"{len(excluded)} excluded), got k={k}."
            )
        # Every cosine, then the best: a few thousand words take no time (step 0h is the fast
        # search for millions of rows). Ties go to the lower row, as in jax.lax.top_k.
        unit_query_D = query_D / jnp.maximum(jnp.linalg.norm(query_D), 1e-12)
        scores, rows = jax.lax.top_k(self.unit_vectors @ unit_query_D, k + len(excluded))
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
