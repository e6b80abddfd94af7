"""Inspection, steps 24-26: what a model's attention heads do, in numbers and pictures.

Read the modules in this order (notebook 08)::

    reading-map:start (python -m attention._reading_map --write)
    24   analysis.py  reading attention maps with numbers, the schema and the statistics that draw
                      nothing.
    24a  heads.py     head detectors, which heads look back one token, at repeats, by induction, at
                      the sink.
    25   plotting.py  pictures of attention: heatmaps, head grids, alignments, head summaries,
                      curves.
    26   explorer.py  an interactive attention explorer for Jupyter, built from ipywidgets' own
                      controls.
    26a  views.py     attention views for the browser, a head view and a model view in one HTML
                      file.
    reading-map:end
"""

from attention.inspection.analysis import (
    MAP_KINDS,
    alignment_accuracy,
    check_attention_maps,
    head_entropy,
    mean_attention_distance,
    select_map,
)
from attention.inspection.heads import (
    SCORES,
    duplicate_token_score,
    head_scores,
    head_table,
    induction_score,
    plot_head_scores,
    previous_token_score,
    repeated_random_tokens,
    sink_score,
)
from attention.inspection.plotting import (
    plot_alignment,
    plot_attention,
    plot_head_summary,
    plot_heads,
    plot_layers,
    plot_training_curves,
    plot_translation_attention,
)
from attention.inspection.views import (
    AttentionView,
    attention_section,
    head_view,
    model_view,
    translation_view,
)

__all__ = [
    "AttentionView",
    "attention_section",
    "head_view",
    "model_view",
    "translation_view",
    "MAP_KINDS",
    "check_attention_maps",
    "select_map",
    "head_entropy",
    "mean_attention_distance",
    "alignment_accuracy",
    "SCORES",
    "previous_token_score",
    "duplicate_token_score",
    "induction_score",
    "sink_score",
    "repeated_random_tokens",
    "head_scores",
    "head_table",
    "plot_head_scores",
    "plot_attention",
    "plot_heads",
    "plot_layers",
    "plot_translation_attention",
    "plot_alignment",
    "plot_head_summary",
    "plot_training_curves",
]
