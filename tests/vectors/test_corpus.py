"""Tests for attention/vectors/corpus.py: the word tokenizer, the counted vocabulary and the
course's English corpus."""

from attention import vectors as wv


def test_tokenizer_and_vocabulary():
    assert wv.tokenize_words("Two DOGS, a man's hat!") == ["two", "dogs", "a", "man's", "hat"]
    words, counts = wv.build_vocabulary([["b", "a", "b"], ["c", "a", "b", "d"]], min_count=2)
    assert words == ("b", "a") and counts.tolist() == [3, 2]


def test_the_english_corpus(shared_data):
    sentences = wv.load_english_sentences(shared_data)
    assert len(sentences) == 29_000 + 4_000
    assert len(wv.load_english_sentences(shared_data, limit=10)) == 20
