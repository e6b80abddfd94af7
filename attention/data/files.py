"""Step 18c: where data files live, whether they are intact, and how their text is read.

Every dataset loader in this package does the same four things, gathered here:

1. **Find the folder.** In order: the ``data_dir`` argument (the folder that holds
   ``multi30k/``, or the dataset folder itself); then ``$ATTENTION_DATA/<name>``; then the
   download cache ``$XDG_CACHE_HOME/attention/<name>`` (``~/.cache/attention/<name>`` when
   ``XDG_CACHE_HOME`` is unset). An explicit ``data_dir`` always wins, and is never silently
   replaced by a download.
2. **Download** missing files into the cache, for datasets that have a public source. A file is
   written under a temporary name, checked, and only then renamed into place, so an
   interrupted download never leaves a half file that looks complete.
3. **Verify** each file's SHA-256 against the checksum published with the dataset. A mismatch
   raises :class:`ChecksumError` naming the file and both hashes. We never delete or overwrite
   a file we did not just download: the user decides what to do with it.
4. **Read and normalise** the text: UTF-8, one sentence per ``\\n``-terminated line, Unicode
   NFC, and whitespace collapsed to single spaces (Multi30k's German training file has
   no-break spaces, double spaces and stray spaces at the ends of lines, which would otherwise
   become tokens of their own).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pathlib
import shutil
import tempfile
import unicodedata
import urllib.request
from collections.abc import Sequence

ENV_VAR = "ATTENTION_DATA"


class ChecksumError(ValueError):
    """A data file's SHA-256 differs from the published one (corrupt or a different version)."""


class DatasetNotFoundError(FileNotFoundError):
    """No folder holding the dataset's files was found (and none could be downloaded)."""


def cache_dir() -> pathlib.Path:
    """The download cache: ``$XDG_CACHE_HOME/attention``, else ``~/.cache/attention``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "attention"


def sha256_file(path: str | os.PathLike) -> str:
    """The hex SHA-256 of the file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str | os.PathLike, expected_sha256: str) -> None:
    """Raise :class:`ChecksumError` unless the SHA-256 of ``path`` is ``expected_sha256``.

    The file is left as it is either way.
    """
    actual = sha256_file(path)
    if actual != expected_sha256.lower():
        raise ChecksumError(
            f"checksum mismatch for {os.fspath(path)}: expected sha256 {expected_sha256}, got "
            f"{actual}. The file is corrupt or a different version; it was left untouched. "
            f"Replace it with the original (or delete it to download it again)."
        )


def candidate_dirs(name: str, data_dir: str | os.PathLike | None) -> list[pathlib.Path]:
    """The folders to search for dataset ``name``, in order (see the module docstring).

    With an explicit ``data_dir`` only ``data_dir/name`` and ``data_dir`` itself are searched.
    """
    if data_dir is not None:
        root = pathlib.Path(data_dir).expanduser()
        return [root / name, root]
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(pathlib.Path(os.environ[ENV_VAR]).expanduser() / name)
    dirs.append(cache_dir() / name)
    return dirs


def find_dataset_dir(
    name: str, filenames: Sequence[str], data_dir: str | os.PathLike | None
) -> pathlib.Path | None:
    """The first of :func:`candidate_dirs` that holds every file of ``filenames``, or None."""
    for folder in candidate_dirs(name, data_dir):
        if all((folder / f).is_file() for f in filenames):
            return folder
    return None


def not_found_error(
    title: str, name: str, filenames: Sequence[str], data_dir: str | os.PathLike | None
) -> DatasetNotFoundError:
    """The one-line error for a dataset that is nowhere: where we looked and how to fix it."""
    looked = ", ".join(str(d) for d in candidate_dirs(name, data_dir))
    how = (
        f"pass as data_dir the folder that holds {name}/"
        if data_dir is not None
        else f"set {ENV_VAR}, or pass data_dir, to the folder that holds {name}/"
    )
    return DatasetNotFoundError(
        f"{title} not found: looked for {', '.join(filenames)} in {looked}; {how}."
    )


def download(url: str, dest: str | os.PathLike, sha256: str) -> pathlib.Path:
    """Fetch ``url`` to ``dest`` unless it is there, and check its SHA-256.

    The bytes go to a temporary file beside ``dest``, are verified, and are renamed to
    ``dest`` only if the checksum matches; on a mismatch the temporary file is removed and
    :class:`ChecksumError` names the URL. An existing ``dest`` is verified, never replaced.

    ``url`` may be ``https://`` or ``file://`` (handy for tests and for mirrors).
    """
    dest = pathlib.Path(dest)
    if dest.exists():
        verify_checksum(dest, sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = pathlib.Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        actual = sha256_file(tmp)
        if actual != sha256.lower():
            raise ChecksumError(
                f"checksum mismatch for {dest.name} downloaded from {url}: expected sha256 "
                f"{sha256}, got {actual}. The download was discarded; try again, or fetch "
                f"the file by hand into {dest.parent}."
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)  # ours: the partial download, never a user's file
    return dest


def normalize_whitespace(text: str) -> str:
    """Unicode NFC, and every run of whitespace (no-break spaces too) as one space, stripped.

    >>> normalize_whitespace("  Ein\\u00a0Hund  läuft. ")
    'Ein Hund läuft.'
    """
    return " ".join(unicodedata.normalize("NFC", text).split())


def read_lines(path: str | os.PathLike) -> list[str]:
    """The normalised lines of a UTF-8 text file (gzipped if its name ends in ``.gz``).

    Lines end at ``\\n`` only: ``str.splitlines`` would also split at rare characters such as
    U+2028 or U+0085 inside a sentence, and silently shift every later pair out of line.
    """
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [normalize_whitespace(line) for line in lines]
