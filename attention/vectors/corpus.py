"""Step 0: the course's English as words: a corpus, a word tokenizer and a counted vocabulary.

Notebook 00 asks whether it makes sense to add, subtract and multiply embeddings. To ask it of
real embeddings, the next steps train word vectors on the English sentences that ship with the
project: the 29,000 Multi30k training captions and the 4,000 Tatoeba training sentences
(about 370,000 words, read by :func:`attention.data.lm_corpus.load_english_sentences`). This
step turns that text into what the training counts: lower-cased words
(:func:`tokenize_words`), and the words seen often enough to get a vector, with their counts
(:func:`build_vocabulary`).

Words are runs of letters or digits, with an English clitic kept on ("don't", "man's"): the
captions are plain English, and a subword model would hide the words we want to look at.

Axes: ``V`` vocabulary.
"""

from __future__ import annotations

import collections
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
