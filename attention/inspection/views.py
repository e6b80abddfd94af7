"""Step 26a: attention views for the browser, a head view and a model view in one HTML file.

The explorer of :mod:`attention.inspection.explorer` draws with matplotlib and needs a running
kernel. The views here are one self-contained HTML document instead: the weights, the
JavaScript and the style sheet are all inline, nothing is fetched (no CDN, no require.js, no
server), so the same view works inline in JupyterLab, Jupyter Notebook, VS Code and Colab
(through ``_repr_html_``), inside the course's website, and as a file opened in any browser.

* **Head view** (the picture bertviz made familiar): the query tokens down the left, the key
  tokens down the right, and one line from query t to key s per selected head, its opacity
  the weight ``w[t, s]``. Hover a token to keep only its lines (a query's row, or a key's
  column); click a head's colour to switch it on or off, double-click to keep only it; pick
  the layer in the menu.
* **Model view**: every layer (rows) by every head (columns) as a small heatmap; click one to
  enlarge it with its token labels and read single weights under the pointer.

A view holds one or more *sections*, one per kind of attention: encoder self ``[S, S]``,
decoder self ``[T, T]``, cross ``[T, S]``, or a decoder-only model's causal self-attention.
A section is any list of L layers of ``[N, T, S]`` weights with the labels of both axes
(:func:`attention_section`), so a model only needs to return its weights per layer:

>>> import numpy as np
>>> w_LNTS = np.full((2, 3, 4, 4), 0.25, np.float32)
>>> view = head_view(w_LNTS, ["a", "b", "c", "d"])
>>> view.sections[0].sizes
(2, 3, 4, 4)
>>> html = view.to_html()
>>> html.startswith("<!DOCTYPE html>") and "cdn" not in html.lower()
True

**Masked positions** (keys a query may not see: the decoder's future, padding) are drawn
hatched and get no lines, so that "allowed but given no weight" and "never allowed" look
different. Pass ``mask=`` (``[T, S]``, True = may attend, as everywhere in this package),
``causal=True`` or ``pad_token=``.

**Size.** Weights are stored as 8-bit levels (``round(255 w)``, so a shown weight is within
1/510 of the true one) and base64-encoded, with one byte per ``[T, S]`` entry for the mask: a
section takes ``4/3 (L N + 1) T S`` bytes, plus its labels, plus the page itself (under
:data:`PAGE_BYTES`, 40 KB). :meth:`AttentionView.file_bytes` gives that bound, and a view
refuses to be larger than :data:`MAX_FILE_BYTES` (16 MB: three kinds of 12 layers, 16 heads
and 128 by 128 tokens take 12.9 MB); past that, pass fewer layers or heads. Long sentences keep
every token hoverable but label only every k-th one (``max_labels``).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import pathlib
import uuid
from collections.abc import Mapping, Sequence
from importlib import resources

import numpy as np

from attention._checks import (
    check_floating,
    check_mask,
    check_positive_int,
    is_int,
    shape_str,
)
from attention.inspection.analysis import check_attention_maps, check_token_labels

MAX_FILE_BYTES = 16_000_000
"""The largest view file allowed, 16 MB: room for three kinds of attention of 12 layers,
16 heads and 128 by 128 tokens (12.9 MB with labels of 200 characters)."""

PAGE_BYTES = 40_000
"""An upper bound on everything in a view's HTML but its data (weights, masks, labels)."""

VIEWS = ("head", "model")

# Names of the kinds of attention_maps, as a view's section titles.
TRANSLATION_SECTIONS = {
    "encoder_self": "encoder self-attention",
    "decoder_self": "decoder self-attention",
    "decoder_cross": "cross-attention",
}

_WEIGHT_TOLERANCE = 1e-3  # float32 softmax rows may overshoot 1 by rounding, never by more.


def _asset(name: str) -> str:
    return resources.files("attention.inspection").joinpath(name).read_text(encoding="utf-8")


