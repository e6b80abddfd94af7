"""Step 18e: Tatoeba English-German, small: 5,000 short everyday sentence pairs, a 1-minute run.

Real, human-written pairs ("Tom seized Mary by the arm." / "Tom packte Mary am Arm.") from the
Tatoeba Project, via the manythings.org Anki export of 2018-05-13. English sides have 3-8
words, German at most 12: short enough that a tiny transformer learns something visible on a
laptop CPU within a lesson.

======  =====  =============
split   pairs  file
======  =====  =============
train   4,000  ``train.tsv``
valid     500  ``valid.tsv``
test      500  ``test.tsv``
======  =====  =============

Each line is ``English<TAB>German``. The subset is a deterministic sample (see the README
beside the files); it has no public download of its own, so it is looked up only in
``data_dir`` and ``$ATTENTION_DATA/tatoeba_en_de_small`` (or the cache folder of the same
name).

**Licence.** CC BY 2.0 FR (https://creativecommons.org/licenses/by/2.0/). Keep the credit
line wherever the data or results on it are shown:
"Attribution: www.manythings.org/anki and tatoeba.org".
"""

from __future__ import annotations

import os

from attention._checks import check_choice, check_language_pair
from attention.data import files

NAME = "tatoeba_en_de_small"
TITLE = "Tatoeba en-de (small)"
LANGUAGES = ("en", "de")  # the column order of the files
SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"val": "valid", "validation": "valid"}
NUM_PAIRS = {"train": 4_000, "valid": 500, "test": 500}
SHA256 = {
    "train.tsv": "fc452fc637ec3abd651d2772318d50e634dfd6b82c012590e866a6e951d952ad",
    "valid.tsv": "586247efe89f0ee0e886eb59a0ce41120f9e03ef2297f989baf4eef5af3111ae",
    "test.tsv": "1780a2d3a78a17500aed54adde071dfd7094a4e975512a6fcacaee14733ddb00",
}
ATTRIBUTION = "Attribution: www.manythings.org/anki and tatoeba.org"


def load_tatoeba(
    split: str = "train",
    *,
    source: str = "de",
    target: str = "en",
    data_dir: str | os.PathLike | None = None,
) -> list[tuple[str, str]]:
    """The ``(source, target)`` pairs of one split of the small Tatoeba set.

    The default direction, German to English, matches :func:`load_multi30k`, so swapping
    datasets does not swap languages.

    Args:
      split: ``"train"``, ``"valid"`` (or ``"val"``) or ``"test"``.
      source: ``"de"`` or ``"en"``.
      target: the other language.
      data_dir: the folder that holds ``tatoeba_en_de_small/`` (or that folder itself).
        Default: the ``ATTENTION_DATA`` environment variable, then the cache folder.

    Returns:
      4,000 (train) or 500 (valid, test) pairs of whitespace-normalised strings.

    Raises:
      ValueError: unknown ``split`` or language, or a line without exactly one tab.
      DatasetNotFoundError: the file is nowhere.
      ChecksumError: the file's SHA-256 differs from the published one.
    """
    split = check_choice("split", split, SPLITS, aliases=SPLIT_ALIASES)
    check_language_pair(source, target, LANGUAGES)
    filename = f"{split}.tsv"
    folder = files.find_dataset_dir(NAME, [filename], data_dir)
    if folder is None:
        raise files.not_found_error(TITLE, NAME, [filename], data_dir)
    path = folder / filename
    files.verify_checksum(path, SHA256[filename])
    # Split each raw line at its tab before normalising: normalising first would turn the tab
    # into a space.
    lines = path.read_bytes().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    pairs = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(
                f"{path}, line {number}: expected 'English<TAB>German', got {len(fields)} "
                f"tab-separated fields."
            )
        en, de = (files.normalize_whitespace(field) for field in fields)
        pairs.append((en, de) if source == "en" else (de, en))
    return pairs
