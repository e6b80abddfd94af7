"""Step 24: reading attention maps with numbers, the schema and the statistics that draw nothing.

The transformer's ``attention_maps(model, src, tgt)`` returns a dict of three kinds of
attention (:data:`MAP_KINDS`), each ``[L, B, N, ., .]``: all layers, sentences and heads. This
module checks that dict (:func:`check_attention_maps`), picks one matrix out of it
(:func:`select_map`) and measures heads, so that a notebook can say *which* head to look at
before drawing it (:mod:`attention.inspection.plotting` draws them):

* **entropy** of each row, ``-sum_s w[t, s] log w[t, s]``: 0 when a query looks at one key,
  ``log S`` when it spreads evenly over S keys (:func:`head_entropy`);
* **mean attention distance**, ``sum_s w[t, s] |t - s|``: how far from its own position a
  query looks, 0 for a head that attends to the diagonal (:func:`mean_attention_distance`);
* **alignment accuracy**: where the true word alignment is known (the ``svo_to_sov`` task,
  :func:`attention.data.synthetic.svo_alignment`), how often a head's most-attended source
  word is the one being translated (:func:`alignment_accuracy`).

Nothing here imports matplotlib: the numbers are cheap to compute on a machine with no
display, in tests, or in a script that only prints them. Inputs may be NumPy or JAX arrays;
they are read as NumPy.
"""

from __future__ import annotations

import math

import numpy as np

from attention._checks import (  # noqa: F401  (MAP_KINDS, check_*: also imported from here)
    MAP_KINDS,
    check_alignments,
    check_attention_maps,
    check_head_stats_args,
    check_select_map_args,
    check_token_labels,
)


def select_map(maps, kind: str, *, example: int = 0, layer: int = -1, head=None) -> np.ndarray:
    """One matrix from ``attention_maps``: a head, or the mean over heads when ``head=None``.

    Args:
      maps: the dict with ``encoder_self`` ``[L, B, N, S, S]``, ``decoder_self``
        ``[L, B, N, T, T]`` and ``decoder_cross`` ``[L, B, N, T, S]``.
      kind: one of those keys.
      example: index into the batch B.
      layer: index into L (negative counts from the last).
      head: index into N, or None for the mean over heads.

    Returns:
      float32 ``[S, S]``, ``[T, T]`` or ``[T, S]``.

    Raises:
      As :func:`check_attention_maps`; ValueError for an unknown ``kind`` or an index out of
      range, TypeError for an index that is not an int.

    >>> import numpy as np
    >>> maps = {kind: np.zeros([dict(L=2, B=1, N=2, T=3, S=4)[a] for a in axes], np.float32)
    ...         for kind, axes in MAP_KINDS.items()}
    >>> maps["decoder_cross"][1, 0, :, 0, 0] = [1.0, 0.0]
    >>> select_map(maps, "decoder_cross")[0, 0]  # last layer, mean of the 2 heads
    np.float32(0.5)
    """
    example, layer, head = check_select_map_args(maps, kind, example, layer, head)
    weights_NTS = np.asarray(maps[kind][layer, example], dtype=np.float32)
    return weights_NTS.mean(axis=0) if head is None else weights_NTS[head]


# --- statistics of heads -----------------------------------------------------------------


def _rows(weights, mask) -> tuple[np.ndarray, np.ndarray]:
    """Rows of checked weights renormalised over allowed keys (float64), and which rows count
    (have any weight)."""
    w = weights.astype(np.float64)
    if mask is not None:
        w = np.where(np.asarray(mask), w, 0.0)
    total = w.sum(axis=-1, keepdims=True)
    valid = total[..., 0] > 0
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0), valid


def _mean_over_rows(per_row, valid) -> np.ndarray:
    count = valid.sum(axis=-1)
    summed = np.where(valid, per_row, 0.0).sum(axis=-1)
    return np.divide(summed, count, out=np.full(summed.shape, np.nan), where=count > 0)


def head_entropy(weights, mask=None, *, base: float = math.e) -> np.ndarray:
    """Mean entropy of each head's rows: how spread out its attention is.

    Formula, for each query row t (with ``0 log 0 = 0``), averaged over the rows::

        H_t = - sum_s w[t, s] log w[t, s]

    **In nats** (natural log) by default; ``base=2`` gives bits. A query that puts all its
    weight on one key has entropy 0; one spread evenly over S keys has ``log S`` (so a head
    "looking at about 4 keys" has about 2 bits).

    Args:
      weights: ``[..., N, T, S]``, e.g. one layer ``[N, T, S]`` or all layers
        ``[L, N, T, S]``.
      mask: boolean, broadcastable to ``weights``; True = may attend. Masked keys are left
        out and each row is renormalised over the allowed keys; rows with no allowed key (or
        no weight at all) are left out of the mean.
      base: the logarithm's base (e for nats, 2 for bits).

    Returns:
      float64 ``[..., N]``: one number per head (NaN for a head with no valid row).

    Raises:
      TypeError: non-floating weights, non-boolean mask, a ``base`` that is not a number.
      ValueError: fewer than 3 dimensions, a mask that does not broadcast, ``base <= 1``.

    >>> import numpy as np
    >>> head_entropy(np.full((1, 2, 4), 0.25), base=2).tolist()  # uniform over 4: 2 bits
    [2.0]
    """
    weights, mask, base = check_head_stats_args(weights, mask, base)
    p, valid = _rows(weights, mask)
    logs = np.log(p, out=np.zeros_like(p), where=p > 0)
    entropy_rows = -(p * logs).sum(axis=-1) / math.log(base)
    return _mean_over_rows(entropy_rows, valid)