@dataclasses.dataclass(frozen=True, eq=False)
class AttentionSection:
    """One kind of attention of a view: L layers of N heads of ``[T, S]`` weights.

    Made by :func:`attention_section`, which checks its arguments. Fields:
      name: the title shown above it ("cross-attention").
      weights: float32 ``[L, N, T, S]``, each in [0, 1].
      query_tokens: T labels (the left column of the head view, the rows of a heatmap).
      key_tokens: S labels (the right column, the columns of a heatmap).
      allowed: bool ``[T, S]``, True where query t may attend key s (all True if nothing
        is masked).
    """

    name: str
    weights: np.ndarray
    query_tokens: list[str]
    key_tokens: list[str]
    allowed: np.ndarray

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """``(L, N, T, S)``."""
        return tuple(int(d) for d in self.weights.shape)

    def levels(self) -> np.ndarray:
        """The weights as the view stores them: uint8 ``round(255 w)``, masked entries 0."""
        levels = np.rint(self.weights * 255.0)
        return np.where(self.allowed, levels, 0).astype(np.uint8)


def _as_layers(name: str, layers) -> np.ndarray:
    """``layers`` (a list of L ``[N, T, S]`` arrays, or one ``[L, N, T, S]`` array) as float32
    ``[L, N, T, S]``, or a one-line TypeError/ValueError naming the shapes."""
    if hasattr(layers, "shape"):
        check_floating(name, layers)
        if layers.ndim != 4:
            hint = (" Pick one sentence of a batch first, e.g. maps['decoder_cross'][:, b]."
                    if layers.ndim == 5 else
                    " A single layer is layers[None]; a single head is layers[None, None].")
            raise ValueError(
                f"{name} must have shape [L, N, T, S] (layers, heads, queries, keys) or be a "
                f"list of L arrays [N, T, S], got shape {shape_str(layers.shape)}.{hint}"
            )
        stacked = np.asarray(layers, dtype=np.float32)
    else:
        if isinstance(layers, (str, bytes, Mapping)) or not isinstance(layers, Sequence):
            raise TypeError(
                f"{name} must be a list of L arrays [N, T, S] or one array [L, N, T, S], "
                f"got {type(layers).__name__}."
            )
        if len(layers) == 0:
            raise ValueError(f"{name} is empty; give at least one layer of [N, T, S] weights.")
        for i, layer in enumerate(layers):
            check_floating(f"{name}[{i}]", layer)
            if layer.ndim != 3:
                hint = (" Pick one sentence of the batch first, e.g. layer[b]."
                        if layer.ndim == 4 else "")
                raise ValueError(
                    f"{name}[{i}] must have shape [N, T, S] (heads, queries, keys), got "
                    f"{shape_str(layer.shape)}.{hint}"
                )
            if layer.shape != layers[0].shape:
                raise ValueError(
                    f"{name}[{i}] has shape {shape_str(layer.shape)} but {name}[0] has "
                    f"{shape_str(layers[0].shape)}; every layer must have the same [N, T, S]."
                )
        stacked = np.stack([np.asarray(layer, dtype=np.float32) for layer in layers])
    if stacked.size == 0:
        raise ValueError(f"{name} has an empty axis: shape {shape_str(stacked.shape)}.")
    finite = np.isfinite(stacked)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{name} (shape [L, N, T, S] = {shape_str(stacked.shape)}) holds "
            f"{int((~finite).sum())} NaN or infinite weight(s), the first at [l, n, t, s] = "
            f"{list(where)}; weights must be finite (did a fully masked row use -inf?)."
        )
    low, high = float(stacked.min()), float(stacked.max())
    if low < -_WEIGHT_TOLERANCE or high > 1 + _WEIGHT_TOLERANCE:
        raise ValueError(
            f"{name} (shape {shape_str(stacked.shape)}) must hold attention weights in [0, 1], "
            f"got values from {low:.4g} to {high:.4g}; pass softmax weights, not scores."
        )
    return np.clip(stacked, 0.0, 1.0)


