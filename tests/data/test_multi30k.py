"""Multi30k loader on the shared files: counts, normalisation, checksums, lookup, download."""

import gzip
import shutil

import pytest

from attention.data import ChecksumError, DatasetNotFoundError, load_multi30k
from attention.data import multi30k as multi30k_module
from attention.data.multi30k import SHA256, download_multi30k


@pytest.mark.parametrize(("split", "count"), [("train", 29000), ("val", 1014), ("test2016", 1000)])
def test_pair_counts(shared_data, split, count):
    pairs = load_multi30k(split, data_dir=shared_data)
    assert len(pairs) == count
    assert all(german and english for german, english in pairs)


def test_default_location_is_the_environment_variable_and_direction(shared_data, monkeypatch):
    monkeypatch.setenv("ATTENTION_DATA", str(shared_data))
    de_en = load_multi30k("test")  # "test" is another name for test2016
    assert de_en[0] == (
        "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.",
        "A man in an orange hat starring at something.",
    )
    en_de = load_multi30k("test2016", source="en", target="de")
    assert en_de == [(e, d) for d, e in de_en]


def test_whitespace_is_normalised_in_the_german_train_file(shared_data):
    raw = gzip.decompress((shared_data / "multi30k" / "train.de.gz").read_bytes()).decode()
    assert "\u00a0" in raw and "  " in raw  # the quirks are really there to remove
    for german, english in load_multi30k("train", data_dir=shared_data):
        for text in (german, english):
            assert "\u00a0" not in text and "  " not in text and "\t" not in text
            assert text == text.strip()


def _copy_split(shared_data, folder, split="val"):
    folder.mkdir(parents=True)
    for lang in ("de", "en"):
        name = f"{split}.{lang}.gz"
        shutil.copy(shared_data / "multi30k" / name, folder / name)


def test_checksum_mismatch_names_file_and_hashes_and_keeps_it(shared_data, tmp_path):
    folder = tmp_path / "multi30k"
    _copy_split(shared_data, folder)
    corrupt = folder / "val.de.gz"
    corrupt.write_bytes(corrupt.read_bytes()[:-10] + b"0123456789")
    expected = SHA256["val.de.gz"]
    with pytest.raises(
        ChecksumError, match=rf"val\.de\.gz: expected sha256 {expected}, got [0-9a-f]{{64}}"
    ):
        load_multi30k("val", data_dir=tmp_path)
    assert corrupt.read_bytes().endswith(b"0123456789")  # never deleted or replaced


def test_data_dir_wins_and_may_be_the_dataset_folder(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTENTION_DATA", str(tmp_path / "nothing here"))
    _copy_split(shared_data, tmp_path / "mine" / "multi30k")
    assert len(load_multi30k("val", data_dir=tmp_path / "mine")) == 1014
    assert len(load_multi30k("val", data_dir=tmp_path / "mine" / "multi30k")) == 1014


def test_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        load_multi30k("val", data_dir=tmp_path / "nope")
    message = str(error.value)
    assert "\n" not in message
    assert "val.de.gz, val.en.gz" in message and str(tmp_path / "nope" / "multi30k") in message
    assert "pass as data_dir the folder that holds multi30k/" in message


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """No ATTENTION_DATA, and a cache in tmp_path: the loader must download."""
    monkeypatch.delenv("ATTENTION_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "attention" / "multi30k"


def test_download_into_the_cache_then_load(shared_data, empty_cache, monkeypatch):
    monkeypatch.setattr(multi30k_module, "BASE_URL", (shared_data / "multi30k").as_uri() + "/")
    pairs = load_multi30k("val")
    assert len(pairs) == 1014
    assert sorted(p.name for p in empty_cache.iterdir()) == ["val.de.gz", "val.en.gz"]
    # Now cached: loading again needs no source at all.
    monkeypatch.setattr(multi30k_module, "BASE_URL", (shared_data / "gone").as_uri() + "/")
    assert load_multi30k("val") == pairs


def test_download_multi30k_all_splits(shared_data, tmp_path):
    folder = download_multi30k(tmp_path / "c", base_url=(shared_data / "multi30k").as_uri())
    assert sorted(p.name for p in folder.iterdir()) == sorted(SHA256)


def test_failed_download_and_download_false(shared_data, empty_cache, monkeypatch):
    monkeypatch.setattr(multi30k_module, "BASE_URL", (shared_data / "gone").as_uri() + "/")
    with pytest.raises(
        DatasetNotFoundError,
        match=r"Multi30k not found: .*set ATTENTION_DATA.*; downloading from file://.*failed too",
    ):
        load_multi30k("val")
    with pytest.raises(
        DatasetNotFoundError,
        match=f"looked for test_2016_flickr.de.gz, test_2016_flickr.en.gz in {empty_cache}",
    ):
        load_multi30k("test2016", download=False)


def test_argument_errors():
    with pytest.raises(
        ValueError, match=r"split must be one of \('train', 'val', 'test2016'\).* got 'dev'"
    ):
        load_multi30k("dev")
    with pytest.raises(ValueError, match=r"source must be one of \('de', 'en'\), got 'fr'"):
        load_multi30k("val", source="fr")
    with pytest.raises(ValueError, match="source and target must differ, got 'en' for both"):
        load_multi30k("val", source="en", target="en")
