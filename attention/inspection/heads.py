"""Step 24a: head detectors, which heads look back one token, at repeats, by induction, at the sink.

Each detector is a number in ``[0, 1]`` per head: the attention mass, averaged over the
queries it applies to, that falls on the keys a head of that kind would pick. On one
sequence's causal maps ``weights [*A, T, T]`` (``*A`` = layers, heads) and its ``tokens [T]``:

* **previous-token** (Olsson et al. 2022): the mass on key ``t - 1``, over queries ``t >= 1``;
* **duplicate-token**: the mass on earlier keys ``s < t`` holding the query's own token, over
  the queries whose token occurred before;
* **induction** (Olsson et al. 2022, "In-context Learning and Induction Heads"): the mass on
  the keys ``s < t`` that *follow* an earlier occurrence of the query's token
  (``tokens[s - 1] == tokens[t]``): "A B ... A -> look at B", the head that copies;
* **attention sink** (Xiao et al. 2023, "Efficient Streaming Language Models with Attention
  Sinks"): the mass on the first key, over queries ``t >= 1`` (the first query has nowhere
  else to look).

Induction and duplicate heads are found on **repeated random tokens**
(:func:`repeated_random_tokens`): a random sequence shown twice, so that in the second half
every token occurred exactly ``period`` positions earlier and nothing but copying predicts it.
:func:`head_scores` runs the four detectors over a batch of maps ``[L, B, N, T, T]`` (what
:func:`attention.model.language_model.language_model_attention_maps` returns);
:func:`head_table` prints them, :func:`plot_head_scores` draws one layer x head grid each.
The maps must be of unpadded sequences (every key real).
"""

from __future__ import annotations

import numpy as np

from attention._checks import check_head_detector_args

SCORES = ("previous_token", "duplicate_token", "induction", "sink")
"""The detectors of :func:`head_scores`, in the order of its table and plot."""


def _masked_mean(weights, targets_TS: np.ndarray) -> np.ndarray:
    """The mass of each row on its ``targets``, averaged over the rows with any target."""
    rows_T = targets_TS.any(axis=-1)
    if not rows_T.any():
        return np.full(weights.shape[:-2], np.nan, np.float32)
    mass = (weights * targets_TS).sum(axis=-1)  # [*A, T]
    return np.asarray(mass[..., rows_T].mean(axis=-1), np.float32)


def previous_token_score(weights) -> np.ndarray:
    """``mean_{t >= 1} weights[..., t, t - 1]``.

    >>> previous_token_score(np.array([[1.0, 0.0], [1.0, 0.0]])).item()
    1.0
    """
    weights = check_head_detector_args(weights)
    T = weights.shape[-1]
    return _masked_mean(weights, np.eye(T, k=-1, dtype=bool))


def sink_score(weights) -> np.ndarray:
    """``mean_{t >= 1} weights[..., t, 0]``, the share of attention on the first token.

    >>> sink_score(np.array([[1.0, 0.0], [0.25, 0.75]])).item()
    0.25
    """
    weights = check_head_detector_args(weights)
    T = weights.shape[-1]
    targets_TS = np.zeros((T, T), bool)
    targets_TS[1:, 0] = True
    return _masked_mean(weights, targets_TS)


def duplicate_token_score(weights, tokens) -> np.ndarray:
    """The mass on earlier keys ``s < t`` with ``tokens[s] == tokens[t]``, over the queries
    whose token occurred before (NaN when none did).

    >>> duplicate_token_score(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([4, 4])).item()
    1.0
    """
    weights, tokens = check_head_detector_args(weights, tokens)
    T = weights.shape[-1]
    earlier_TS = np.tril(np.ones((T, T), bool), k=-1)
    return _masked_mean(weights, earlier_TS & (tokens[None, :] == tokens[:, None]))


def induction_score(weights, tokens) -> np.ndarray:
    """The mass on keys ``1 <= s < t`` with ``tokens[s - 1] == tokens[t]`` (the token after an
    earlier occurrence of the query's), over the queries that have such a key (NaN if none).

    >>> w = np.eye(4)[[0, 1, 2, 1]]  # query 3 (a 7) attends key 1, the token after the first 7
    >>> induction_score(w, np.array([7, 5, 8, 7])).item()
    1.0
    """
    weights, tokens = check_head_detector_args(weights, tokens)
    T = weights.shape[-1]
    follows_TS = np.zeros((T, T), bool)
    follows_TS[:, 1:] = tokens[None, :-1] == tokens[:, None]  # key s follows the query's token
    return _masked_mean(weights, follows_TS & np.tril(np.ones((T, T), bool), k=-1))


