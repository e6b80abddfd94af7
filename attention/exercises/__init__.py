"""Classroom exercises with automatic feedback.

Each exercise notebook in ``notebooks/exercises/`` leaves a function body blank; the cell after
it calls a checker from here, which runs the student's function on inputs with a different size
on every axis, compares it with the package and explains the first problem found::

    from attention.exercises import check_dot_product_scores
    check_dot_product_scores(dot_product_scores)   # -> CheckResult, shown as a coloured box

A checker never raises: a blank still raising ``NotImplementedError`` gives a result with
``status == "not implemented"`` ("not implemented yet: ..."), any other exception from the
student's code is reported in the message. Model solutions are in
:mod:`attention.exercises.solutions` (for teachers); ``python -m attention.exercises.grade``
grades a folder of submissions (see ``docs/teachers.md``).
"""

from attention.exercises._checking import CheckResult
from attention.exercises.checkers import (
    check_causal_self_attention,
    check_combine_embeddings,
    check_dot_product_scores,
    check_greedy_decoding,
    check_grouped_query_attention,
    check_label_smoothing,
    check_masking,
    check_multi_head_attention,
    check_rotary_positions,
    check_scaled_dot_product_attention,
    check_sinusoidal_positions,
    check_sliding_window_mask,
    check_split_merge_heads,
    check_stable_softmax,
)
from attention.exercises.registry import EXERCISES, Exercise

__all__ = [
    "CheckResult",
    "EXERCISES",
    "Exercise",
    "check_combine_embeddings",
    "check_dot_product_scores",
    "check_stable_softmax",
    "check_masking",
    "check_scaled_dot_product_attention",
    "check_split_merge_heads",
    "check_multi_head_attention",
    "check_sinusoidal_positions",
    "check_causal_self_attention",
    "check_greedy_decoding",
    "check_label_smoothing",
    "check_grouped_query_attention",
    "check_rotary_positions",
    "check_sliding_window_mask",
]
