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
from collections.abc import Mapping, Sequence

import numpy as np

from attention._checks import (
    check_floating,
    check_index,
    check_int,
    check_mask,
    check_rank,
    check_real,
    shape_str,
)

# The keys of the dict that the transformer's ``attention_maps`` returns, with their axes.
MAP_KINDS = {
    "encoder_self": "LBNSS",
    "decoder_self": "LBNTT",
    "decoder_cross": "LBNTS",
}


# --- the attention-maps schema -----------------------------------------------------------


def check_token_labels(
    name: str, tokens, length: int, axis: str, shape
) -> list[str] | None:
    """The labels of one axis of attention weights: ``length`` token strings, or None.

    ``shape`` is that of the weights, for the message. Returns the labels as ``str``.

    >>> check_token_labels("key_tokens", ["the", "cat"], 2, "S", (3, 2))
    ['the', 'cat']
    """
    if tokens is None:
        return None
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"{name} must be a sequence of token strings, got {type(tokens).__name__}.")
    if len(tokens) != length:
        raise ValueError(
            f"{name} has {len(tokens)} tokens but the weights have {axis}={length} "
            f"(shape {shape_str(shape)}); pass one token per position, padding included."
        )
    return [str(t) for t in tokens]


def check_attention_maps(maps) -> tuple[int, int, int, int, int]:
    """Check the dict of ``attention_maps``; return its sizes ``(L, B, N, T, S)``.

    The dict must hold ``encoder_self`` ``[L, B, N, S, S]``, ``decoder_self``
    ``[L, B, N, T, T]`` and ``decoder_cross`` ``[L, B, N, T, S]`` (see :data:`MAP_KINDS`),
    floating, with each letter the same size in every entry. Other keys are ignored.

    Raises:
      TypeError: ``maps`` not a mapping, or an entry not a floating array.
      KeyError: a missing kind.
      ValueError: an entry of the wrong rank, or sizes that disagree between the kinds.

    >>> import numpy as np
    >>> maps = {kind: np.zeros([dict(L=1, B=2, N=3, T=4, S=5)[a] for a in axes], np.float32)
    ...         for kind, axes in MAP_KINDS.items()}
    >>> check_attention_maps(maps)
    (1, 2, 3, 4, 5)
    """
    if not isinstance(maps, Mapping):
        raise TypeError(
            f"maps must be the dict returned by attention_maps (keys {', '.join(MAP_KINDS)}), "
            f"got {type(maps).__name__}."
        )
    sizes: dict[str, int] = {}
    for kind, axes in MAP_KINDS.items():
        if kind not in maps:
            raise KeyError(
                f"maps has no {kind!r} entry; expected the keys {', '.join(MAP_KINDS)}, "
                f"got {', '.join(map(str, maps))}."
            )
        array = maps[kind]
        if not hasattr(array, "shape"):
            array = np.asarray(array)
        check_floating(f"maps[{kind!r}]", array)
        if array.ndim != len(axes):
            raise ValueError(
                f"maps[{kind!r}] must have shape [{', '.join(axes)}], got {shape_str(array.shape)}."
            )
        for letter, size in zip(axes, array.shape, strict=True):
            if sizes.setdefault(letter, size) != size:
                raise ValueError(
                    f"maps[{kind!r}] has {letter}={size} (shape {shape_str(array.shape)}) "
                    f"but another entry has {letter}={sizes[letter]}."
                )
    return sizes["L"], sizes["B"], sizes["N"], sizes["T"], sizes["S"]


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
    L, B, N, _, _ = check_attention_maps(maps)
    if kind not in MAP_KINDS:
        raise ValueError(f"kind must be one of {', '.join(MAP_KINDS)}, got {kind!r}.")
    example = check_index("example", example, B, "B")
    layer = check_index("layer", layer, L, "L")
    head = check_index("head", head, N, "N", allow_none=True)
    weights_NTS = np.asarray(maps[kind][layer, example], dtype=np.float32)
    return weights_NTS.mean(axis=0) if head is None else weights_NTS[head]


# --- statistics of heads -----------------------------------------------------------------


def _as_weights_min_rank(weights) -> np.ndarray:
    if not hasattr(weights, "shape"):
        weights = np.asarray(weights)
    check_floating("weights", weights)
    if weights.ndim < 3:
        raise ValueError(
            f"weights must have shape [..., N, T, S] (at least heads, queries, keys), got "
            f"{shape_str(weights.shape)}; for a single head pass weights[None]."
        )
    return np.asarray(weights, dtype=np.float32)


def _rows(weights, mask) -> tuple[np.ndarray, np.ndarray]:
    """Rows renormalised over allowed keys (float64), and which rows count (have any weight)."""
    weights_NTS = _as_weights_min_rank(weights)
    w = weights_NTS.astype(np.float64)
    if mask is not None:
        if not hasattr(mask, "dtype"):
            mask = np.asarray(mask)
        check_mask(mask, w.shape, None)
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
    base = check_real("base", base, low=1.0, low_inclusive=False)
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
    p, valid = _rows(weights, mask)
    T, S = p.shape[-2:]
    distance_TS = np.abs(np.arange(T)[:, None] - np.arange(S)[None, :]).astype(np.float64)
    return _mean_over_rows((p * distance_TS).sum(axis=-1), valid)


def _is_sequence(value) -> bool:
    # A string is a Sequence too, but never a list of rows or positions.
    return isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes)


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
    if not hasattr(cross, "shape"):
        cross = np.asarray(cross)
    check_floating("cross", cross)
    check_rank(
        "cross", cross, "LBNTS", hint=' Pass all of attention_maps(...)["decoder_cross"].'
    )
    L, B, N, T, S = cross.shape
    if not _is_sequence(alignments):
        raise TypeError(
            f"alignments must be a sequence of B={B} per-sentence alignments, got "
            f"{type(alignments).__name__}."
        )
    if len(alignments) != B:
        raise ValueError(
            f"alignments has {len(alignments)} sentences but cross has B={B} "
            f"(shape {shape_str(cross.shape)}); pass one alignment per sentence of the batch."
        )
    # The decision of each head on each row, then only the scored rows are looked up.
    chosen_LBNT = np.asarray(cross).argmax(axis=-1)
    hits_LN = np.zeros((L, N), dtype=np.int64)
    scored = 0
    for b, rows in enumerate(alignments):
        if not _is_sequence(rows):
            raise TypeError(
                f"alignments[{b}] must be a sequence over decoder rows, got {type(rows).__name__}."
            )
        if len(rows) > T:
            raise ValueError(
                f"alignments[{b}] has {len(rows)} rows but cross has T={T} decoder rows "
                f"(shape {shape_str(cross.shape)})."
            )
        for t, truth in enumerate(rows):
            if truth is None:
                continue
            if not _is_sequence(truth):
                raise TypeError(
                    f"alignments[{b}][{t}] must be a sequence of source positions or None, "
                    f"got {truth!r} ({type(truth).__name__})."
                )
            positions = [
                check_int(f"alignments[{b}][{t}][{i}]", p, what="an int source position")
                for i, p in enumerate(truth)
            ]
            for i, p in enumerate(positions):
                if not 0 <= p < S:
                    raise ValueError(
                        f"alignments[{b}][{t}][{i}]={p} is outside the source positions "
                        f"0..{S - 1} (S={S})."
                    )
            if positions:
                hits_LN += np.isin(chosen_LBNT[:, b, :, t], positions)
                scored += 1
    if scored == 0:
        raise ValueError(
            "alignments has no scored row: every row is None or empty, so there is nothing "
            "to measure the heads against."
        )
    return hits_LN / scored