def mean_attention_distance(weights, mask=None) -> np.ndarray:
    """Where each head looks: the mean distance, in positions, between a query and its keys.

    Formula, averaged over the query rows t::

        d_t = sum_s w[t, s] |t - s|

    A head that attends to its own position scores 0; one that attends to the previous token
    scores 1; a head spread evenly over a long sentence scores about a third of its length.
    For cross-attention, t and s index different sentences and the number says how far a
    target word looks from the "diagonal" source position.

    Args:
      weights: ``[..., N, T, S]``.
      mask: as :func:`head_entropy`.

    Returns:
      float64 ``[..., N]`` (NaN for a head with no valid row).

    Raises:
      As :func:`head_entropy`.

    >>> import numpy as np
    >>> previous_token = np.eye(4, k=-1)[None]; previous_token[0, 0, 0] = 1.0
    >>> mean_attention_distance(previous_token).tolist()  # rows 1..3 look 1 back, row 0 at 0
    [0.75]
    """
    weights, mask, _ = check_head_stats_args(weights, mask)
    p, valid = _rows(weights, mask)
    T, S = p.shape[-2:]
    distance_TS = np.abs(np.arange(T)[:, None] - np.arange(S)[None, :]).astype(np.float64)
    return _mean_over_rows((p * distance_TS).sum(axis=-1), valid)


def alignment_accuracy(cross, alignments) -> np.ndarray:
    """For each head, how often its most-attended source position is a true alignment.

    Decoder row t of the cross-attention is the query that produces target word t. Where we
    know which source word(s) that target word translates (``alignments``), a head that
    learned the alignment puts its largest weight there. Over the set R of scored rows
    ``(b, t)`` (those with a non-empty ``alignments[b][t]``)::

        accuracy[l, n] = 1/|R| sum_{(b, t) in R} [argmax_s cross[l, b, n, t, s] in A[b][t]]

    with ``A = alignments`` and ``[.]`` 1 when true, else 0. Ties go to the first source
    position, as in ``np.argmax``. A head scoring 1 looks at the word it translates every
    time, wherever the word order put it; a head that attends to one fixed position scores
    about one over the sentence length.

    Args:
      cross: ``[L, B, N, T, S]`` cross-attention, e.g. ``attention_maps(...)["decoder_cross"]``.
      alignments: B sequences, one per sentence. ``alignments[b][t]`` is a sequence of the
        true source positions (ints in ``0..S-1``) for decoder row t, or None (or empty) to
        skip the row, e.g. an article that translates no source word. Rows beyond
        ``len(alignments[b])`` (padding, the end-of-sentence token) are skipped.
        :func:`attention.data.synthetic.svo_alignment` makes one for an ``svo_to_sov`` pair.

    Returns:
      float64 ``[L, N]``: the fraction of scored rows each head gets right.

    Raises:
      TypeError: non-floating ``cross``; ``alignments``, an entry or a row that is not a
        sequence (or None); a position that is not an int.
      ValueError: ``cross`` not 5-D; ``len(alignments)`` not B; more rows than T; a position
        outside ``0..S-1``; no scored row at all.

    >>> import numpy as np
    >>> cross = np.zeros((1, 1, 2, 3, 3))  # L=1, B=1, N=2 heads, T=3 rows, S=3
    >>> cross[0, 0, 0, [0, 1, 2], [1, 0, 0]] = 1.0  # head 0 looks at 1, 0, 0
    >>> cross[0, 0, 1, :, 2] = 1.0  # head 1 always looks at 2
    >>> alignment_accuracy(cross, [[[1], [0, 2], None]]).tolist()  # row 2 is not scored
    [[1.0, 0.5]]
    """
    scored_rows = check_alignments(cross, alignments)
    chosen_LBNT = np.asarray(cross).argmax(axis=-1)  # each head's choice on each row
    L, _, N, _ = chosen_LBNT.shape
    hits_LN = np.zeros((L, N), dtype=np.int64)
    for b, t, positions in scored_rows:
        hits_LN += np.isin(chosen_LBNT[:, b, :, t], positions)
    return hits_LN / len(scored_rows)
