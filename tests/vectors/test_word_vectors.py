"""Tests for attention/vectors/word_vectors.py: the searches (nearest, analogy, similarity)
against brute-force cosines, saving, sentence vectors, and the errors."""

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


def _cosines(vectors, query):
    unit = vectors.vectors / np.linalg.norm(vectors.vectors, axis=1, keepdims=True)
    return unit @ (query / np.linalg.norm(query))


def test_nearest_and_analogy_match_brute_force_cosines():
    vectors = _toy()
    scores = _cosines(vectors, vectors.vector("word3"))
    order = [i for i in np.argsort(-scores).tolist() if i != 3][:4]
    got = vectors.nearest("word3", 4)
    assert [w for w, _ in got] == [f"word{i}" for i in order]
    np.testing.assert_allclose([s for _, s in got], scores[order], rtol=1e-5)
    unit = {w: vectors.vector(w) / np.linalg.norm(vectors.vector(w)) for w in vectors.words}
    offset = unit["word2"] - unit["word1"] + unit["word5"]
    scores = _cosines(vectors, offset)
    order = [i for i in np.argsort(-scores).tolist() if i not in (1, 2, 5)][:3]
    assert [w for w, _ in vectors.analogy("word1", "word2", "word5", 3)] == [
        f"word{i}" for i in order]
    assert math.isclose(vectors.similarity("word0", "word4"),
                        float(_cosines(vectors, vectors.vector("word4"))[0]), rel_tol=1e-5)


def test_save_load_round_trip_and_refusing_to_overwrite(tmp_path):
    vectors = _toy()
    path = vectors.save(tmp_path / "sub" / "vectors.npz")
    loaded = WordVectors.load(path)
    assert loaded.words == vectors.words and loaded.meta == vectors.meta
    np.testing.assert_array_equal(loaded.vectors, vectors.vectors)
    np.testing.assert_array_equal(loaded.counts, vectors.counts)
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"already exists; pass overwrite=True"):
        _toy(seed=1).save(path)
    assert path.read_bytes() == before
    _toy(seed=1).save(path, overwrite=True)
    np.testing.assert_array_equal(WordVectors.load(path).vectors, _toy(seed=1).vectors)
    assert [p.name for p in path.parent.iterdir()] == ["vectors.npz"]  # no temporary left


def test_errors_name_what_was_wrong():
    vectors = _toy()
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        vectors.vector("zebra")
    with pytest.raises(KeyError, match="'zebra'"):
        vectors.analogy("word1", "zebra", "word2")
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.10 .* got k=11"):
        vectors.nearest("word0", 11)
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.8 .* got k=9"):
        vectors.analogy("word0", "word1", "word2", 9)
    with pytest.raises(ValueError, match=r"\[D\] vector with D=5, got shape \[4\]"):
        vectors.nearest(np.zeros(4, np.float32))


@pytest.mark.outside_annotations
def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="word must be a str, got 3"):
        _toy().vector(3)
    with pytest.raises(ValueError, match=r"vectors must be \[V, D\] and counts \[V\] with V=2"):
        WordVectors(("a", "b"), np.zeros((3, 4), np.float32), np.ones(2, np.int64))


def test_sentence_vectors_are_means_of_known_words():
    vectors = _toy()
    got = wv.sentence_vectors(vectors, ["word1 Word4 zebra", "zebra"])
    np.testing.assert_allclose(got[0], (vectors.vector("word1") + vectors.vector("word4")) / 2,
                               rtol=1e-6)
    np.testing.assert_array_equal(got[1], np.zeros(5))


def test_nearest_refuses_a_query_vector_that_is_not_finite():
    vectors = _toy()
    query = np.ones(5, np.float32)
    query[2] = np.nan
    with pytest.raises(ValueError, match=r"query must be a finite \[D\] vector"):
        vectors.nearest(query)
    with pytest.raises(ValueError, match=r"query must be a finite \[D\] vector"):
        vectors.nearest(np.full(5, np.inf, np.float32))
