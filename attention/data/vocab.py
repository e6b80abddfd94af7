"""Step 18a: a word (or character) vocabulary, the simplest tokenizer, for the synthetic tasks.

Building it is counting: split every training sentence into tokens (words at whitespace, or
single characters), give each distinct token an id, most frequent first, after the four
special ids of :mod:`attention.data.tokenizer`. A token never seen in training becomes
``<unk>``.

That is fine for a closed toy language of a few dozen words. For real text it is not: most
words are rare, so the table gets huge and every unseen word is lost to ``<unk>``. Real data
uses :class:`attention.data.SubwordTokenizer` instead; both share one interface.

Example::

    >>> vocab = Vocabulary.build(["the dog sees the cat"])
    >>> vocab.encode("the cat sees a dog")
    [4, 7, 6, 3, 5]
    >>> vocab.decode([4, 7, 6, 2, 5])
    'the cat sees'
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterable, Sequence

import numpy as np

from attention._checks import check_int, check_positive_int
from attention.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, SPECIAL_PIECES, UNK_ID

LEVELS = ("word", "char")
_FORMAT = "attention.Vocabulary/1"  # written into the JSON so load() can tell what it reads


class Vocabulary:
    """Maps words (``level="word"``) or characters (``level="char"``) to ids and back.

    Ids 0-3 are ``<pad> <s> </s> <unk>``; the ids from 4 on are the tokens, in the order given.
    Use :meth:`build` to make one from text.

    Args:
      tokens: the non-special tokens, in id order (id 4 first).
      level: ``"word"`` splits at whitespace and joins with one space; ``"char"`` uses every
        character, spaces included, and joins with nothing.

    Raises:
      ValueError: unknown ``level``, a repeated token, a special piece among ``tokens``, or
        (word level) a token that is empty or holds whitespace.
    """

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    def __init__(self, tokens: Sequence[str], *, level: str = "word"):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}.")
        tokens = list(tokens)
        seen: set[str] = set()
        for token in tokens:
            if not isinstance(token, str):
                raise TypeError(f"tokens must be strings, got {token!r} ({type(token).__name__}).")
            if token in SPECIAL_PIECES:
                raise ValueError(
                    f"tokens must not contain the special piece {token!r}; ids 0-3 are "
                    f"reserved for {SPECIAL_PIECES}."
                )
            if token in seen:
                raise ValueError(f"tokens must be distinct, got {token!r} twice.")
            if level == "word" and (not token or token != "".join(token.split())):
                raise ValueError(
                    f"a word-level token must be non-empty with no whitespace, got {token!r}."
                )
            if level == "char" and len(token) != 1:
                raise ValueError(f"a char-level token must be one character, got {token!r}.")
            seen.add(token)
        self.level = level
        self._pieces = [*SPECIAL_PIECES, *tokens]
        self._ids = {piece: i for i, piece in enumerate(self._pieces)}

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        *,
        level: str = "word",
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Count the tokens of ``texts`` and keep the frequent ones.

        Ties in frequency are broken by first appearance, so the same texts always give the
        same ids.

        Args:
          texts: training sentences (for translation, source and target together give one
            joint vocabulary).
          level: ``"word"`` or ``"char"``.
          min_count: drop tokens seen fewer times than this (they become ``<unk>``).
          max_size: keep at most this many ids in all, the 4 specials included.

        Raises:
          TypeError: ``min_count`` or ``max_size`` not an int; a single str for ``texts``.
          ValueError: ``min_count < 1`` or ``max_size < 5`` (room for at least one token).
        """
        min_count = check_positive_int("min_count", min_count)
        if max_size is not None:
            max_size = check_int(
                "max_size", max_size, minimum=5,
                what="None or an int >= 5 (4 special ids and at least one token)",
            )
        if isinstance(texts, str):
            raise TypeError("texts must be an iterable of sentences, got a single str.")
        split = _splitter(level)
        counts: collections.Counter[str] = collections.Counter()
        for text in texts:
            counts.update(split(text))
        # Counter.most_common sorts stably, so equal counts keep their first-seen order.
        tokens = [t for t, c in counts.most_common() if c >= min_count and t not in SPECIAL_PIECES]
        if max_size is not None:
            tokens = tokens[: max_size - len(SPECIAL_PIECES)]
        return cls(tokens, level=level)

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def __len__(self) -> int:
        return len(self._pieces)

    def split(self, text: str) -> list[str]:
        """The tokens of ``text`` before lookup (words or characters)."""
        return _splitter(self.level)(text)

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Ids of the tokens of ``text``; unknown tokens become ``unk_id`` (3)."""
        ids = [self._ids.get(token, UNK_ID) for token in self.split(text)]
        return [BOS_ID] * add_bos + ids + [EOS_ID] * add_eos

    def decode(self, ids: Iterable[int | np.integer]) -> str:
        """Join the tokens of ``ids``: stop at the first ``</s>``, skip ``<pad>`` and ``<s>``.

        ``<unk>`` is written out as ``"<unk>"``, so a lost word stays visible.
        """
        pieces = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            pieces.append(self.id_to_piece(i))
        return (" " if self.level == "word" else "").join(pieces)

    def tokens(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[str]:
        """The piece of each id of ``encode(text, ...)``, for labelling attention plots."""
        return [self.id_to_piece(i) for i in self.encode(text, add_bos=add_bos, add_eos=add_eos)]

    def id_to_piece(self, id: int) -> str:
        if not 0 <= int(id) < len(self._pieces):
            raise ValueError(f"id must be in 0..{len(self._pieces) - 1}, got {id}.")
        return self._pieces[int(id)]

    def piece_to_id(self, piece: str) -> int:
        return self._ids.get(piece, UNK_ID)

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (readable, diffable, a few kB)."""
        tokens = self._pieces[len(SPECIAL_PIECES) :]
        data = {"format": _FORMAT, "level": self.level, "tokens": tokens}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=0)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`.

        Raises:
          ValueError: the file is not a vocabulary saved by this class.
        """
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(
                f"{os.fspath(path)!r} is not a Vocabulary file: expected a JSON object with "
                f"format {_FORMAT!r}."
            )
        return cls(data["tokens"], level=data["level"])

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocabulary)
            and self.level == other.level
            and self._pieces == other._pieces
        )

    def __hash__(self) -> int:
        return hash((self.level, tuple(self._pieces)))

    def __repr__(self) -> str:
        return f"Vocabulary(level={self.level!r}, vocab_size={self.vocab_size})"


def _splitter(level: str):
    if level == "word":
        return str.split
    if level == "char":
        return list
    raise ValueError(f"level must be one of {LEVELS}, got {level!r}.")
