"""Tests for attention/vectors/training.py: training on a corpus with planted co-occurrences,
and the errors."""

import numpy as np
import pytest

from attention import vectors as wv


def _planted_corpus(seed=0, sentences=600):
    """Six topics, each with five context words (c{t}_{j}) and two planted words a{t}, b{t}
    that appear only among their own topic's context words, plus filler shared by all: a and b
    of one topic share their contexts (the distributional hypothesis), those of two topics do
    not."""
    rng = np.random.default_rng(seed)
    text = []
    for _ in range(sentences):
        t = int(rng.integers(0, 6))
        tokens = [f"c{t}_{j}" for j in rng.permutation(5)[:4]]
        tokens += [f"filler{n}" for n in rng.integers(0, 10, size=2)]
        tokens = [tokens[i] for i in rng.permutation(len(tokens))]
        tokens.insert(int(rng.integers(0, len(tokens) + 1)), f"{'ab'[rng.integers(0, 2)]}{t}")
        text.append(" ".join(tokens))
    return text


def test_training_places_planted_pairs_closer_than_random_pairs():
    vectors = wv.train_word_vectors(_planted_corpus(), dim=16, window=3, negatives=5,
                                    min_count=1, subsample=1.0, epochs=4, batch_size=256,
                                    learning_rate=0.02, seed=0)
    planted = [vectors.similarity(f"a{t}", f"b{t}") for t in range(6)]
    across = [vectors.similarity(f"a{t}", f"b{s}") for t in range(6) for s in range(6) if s != t]
    margin = np.mean(planted) - np.mean(across)
    assert margin > 0.3, (planted, np.mean(across))
    assert min(planted) > max(across), (planted, max(across))
    losses = vectors.meta["epoch_losses"]
    assert losses[-1] < losses[0], losses


def test_errors_name_what_was_wrong():
    with pytest.raises(ValueError, match="the corpus is empty: 2 sentences"):
        wv.train_word_vectors(["", "?!"])
    with pytest.raises(ValueError, match="no word occurs at least min_count=5 times"):
        wv.train_word_vectors(["a dog", "a cat"])
    with pytest.raises(ValueError, match="dim must be a positive int, got 0"):
        wv.train_word_vectors(["a dog"], dim=0)


@pytest.mark.outside_annotations
def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match=r"dim must be a positive int, got 1.5 \(float\)"):
        wv.train_word_vectors(["a dog"], dim=1.5)
    with pytest.raises(TypeError, match="one str"):
        wv.train_word_vectors("a dog runs")
