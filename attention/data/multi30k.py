"""Step 18d: Multi30k, 31,014 English image captions with professional German translations.

Multi30k Task 1 (Elliott et al. 2016) is the standard small benchmark for translation between
German and English: short, literal sentences ("Zwei junge weiße Männer sind im Freien in der
Nähe vieler Büsche." / "Two young, White males are outside near many bushes."), small enough
to train a transformer on a laptop in an hour and on one GPU in minutes.

=========  =======  ========================
split      pairs    files
=========  =======  ========================
train      29,000   ``train.{de,en}.gz``
val         1,014   ``val.{de,en}.gz``
test2016    1,000   ``test_2016_flickr.{de,en}.gz``
=========  =======  ========================

The files are the raw (cased, untokenised) ones of ``github.com/multi30k/dataset``,
``data/task1/raw/``, gzipped, one sentence per line; line i of the two languages is a pair.
They are looked up as described in :mod:`attention.data.files` and, if found nowhere,
downloaded from that repository at a pinned commit into the cache.

**Terms of use.** Multi30k has no open licence. Its captions come from Flickr30K, distributed
for non-commercial research and educational use only; use it for research or teaching, do not
ship it in a commercial product, and cite:

    Elliott, Frank, Sima'an, Specia. "Multi30K: Multilingual English-German Image
    Descriptions." Proceedings of the 5th Workshop on Vision and Language, ACL 2016,
    pp. 70-74. doi:10.18653/v1/W16-3210
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable

from attention._checks import check_choice, check_language_pair
from attention.data import files

NAME = "multi30k"
TITLE = "Multi30k"
LANGUAGES = ("de", "en")
# Pinned to a commit, so the bytes behind the URL cannot change under the checksums below.
BASE_URL = (
    "https://raw.githubusercontent.com/multi30k/dataset/"
    "a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw/"
)
SPLITS = {"train": "train", "val": "val", "test2016": "test_2016_flickr"}
SPLIT_ALIASES = {"valid": "val", "validation": "val", "test": "test2016"}
NUM_PAIRS = {"train": 29_000, "val": 1_014, "test2016": 1_000}
SHA256 = {  # of the .gz files, as published in the dataset's README
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
}


def split_files(split: str, languages: Iterable[str] = LANGUAGES) -> list[str]:
    """The file names of ``split`` for each language, e.g. ``["val.de.gz", "val.en.gz"]``."""
    return [f"{SPLITS[_split_name(split)]}.{lang}.gz" for lang in languages]


def download_multi30k(
    cache: str | os.PathLike | None = None,
    *,
    splits: Iterable[str] = tuple(SPLITS),
    base_url: str | None = None,
) -> pathlib.Path:
    """Download the raw Multi30k files of ``splits`` (1.3 MB in all) and verify them.

    Files already in the folder are verified and kept, not fetched again.

    Args:
      cache: the folder to fill; default ``cache_dir()/multi30k``.
      splits: which splits to fetch.
      base_url: where the files are; default :data:`BASE_URL` (a ``file://`` URL works too).

    Returns:
      The folder.

    Raises:
      ChecksumError: a downloaded or cached file has the wrong SHA-256.
      urllib.error.URLError: the download failed.
    """
    folder = pathlib.Path(cache).expanduser() if cache is not None else files.cache_dir() / NAME
    base_url = BASE_URL if base_url is None else base_url
    for split in splits:
        for filename in split_files(split):
            url = base_url.rstrip("/") + "/" + filename
            files.download(url, folder / filename, SHA256[filename])
    return folder


def load_multi30k(
    split: str = "train",
    *,
    source: str = "de",
    target: str = "en",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> list[tuple[str, str]]:
    """The ``(source, target)`` sentence pairs of one Multi30k split, whitespace-normalised.

    Args:
      split: ``"train"``, ``"val"`` or ``"test2016"`` (``"valid"`` and ``"test"`` are accepted
        as other names for the last two).
      source: ``"de"`` or ``"en"``, the language to translate from.
      target: the other language.
      data_dir: the folder that holds ``multi30k/`` (or that folder itself). Default: the
        ``ATTENTION_DATA`` environment variable, then the download cache.
      download: if the files are found nowhere (and no ``data_dir`` was given), download
        them into the cache.

    Returns:
      A list of 29,000 (train), 1,014 (val) or 1,000 (test2016) pairs of strings.

    Raises:
      ValueError: unknown ``split`` or language.
      DatasetNotFoundError: the files are nowhere and could not be downloaded.
      ChecksumError: a file's SHA-256 differs from the published one.

    >>> pairs = load_multi30k("val")  # doctest: +SKIP
    >>> pairs[0]  # doctest: +SKIP
    ('Eine Gruppe von Männern lädt Baumwolle auf einen Lastwagen',
     'A group of men are loading cotton onto a truck')
    """
    split = _split_name(split)
    check_language_pair(source, target, LANGUAGES)
    filenames = split_files(split, (source, target))
    folder = files.find_dataset_dir(NAME, filenames, data_dir)
    if folder is None:
        error = files.not_found_error(TITLE, NAME, filenames, data_dir)
        if data_dir is not None or not download:
            raise error
        try:
            folder = download_multi30k(splits=[split])
        except OSError as download_error:  # urllib.error.URLError is an OSError
            raise files.DatasetNotFoundError(
                f"{error.args[0].rstrip('.')}; downloading from {BASE_URL} failed too "
                f"({download_error})."
            ) from download_error
    columns = []
    for filename in filenames:
        path = folder / filename
        files.verify_checksum(path, SHA256[filename])
        columns.append(files.read_lines(path))
    if len(columns[0]) != len(columns[1]) or len(columns[0]) != NUM_PAIRS[split]:
        raise ValueError(  # unreachable with verified files; guards against edited tables
            f"{filenames[0]} has {len(columns[0])} lines and {filenames[1]} has "
            f"{len(columns[1])}; expected {NUM_PAIRS[split]} each."
        )
    return list(zip(*columns, strict=True))


def _split_name(split: str) -> str:
    return check_choice("split", split, SPLITS, aliases=SPLIT_ALIASES)
