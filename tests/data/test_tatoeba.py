"""Tatoeba (small) loader on the shared files."""

import shutil

import pytest

from attention.data import ChecksumError, DatasetNotFoundError, load_tatoeba
from attention.data.tatoeba import SHA256


@pytest.mark.parametrize(("split", "count"), [("train", 4000), ("valid", 500), ("test", 500)])
def test_pair_counts(shared_data, split, count):
    pairs = load_tatoeba(split, data_dir=shared_data)
    assert len(pairs) == count
    for german, english in pairs:
        assert german and english and "\t" not in german + english
        assert "\u00a0" not in german + english and "  " not in german + english


def test_direction_and_first_pair(shared_data, monkeypatch):
    monkeypatch.setenv("ATTENTION_DATA", str(shared_data))
    first = load_tatoeba("train")[0]
    assert first == (
        "Ich möchte mich gern um einen Arbeitsplatz bewerben.",
        "I'd like to apply for a job.",
    )
    assert load_tatoeba("train", source="en", target="de")[0] == first[::-1]
    assert load_tatoeba("val") == load_tatoeba("valid")
    # No English sentence is in two splits (the README's promise).
    english = [{e for _, e in load_tatoeba(s)} for s in ("train", "valid", "test")]
    assert not (english[0] & english[1] or english[0] & english[2] or english[1] & english[2])


def test_checksum_mismatch_names_the_file(shared_data, tmp_path):
    folder = tmp_path / "tatoeba_en_de_small"
    folder.mkdir()
    path = folder / "test.tsv"
    shutil.copy(shared_data / "tatoeba_en_de_small" / "test.tsv", path)
    path.write_bytes(path.read_bytes().replace(b"Tom", b"Tim", 1))
    with pytest.raises(
        ChecksumError, match=rf"test\.tsv: expected sha256 {SHA256['test.tsv']}, got"
    ):
        load_tatoeba("test", data_dir=tmp_path)
    assert b"Tim" in path.read_bytes()


def test_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTENTION_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(DatasetNotFoundError) as error:
        load_tatoeba("train")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("Tatoeba en-de (small) not found: looked for train.tsv in ")
    assert str(tmp_path / "tatoeba_en_de_small") in message and "set ATTENTION_DATA" in message


def test_argument_errors():
    with pytest.raises(
        ValueError, match=r"split must be one of \('train', 'valid', 'test'\).* got 'dev'"
    ):
        load_tatoeba("dev")
    with pytest.raises(ValueError, match=r"target must be one of \('en', 'de'\), got 'fr'"):
        load_tatoeba("train", target="fr")
