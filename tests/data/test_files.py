"""Finding, downloading, verifying and reading data files (files.py)."""

import gzip
import hashlib

import pytest

from attention.data import ChecksumError, cache_dir, normalize_whitespace, sha256_file
from attention.data.files import candidate_dirs, download, read_lines, verify_checksum


def test_sha256_and_verify(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello\n")
    expected = hashlib.sha256(b"hello\n").hexdigest()
    assert sha256_file(path) == expected
    verify_checksum(path, expected.upper())  # hex digits in either case
    wrong = "0" * 64
    with pytest.raises(ChecksumError, match=rf"a\.txt: expected sha256 {wrong}, got {expected}"):
        verify_checksum(path, wrong)
    assert path.read_bytes() == b"hello\n"  # left untouched


def test_normalize_whitespace():
    assert normalize_whitespace("  Ein\u00a0 Hund\tläuft. \r") == "Ein Hund läuft."
    assert normalize_whitespace("Cafe\u0301") == "Café"  # NFC: one code point for é
    assert normalize_whitespace("") == ""


def test_read_lines_splits_at_newline_only(tmp_path):
    # U+2028 inside a sentence must not start a new line: the pairs would shift.
    text = "one\u2028still one  \nzwei\u00a0Hunde\n"
    plain = tmp_path / "x.txt"
    plain.write_text(text, encoding="utf-8")
    packed = tmp_path / "x.txt.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    for path in (plain, packed):
        assert read_lines(path) == ["one still one", "zwei Hunde"]


def test_cache_dir_and_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("ATTENTION_DATA", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "xdg" / "attention"
    assert candidate_dirs("m", None) == [
        tmp_path / "env" / "m",
        tmp_path / "xdg" / "attention" / "m",
    ]
    # An explicit data_dir is the only place searched: it wins over the variable.
    assert candidate_dirs("m", tmp_path / "mine") == [tmp_path / "mine" / "m", tmp_path / "mine"]
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "attention"


def test_download_verifies_then_keeps(tmp_path):
    source = tmp_path / "remote" / "f.gz"
    source.parent.mkdir()
    source.write_bytes(b"payload")
    digest = hashlib.sha256(b"payload").hexdigest()
    dest = tmp_path / "cache" / "f.gz"
    assert download(source.as_uri(), dest, digest) == dest
    assert dest.read_bytes() == b"payload"
    source.unlink()  # an existing, verified file is not fetched again
    assert download(source.as_uri(), dest, digest) == dest
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.gz"]  # no temporary files


def test_download_with_wrong_checksum_keeps_nothing(tmp_path):
    source = tmp_path / "f.gz"
    source.write_bytes(b"tampered")
    dest = tmp_path / "cache" / "f.gz"
    with pytest.raises(
        ChecksumError, match=r"f\.gz downloaded from file://.*expected sha256 0+, got"
    ):
        download(source.as_uri(), dest, "0" * 64)
    assert list(dest.parent.iterdir()) == []


def test_download_does_not_replace_a_mismatching_existing_file(tmp_path):
    dest = tmp_path / "f.gz"
    dest.write_bytes(b"the user's own file")
    with pytest.raises(ChecksumError, match="left untouched"):
        download((tmp_path / "missing").as_uri(), dest, "0" * 64)
    assert dest.read_bytes() == b"the user's own file"