def repeated_random_tokens(
    vocab_size: int, period: int, batch_size: int = 1, *, first: int | None = None,
    low: int = 0, seed: int = 0,
) -> np.ndarray:
    """``[B, 2 * period]`` random tokens, each row a random sequence twice (``[first]``
    prepended when given, for a model that expects a start token: ``T = 2 * period + 1``).

    Tokens are drawn without repeats inside a period from ``low .. vocab_size - 1``, so each
    token of the second half occurred exactly once before, ``period`` positions earlier.

    Raises:
      ValueError: ``period`` larger than the tokens available.

    >>> repeated_random_tokens(50, 3, seed=1)[0, :3].tolist() == (
    ...     repeated_random_tokens(50, 3, seed=1)[0, 3:].tolist())
    True
    """
    if not 1 <= period <= vocab_size - low:
        raise ValueError(f"period={period} must be between 1 and the {vocab_size - low} tokens "
                         f"from low={low} to vocab_size - 1 = {vocab_size - 1}.")
    rng = np.random.default_rng(seed)
    half = np.stack([rng.choice(np.arange(low, vocab_size), period, replace=False)
                     for _ in range(batch_size)])
    tokens = np.concatenate([half, half], axis=1)
    if first is not None:
        tokens = np.concatenate([np.full((batch_size, 1), first), tokens], axis=1)
    return tokens.astype(np.int32)


def head_scores(maps, tokens) -> dict[str, np.ndarray]:
    """Every detector of :data:`SCORES` for every layer and head, averaged over the batch.

    Args:
      maps: the causal self-attention of B unpadded sequences, ``[L, B, N, T, T]``
        (``language_model_attention_maps(model, tokens)["decoder_self"]``).
      tokens: those sequences, ``[B, T]`` (:func:`repeated_random_tokens` for induction).

    Returns:
      ``{"previous_token": [L, N], "duplicate_token": ..., "induction": ..., "sink": ...}``,
      float32 in ``[0, 1]`` (NaN where no query applies, e.g. no repeat in ``tokens``).

    Raises:
      TypeError, ValueError: maps that are not ``[L, B, N, T, T]``, tokens not ``[B, T]``.
    """
    maps, tokens = check_head_detector_args(maps, tokens, axes="LBNTT")
    per_row = {name: [] for name in SCORES}
    for b in range(maps.shape[1]):
        weights_LNTT = maps[:, b]
        per_row["previous_token"].append(previous_token_score(weights_LNTT))
        per_row["duplicate_token"].append(duplicate_token_score(weights_LNTT, tokens[b]))
        per_row["induction"].append(induction_score(weights_LNTT, tokens[b]))
        per_row["sink"].append(sink_score(weights_LNTT))
    return {name: np.mean(rows, axis=0).astype(np.float32) for name, rows in per_row.items()}


def head_table(scores: dict[str, np.ndarray], *, top: int | None = None) -> str:
    """A text table, one row per head (``layer.head``) and one column per score; ``top``
    keeps the heads with the highest score of any kind, best first.

    >>> scores = {"induction": np.array([[0.1, 0.9]]), "sink": np.array([[0.5, 0.0]])}
    >>> print(head_table(scores, top=1))
    head   induction   sink
    0.1        0.900  0.000
    """
    names = list(scores)
    L, N = np.asarray(scores[names[0]]).shape
    rows = [(layer, head) for layer in range(L) for head in range(N)]
    if top is not None:
        best = [max(np.nan_to_num(scores[n][r]) for n in names) for r in rows]
        rows = [rows[i] for i in np.argsort(best, kind="stable")[::-1][:top]]
    width = max(len(n) for n in names) + 2
    lines = ["head " + "".join(f"{n:>{width}}" for n in names)]
    for layer, head in rows:
        cells = "".join(f"{float(scores[n][layer, head]):>{width}.3f}" for n in names)
        lines.append(f"{f'{layer}.{head}':<5}" + cells)
    return "\n".join(lines)


def plot_head_scores(scores: dict[str, np.ndarray], *, title: str | None = None):
    """One heatmap per score, layers down and heads across, on a shared 0-1 colour scale.

    Returns the matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    names = list(scores)
    L, N = np.asarray(scores[names[0]]).shape
    fig, axes = plt.subplots(1, len(names), figsize=(2.2 + 0.35 * N * len(names), 1 + 0.35 * L),
                             squeeze=False, constrained_layout=True)
    for ax, name in zip(axes[0], names, strict=True):
        image = ax.imshow(np.asarray(scores[name]), vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set(title=name.replace("_", " "), xlabel="head", ylabel="layer")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig
