"""Texts for a language model: synthetic stories and one side of the translation corpora."""

import pytest

from attention.data.lm_corpus import (
    LM_CORPORA,
    load_sentences,
    make_repeats,
    make_stories,
    stories_vocabulary,
)
from attention.data.multi30k import load_multi30k
from attention.data.synthetic import SVO_LEXICON
from attention.data.tatoeba import load_tatoeba


def test_stories_are_seeded_and_in_the_vocabulary():
    stories = make_stories(num_stories=200, seed=4)
    assert stories == make_stories(num_stories=200, seed=4)
    assert stories != make_stories(num_stories=200, seed=5)
    vocab = stories_vocabulary()
    for story in stories:
        assert vocab.unk_id not in vocab.encode(story)
        assert story.endswith(" .")


def test_stories_repeat_their_cast_and_echoes_repeat_exactly():
    nouns = set(SVO_LEXICON["noun"])
    stories = make_stories(num_stories=300, seed=0, echoes=0.0)
    for story in stories:  # a cast member appears in at least two sentences
        sentences = [s.split() for s in story.split(" . ")]
        assert len(sentences) >= 2
        first_nouns = {w for w in sentences[0] if w in nouns}
        assert first_nouns & {w for s in sentences[1:] for w in s}
    for echo in make_stories(num_stories=20, seed=1, echoes=1.0):
        words = echo.split()
        half = len(words) // 2
        assert words[:half] == words[half:] and words[half - 1] == "."


def test_real_text_is_one_side_of_the_pairs(shared_data):
    assert load_sentences("multi30k-en", "valid", data_dir=shared_data) == [
        en for _, en in load_multi30k("val", data_dir=shared_data)]
    assert load_sentences("tatoeba-de", "test", data_dir=shared_data) == [
        de for de, _ in load_tatoeba("test", data_dir=shared_data)]
    assert len(load_sentences("svo", "valid", num_stories=1000)) == 100


def test_bad_names():
    with pytest.raises(ValueError, match="name must be one of"):
        load_sentences("wikipedia")
    with pytest.raises(ValueError, match="split must be one of"):
        load_sentences("svo", "dev")
    with pytest.raises(ValueError, match=r"echoes must be in \[0, 1\]"):
        make_stories(num_stories=1, echoes=1.5)
    assert "svo" in LM_CORPORA


def _period(words):
    """The smallest p with words[i] == words[i - p] for every i >= p, written out."""
    return next(p for p in range(1, len(words) + 1)
                if all(words[i] == words[i - p] for i in range(p, len(words))))


def test_repeats_have_the_drawn_periods_and_are_seeded():
    docs = make_repeats(num_docs=300, lengths=[3, 8, 11], num_words=40, seed=2)
    assert docs == make_repeats(num_docs=300, lengths=[3, 8, 11], num_words=40, seed=2)
    assert docs != make_repeats(num_docs=300, lengths=[3, 8, 11], num_words=40, seed=3)
    periods = [_period(doc.split()) for doc in docs]
    assert all(len(doc.split()) == 40 for doc in docs)
    # A string of L random words may itself repeat (period below L) only by chance: rarely.
    assert sum(p in (3, 8, 11) for p in periods) >= 295
    assert {3, 8, 11} <= set(periods)
    vocab = stories_vocabulary()
    assert all(vocab.unk_id not in vocab.encode(doc) for doc in docs)
    assert make_repeats(num_docs=2, lengths=[2], num_words=5, words=["a", "b"], seed=0)[0] \
        .split() in (["a", "b", "a", "b", "a"], ["b", "a", "b", "a", "b"],
                     ["a", "a", "a", "a", "a"], ["b", "b", "b", "b", "b"])


def test_bad_repeats():
    with pytest.raises(ValueError, match="lengths must be a non-empty list"):
        make_repeats(num_docs=1, lengths=[], num_words=4)
    with pytest.raises(ValueError, match="lengths must be at most num_words=4, got 5"):
        make_repeats(num_docs=1, lengths=[5], num_words=4)
    with pytest.raises(ValueError, match="num_words must be"):
        make_repeats(num_docs=1, lengths=[1], num_words=0)
    with pytest.raises(ValueError, match="num_docs must be a non-negative int, got -1"):
        make_repeats(num_docs=-1, lengths=[1], num_words=2)
    with pytest.raises(ValueError, match="words must hold at least two words"):
        make_repeats(num_docs=1, lengths=[1], num_words=2, words=["a"])
