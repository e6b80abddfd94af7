"""Step 25: pictures of attention: heatmaps, head grids, alignments, head summaries, curves.

One head of one layer is a matrix ``[T, S]`` whose row t is a distribution over the keys query
t may see; it is drawn as a heatmap, queries down the side, keys along the top (notebook 08).
Here: one matrix, a layer's heads, layers by heads, the three kinds of a translation model,
cross-attention as lines between sentences, the per-head numbers of
:mod:`attention.inspection.analysis` (computed there, drawn here), and training curves.

Masked entries (``mask=``, True = may attend; or ``pad_token=``) are hatched grey, not drawn
as zeros. Every plot function returns a ``matplotlib.figure.Figure`` (not pyplot: leave it as
a cell's last expression to see it), takes ``ax=`` (or ``axes=``) to draw into existing axes
and ``save="path.png"``, and labels every k-th token beyond ``max_labels``. Inputs: NumPy or
JAX arrays, drawn as NumPy float32.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from attention._checks import (
    check_head_summary_args,
    check_history,
    check_maps_and_labels,
    check_mask,
    check_real,
    check_weights_and_labels,
)
from attention.inspection.analysis import (
    head_entropy,
    mean_attention_distance,
    select_map,
)

MASKED_HATCH = "///"
MASKED_FACE = "0.88"
MASKED_EDGE = "0.6"

# Panel titles of the kinds of :data:`attention.inspection.analysis.MAP_KINDS`.
_KIND_TITLES = {
    "encoder_self": "encoder self-attention",
    "decoder_self": "decoder self-attention",
    "decoder_cross": "cross-attention",
}


# --- input checks ------------------------------------------------------------------------


def _allowed(mask, pad_token, query_tokens, key_tokens, shape, axes: str) -> np.ndarray | None:
    """Boolean ``shape`` (True = may attend) from ``mask`` and padding, or None if neither."""
    allowed = None
    if mask is not None:
        if not hasattr(mask, "dtype"):
            mask = np.asarray(mask)
        check_mask(mask, shape, axes)
        allowed = np.broadcast_to(np.asarray(mask), shape)
    if pad_token is not None:
        if query_tokens is None and key_tokens is None:
            raise ValueError(
                f"pad_token={pad_token!r} needs the tokens to find the padding in; pass "
                f"query_tokens= and/or key_tokens=."
            )
        keep = np.ones(shape, dtype=bool)
        if key_tokens is not None:
            keep &= np.array([t != pad_token for t in key_tokens])
        if query_tokens is not None:
            keep &= np.array([t != pad_token for t in query_tokens])[:, None]
        allowed = keep if allowed is None else allowed & keep
    return allowed


# --- sizes and labels --------------------------------------------------------------------


def _label_step(n: int, max_labels: int) -> int:
    """Label every k-th token so that at most ``max_labels`` labels share an axis."""
    return max(1, math.ceil(n / max_labels))


def _font_size(n_labels: int, axis_inches: float = 6.0) -> float:
    # A line of text needs about 1.4 times its point size: fit the labels into the axis
    # length, between 6 pt (still legible) and 10 pt.
    return float(np.clip(72.0 * axis_inches / (1.4 * max(n_labels, 1)), 6.0, 10.0))


def _panel_inches(T: int, S: int, per_token: float = 0.26) -> tuple[float, float]:
    # Never so small that a title or the colour bar's label no longer fits.
    width = float(np.clip(per_token * S + 1.6, 4.2, 16.0))
    height = float(np.clip(per_token * T + 1.2, 3.0, 14.0))
    return width, height


def _token_ticks(ax, which: str, tokens: list[str] | None, max_labels: int) -> None:
    axis = ax.xaxis if which == "x" else ax.yaxis
    if tokens is None:
        return
    step = _label_step(len(tokens), max_labels)
    positions = list(range(0, len(tokens), step))
    axis.set_ticks(positions, labels=[tokens[i] for i in positions])
    box = ax.get_position()
    width, height = ax.get_figure(root=True).get_size_inches()
    axis_inches = box.width * width if which == "x" else box.height * height
    for label in axis.get_ticklabels():
        label.set_fontsize(_font_size(len(positions), axis_inches))
        if which == "x":
            label.set_rotation(90)


class NotebookFigure(Figure):
    """A Figure that Jupyter shows as a PNG, whatever the matplotlib backend.

    IPython draws plain ``Figure`` objects only once ``%matplotlib inline`` has installed its
    display hook; ``_repr_png_`` makes our figures show without it.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()


