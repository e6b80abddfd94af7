"""Step 0d: evaluating word vectors: do their cosines rank word pairs as people do?

People rated how similar word pairs are; good vectors give the similar pairs the larger
cosines. The score is Spearman's rank correlation between the cosines and the ratings
(:func:`evaluate_similarity`), on the public lists WordSim-353 and SimLex-999
(:func:`load_word_similarity`) or on a small hand-made list of words the captions use often
(:data:`WORD_SIMILARITY_PAIRS`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np

from attention.vectors.word_vectors import WordVectors

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