def attention_section(
    name: str,
    layers,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str] | None = None,
    *,
    mask=None,
    causal: bool = False,
    pad_token: str | None = None,
) -> AttentionSection:
    """Check one kind of attention for a view and hold it as an :class:`AttentionSection`.

    Args:
      name: its title, e.g. "decoder self-attention".
      layers: the weights of every layer: a list of L arrays ``[N, T, S]`` (NumPy or JAX), or
        one array ``[L, N, T, S]``. Row t of a head is query t's distribution over the keys.
      query_tokens: the T labels of the queries.
      key_tokens: the S labels of the keys; None for self-attention (then S = T).
      mask: optional bool ``[T, S]`` (or broadcastable to it), True where query t may see
        key s; the others are drawn masked.
      causal: also mask the future, keys s > t (a decoder's self-attention; needs S = T).
      pad_token: also mask the rows and the columns whose token equals it.

    Raises:
      TypeError: ``layers`` not arrays, a non-floating dtype, tokens that are not a list.
      ValueError: a wrong rank or layers of different shapes (naming the shapes), token lists
        whose lengths do not match T and S, NaN or infinite weights, weights outside [0, 1],
        a mask that does not broadcast to ``[T, S]``, ``causal`` with S != T.

    >>> import numpy as np
    >>> section = attention_section("self", [np.eye(3, dtype=np.float32)[None]], list("abc"),
    ...                             causal=True)
    >>> section.sizes, section.allowed[0].tolist()
    ((1, 1, 3, 3), [True, False, False])
    """
    weights_LNTS = _as_layers("layers", layers)
    _, _, T, S = weights_LNTS.shape
    shape = weights_LNTS.shape
    if query_tokens is None:
        raise TypeError("query_tokens must be a sequence of T token strings, got None.")
    query = check_token_labels("query_tokens", query_tokens, T, "T", shape)
    if key_tokens is None:
        if S != T:
            raise ValueError(
                f"key_tokens is None (self-attention) but the weights have T={T} queries and "
                f"S={S} keys (shape {shape_str(shape)}); pass key_tokens for cross-attention."
            )
        key = list(query)
    else:
        key = check_token_labels("key_tokens", key_tokens, S, "S", shape)
    allowed_TS = np.ones((T, S), dtype=bool)
    if mask is not None:
        if not hasattr(mask, "dtype"):
            mask = np.asarray(mask)
        check_mask(mask, (T, S), "TS")
        allowed_TS &= np.broadcast_to(np.asarray(mask, dtype=bool), (T, S))
    if causal:
        if S != T:
            raise ValueError(
                f"causal=True needs square weights (S = T), got T={T}, S={S} "
                f"(shape {shape_str(shape)})."
            )
        allowed_TS &= np.tril(np.ones((T, T), dtype=bool))
    if pad_token is not None:
        allowed_TS &= np.array([t != pad_token for t in query])[:, None]
        allowed_TS &= np.array([s != pad_token for s in key])[None, :]
    return AttentionSection(str(name), weights_LNTS, query, key, allowed_TS)


