"""Step 18j: batches for a language model, sentences packed end to end and cut into fixed windows.

A language model reads one long stream of tokens. Following GPT-2 and nanoGPT, the documents
(sentences or stories) are joined into one stream, each as ``<s> ids </s>``, and the stream
is cut into windows of ``seq_len + 1`` tokens; a window gives the decoder's input and, shifted
by one, its targets (the same layout as a translation batch without a source)::

    stream   <s> a man rides </s> <s> two dogs run </s> <s> ...
    tgt_in   <s> a   man  rides </s> <s> two  dogs        [T]   what the model reads
    tgt_out  a   man rides </s> <pad> two dogs  run       [T]   what it must predict

No padding, one shape ``[B, T]``. A window may cross from one document into the next
(the model learns that ``</s>`` ends a text). ``<s>`` is never a target (it becomes
``<pad>``, ignored by the loss): it always follows ``</s>``, so predicting it would only
flatter the perplexity. Each training epoch starts the windows at a fresh offset and shuffles
them, seeded by ``(seed, epoch)`` (so a run resumes exactly); without shuffling (evaluation)
they start at 0, in order, and the last is padded, so every token is scored once.

>>> batcher = PackedBatcher([[5, 6], [7]], seq_len=3, batch_size=1, shuffle=False,
...                         drop_remainder=False)
>>> [b["tgt_in"].tolist() for b in batcher.epoch(0)]
[[[1, 5, 6]], [[2, 1, 7]]]
>>> [b["tgt_out"].tolist() for b in batcher.epoch(0)]
[[[5, 6, 2]], [[0, 7, 2]]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from attention._checks import check_non_negative_int, check_positive_int
from attention.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer


def encode_texts(texts: Sequence[str], tokenizer: Tokenizer) -> list[list[int]]:
    """Encode each text, no special ids added (the packing adds ``<s>`` and ``</s>``)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got a single str.")
    return [tokenizer.encode(text) for text in texts]


def pack(sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """One ``int32`` stream: ``<s> ids </s>`` for each sequence, end to end.

    Raises:
      ValueError: an id that is negative or one of ``<pad> <s> </s>`` inside a sequence.

    >>> pack([[5, 6], [7]]).tolist()
    [1, 5, 6, 2, 1, 7, 2]
    """
    parts = []
    for i, ids in enumerate(sequences):
        ids = np.asarray(ids, np.int64).reshape(-1)
        bad = ids[(ids < 0) | np.isin(ids, (PAD_ID, BOS_ID, EOS_ID))]
        if bad.size:
            raise ValueError(
                f"sequence {i} holds id {int(bad[0])}: ids must be >= 0 and not <pad>, <s> or "
                f"</s> ({PAD_ID}, {BOS_ID}, {EOS_ID}), which the packing adds itself."
            )
        parts.append(np.concatenate([[BOS_ID], ids, [EOS_ID]]))
    if not parts:
        return np.zeros(0, np.int32)
    return np.concatenate(parts).astype(np.int32)


class PackedBatcher:
    """Fixed-length windows of a packed token stream, in batches of ``[B, T]``.

    Args:
      sequences: token ids of each document, without special ids.
      seq_len: T, positions per window (the model's context or less).
      batch_size: B, windows per batch.
      shuffle: a fresh offset and order every epoch (training); False: windows from 0, in
        order (evaluation).
      drop_remainder: drop the last windows that do not fill a batch, and, without
        shuffling, the padded last window; keep both for evaluation.
      seed: seed of the offsets and orders.

    Raises:
      TypeError, ValueError: a size that is not a positive int, a seed below 0; see
        :func:`pack`.

    Attributes:
      stream: the packed ``int32`` tokens.
      num_tokens: the targets scored per epoch (``<s>`` excluded).
    """

    def __init__(
        self,
        sequences: Sequence[Sequence[int]],
        *,
        seq_len: int,
        batch_size: int,
        shuffle: bool = True,
        drop_remainder: bool = True,
        seed: int = 0,
    ):
        self.seq_len = check_positive_int("seq_len", seq_len)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = check_non_negative_int("seed", seed)
        self.shuffle = bool(shuffle)
        self.drop_remainder = bool(drop_remainder)
        self.stream = pack(sequences)
        N, T = len(self.stream), self.seq_len
        if self.shuffle:
            # Room for any offset 0..T-1: offset + windows * T + 1 <= N.
            self.num_windows = max(N - T, 0) // T
        else:
            full = max(N - 1, 0) // T
            partial = int(max(N - 1, 0) % T > 0)
            self.num_windows = full if self.drop_remainder else full + partial

    def __len__(self) -> int:
        """Batches per epoch."""
        whole, rest = divmod(self.num_windows, self.batch_size)
        return whole + int(rest > 0 and not self.drop_remainder)

    @property
    def num_tokens(self) -> int:
        return int(sum(int(np.sum(b["tgt_out"] != PAD_ID)) for b in self.epoch(0)))

    def _windows(self, epoch: int) -> np.ndarray:
        T = self.seq_len
        if self.shuffle:
            rng = np.random.default_rng((self.seed, epoch))
            offset = int(rng.integers(T))
            starts = offset + T * rng.permutation(self.num_windows)
        else:
            starts = T * np.arange(self.num_windows)
        padded = np.concatenate([self.stream, np.full(T + 1, PAD_ID, np.int32)])
        return padded[starts[:, None] + np.arange(T + 1)[None]]  # [W, T + 1]

    def epoch(self, epoch: int = 0, *, start_step: int = 0) -> Iterator[dict]:
        """The batches of ``epoch`` from batch ``start_step`` on: dicts with ``tgt_in`` and
        ``tgt_out``, ``int32 [B, T]`` (a smaller last batch only without
        ``drop_remainder``)."""
        check_non_negative_int("epoch", epoch)
        check_non_negative_int("start_step", start_step)
        windows_WT1 = self._windows(epoch)
        for step in range(start_step, len(self)):
            rows = windows_WT1[step * self.batch_size : (step + 1) * self.batch_size]
            targets = rows[:, 1:]
            yield {"tgt_in": np.ascontiguousarray(rows[:, :-1]),
                   "tgt_out": np.where(targets == BOS_ID, PAD_ID, targets).astype(np.int32)}
