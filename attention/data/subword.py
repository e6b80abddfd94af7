"""Step 18f: subword tokenization with SentencePiece, for real text.

A word vocabulary fails on real text: Multi30k's German side has about 19,000 distinct words
and most of them occur once or twice, so a model either carries a huge embedding table or
loses every rare word to ``<unk>``. Subword units (Sennrich et al. 2016; Kudo 2018) solve it:
frequent words stay whole, rare ones are spelled out in frequent pieces::

    "Zwei junge weiße Männer ... Büsche."
    ->  "▁Zwei" "▁junge" "▁weiße" "▁Männer" ... "▁B" "ü" "sch" "e" "."

``▁`` marks a piece that starts a word, so decoding is just concatenation. A vocabulary of a
few thousand pieces covers every sentence.

:func:`load_tokenizer` (at the end) reads back a saved tokenizer of either kind, this one or a
:class:`attention.data.Vocabulary`, from the suffix of its file.

We train one **joint** model on source and target sentences together, as in the original
transformer (Vaswani et al. 2017, section 5.1: "a shared source-target vocabulary of about
37000 tokens"): German and English share many names, numbers and word pieces, and one table
lets the model share embeddings between encoder, decoder and output layer.

Training runs in-process (no files on disk) with the unigram language model by default
(Kudo 2018); ``model_type="bpe"`` gives byte-pair encoding. The trained model is a few hundred
kB of bytes that :meth:`SubwordTokenizer.save` writes beside a checkpoint.

Text is not normalised (``normalization="identity"``), so ``decode(encode(s)) == s`` for any
whitespace-normalised sentence made of characters seen in training: a perfect translation then
scores BLEU 100 against the raw reference.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable

import numpy as np
import sentencepiece as spm

from attention._checks import check_int, check_positive_int, check_real
from attention.data.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_PIECES,
    UNK_ID,
    Tokenizer,
)
from attention.data.vocab import Vocabulary

MODEL_TYPES = ("unigram", "bpe")


class SubwordTokenizer:
    """A trained SentencePiece model behind the :class:`attention.data.Tokenizer` interface.

    Make one with :func:`train_subword` or :meth:`load`.

    Args:
      model_proto: the serialized SentencePiece model (the bytes of a ``.model`` file).

    Raises:
      ValueError: the model's special ids are not ``<pad>=0 <s>=1 </s>=2 <unk>=3``.
    """

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    def __init__(self, model_proto: bytes):
        self._proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        got = (self._sp.pad_id(), self._sp.bos_id(), self._sp.eos_id(), self._sp.unk_id())
        if got != (PAD_ID, BOS_ID, EOS_ID, UNK_ID):
            raise ValueError(
                f"model_proto must use the special ids pad=0 bos=1 eos=2 unk=3 of this package "
                f"(train it with train_subword), got pad={got[0]} bos={got[1]} eos={got[2]} "
                f"unk={got[3]}."
            )

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = self._sp.encode(text)
        return [BOS_ID] * add_bos + ids + [EOS_ID] * add_eos

    def decode(self, ids: Iterable[int | np.integer]) -> str:
        """Text of ``ids``: stop at the first ``</s>``, skip ``<pad>`` and ``<s>``."""
        kept = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                kept.append(i)
        return self._sp.decode(kept)

    def tokens(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[str]:
        """The piece of each id of ``encode(text, ...)``, for labelling attention plots."""
        return [self.id_to_piece(i) for i in self.encode(text, add_bos=add_bos, add_eos=add_eos)]

    def id_to_piece(self, id: int) -> str:
        if not 0 <= int(id) < self.vocab_size:
            raise ValueError(f"id must be in 0..{self.vocab_size - 1}, got {id}.")
        return self._sp.id_to_piece(int(id))

    def piece_to_id(self, piece: str) -> int:
        return self._sp.piece_to_id(piece)

    def save(self, path: str | os.PathLike) -> None:
        """Write the ``.model`` file (the format of the ``spm_train`` command line tool)."""
        with open(path, "wb") as f:
            f.write(self._proto)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SubwordTokenizer:
        with open(path, "rb") as f:
            return cls(f.read())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SubwordTokenizer) and self._proto == other._proto

    def __hash__(self) -> int:
        return hash(self._proto)

    def __repr__(self) -> str:
        return f"SubwordTokenizer(vocab_size={self.vocab_size})"


def train_subword(
    texts: Iterable[str],
    *,
    vocab_size: int = 8000,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    normalization: str = "identity",
    num_threads: int = 1,
) -> SubwordTokenizer:
    """Train a SentencePiece model on ``texts`` in memory.

    For translation pass source and target sentences together, for example
    ``[s for pair in pairs for s in pair]``, to get one joint vocabulary.

    Args:
      texts: training sentences, one per item.
      vocab_size: V, the number of pieces including the 4 specials. 8000 suits Multi30k; a few
        hundred is enough for a quick test on a few thousand sentences.
      model_type: ``"unigram"`` (Kudo 2018) or ``"bpe"`` (Sennrich et al. 2016).
      character_coverage: fraction of characters the model must cover; 1.0 keeps every
        character of the training text (right for European languages).
      normalization: SentencePiece's normalization rule; ``"identity"`` keeps the text as it
        is, ``"nmt_nfkc"`` applies Unicode NFKC first.
      num_threads: training threads. One thread keeps the result reproducible.

    Raises:
      TypeError: a single str for ``texts``; ``vocab_size`` or ``num_threads`` not an int,
        ``character_coverage`` not a number.
      ValueError: a bad value, or ``vocab_size`` too large for so little text.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of sentences, got a single str.")
    vocab_size = check_int("vocab_size", vocab_size, minimum=5, what="an int > 4")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}.")
    character_coverage = check_real(
        "character_coverage", character_coverage, low=0.0, high=1.0, low_inclusive=False
    )
    num_threads = check_positive_int("num_threads", num_threads)
    # SentencePiece rejects empty lines as input; they carry nothing to learn from anyway.
    sentences = [t for t in texts if t.strip()]
    if not sentences:
        raise ValueError("texts must contain at least one non-empty sentence, got none.")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            normalization_rule_name=normalization,
            pad_id=PAD_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            unk_id=UNK_ID,
            pad_piece=SPECIAL_PIECES[PAD_ID],
            bos_piece=SPECIAL_PIECES[BOS_ID],
            eos_piece=SPECIAL_PIECES[EOS_ID],
            unk_piece=SPECIAL_PIECES[UNK_ID],
            input_sentence_size=0,  # use every sentence, so the result does not depend on sampling
            num_threads=num_threads,
            minloglevel=2,  # training logs go to stderr; keep notebooks quiet
        )
    except RuntimeError as error:
        if "Vocabulary size" in str(error):
            raise ValueError(
                f"vocab_size={vocab_size} is too large for {len(sentences)} sentences; "
                f"SentencePiece says: {str(error).rstrip('.')}. Use a smaller vocab_size or "
                f"more text."
            ) from error
        raise
    return SubwordTokenizer(model.getvalue())


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer saved by ``save``: ``.json`` is a :class:`Vocabulary`, ``.model`` a
    :class:`SubwordTokenizer`.

    Raises:
      ValueError: ``path`` has neither suffix.
      FileNotFoundError: ``path`` does not exist.
    """
    suffix = os.fspath(path).rsplit(".", 1)[-1] if "." in os.path.basename(path) else ""
    if suffix == "json":
        return Vocabulary.load(path)
    if suffix == "model":
        return SubwordTokenizer.load(path)
    raise ValueError(
        f"path must end in .json (a word/char Vocabulary) or .model (a SentencePiece "
        f"SubwordTokenizer), got {os.fspath(path)!r}."
    )
