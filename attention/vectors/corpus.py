"""Step 0: the course's English as words: a corpus, a word tokenizer and a counted vocabulary.

Notebook 00 asks whether it makes sense to add, subtract and multiply embeddings. To ask it of
real embeddings, the next steps train word vectors on the English sentences that ship with the
project: the 29,000 Multi30k training captions and the 4,000 Tatoeba training sentences (about
370,000 words, :func:`load_english_sentences`). This step turns that text into what the
training counts: lower-cased words (:func:`tokenize_words`), and the words seen often enough to
get a vector, with their counts (:func:`build_vocabulary`).

Words are runs of letters or digits, with an English clitic kept on ("don't", "man's"): the
captions are plain English, and a subword model would hide the words we want to look at.

Axes: ``V`` vocabulary.
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np

from attention._checks import check_positive_int

# Words are runs of letters or digits, with an English clitic kept on ("don't", "man's"): the
# captions are plain English, and a subword model would hide the words we want to look at.
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize_words(text: str) -> list[str]:
    """Lower-cased words of ``text``: runs of ASCII letters and digits, clitics kept.

    Punctuation and other characters separate words and are dropped.

    Raises:
      TypeError: ``text`` not a str.

    >>> tokenize_words("A man's dog, running!  Don't stop.")
    ['a', "man's", 'dog', 'running', "don't", 'stop']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    return _WORD.findall(text.lower())


def build_vocabulary(
    sentences: Iterable[Sequence[str]], *, min_count: int = 5
) -> tuple[tuple[str, ...], np.ndarray]:
    """The words seen at least ``min_count`` times, most frequent first, and their counts.

    Ties in count are broken alphabetically, so the order does not depend on the corpus order.

    Args:
      sentences: tokenised sentences (lists of words, e.g. from :func:`tokenize_words`).
      min_count: the fewest occurrences a word needs to be kept (a positive int).

    Returns:
      ``(words, counts)``: a tuple of V words and an int64 array ``[V]`` of their counts.

    Raises:
      TypeError, ValueError: ``min_count`` not a positive int.
      ValueError: no word occurs ``min_count`` times (an empty corpus, for one).

    >>> build_vocabulary([["a", "dog"], ["a", "cat"], ["the", "dog"]], min_count=2)
    (('a', 'dog'), array([2, 2]))
    """
    min_count = check_positive_int("min_count", min_count)
    counter = collections.Counter(word for sentence in sentences for word in sentence)
    kept = sorted(((w, n) for w, n in counter.items() if n >= min_count),
                  key=lambda item: (-item[1], item[0]))
    if not kept:
        raise ValueError(
            f"no word occurs at least min_count={min_count} times in the corpus "
            f"({sum(counter.values())} words, {len(counter)} distinct); give more text or a "
            f"smaller min_count."
        )
    words, counts = zip(*kept, strict=True)
    return tuple(words), np.array(counts, dtype=np.int64)


def load_english_sentences(
    data_dir: str | os.PathLike | None = None, *, limit: int | None = None
) -> list[str]:
    """The English training text of the course: Multi30k's 29,000 training captions, then the
    4,000 English sentences of the Tatoeba training split (33,000 sentences, 370,000 words).

    Only training splits are used, so the validation and test sentences stay unseen by the
    vectors (notebook 00 builds its pair task from them).

    Args:
      data_dir: the folder that holds ``multi30k/`` and ``tatoeba_en_de_small/``; default
        ``$ATTENTION_DATA`` (see :mod:`attention.data.files`).
      limit: keep only the first ``limit`` sentences of each corpus (for a quick run).

    Raises:
      DatasetNotFoundError: the files are not there (the message says where it looked).

    >>> sentences = load_english_sentences()  # doctest: +SKIP
    >>> len(sentences), sentences[0]  # doctest: +SKIP
    (33000, 'Two young, White males are outside near many bushes.')
    """
    # The readers of the data files (step 18), imported only when the text is read: files,
    # downloads and checksums are not what step 0 teaches.
    from attention.data.multi30k import load_multi30k
    from attention.data.tatoeba import load_tatoeba

    if limit is not None:
        limit = check_positive_int("limit", limit)
    download = data_dir is None
    multi30k = [en for _, en in load_multi30k("train", data_dir=data_dir, download=download)]
    tatoeba = [en for _, en in load_tatoeba("train", data_dir=data_dir)]
    return multi30k[:limit] + tatoeba[:limit]
