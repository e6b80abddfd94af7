"""SentencePiece subword tokenizer: training on a small subset, round trips, save/load."""

import io

import pytest
import sentencepiece as spm

from attention.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SubwordTokenizer,
    Tokenizer,
    load_multi30k,
    load_tokenizer,
    train_subword,
)


@pytest.fixture(scope="module")
def pairs(shared_data):
    return load_multi30k("train", data_dir=shared_data)[:1500]


@pytest.fixture(scope="module")
def tokenizer(pairs):
    return train_subword([s for pair in pairs for s in pair], vocab_size=600)


def test_special_ids_and_pieces(tokenizer):
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.vocab_size == len(tokenizer) == 600
    assert [tokenizer.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2, 3)


def test_round_trip_on_both_languages(tokenizer, pairs):
    for german, english in pairs[:200]:
        for text in (german, english):
            ids = tokenizer.encode(text)
            assert min(ids) > 3  # no special and no <unk> in text it was trained on
            assert tokenizer.decode(ids) == text
            assert len(tokenizer.tokens(text)) == len(ids)
            assert "".join(tokenizer.tokens(text)).replace("\u2581", " ").strip() == text


def test_rare_words_are_split_into_pieces(tokenizer):
    pieces = tokenizer.tokens("Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.")
    assert pieces[0] == "\u2581Zwei"
    assert len(pieces) > len("Zwei junge weiße Männer sind im Freien in der Nähe vieler".split())


def test_decode_stops_at_eos_and_skips_pad_and_bos(tokenizer):
    ids = tokenizer.encode("Ein Hund")
    assert tokenizer.encode("Ein Hund", add_bos=True, add_eos=True) == [BOS_ID, *ids, EOS_ID]
    assert tokenizer.decode([BOS_ID, *ids, EOS_ID, *ids, PAD_ID]) == "Ein Hund"
    assert tokenizer.decode([ids[0], PAD_ID, *ids[1:]]) == "Ein Hund"
    assert tokenizer.tokens("Hund", add_eos=True)[-1] == "</s>"


def test_save_load_equal(tokenizer, tmp_path):
    path = tmp_path / "subword.model"
    tokenizer.save(path)
    for loaded in (SubwordTokenizer.load(path), load_tokenizer(path)):
        assert loaded == tokenizer
        assert loaded.encode("Ein Mann fährt Fahrrad.") == tokenizer.encode(
            "Ein Mann fährt Fahrrad."
        )


def test_training_is_reproducible_and_bpe_works(pairs):
    texts = [s for pair in pairs[:400] for s in pair]
    assert train_subword(texts, vocab_size=300) == train_subword(texts, vocab_size=300)
    bpe = train_subword(texts, vocab_size=300, model_type="bpe")
    assert bpe.decode(bpe.encode(texts[0])) == texts[0]


@pytest.mark.outside_annotations
def test_errors(pairs):
    texts = [s for pair in pairs[:20] for s in pair]
    with pytest.raises(ValueError, match="vocab_size=5000 is too large for 40 sentences"):
        train_subword(texts, vocab_size=5000)
    with pytest.raises(ValueError, match="model_type must be one of .* got 'wordpiece'"):
        train_subword(texts, model_type="wordpiece")
    with pytest.raises(ValueError, match="vocab_size must be an int > 4, got 4"):
        train_subword(texts, vocab_size=4)
    with pytest.raises(TypeError, match=r"vocab_size must be an int > 4, got 100.0 \(float\)"):
        train_subword(texts, vocab_size=100.0)
    with pytest.raises(ValueError, match=r"character_coverage must be in \(0, 1\], got 0.0"):
        train_subword(texts, character_coverage=0.0)
    with pytest.raises(TypeError, match=r"character_coverage must be a number, got '1'"):
        train_subword(texts, character_coverage="1")
    with pytest.raises(ValueError, match=r"num_threads must be a positive int, got 0\."):
        train_subword(texts, num_threads=0)
    # A model trained with SentencePiece's own default ids (unk=0, no pad) is refused.
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=100, minloglevel=2
    )
    with pytest.raises(ValueError, match="got pad=-1 bos=1 eos=2 unk=0"):
        SubwordTokenizer(model.getvalue())
