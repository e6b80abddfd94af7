"""Tests for attention/vectors/evaluation.py: Spearman's correlation against SciPy, and the
word-similarity lists."""

import math

import numpy as np
import pytest

from attention import vectors as wv
from attention.vectors import WordVectors


def _toy(V=11, D=5, seed=0):
    rng = np.random.default_rng(seed)
    words = tuple(f"word{i}" for i in range(V))
    return WordVectors(words, rng.normal(size=(V, D)).astype(np.float32),
                       np.arange(V, 0, -1), {"min_count": 1})


def test_spearman_correlation_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    x = rng.integers(0, 5, size=13).astype(float)  # with ties
    y = x + rng.normal(size=13)
    assert math.isclose(wv.spearman_correlation(x, y), stats.spearmanr(x, y).statistic,
                        rel_tol=1e-9)
    with pytest.raises(ValueError, match="constant"):
        wv.spearman_correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])


def test_word_similarity_lists(tmp_path):
    path = tmp_path / "list.tsv"
    path.write_text("# a comment\nword0\tWord3\t7.5\nword1\tword2\t1.0\nword4\tword9\t3\n"
                    "word0\tunknown\t5\n")
    pairs = wv.load_word_similarity("simlex999", path)
    assert pairs[0] == ("word0", "word3", 7.5) and len(pairs) == 4
    score = wv.evaluate_similarity(_toy(), pairs)
    assert (score.pairs, score.missing) == (3, 1)
    vectors = _toy()
    cosines = [vectors.similarity(a, b) for a, b, _ in pairs[:3]]
    assert math.isclose(score.spearman, wv.spearman_correlation(cosines, [7.5, 1.0, 3.0]))
    path.write_text("word0 word3 7.5\n")
    with pytest.raises(ValueError, match="line 1: expected 'word<TAB>word<TAB>rating'"):
        wv.load_word_similarity("wordsim353", path)
    with pytest.raises(ValueError, match="name must be one of"):
        wv.load_word_similarity("men3000")
