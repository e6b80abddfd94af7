"""Texts for a language model: synthetic stories and one side of the translation corpora."""

import pytest

from attention.data.lm_corpus import LM_CORPORA, load_sentences, make_stories, stories_vocabulary
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
