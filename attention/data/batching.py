"""Step 18g: batches of padded token ids, bucketed by length, reproducible and resumable.

**Bucketing** (used in notebook 07): each example gets a padded length ``L``, the longer of
its source and target (with the ``</s>``/``<s>`` the model sees) rounded up to a multiple of
``pad_to_multiple`` but never past ``max_len``; every batch comes from one bucket and is
``[B_L, L]`` (``B_L`` = ``batch_size``, or ``batch_tokens // L``). So little padding, and one
shape per bucket under ``jax.jit``. Each epoch shuffles with a generator seeded by
``(seed, epoch)``: ``epoch(epoch, start_step=step)`` resumes a run exactly.

**Fewer shapes**: each new shape is one more compilation of the train step (seconds to tens
of seconds on a CPU). ``num_buckets=k`` pads to at most ``k`` lengths, chosen from the data to
pad least (:func:`fewest_padding_lengths`), and ``pad_remainder=True`` fills the last, smaller
batch of each bucket with empty rows: then an epoch has at most ``k`` shapes.

Teacher forcing (Vaswani et al. 2017, section 3: the decoder's input is its output shifted
right), for a target ``w1 w2 w3``::

    tgt_in   <s> w1  w2  w3   <pad> ...    what the decoder reads
    tgt_out  w1  w2  w3  </s> <pad> ...    what it must predict at each position

The source ends in ``</s>`` too (``src_eos=True``; decode with ``encode(text, add_eos=True)``).
Arrays are NumPy ``int32``; :func:`attention.data.prefetch` prepares batches in a thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypedDict

import numpy as np

from attention._checks import check_batcher_args, check_bucket_args, check_epoch_args
from attention.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer

# Token ids are Python ints from a tokenizer, or NumPy ints when they come from an array.
TokenIds = Sequence[int | np.integer]
Example = tuple[TokenIds, TokenIds]  # (source ids, target ids), no <s> or </s>

OVERFLOW = ("drop", "truncate")


class Batch(TypedDict):
    """One batch. B rows, S = T = L padded positions (``int32`` arrays)."""

    src: np.ndarray  # [B, S] source ids, then </s> (if src_eos), then <pad>
    tgt_in: np.ndarray  # [B, T] <s>, target ids, then <pad>
    tgt_out: np.ndarray  # [B, T] target ids, </s>, then <pad>
    src_lengths: np.ndarray  # [B] real (non-pad) tokens of src
    tgt_lengths: np.ndarray  # [B] real tokens of tgt_in (= of tgt_out)
    index: np.ndarray  # [B] position of each row's example in the examples given; -1: empty


def encode_pairs(
    pairs: Iterable[tuple[str, str]],
    tokenizer: Tokenizer,
    target_tokenizer: Tokenizer | None = None,
) -> list[tuple[list[int], list[int]]]:
    """Encode ``(source, target)`` text pairs into id pairs, with no special ids added.

    Args:
      pairs: sentence pairs, as the loaders and :func:`make_task` return them.
      tokenizer: encodes the source, and the target too unless ``target_tokenizer`` is given
        (the usual case: one joint vocabulary).
      target_tokenizer: a separate tokenizer for the target side.
    """
    target_tokenizer = tokenizer if target_tokenizer is None else target_tokenizer
    return [(tokenizer.encode(src), target_tokenizer.encode(tgt)) for src, tgt in pairs]


def fewest_padding_lengths(lengths: Sequence[int], num_buckets: int) -> list[int]:
    """At most ``num_buckets`` of the values in ``lengths`` to pad to, chosen to pad least.

    Each length ``n`` is padded to the shortest chosen length ``>= n`` (so the longest is always
    chosen); the choice minimises the total padded length ``sum_n chosen(n)``, exactly, by
    dynamic programming over the m distinct values ``v_1 < ... < v_m`` (with ``c_j`` lengths
    equal to ``v_j``)::

        cost[k][j] = min over i < j of  cost[k-1][i] + v_j * (c_{i+1} + ... + c_j)

    the least padded total of the lengths up to ``v_j`` with k chosen values, ``v_j`` the
    longest of them.

    >>> fewest_padding_lengths([8, 8, 8, 16, 24, 24, 32], 2)
    [8, 32]
    """
    values, counts = np.unique(np.asarray(lengths, np.int64), return_counts=True)
    m = len(values)
    k_max = min(num_buckets, m)
    below = np.concatenate([[0], np.cumsum(counts)])  # below[j]: lengths under values[j]
    cost = np.full((k_max + 1, m), np.inf)
    came_from = np.zeros((k_max + 1, m), np.int64)  # the i of the minimum; -1: none below
    cost[1] = values * below[1:]
    came_from[1] = -1
    for k in range(2, k_max + 1):
        for j in range(k - 1, m):
            options = [cost[k - 1, i] + values[j] * (below[j + 1] - below[i + 1])
                       for i in range(k - 2, j)]
            best = int(np.argmin(options))
            cost[k, j], came_from[k, j] = options[best], k - 2 + best
    chosen, k, j = [], k_max, m - 1  # more values never pad more: k_max of them, v_m the last
    while j >= 0:
        chosen.append(int(values[j]))
        j, k = came_from[k, j], k - 1
    return chosen[::-1]


class Batcher:
    """Bucketed, padded batches of ``(source ids, target ids)`` examples, epoch by epoch.

    Give exactly one of ``batch_size`` and ``batch_tokens``.

    Args:
      examples: ``(source ids, target ids)`` pairs without ``<s>``/``</s>`` (as
        :func:`encode_pairs` makes them).
      batch_size: B, rows per batch.
      batch_tokens: a budget of padded tokens per batch (per side): a bucket of length L gets
        ``max(1, batch_tokens // L)`` rows, so short sentences come in bigger batches and
        every batch costs about the same.
      max_len: longest sequence the model takes, in tokens, ``</s>``/``<s>`` included.
        Default: no limit.
      overflow: what to do with an example longer than ``max_len``: ``"drop"`` it, or
        ``"truncate"`` it (the truncated target still ends in ``</s>``). :attr:`num_dropped`
        and :attr:`num_truncated` count them.
      pad_to_multiple: padded lengths are multiples of this (8 suits accelerator tiles and
        keeps the number of shapes small), except that none exceeds ``max_len``; 1 pads each
        bucket to its exact length.
      num_buckets: pad to at most this many lengths, chosen from the data to pad least
        (:func:`fewest_padding_lengths` of the lengths ``pad_to_multiple`` gives); default: one
        bucket per multiple of ``pad_to_multiple``.
      drop_remainder: drop the smaller last batch of each bucket, so that every batch of a
        bucket has the same shape (and every example is seen in expectation, not every epoch).
      pad_remainder: fill the smaller last batch of each bucket up to the bucket's rows with
        empty rows (all ``<pad>``, lengths 0, ``index`` -1; they add nothing to the loss), so
        that every batch of a bucket has the same shape and every example is seen every epoch.
      shuffle: shuffle within buckets and the order of batches each epoch. Without it batches
        come bucket by bucket, shortest first, examples in their given order (for evaluation;
        ``index`` maps rows back to examples).
      seed: seed of the shuffling; with the epoch number it fixes every batch.
      src_eos: append ``</s>`` to each source.

    Raises:
      TypeError: a size, length or seed that is not an int (``True`` is not a size); an
        example whose ids are not integers.
      ValueError: a bad value (``num_buckets`` below 1, both ``drop_remainder`` and
        ``pad_remainder``), or an example that is not flat or holds a ``<pad>``, ``<s>`` or
        ``</s>`` id or a negative id.

    Attributes:
      num_examples: examples kept (after dropping).
      num_dropped: examples dropped for exceeding ``max_len`` (or, with ``src_eos=False``, for
        an empty source, which the encoder could not attend to).
      num_truncated: examples cut to ``max_len``.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        *,
        batch_size: int | None = None,
        batch_tokens: int | None = None,
        max_len: int | None = None,
        overflow: str = "drop",
        pad_to_multiple: int = 8,
        num_buckets: int | None = None,
        drop_remainder: bool = False,
        pad_remainder: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        src_eos: bool = True,
    ):
        batch_size, batch_tokens, max_len, pad_to_multiple, seed = check_batcher_args(
            batch_size, batch_tokens, max_len, overflow, OVERFLOW, pad_to_multiple, seed, src_eos)
        num_buckets = check_bucket_args(num_buckets, drop_remainder, pad_remainder)
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.max_len = max_len
        self.pad_to_multiple = pad_to_multiple
        self.num_buckets = num_buckets
        self.drop_remainder = drop_remainder
        self.pad_remainder = pad_remainder
        self.shuffle = shuffle
        self.seed = int(seed)
        self.src_eos = bool(src_eos)

        self._src: list[np.ndarray] = []  # kept examples only, after truncation
        self._tgt: list[np.ndarray] = []
        self._index: list[int] = []  # their positions in `examples`
        self.num_dropped = 0
        self.num_truncated = 0
        for i, (src, tgt) in enumerate(examples):
            src = _as_ids(src, "source", i)
            tgt = _as_ids(tgt, "target", i)
            if len(src) == 0 and not self.src_eos:
                self.num_dropped += 1
                continue
            if max_len is not None and (
                len(src) + self.src_eos > max_len or len(tgt) + 1 > max_len
            ):
                if overflow == "drop":
                    self.num_dropped += 1
                    continue
                src, tgt = src[: max_len - self.src_eos], tgt[: max_len - 1]
                self.num_truncated += 1
            self._src.append(src)
            self._tgt.append(tgt)
            self._index.append(i)
        self.num_examples = len(self._index)

        # Bucket by padded length L; each bucket keeps its examples in their given order.
        self._buckets: dict[int, np.ndarray] = {}
        lengths = [
            max(len(s) + self.src_eos, len(t) + 1)
            for s, t in zip(self._src, self._tgt, strict=True)
        ]
        padded = [-(-n // pad_to_multiple) * pad_to_multiple for n in lengths]
        if max_len is not None:  # never longer than the model takes (e.g. its position table)
            padded = [min(p, max_len) for p in padded]
        if num_buckets is not None and padded:  # merge buckets up into the chosen lengths
            chosen = np.asarray(fewest_padding_lengths(padded, num_buckets))
            padded = chosen[np.searchsorted(chosen, padded)].tolist()
        for L in sorted(set(padded)):
            self._buckets[L] = np.array([k for k, p in enumerate(padded) if p == L], np.int64)

    def rows(self, L: int) -> int:
        """B, the number of rows of a full batch of padded length ``L``."""
        return self.batch_size if self.batch_size is not None else max(1, self.batch_tokens // L)

    @property
    def bucket_lengths(self) -> list[int]:
        """The padded lengths L of the buckets, ascending."""
        return list(self._buckets)

    def __len__(self) -> int:
        """Batches per epoch (the same every epoch)."""
        total = 0
        for L, members in self._buckets.items():
            full, rest = divmod(len(members), self.rows(L))
            total += full + (rest > 0 and not self.drop_remainder)
        return total

    def epoch(self, epoch: int = 0, *, start_step: int = 0) -> Iterator[Batch]:
        """The batches of epoch ``epoch``, from step ``start_step`` on.

        ``epoch(e, start_step=s)`` yields exactly the batches that ``epoch(e)`` yields after
        its first ``s``: resume a run from a checkpoint taken at ``(e, s)`` with it.

        Raises:
          TypeError: ``epoch`` or ``start_step`` not an int.
          ValueError: ``epoch`` or ``start_step`` negative, or ``start_step > len(self)``.
        """
        epoch, start_step = check_epoch_args(epoch, start_step, len(self))
        plan = self._plan(epoch)
        return (self._collate(members, L) for members, L in plan[start_step:])

    def _plan(self, epoch: int) -> list[tuple[np.ndarray, int]]:
        """The batches of an epoch as (member indices, padded length), cheap to recompute."""
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for L, members in self._buckets.items():
            if self.shuffle:
                members = rng.permutation(members)
            rows = self.rows(L)
            for start in range(0, len(members), rows):
                chunk = members[start : start + rows]
                if len(chunk) == rows or not self.drop_remainder:
                    batches.append((chunk, L))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _collate(self, members: np.ndarray, L: int) -> Batch:
        B = self.rows(L) if self.pad_remainder else len(members)  # rows past members stay empty
        src_BS = np.full((B, L), PAD_ID, np.int32)
        tgt_in_BT = np.full((B, L), PAD_ID, np.int32)
        tgt_out_BT = np.full((B, L), PAD_ID, np.int32)
        src_lengths = np.zeros(B, np.int32)
        tgt_lengths = np.zeros(B, np.int32)
        index = np.full(B, -1, np.int64)
        for row, k in enumerate(members):
            src, tgt = self._src[k], self._tgt[k]
            n, m = len(src), len(tgt)
            src_BS[row, :n] = src
            if self.src_eos:
                src_BS[row, n] = EOS_ID
            tgt_in_BT[row, 0] = BOS_ID
            tgt_in_BT[row, 1 : m + 1] = tgt
            tgt_out_BT[row, :m] = tgt
            tgt_out_BT[row, m] = EOS_ID
            src_lengths[row] = n + self.src_eos
            tgt_lengths[row] = m + 1
            index[row] = self._index[k]
        return Batch(
            src=src_BS,
            tgt_in=tgt_in_BT,
            tgt_out=tgt_out_BT,
            src_lengths=src_lengths,
            tgt_lengths=tgt_lengths,
            index=index,
        )


def make_batches(
    examples: Sequence[Example],
    *,
    epoch: int = 0,
    start_step: int = 0,
    **batcher_args,
) -> Iterator[Batch]:
    """One epoch of batches: ``Batcher(examples, **batcher_args).epoch(epoch, start_step=...)``.

    See :class:`Batcher` for the arguments (``batch_size`` or ``batch_tokens``, ``seed``,
    ``shuffle``, ``max_len``, ``pad_to_multiple``, ``drop_remainder``, ...).

    >>> examples = [([5, 6, 7], [8, 9]), ([5], [9, 9, 9])]
    >>> batch = next(make_batches(examples, batch_size=2, shuffle=False, pad_to_multiple=4))
    >>> batch["src"].tolist(), batch["tgt_in"].tolist(), batch["tgt_out"].tolist()
    ([[5, 6, 7, 2], [5, 2, 0, 0]], [[1, 8, 9, 0], [1, 9, 9, 9]], [[8, 9, 2, 0], [9, 9, 9, 2]])
    """
    return Batcher(examples, **batcher_args).epoch(epoch, start_step=start_step)


def _as_ids(ids, side: str, i: int) -> np.ndarray:
    array = np.asarray(ids)
    if array.ndim != 1:
        raise ValueError(
            f"examples[{i}] {side} must be a flat sequence of int ids, got {array.ndim} "
            f"dimensions: {ids!r:.80}."
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"examples[{i}] {side} must be a flat sequence of int ids, got dtype "
            f"{array.dtype}: {ids!r:.80}."
        )
    array = array.astype(np.int32)
    bad = array[(array < 0) | (array == PAD_ID) | (array == BOS_ID) | (array == EOS_ID)]
    if bad.size:
        raise ValueError(
            f"examples[{i}] {side} holds the id {int(bad[0])}; ids must be >= 0 and must not "
            f"be <pad>={PAD_ID}, <s>={BOS_ID} or </s>={EOS_ID}: the batcher adds those itself "
            f"(encode without add_bos/add_eos)."
        )
    return array