def _new_figure(width: float, height: float) -> Figure:
    return NotebookFigure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, save) -> None:
    if save is not None:
        if not isinstance(save, str | os.PathLike):
            raise TypeError(f"save must be a file path, got {type(save).__name__}.")
        fig.savefig(save, dpi=120)


# --- drawing one matrix ------------------------------------------------------------------


def _colormap(cmap):
    colormap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    # Masked cells are transparent in the image, so the hatched rectangle behind shows.
    return colormap.with_extremes(bad=(0.0, 0.0, 0.0, 0.0))


def _draw_matrix(ax, weights_TS, allowed_TS, cmap, vmax):
    T, S = weights_TS.shape
    if allowed_TS is not None:
        ax.add_patch(
            Rectangle(
                (-0.5, -0.5),
                S,
                T,
                facecolor=MASKED_FACE,
                edgecolor=MASKED_EDGE,
                hatch=MASKED_HATCH,
                linewidth=0,
                zorder=0,
            )
        )
        data = np.ma.masked_array(weights_TS, mask=~allowed_TS)
    else:
        data = weights_TS
    image = ax.imshow(
        data,
        cmap=_colormap(cmap),
        vmin=0.0,
        vmax=vmax,
        aspect="auto",
        interpolation="nearest",
        zorder=1,
    )
    ax.set_xlim(-0.5, S - 0.5)
    ax.set_ylim(T - 0.5, -0.5)
    return image


def _vmax(weights, allowed) -> float:
    shown = weights if allowed is None else weights[np.broadcast_to(allowed, weights.shape)]
    top = float(shown.max()) if shown.size else 0.0
    return top if top > 0 else 1.0


def _colorbar(fig, image, ax, masked: bool) -> None:
    label = "attention weight" + ("  (hatched: masked)" if masked else "")
    fig.colorbar(image, ax=ax, label=label, shrink=0.9)