class AttentionView:
    """An interactive head view and model view of one or more kinds of attention.

    Shows itself in a notebook (``_repr_html_``); :meth:`save` writes a file that opens in
    any browser; :meth:`to_html` gives the document as a string.

    Args:
      sections: one or more :class:`AttentionSection` (see :func:`attention_section`).
      view: which view opens first, "head" or "model".
      title: a heading above the view.
      max_labels: label at most this many tokens per column (every k-th one beyond), keeping
        every token hoverable.
      min_weight: the head view draws no line for a weight below it (lines that faint are
        invisible, and leaving them out keeps long sentences fast).

    Raises:
      TypeError: a section that is not an :class:`AttentionSection`.
      ValueError: no section, an unknown ``view``, a file larger than :data:`MAX_FILE_BYTES`
        (naming the sizes), a ``min_weight`` outside [0, 1).
    """

    def __init__(
        self,
        sections: AttentionSection | Sequence[AttentionSection],
        *,
        view: str = "head",
        title: str | None = None,
        max_labels: int = 40,
        min_weight: float = 0.01,
    ):
        if isinstance(sections, AttentionSection):
            sections = [sections]
        sections = list(sections)
        if not sections:
            raise ValueError("sections is empty; give at least one AttentionSection.")
        for i, section in enumerate(sections):
            if not isinstance(section, AttentionSection):
                raise TypeError(
                    f"sections[{i}] must be an AttentionSection (see attention_section), got "
                    f"{type(section).__name__}."
                )
        if view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}.")
        self.sections = sections
        self.title = title
        size = self.file_bytes()
        if size > MAX_FILE_BYTES:
            sizes = "; ".join(
                f"{s.name} [L, N, T, S] = {shape_str(s.weights.shape)}" for s in sections
            )
            raise ValueError(
                f"the view would take up to {size} bytes ({sizes}), more than MAX_FILE_BYTES="
                f"{MAX_FILE_BYTES} (e.g. 3 kinds of 12 layers, 16 heads, 128 tokens); pass "
                f"fewer layers or heads."
            )
        if not 0.0 <= float(min_weight) < 1.0:
            raise ValueError(f"min_weight must be a float in [0, 1), got {min_weight!r}.")
        self.view = view
        self.max_labels = check_positive_int("max_labels", max_labels)
        self.min_weight = float(min_weight)

    def __repr__(self) -> str:
        parts = ", ".join(f"{s.name} {list(s.sizes)}" for s in self.sections)
        return f"AttentionView({parts}; [L, N, T, S])"

    def file_bytes(self) -> int:
        """An upper bound on the size of :meth:`save`'s file in bytes (UTF-8): the page, then
        per section ``4/3 (L N + 1) T S`` bytes of base64 and its labels as JSON."""
        total = PAGE_BYTES + (len(self.title.encode()) * 2 if self.title else 0)
        for s in self.sections:
            L, N, T, S = s.sizes
            total += 4 * math.ceil(L * N * T * S / 3) + 4 * math.ceil(T * S / 3)
            total += len(json.dumps([s.name, s.query_tokens, s.key_tokens]))
        return total

    def data(self) -> dict:
        """What the page's script reads: sizes, labels, base64 weight levels and masks."""
        return {
            "title": self.title,
            "view": self.view,
            "maxLabels": self.max_labels,
            "minLevel": int(math.ceil(self.min_weight * 255)),
            "sections": [
                {
                    "name": s.name,
                    "L": s.sizes[0], "N": s.sizes[1], "T": s.sizes[2], "S": s.sizes[3],
                    "queryTokens": s.query_tokens,
                    "keyTokens": s.key_tokens,
                    # [L, N, T, S] row-major, one byte per weight.
                    "levels": base64.b64encode(s.levels().tobytes()).decode("ascii"),
                    "allowed": base64.b64encode(
                        s.allowed.astype(np.uint8).tobytes()
                    ).decode("ascii"),
                }
                for s in self.sections
            ],
        }

    def _fragment(self) -> str:
        """The view as an HTML fragment: a root div with its style, data and script inside.

        The script finds its root through ``document.currentScript`` (not an id lookup, which
        fails where a notebook runs output scripts before attaching them to the page), keeps
        all its names inside a function, and scopes every style under ``.attnview``, so several
        views live on one page. Without JavaScript (an untrusted notebook, GitHub's preview) the
        root shows a line saying what to do instead.
        """
        # "<" escaped everywhere so that no token can close the <script> element early.
        payload = json.dumps(self.data(), separators=(",", ":")).replace("<", "\\u003c")
        uid = "attnview-" + uuid.uuid4().hex[:12]
        title = f"<h3 class='av-title'>{html.escape(self.title)}</h3>" if self.title else ""
        return (
            f"<div class='attnview' id='{uid}'>"
            f"<style>{_asset('_view.css')}</style>{title}"
            "<p class='av-nojs'>This interactive attention view needs JavaScript: run the cell "
            "(or trust the notebook), or open the saved .html file in a browser.</p>"
            f"<script type='application/json' class='av-data'>{payload}</script>"
            f"<script>{_asset('_view.js')}</script>"
            "</div>"
        )

    def to_html(self, *, full_page: bool = True) -> str:
        """The view as HTML: a whole document (default), or the fragment a notebook shows."""
        fragment = self._fragment()
        if not full_page:
            return fragment
        title = html.escape(self.title or "attention view")
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{title}</title></head><body style='margin:16px'>{fragment}</body></html>\n"
        )

    def _repr_html_(self) -> str:
        return self.to_html(full_page=False)

    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        """Write the whole document to ``path`` (UTF-8) and return the path."""
        path = pathlib.Path(path)
        path.write_text(self.to_html(), encoding="utf-8")
        return path


