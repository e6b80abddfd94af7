"""Step 26: an interactive attention explorer for Jupyter, built from ipywidgets' own controls.

Pick a sentence, a layer, a head (or the mean of the heads, or all of them) and a kind of
attention (encoder self, decoder self, cross, or cross drawn as an alignment), and the picture
follows. Optionally, step through a beam-search decode: the beams alive at each step with their
scores, and where each beam's newest token looked in the source.

The explorer takes precomputed data, not a model, so it runs anywhere a notebook does (and can
show the attention of a model that is no longer in memory):

* ``examples``: a list of dicts, one per sentence::

      {"source_tokens": [...S strings], "target_tokens": [...T strings],
       "attention_maps": {"encoder_self": [L, B, N, S, S], "decoder_self": [L, B, N, T, T],
                          "decoder_cross": [L, B, N, T, S]},
       "index": b}     # optional: which sentence of the batch B (default 0)

  where ``attention_maps`` is what the transformer's ``attention_maps(model, src, tgt)``
  returns;
* ``beam_steps`` (optional): a list of dicts, one per decoding step::

      {"step": i, "beams": [(tokens, score), ...],
       "cross_attention": [K, S]}   # optional: per beam, its newest token's weights over
                                    # the source (e.g. the last layer's mean over heads)

Everything is drawn with matplotlib into PNG images shown by an ``ipywidgets.Image``: no
JavaScript beyond what ipywidgets itself ships, nothing fetched from the internet, and the
same pictures whatever matplotlib backend the notebook uses.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import numpy as np

from attention._checks import check_explorer_args
from attention.inspection.analysis import select_map
from attention.inspection.plotting import plot_alignment, plot_attention, plot_heads

KINDS = (
    ("encoder self", "encoder_self"),
    ("decoder self", "decoder_self"),
    ("cross", "decoder_cross"),
    ("cross: alignment", "alignment"),
)
_KIND_NAMES = {value: label for label, value in KINDS}


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _sentence_label(i: int, tokens: list[str], width: int = 60) -> str:
    text = " ".join(tokens)
    return f"{i}: {text if len(text) <= width else text[: width - 1] + '…'}"


class AttentionExplorer:
    """Widgets to browse precomputed attention maps (and, optionally, a beam search).

    Args:
      examples: a non-empty list of ``{"source_tokens", "target_tokens", "attention_maps"}``
        dicts (see the module docstring), optionally with ``"index"`` into the batch.
      beam_steps: optional list of ``{"step", "beams": [(tokens, score)], "cross_attention"}``.
      beam_source_tokens: the S source tokens of the beam-searched sentence, to label the
        beams' cross-attention.
      pad_token: the padding token, drawn masked.
      max_labels: at most this many token labels per axis.

    Attributes (the controls, to read or set from code):
      example, kind, layer, head: the main view's widgets; ``head.value`` is an int, ``"mean"``
        or ``"all"``.
      step: the beam-search step slider (None without ``beam_steps``).
      figure, beam_figure: the matplotlib figures shown now.
      image, beam_image, beam_table: the widgets showing them.
      widget: the whole explorer; a notebook cell that ends with the explorer shows it.

    Raises:
      TypeError, KeyError, ValueError: malformed examples or beam steps, naming the entry;
        a ``max_labels`` that is not a positive int.

    >>> import numpy as np
    >>> from attention.inspection.analysis import MAP_KINDS
    >>> sizes = dict(L=2, B=1, N=3, T=4, S=5)
    >>> maps = {kind: np.full([sizes[a] for a in axes], 1 / sizes[axes[-1]], np.float32)
    ...         for kind, axes in MAP_KINDS.items()}
    >>> explorer = AttentionExplorer([{"source_tokens": list("abcde"),
    ...                                "target_tokens": list("wxyz"), "attention_maps": maps}])
    >>> explorer.head.value = 2
    >>> explorer.current_title()
    'sentence 0: cross, layer 1, head 2'
    """

    def __init__(
        self,
        examples: Sequence[Mapping],
        beam_steps: Sequence[Mapping] | None = None,
        *,
        beam_source_tokens: Sequence[str] | None = None,
        pad_token: str | None = None,
        max_labels: int = 30,
    ):
        self.examples, self.max_labels, self.beam_steps = check_explorer_args(
            examples, max_labels, beam_steps, beam_source_tokens)
        self.pad_token = pad_token
        self.figure = None
        self.beam_figure = None
        self._quiet = False  # set while several controls change at once: draw once, after.

        first = self.examples[0]
        L, _, N, _, _ = first["sizes"]
        self.example = widgets.Dropdown(
            options=[
                (_sentence_label(i, ex["source_tokens"]), i) for i, ex in enumerate(self.examples)
            ],
            value=0,
            description="sentence",
            layout=widgets.Layout(width="60%"),
        )
        self.kind = widgets.ToggleButtons(
            options=KINDS, value="decoder_cross", description="attention"
        )
        self.layer = widgets.IntSlider(
            value=L - 1, min=0, max=L - 1, description="layer", continuous_update=False
        )
        self.head = widgets.Dropdown(
            options=self._head_options(N), value="mean", description="head"
        )
        self.image = widgets.Image(format="png")
        for control in (self.kind, self.layer, self.head):
            control.observe(self._on_change, names="value")
        self.example.observe(self._on_example, names="value")
        parts = [
            self.example,
            self.kind,
            widgets.HBox([self.layer, self.head]),
            self.image,
        ]

        self.step = None
        self.beam_table = widgets.HTML()
        self.beam_image = widgets.Image(format="png")
        if beam_steps is not None:
            self.beam_source_tokens = (
                None if beam_source_tokens is None else [str(t) for t in beam_source_tokens]
            )
            last = len(self.beam_steps) - 1
            self.step = widgets.IntSlider(
                value=0, min=0, max=last, description="step", continuous_update=True
            )
            # Play and jslink ship with ipywidgets; they animate the slider in the browser.
            self.play = widgets.Play(value=0, min=0, max=last, interval=900, description="play")
            widgets.jslink((self.play, "value"), (self.step, "value"))
            self.step.observe(self._on_step, names="value")
            parts += [
                widgets.HTML("<b>beam search</b>"),
                widgets.HBox([self.play, self.step]),
                self.beam_table,
                self.beam_image,
            ]
            self._draw_beam_step()
        self.widget = widgets.VBox(parts)
        self._draw()

    # --- notebook display ---------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # --- the main view ------------------------------------------------------------------

    @staticmethod
    def _head_options(N: int) -> list[tuple[str, object]]:
        return [("mean of heads", "mean"), ("all heads", "all")] + [
            (f"head {n}", n) for n in range(N)
        ]

    def _on_example(self, change) -> None:
        L, _, N, _, _ = self.examples[change["new"]]["sizes"]
        self._quiet = True
        try:
            if self.layer.max != L - 1:
                self.layer.value = min(self.layer.value, L - 1)
                self.layer.max = L - 1
            if len(self.head.options) != N + 2:
                head = self.head.value
                self.head.options = self._head_options(N)
                self.head.value = head if head in ("mean", "all") or head < N else "mean"
        finally:
            self._quiet = False
        self._draw()

    def _on_change(self, change) -> None:
        if not self._quiet:
            self._draw()

    def current_title(self) -> str:
        """The title of the view the controls select."""
        head = self.head.value
        which = {"mean": "mean of heads", "all": "all heads"}.get(head, f"head {head}")
        if self.kind.value == "alignment" and head == "all":
            which = "mean of heads"
        return (
            f"sentence {self.example.value}: {_KIND_NAMES[self.kind.value]}, "
            f"layer {self.layer.value}, {which}"
        )

    def _draw(self) -> None:
        example = self.examples[self.example.value]
        maps, index = example["attention_maps"], example["index"]
        source, target = example["source_tokens"], example["target_tokens"]
        kind, layer, head = self.kind.value, self.layer.value, self.head.value
        title = self.current_title()
        if kind == "alignment":
            weights_TS = select_map(
                maps,
                "decoder_cross",
                example=index,
                layer=layer,
                head=head if isinstance(head, int) else None,
            )
            fig = plot_alignment(weights_TS, source, target, pad_token=self.pad_token, title=title)
        else:
            rows, cols = {
                "encoder_self": (source, source),
                "decoder_self": (target, target),
                "decoder_cross": (target, source),
            }[kind]
            # The decoder may not look ahead: show the future as masked, not as zeros.
            mask = None
            if kind == "decoder_self":
                mask = np.tril(np.ones((len(rows), len(rows)), dtype=bool))
            common = dict(
                query_tokens=rows, key_tokens=cols, mask=mask, pad_token=self.pad_token, title=title
            )
            if head == "all":
                weights_NTS = np.asarray(maps[kind][layer, index], dtype=np.float32)
                fig = plot_heads(weights_NTS, max_labels=max(self.max_labels // 2, 1), **common)
            else:
                weights_TS = select_map(
                    maps, kind, example=index, layer=layer, head=None if head == "mean" else head
                )
                fig = plot_attention(weights_TS, max_labels=self.max_labels, **common)
        self.figure = fig
        self.image.value = _png(fig)

    # --- the beam search ----------------------------------------------------------------

    def _on_step(self, change) -> None:
        self._draw_beam_step()

    def _draw_beam_step(self) -> None:
        step = self.beam_steps[self.step.value]
        rows = []
        for rank, (tokens, score) in enumerate(step["beams"]):
            text = html.escape(" ".join(tokens))
            if rank == 0:
                text = f"<b>{text}</b>"
            rows.append(
                f"<tr><td>{rank}</td><td style='text-align:right'>{score:.3f}</td>"
                f"<td style='text-align:left'>{text}</td></tr>"
            )
        self.beam_table.value = (
            f"<p>step {html.escape(str(step['step']))}: {len(step['beams'])} beam(s), "
            f"best first</p><table><tr><th>beam</th><th>log-prob</th><th>tokens</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        cross = step["cross_attention"]
        if cross is None:
            self.beam_figure = None
            self.beam_image.value = b""
            self.beam_image.layout.display = "none"
            return
        labels = [
            f"{rank}: {tokens[-1] if tokens else ''}"
            for rank, (tokens, _) in enumerate(step["beams"])
        ]
        fig = plot_attention(
            cross,
            query_tokens=labels,
            key_tokens=self.beam_source_tokens,
            pad_token=self.pad_token if self.beam_source_tokens else None,
            title=f"step {step['step']}: newest token's attention",
            max_labels=self.max_labels,
            xlabel="source",
            ylabel="beam: newest token",
        )
        self.beam_figure = fig
        self.beam_image.value = _png(fig)
        self.beam_image.layout.display = None