def plot_attention(
    weights,
    *,
    query_tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    mask=None,
    pad_token: str | None = None,
    ax=None,
    title: str | None = None,
    cmap="viridis",
    vmax: float | None = None,
    colorbar: bool = True,
    max_labels: int = 40,
    xlabel: str = "keys",
    ylabel: str = "queries",
    save=None,
) -> Figure:
    """Heatmap of one attention matrix: queries down the side, keys along the bottom.

    Cell ``(t, s)`` is the weight ``w[t, s]`` that query t gives key s; each row sums to 1
    over the keys that query may see. Colours run from 0 to ``vmax`` (default: the largest
    weight shown), with a colour bar. Masked cells are hatched grey.

    Args:
      weights: ``[T, S]``, one head of one layer, e.g. ``maps["decoder_cross"][l, b, n]``.
      query_tokens: T strings labelling the rows.
      key_tokens: S strings labelling the columns.
      mask: boolean, broadcastable to ``[T, S]``; False cells are drawn masked.
      pad_token: rows and columns whose token equals it are drawn masked too.
      ax: axes to draw into; by default a new figure sized to T and S.
      title: axes title.
      cmap: a matplotlib colormap or its name.
      vmax: the weight drawn in the brightest colour.
      colorbar: add a colour bar.
      max_labels: label at most this many tokens per axis (every k-th beyond that).
      xlabel, ylabel: axis labels.
      save: a file path; the figure is also written there (PNG for ``.png``).

    Returns:
      The figure holding ``ax``.

    Raises:
      TypeError: non-floating weights, a non-boolean mask, tokens that are not a sequence.
      ValueError: weights not 2-D, a token count that differs from T or S, a mask that does
        not broadcast to ``[T, S]``, ``pad_token`` without tokens.

    >>> import numpy as np
    >>> fig = plot_attention(np.eye(3), query_tokens=["a", "b", "c"], key_tokens=list("xyz"))
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['x', 'y', 'z']
    """
    weights_TS, query_tokens, key_tokens = check_weights_and_labels(
        weights, "TS", query_tokens, key_tokens, max_labels=max_labels)
    allowed_TS = _allowed(mask, pad_token, query_tokens, key_tokens, weights_TS.shape, "TS")
    T, S = weights_TS.shape
    if ax is None:
        fig = _new_figure(*_panel_inches(T, S))
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure(root=True)
    vmax = _vmax(weights_TS, allowed_TS) if vmax is None else vmax
    image = _draw_matrix(ax, weights_TS, allowed_TS, cmap, vmax)
    _token_ticks(ax, "x", key_tokens, max_labels)
    _token_ticks(ax, "y", query_tokens, max_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    if colorbar:
        _colorbar(fig, image, ax, allowed_TS is not None)
    _save(fig, save)
    return fig


# --- grids of heads and layers -----------------------------------------------------------


def _draw_grid(
    weights_LNTS: np.ndarray,
    allowed,
    *,
    query_tokens,
    key_tokens,
    axes,
    row_names: list[str],
    col_names: list[str],
    cmap,
    max_labels: int,
    title: str | None,
    xlabel: str,
    ylabel: str,
) -> Figure:
    L, N, T, S = weights_LNTS.shape
    if axes is None:
        ncols = N if L > 1 else min(N, 4)
        nrows = L if L > 1 else math.ceil(N / ncols)
        # Panels about 0.18 inch a token; the labels (outer panels only) and the colour bar
        # are added once for the whole grid.
        width = ncols * float(np.clip(0.18 * S + 0.3, 1.6, 6.0)) + 2.2
        height = nrows * float(np.clip(0.18 * T + 0.4, 1.4, 6.0)) + 1.8
        fig = _new_figure(min(width, 24.0), min(height, 30.0))
        grid = fig.subplots(nrows, ncols, squeeze=False)
        for extra in grid.flat[L * N :]:
            extra.remove()
        axes_list = list(grid.flat[: L * N])
    else:
        axes_list = list(np.ravel(np.asarray(axes, dtype=object)))
        if len(axes_list) != L * N:
            raise ValueError(
                f"axes holds {len(axes_list)} axes but the weights need {L * N} "
                f"({L} layer(s) x {N} head(s))."
            )
        fig = axes_list[0].get_figure(root=True)
    allowed_LNTS = None if allowed is None else np.broadcast_to(allowed, weights_LNTS.shape)
    vmax = _vmax(weights_LNTS, allowed_LNTS)
    image = None
    for i, ax in enumerate(axes_list):
        layer, head = divmod(i, N)
        allowed_TS = None if allowed_LNTS is None else allowed_LNTS[layer, head]
        image = _draw_matrix(ax, weights_LNTS[layer, head], allowed_TS, cmap, vmax)
        ax.set_title(col_names[head] if L == 1 or layer == 0 else "", fontsize=9)
        _token_ticks(ax, "x", key_tokens, max_labels)
        _token_ticks(ax, "y", query_tokens, max_labels)
        # Labels only on the outer panels: the inner ones share the same tokens.
        position = ax.get_subplotspec() if axes is None else None
        if position is not None:
            below_empty = i + ax.get_gridspec().ncols >= L * N
            if not position.is_first_col():
                ax.tick_params(labelleft=False)
            if not (position.is_last_row() or below_empty):
                ax.tick_params(labelbottom=False)
            if position.is_first_col() and L > 1:
                ax.set_ylabel(row_names[layer], fontsize=9)
    fig.supxlabel(xlabel, fontsize=10)
    fig.supylabel(ylabel, fontsize=10)
    if title is not None:
        fig.suptitle(title)
    _colorbar(fig, image, axes_list, allowed is not None)
    return fig


def plot_heads(
    weights,
    *,
    query_tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    mask=None,
    pad_token: str | None = None,
    axes=None,
    title: str | None = None,
    cmap="viridis",
    max_labels: int = 20,
    xlabel: str = "keys",
    ylabel: str = "queries",
    save=None,
) -> Figure:
    """All heads of one layer, one heatmap each, sharing one colour scale and colour bar.

    Heads of one layer see the same tokens but learn to look at different things (the
    previous word, the next word, the end of the sentence, ...): a grid shows them at once.

    Args:
      weights: ``[N, T, S]``, e.g. ``maps["encoder_self"][layer, batch]``.
      axes: N axes to draw into (any shape); by default a new grid, up to 4 heads a row.
      The rest as :func:`plot_attention`; ``mask`` broadcasts to ``[N, T, S]``.

    Returns:
      The figure.

    Raises:
      As :func:`plot_layers`, for ``[N, T, S]`` weights.

    >>> import numpy as np
    >>> fig = plot_heads(np.full((3, 2, 4), 0.25))  # N=3 heads, T=2, S=4
    >>> [ax.get_title() for ax in fig.axes[:3]]
    ['head 0', 'head 1', 'head 2']
    """
    # One layer of plot_layers. The arguments are checked here first, so that a message
    # speaks of the [N, T, S] the caller passed, not of the [1, N, T, S] made from it.
    weights_NTS, _, _ = check_weights_and_labels(weights, "NTS", query_tokens, key_tokens)
    _allowed(mask, None, None, None, weights_NTS.shape, "NTS")
    return plot_layers(
        weights_NTS[None],
        query_tokens=query_tokens,
        key_tokens=key_tokens,
        mask=mask,
        pad_token=pad_token,
        axes=axes,
        title=title,
        cmap=cmap,
        max_labels=max_labels,
        xlabel=xlabel,
        ylabel=ylabel,
        save=save,
    )


def plot_layers(
    weights,
    *,
    query_tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    mask=None,
    pad_token: str | None = None,
    axes=None,
    title: str | None = None,
    cmap="viridis",
    max_labels: int = 12,
    xlabel: str = "keys",
    ylabel: str = "queries",
    save=None,
) -> Figure:
    """Every head of every layer: a grid with one row per layer and one column per head.

    Args:
      weights: ``[L, N, T, S]``, e.g. ``maps["decoder_cross"][:, batch]``.
      axes: L * N axes to draw into (row-major); by default a new L x N grid.
      The rest as :func:`plot_attention`; ``mask`` broadcasts to ``[L, N, T, S]``.

    Returns:
      The figure.

    Raises:
      As :func:`plot_attention`, for ``[L, N, T, S]`` weights; ValueError for ``axes`` of the
      wrong count.

    >>> import numpy as np
    >>> fig = plot_layers(np.full((2, 3, 4, 5), 0.2))  # L=2, N=3, T=4, S=5
    >>> len([ax for ax in fig.axes if ax.get_images()]), fig.axes[3].get_ylabel()
    (6, 'layer 1')
    """
    weights_LNTS, query_tokens, key_tokens = check_weights_and_labels(
        weights, "LNTS", query_tokens, key_tokens, max_labels=max_labels)
    L, N, T, S = weights_LNTS.shape
    allowed = _allowed(mask, None, None, None, weights_LNTS.shape, "LNTS")
    if pad_token is not None:
        pads_TS = _allowed(None, pad_token, query_tokens, key_tokens, (T, S), "TS")
        allowed = pads_TS if allowed is None else allowed & pads_TS
    fig = _draw_grid(
        weights_LNTS,
        allowed,
        query_tokens=query_tokens,
        key_tokens=key_tokens,
        axes=axes,
        row_names=[f"layer {layer}" for layer in range(L)],
        col_names=[f"head {n}" for n in range(N)],
        cmap=cmap,
        max_labels=max_labels,
        title=title,
        xlabel=xlabel,
        ylabel=ylabel,
    )
    _save(fig, save)
    return fig


# --- a translation's three kinds of attention --------------------------------------------


def plot_translation_attention(
    maps,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    *,
    example: int = 0,
    layer: int = -1,
    head: int | None = None,
    pad_token: str | None = None,
    axes=None,
    cmap="viridis",
    max_labels: int = 30,
    save=None,
) -> Figure:
    """The three kinds of attention of one translation, side by side.

    Left, encoder self-attention ``[S, S]`` (source attends to source); middle, decoder
    self-attention ``[T, T]`` (target attends to the target so far: the future is masked, and
    drawn so); right, cross-attention ``[T, S]`` (each target token looks at the source).

    Args:
      maps: the dict returned by ``attention_maps(model, src_tokens, tgt_tokens)``.
      source_tokens: S strings (padding included, if the batch was padded).
      target_tokens: T strings, the decoder's input tokens.
      example: which sentence of the batch B.
      layer: which layer (default the last).
      head: which head; None draws the mean over heads.
      pad_token: the padding token, drawn masked.
      axes: three axes to draw into; by default a new figure.
      cmap, max_labels, save: as :func:`plot_attention`.

    Returns:
      The figure.

    Raises:
      As :func:`check_attention_maps` and :func:`plot_attention`; ValueError for an example,
      layer or head out of range, or ``axes`` that are not three.
    """
    (L, B, N, T, S), layer_index, source, target = check_maps_and_labels(
        maps, layer, source_tokens, target_tokens)
    which = "mean of heads" if head is None else f"head {head}"
    panels = [
        ("encoder_self", source, source, None, "source", "source"),
        ("decoder_self", target, target, np.tril(np.ones((T, T), dtype=bool)), "target", "target"),
        ("decoder_cross", target, source, None, "source", "target"),
    ]
    if axes is None:
        sizes = [_panel_inches(S, S), _panel_inches(T, T), _panel_inches(T, S)]
        fig = _new_figure(min(sum(w for w, _ in sizes) + 1.5, 30.0), max(h for _, h in sizes))
        axes = fig.subplots(1, 3, width_ratios=[S, T, S])
    else:
        axes = list(np.ravel(np.asarray(axes, dtype=object)))
        if len(axes) != 3:
            raise ValueError(f"axes must hold 3 axes, got {len(axes)}.")
        fig = axes[0].get_figure(root=True)
    for ax, (kind, rows, cols, mask, xlabel, ylabel) in zip(axes, panels, strict=True):
        plot_attention(
            select_map(maps, kind, example=example, layer=layer, head=head),
            query_tokens=rows,
            key_tokens=cols,
            mask=mask,
            pad_token=pad_token,
            ax=ax,
            title=f"{_KIND_TITLES[kind]}\nlayer {layer_index}, {which}",
            cmap=cmap,
            vmax=1.0,
            colorbar=kind == "decoder_cross",
            max_labels=max_labels,
            xlabel=xlabel,
            ylabel=ylabel,
        )
    _save(fig, save)
    return fig


# --- cross-attention as an alignment -----------------------------------------------------


def plot_alignment(
    weights,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    *,
    mask=None,
    pad_token: str | None = None,
    min_weight: float = 0.05,
    ax=None,
    title: str | None = None,
    color="C0",
    save=None,
) -> Figure:
    """Cross-attention drawn as lines between the source and the target sentence.

    The source tokens stand in a column on the left, the target tokens on the right, and a
    line joins target token t to source token s with opacity ``w[t, s]`` and a width growing
    with it. A head that learned word alignment shows a few strong, mostly parallel lines;
    lines below ``min_weight`` are left out so that the picture is not a grey fog.

    Args:
      weights: ``[T, S]`` cross-attention (one head, or the mean over heads).
      source_tokens: S strings.
      target_tokens: T strings.
      mask: boolean, broadcastable to ``[T, S]``; masked pairs get no line.
      pad_token: padding tokens get no lines and are greyed.
      min_weight: the smallest weight drawn, in ``[0, 1]``.
      ax: axes to draw into; by default a new figure as tall as the longer sentence.
      title: axes title.
      color: line colour.
      save: a file path to write the figure to.

    Returns:
      The figure; the lines are ``ax.collections[0]``, a ``LineCollection`` with one segment
      per drawn pair.

    Raises:
      As :func:`plot_attention`; ValueError for ``min_weight`` outside ``[0, 1]``.
    """
    weights_TS, target, source = check_weights_and_labels(
        weights, "TS", target_tokens, source_tokens, names=("target_tokens", "source_tokens"))
    T, S = weights_TS.shape
    if source is None or target is None:
        raise ValueError("plot_alignment needs source_tokens and target_tokens.")
    allowed_TS = _allowed(mask, pad_token, target, source, weights_TS.shape, "TS")
    min_weight = check_real("min_weight", min_weight, low=0.0, high=1.0)
    longest = max(S, T)
    fontsize = _font_size(longest, 0.26 * longest)
    if ax is None:
        fig = _new_figure(5.5, float(np.clip(0.26 * longest + 1.3, 2.8, 30.0)))
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure(root=True)
    # The shorter sentence is centred against the longer one.
    y_source = (longest - S) / 2 + np.arange(S)
    y_target = (longest - T) / 2 + np.arange(T)
    drawn = weights_TS >= min_weight
    if allowed_TS is not None:
        drawn &= allowed_TS
    t_index, s_index = np.nonzero(drawn)
    strength = np.clip(weights_TS[t_index, s_index], 0.0, 1.0)
    segments = [
        [(0.0, y_source[s]), (1.0, y_target[t])] for t, s in zip(t_index, s_index, strict=True)
    ]
    rgba = np.tile(matplotlib.colors.to_rgba(color), (len(segments), 1))
    rgba[:, 3] = strength
    ax.add_collection(LineCollection(segments, colors=rgba, linewidths=0.5 + 3.5 * strength))
    pads = set() if pad_token is None else {pad_token}
    for y, token in zip(y_source, source, strict=True):
        ax.text(
            -0.03,
            y,
            token,
            ha="right",
            va="center",
            fontsize=fontsize,
            color="0.6" if token in pads else "black",
        )
    for y, token in zip(y_target, target, strict=True):
        ax.text(
            1.03,
            y,
            token,
            ha="left",
            va="center",
            fontsize=fontsize,
            color="0.6" if token in pads else "black",
        )
    ax.set_xlim(-0.6, 1.6)
    # One row of room above the first tokens for the column headers.
    ax.set_ylim(longest - 0.5, -1.7)
    ax.set_axis_off()
    ax.text(-0.03, -1.2, "source", ha="right", va="center", fontsize=fontsize, style="italic")
    ax.text(1.03, -1.2, "target", ha="left", va="center", fontsize=fontsize, style="italic")
    if title is not None:
        ax.set_title(title)
    _save(fig, save)
    return fig


# --- per-head summaries ------------------------------------------------------------------


def plot_head_summary(
    weights,
    mask=None,
    *,
    axes=None,
    title: str | None = None,
    annotate: bool | None = None,
    save=None,
) -> Figure:
    """Two heatmaps, layers by heads: entropy (bits) and mean attention distance (positions).

    Read them together: low entropy and distance near 0 or 1 is a sharp positional head
    (this or the previous token); low entropy and a large distance, a head that picks one far
    token (a matching word, the end of the sentence); high entropy, a head that averages.

    Args:
      weights: ``[L, N, T, S]`` (or ``[N, T, S]`` for one layer).
      mask: boolean, broadcastable to ``weights``.
      axes: two axes to draw into; by default a new figure.
      title: figure title.
      annotate: write each value in its cell; by default when there are at most 100 cells.
      save: a file path to write the figure to.

    Returns:
      The figure.

    Raises:
      As :func:`head_entropy`; ValueError for weights that are not 3- or 4-D or ``axes``
      that are not two.
    """
    weights_LNTS, mask = check_head_summary_args(weights, mask)
    L, N = weights_LNTS.shape[:2]
    summaries = [
        ("entropy (bits)", head_entropy(weights_LNTS, mask, base=2), "magma"),
        (
            "mean attention distance (positions)",
            mean_attention_distance(weights_LNTS, mask),
            "cividis",
        ),
    ]
    if annotate is None:
        annotate = L * N <= 100
    if axes is None:
        width = float(np.clip(0.55 * N + 1.8, 3.5, 12.0))
        height = float(np.clip(0.45 * L + 1.6, 2.4, 10.0))
        fig = _new_figure(2 * width, height)
        axes = fig.subplots(1, 2)
    else:
        axes = list(np.ravel(np.asarray(axes, dtype=object)))
        if len(axes) != 2:
            raise ValueError(f"axes must hold 2 axes, got {len(axes)}.")
        fig = axes[0].get_figure(root=True)
    for ax, (name, values_LN, cmap) in zip(axes, summaries, strict=True):
        image = ax.imshow(values_LN, cmap=cmap, aspect="auto", interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(N), labels=[str(n) for n in range(N)])
        ax.set_yticks(range(L), labels=[str(layer) for layer in range(L)])
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        fig.colorbar(image, ax=ax, shrink=0.9)
        if annotate:
            middle = np.nanmean(values_LN) if np.isfinite(values_LN).any() else 0.0
            for (layer, n), value in np.ndenumerate(values_LN):
                ax.text(
                    n,
                    layer,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if value < middle else "black",
                )
    if title is not None:
        fig.suptitle(title)
    _save(fig, save)
    return fig


# --- training curves ---------------------------------------------------------------------

def plot_training_curves(history: list[dict], *, save=None, title: str | None = None) -> Figure:
    """Loss and learning rate against the step: did training go down, and with what schedule.

    Left, the training loss per target token: the label-smoothed loss that is minimised
    (Vaswani et al. 5.4) and, dashed, the plain cross-entropy (negative log-likelihood, in
    nats), which is what perplexity ``exp(nll)`` is made from. With label smoothing the loss
    stays above the cross-entropy; without, the two coincide and the dashes keep both visible.
    Right, the learning rate: the warm-up then inverse-square-root schedule (5.3).

    Args:
      history: the logged lines of a run (``fit(...).history``): a non-empty list of dicts,
        each with the numbers ``step``, ``loss``, ``nll`` and ``learning_rate`` (other keys
        are ignored).
      save: a file path to write the figure to.
      title: figure title.

    Returns:
      The figure: ``axes[0]`` holds the loss and cross-entropy lines, ``axes[1]`` the
      learning rate.

    Raises:
      TypeError: ``history`` not a list of dicts, a value that is not a number.
      ValueError: an empty ``history``, an entry without one of the four keys, a NaN value.

    >>> history = [{"step": s, "loss": 3.0 / s, "nll": 2.5 / s, "learning_rate": 1e-3 * s}
    ...            for s in (1, 2, 3)]
    >>> fig = plot_training_curves(history)
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['loss (label-smoothed)', 'cross-entropy (nats/token)']
    """
    series = check_history(history)
    steps = series["step"]
    fig = _new_figure(10.0, 3.8)
    ax_loss, ax_lr = fig.subplots(1, 2)
    ax_loss.plot(steps, series["loss"], label="loss (label-smoothed)")
    # Dashed: without label smoothing the two curves coincide, and both must stay visible.
    ax_loss.plot(steps, series["nll"], "--", label="cross-entropy (nats/token)")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("per target token")
    ax_loss.set_title("Training loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_lr.plot(steps, series["learning_rate"], color="tab:orange", label="learning rate")
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title("Schedule (Vaswani et al. 5.3)")
    ax_lr.grid(alpha=0.3)
    if title is not None:
        fig.suptitle(title)
    _save(fig, save)
    return fig
