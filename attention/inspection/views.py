"""Step 26a: attention views for the browser, a head view and a model view in one HTML file.

One self-contained HTML document (weights, JavaScript and style inline, nothing fetched), so a
view works in JupyterLab, Notebook, VS Code, Colab (``_repr_html_``), the course's website and
any browser; the matplotlib explorer (:mod:`attention.inspection.explorer`) needs a kernel.

* **Head view** (as bertviz): query tokens left, key tokens right, one line per selected head
  with opacity ``w[t, s]``; hover a token to keep its lines, click a head's colour to toggle.
* **Model view**: layers by heads as small heatmaps; click one to enlarge it.

A view holds one *section* per kind of attention (encoder self ``[S, S]``, decoder self
``[T, T]``, cross ``[T, S]``, a decoder-only model's self-attention): L layers of
``[N, T, S]`` weights with both axes' labels (:func:`attention_section`).

>>> import numpy as np
>>> w_LNTS = np.full((2, 3, 4, 4), 0.25, np.float32)
>>> view = head_view(w_LNTS, ["a", "b", "c", "d"])
>>> view.sections[0].sizes
(2, 3, 4, 4)
>>> html = view.to_html()
>>> html.startswith("<!DOCTYPE html>") and "cdn" not in html.lower()
True

Masked positions (``mask=`` ``[T, S]``, True = may attend; ``causal=True``; ``pad_token=``)
are hatched and get no lines. **Size**: weights are 8-bit levels (``round(255 w)``, within
1/510) in base64, plus one byte per ``[T, S]`` mask entry: ``4/3 (L N + 1) T S`` bytes per
section, plus labels and the page (:data:`PAGE_BYTES`). :meth:`AttentionView.file_bytes` gives
the bound; a view larger than :data:`MAX_FILE_BYTES` is refused (pass fewer layers or heads).
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
    check_positive_int,
    check_section_args,
    check_translation_view_args,
    shape_str,
)

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
    weights_LNTS, query, key = check_section_args(layers, query_tokens, key_tokens, mask, causal)
    _, _, T, S = weights_LNTS.shape
    allowed_TS = np.ones((T, S), dtype=bool)
    if mask is not None:
        allowed_TS &= np.broadcast_to(np.asarray(mask, dtype=bool), (T, S))
    if causal:
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
      As :func:`attention._checks.check_attention_maps` and
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
    check_translation_view_args(maps, source_tokens, target_tokens, example)
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
