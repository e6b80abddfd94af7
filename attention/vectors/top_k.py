"""Step 0f: the k best of many scores, exactly, without holding or ranking them all.

A search scores every row of a database against a query, then keeps the k best. Two lessons in
where time goes, shared by every search of :mod:`attention.vectors.search`:

* **Stream the database in chunks.** Q queries against M rows make a ``[Q, M]`` score matrix
  (4 GB for 1024 queries and a million rows). We score one chunk of rows at a time, keep
  each chunk's top-k per query, and never hold more than ``[Q, chunk]`` scores; one last
  top-k over the chunks' candidates is exact, so the result equals a full sort
  (:func:`_chunked_top_k`).
* **Rank little.** Ranking is slow next to multiplying (XLA's top-k on CPU takes several
  nanoseconds per score, one thread; a multiply-add is a fraction of one). So a chunk is cut
  into groups of consecutive rows, only the groups' maxima are ranked, and then only the rows
  of the k best groups: about ``2 sqrt(k chunk)`` scores ranked per query instead of the
  chunk, with the same answer (:func:`_top_k_by_groups` says why it is exact).

Ties go to the lower row throughout, as in ``jax.lax.top_k``.

Axes here: ``Q`` queries, ``M`` database rows, ``D`` the width, ``k`` results, ``C`` rows of a
chunk, ``G`` groups of a chunk.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# Smallest group worth the grouped top-k (see _top_k_by_groups).
_MIN_GROUP = 4


def _group_size(rows: int, k: int) -> int:
    """Rows per group for :func:`_top_k_by_groups`: a power of two near ``sqrt(rows / k)``.

    The selection costs about ``rows / g`` (group maxima ranked) plus ``k * g`` (candidates
    ranked), least at ``g = sqrt(rows / k)``. 1 means "no groups": a chunk too small to gain.
    """
    g = 1 << max(round(math.log2(math.sqrt(rows / k))), 0)
    return g if g >= _MIN_GROUP else 1


def _top_k_by_groups(scores_CQ, k: int, group: int):
    """Exact top-k down each column of ``scores_CQ`` [C, Q]: ``(scores [Q, k], positions [Q, k])``.

    The same answer as ``lax.top_k(scores_CQ.T, k)`` (ties to the lower position), for scores
    holding no NaN and no -0.0, found with less ranking: cut the C rows into groups of
    ``group`` consecutive rows, rank only the groups' maxima, and rank the rows of the k best
    groups. Exact because each of the k best rows is the best of its group or lies in a group
    whose best beats it; either way its group is among the k best groups (on equal maxima the
    lower group wins, and its rows come first).
    """
    C, Q = scores_CQ.shape
    G = -(-C // group)
    if group == 1 or G < k:  # (fewer than k groups: nothing to gain)
        return jax.lax.top_k(scores_CQ.T, k)
    # Pad to whole groups with -inf, which only ever ranks after every real score.
    padded_PQ = jnp.pad(scores_CQ, ((0, G * group - C), (0, 0)), constant_values=-jnp.inf)
    best_QG = jnp.max(padded_PQ.reshape(G, group, Q), axis=1).T
    _, groups_Qk = jax.lax.top_k(best_QG, k)
    # In ascending order, the candidates are in row order, so ties go to the lower row.
    groups_Qk = jnp.sort(groups_Qk, axis=1)
    offsets_11g = jnp.arange(group)[None, None, :]
    positions_Qn = (groups_Qk[:, :, None] * group + offsets_11g).reshape(Q, k * group)
    candidates_Qn = padded_PQ[positions_Qn, jnp.arange(Q)[:, None]]
    scores_Qk, pick_Qk = jax.lax.top_k(candidates_Qn, k)
    return scores_Qk, jnp.take_along_axis(positions_Qn, pick_Qk, axis=1)


def _chunked_top_k(score_chunk, Q: int, M: int, k: int, chunk_size: int):
    """Top-k over the chunks of rows; ``score_chunk(start, size) -> [size, Q]`` float32.

    Shared by the float and the quantized searches: only the way a chunk is scored differs.
    Each chunk passes on its own top-k, and one top-k over those ``[Q, n_chunks * k]``
    candidates at the end gives the answer: exact, since each of the k best rows is among the
    k best of its own chunk.
    """
    n_chunks = -(-M // chunk_size)
    group = _group_size(chunk_size, k)

    def chunk_top_k(i):
        # The last chunk may run past the end of the database; slide it back so that it
        # ends at row M, and hide the rows it then repeats (already scored by chunk i - 1).
        nominal_start = i * chunk_size
        start = jnp.minimum(nominal_start, M - chunk_size)
        rows_C = start + jnp.arange(chunk_size, dtype=jnp.int32)
        scores_CQ = score_chunk(start, chunk_size)
        # A where, not arithmetic, so -inf cannot turn into NaN; real cosines are >= -1. A NaN
        # score (a NaN row of a float database) counts as -inf: never above a real one. And
        # -0.0 becomes 0.0: top_k ranks -0.0 below 0.0, a maximum does not tell them apart.
        keep_CQ = (rows_C[:, None] >= nominal_start) & ~jnp.isnan(scores_CQ)
        scores_CQ = jnp.where(keep_CQ, jnp.where(scores_CQ == 0, 0.0, scores_CQ), -jnp.inf)
        scores_Qk, positions_Qk = _top_k_by_groups(scores_CQ, k, group)
        return scores_Qk, rows_C[positions_Qk]

    if n_chunks == 1:
        # One chunk covers the database: no loop, so XLA sees one product and one top-k.
        return chunk_top_k(0)
    _, (scores_NQk, rows_NQk) = jax.lax.scan(
        lambda carry, i: (carry, chunk_top_k(i)), None, jnp.arange(n_chunks)
    )
    # Chunk by chunk, so the candidates of lower rows come first; among equal scores top_k
    # keeps the earlier one, hence the lower row.
    scores_Qn = jnp.transpose(scores_NQk, (1, 0, 2)).reshape(Q, n_chunks * k)
    rows_Qn = jnp.transpose(rows_NQk, (1, 0, 2)).reshape(Q, n_chunks * k)
    scores_Qk, pick_Qk = jax.lax.top_k(scores_Qn, k)
    return scores_Qk, jnp.take_along_axis(rows_Qn, pick_Qk, axis=1)