def head_view(
    layers,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str] | None = None,
    *,
    name: str = "attention",
    mask=None,
    causal: bool = False,
    pad_token: str | None = None,
    title: str | None = None,
    **options,
) -> AttentionView:
    """A view of one kind of attention, opening on the head view.

    ``layers`` is any list of L layers of ``[N, T, S]`` weights (or one ``[L, N, T, S]``
    array): a translation model's maps for one sentence, ``maps["encoder_self"][:, b]``, or
    a decoder-only model's causal self-attention (``causal=True``). The other arguments are
    those of :func:`attention_section`; ``options`` go to :class:`AttentionView`.

    Raises:
      As :func:`attention_section` and :class:`AttentionView`.
    """
    section = attention_section(name, layers, query_tokens, key_tokens, mask=mask,
                                causal=causal, pad_token=pad_token)
    return AttentionView([section], title=title, **options)


def model_view(
    layers,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str] | None = None,
    **kwargs,
) -> AttentionView:
    """As :func:`head_view`, opening on the model view (every layer by every head)."""
    return head_view(layers, query_tokens, key_tokens, view="model", **kwargs)


def translation_view(
    maps: Mapping,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    *,
    example: int = 0,
    pad_token: str | None = None,
    title: str | None = None,
    **options,
) -> AttentionView:
    """The three kinds of attention of one sentence pair of a translation model.

    Args:
      maps: the dict of ``attention_maps(model, src, tgt)`` (or ``pair_attention(...)
        ["attention_maps"]``): ``encoder_self [L, B, N, S, S]``, ``decoder_self
        [L, B, N, T, T]``, ``decoder_cross [L, B, N, T, S]``.
      source_tokens: the S source labels of sentence ``example``.
      target_tokens: the T labels of the decoder's input (``<s>`` first).
      example: which sentence of the batch B.
      pad_token: mask padding rows and columns.
      title: a heading; options: as :class:`AttentionView`.

    The decoder's self-attention is drawn causal (its future masked).

    Raises:
      As :func:`attention.inspection.analysis.check_attention_maps` and
      :func:`attention_section`; ValueError for an ``example`` outside ``0..B-1``.

    >>> import numpy as np
    >>> from attention.inspection.analysis import MAP_KINDS
    >>> sizes = dict(L=1, B=1, N=2, T=3, S=4)
    >>> maps = {kind: np.full([sizes[a] for a in axes], 1 / sizes[axes[-1]], np.float32)
    ...         for kind, axes in MAP_KINDS.items()}
    >>> view = translation_view(maps, list("abcd"), ["<s>", "x", "y"])
    >>> [section.name for section in view.sections]
    ['encoder self-attention', 'decoder self-attention', 'cross-attention']
    """
    _, B, _, T, S = check_attention_maps(maps)
    if not (is_int(example) and 0 <= example < B):
        raise ValueError(f"example must be an int in 0..{B - 1} (B={B}), got {example!r}.")
    cross_shape = maps["decoder_cross"].shape
    for name, tokens, length, axis in (("source_tokens", source_tokens, S, "S"),
                                       ("target_tokens", target_tokens, T, "T")):
        if tokens is None:
            raise TypeError(f"{name} must be a sequence of {axis}={length} token strings, "
                            f"got None.")
        check_token_labels(name, tokens, length, axis, cross_shape)
    axes = {"encoder_self": (source_tokens, None, False),
            "decoder_self": (target_tokens, None, True),
            "decoder_cross": (target_tokens, source_tokens, False)}
    sections = []
    for kind, (query, key, causal) in axes.items():
        weights_LNTS = np.asarray(maps[kind], dtype=np.float32)[:, int(example)]
        try:
            sections.append(attention_section(TRANSLATION_SECTIONS[kind], weights_LNTS, query,
                                              key, causal=causal, pad_token=pad_token))
        except (TypeError, ValueError) as error:
            raise type(error)(f"maps[{kind!r}]: {error.args[0]}") from None
    return AttentionView(sections, title=title, **options)
