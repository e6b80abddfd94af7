"""Step 18: what every tokenizer in this package promises: text in, integer ids out, and back.

A translation model never sees letters. It sees integer ids, one per *token*, each the row of
an embedding table ``[V, D]``. A tokenizer fixes that mapping. This package has two:

* :class:`attention.data.Vocabulary`: one token per word (or per character), built by counting
  the tokens of the training text. Right for the synthetic tasks, whose lexicon is tiny and
  closed.
* :class:`attention.data.SubwordTokenizer`: a SentencePiece model that cuts rare words into
  frequent pieces (``"Büsche"`` -> ``"▁B" "ü" "sch" "e"``), so that a vocabulary of a few
  thousand pieces covers any sentence of real text with no unknown words.

Both follow the :class:`Tokenizer` protocol below, so the batching, the training loop and the
plots never need to know which one they hold. This module knows neither of them (each imports
it for the special ids); :func:`attention.data.load_tokenizer`, which reads either kind back,
lives in :mod:`attention.data.subword`, after both.

Special ids are fixed across the package (the model config relies on them)::

    0  <pad>   padding; ignored by the loss and masked out of attention
    1  <s>     beginning of sequence: the first input of the decoder
    2  </s>    end of sequence: the decoder's last target; decoding stops there
    3  <unk>   any token the vocabulary lacks
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import numpy as np

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
UNK_ID = 3
SPECIAL_PIECES = ("<pad>", "<s>", "</s>", "<unk>")  # indexed by the ids above


@runtime_checkable
class Tokenizer(Protocol):
    """The interface shared by :class:`Vocabulary` and :class:`SubwordTokenizer`.

    ``encode`` gives the ids of the text alone; the batching adds ``<s>`` and ``</s>`` where
    the model needs them (``add_bos``/``add_eos`` are there for code that encodes a single
    sentence by hand, such as greedy decoding). ``decode`` is the inverse for any ids a model
    may produce: it stops at the first ``</s>`` and skips ``<pad>`` and ``<s>``.
    """

    pad_id: int
    bos_id: int
    eos_id: int
    unk_id: int

    @property
    def vocab_size(self) -> int:
        """V, the number of ids (the rows of the embedding table), specials included."""
        ...

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Ids of ``text``, optionally with ``<s>`` in front and ``</s>`` at the end."""
        ...

    def decode(self, ids: Iterable[int | np.integer]) -> str:
        """Text of ``ids``, stopping at the first ``</s>`` and skipping ``<pad>``/``<s>``."""
        ...

    def tokens(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[str]:
        """The token strings of ``text``, one per id of ``encode``: labels for attention plots."""
        ...

    def id_to_piece(self, id: int) -> str:
        """The string of one id (``"<pad>"``, ``"</s>"``, ``"▁Hund"``, ...)."""
        ...

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to ``path`` so it can sit beside a checkpoint."""
        ...

