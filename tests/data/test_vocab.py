"""Word/char Vocabulary and the shared Tokenizer interface (tokenizer.py, vocab.py)."""

import json

import numpy as np
import pytest

from attention.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    Tokenizer,
    Vocabulary,
    load_tokenizer,
)


def test_special_ids_are_the_model_configs():
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    vocab = Vocabulary.build(["a b"])
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert [vocab.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert isinstance(vocab, Tokenizer)


def test_build_orders_by_frequency_then_first_appearance():
    vocab = Vocabulary.build(["c b a b", "a d b"])
    # b x3, then a x2, then c and d once each in order of first appearance.
    assert [vocab.id_to_piece(i) for i in range(4, vocab.vocab_size)] == ["b", "a", "c", "d"]
    assert vocab.vocab_size == len(vocab) == 8


def test_min_count_and_max_size():
    texts = ["x x x y y z"]
    assert Vocabulary.build(texts, min_count=2).vocab_size == 6
    assert Vocabulary.build(texts, max_size=5).encode("x y z") == [4, UNK_ID, UNK_ID]


def test_word_round_trip_and_unknowns():
    vocab = Vocabulary.build(["the dog sees the cat"])
    text = "the cat sees the dog"
    assert vocab.decode(vocab.encode(text)) == text
    assert vocab.encode("the  bird\u00a0sees") == [4, UNK_ID, vocab.piece_to_id("sees")]
    assert vocab.decode(vocab.encode("the bird")) == "the <unk>"
    assert vocab.encode("the", add_bos=True, add_eos=True) == [BOS_ID, 4, EOS_ID]
    assert vocab.tokens("the cat", add_eos=True) == ["the", "cat", "</s>"]


def test_decode_stops_at_eos_and_skips_pad_and_bos():
    vocab = Vocabulary.build(["a b c"])
    a, b, c = vocab.encode("a b c")
    assert vocab.decode([BOS_ID, a, PAD_ID, b, EOS_ID, c, c]) == "a b"
    assert vocab.decode([EOS_ID, a]) == ""


def test_char_level_keeps_spaces():
    vocab = Vocabulary.build(["7 March 2024"], level="char")
    assert vocab.decode(vocab.encode("2024 March 7")) == "2024 March 7"
    assert vocab.tokens("7 M") == ["7", " ", "M"]


@pytest.mark.parametrize("level", ["word", "char"])
def test_save_load_equal(tmp_path, level):
    vocab = Vocabulary.build(["Zwei Männer, zwei Hunde.", "Two men, two dogs."], level=level)
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert json.loads(path.read_text(encoding="utf-8"))["level"] == level
    for loaded in (Vocabulary.load(path), load_tokenizer(path)):
        assert loaded == vocab
        assert loaded.encode("zwei Hunde.") == vocab.encode("zwei Hunde.")


def test_load_errors(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"tokens": []}')
    with pytest.raises(ValueError, match="is not a Vocabulary file"):
        Vocabulary.load(path)
    with pytest.raises(ValueError, match=r"must end in \.json .* or \.model .*got '.*vocab\.txt'"):
        load_tokenizer(tmp_path / "vocab.txt")


def test_constructor_errors():
    with pytest.raises(ValueError, match="level must be one of .* got 'byte'"):
        Vocabulary(["a"], level="byte")
    with pytest.raises(ValueError, match="must be distinct, got 'a' twice"):
        Vocabulary(["a", "b", "a"])
    with pytest.raises(ValueError, match="must not contain the special piece '</s>'"):
        Vocabulary(["a", "</s>"])
    with pytest.raises(ValueError, match="no whitespace, got 'a b'"):
        Vocabulary(["a b"])
    with pytest.raises(ValueError, match="one character, got 'ab'"):
        Vocabulary(["ab"], level="char")
    with pytest.raises(ValueError, match="id must be in 0..4, got 5"):
        Vocabulary(["a"]).id_to_piece(5)
    with pytest.raises(TypeError, match="got a single str"):
        Vocabulary.build("a b c")


@pytest.mark.outside_annotations
def test_build_arguments_are_checked():
    texts = ["a b c", "a b"]
    with pytest.raises(ValueError, match=r"min_count must be a positive int, got 0\."):
        Vocabulary.build(texts, min_count=0)
    with pytest.raises(TypeError, match=r"min_count must be a positive int, got True \(bool\)"):
        Vocabulary.build(texts, min_count=True)
    with pytest.raises(ValueError, match=r"max_size must be None or an int >= 5 .*got 4\."):
        Vocabulary.build(texts, max_size=4)
    with pytest.raises(TypeError, match=r"max_size must be None or an int >= 5 .*got 6.0"):
        Vocabulary.build(texts, max_size=6.0)
    assert Vocabulary.build(texts, max_size=np.int64(5)).vocab_size == 5
