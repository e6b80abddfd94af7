"""Classroom exercises with automatic feedback.

Each exercise notebook in ``notebooks/exercises/`` leaves a function body blank; the cell after
it calls a checker from here, which runs the student's function on inputs with a different size
on every axis, compares it with the package and explains the first problem found::

    from attention.exercises import check_dot_product_scores
    check_dot_product_scores(dot_product_scores)   # -> CheckResult, shown as a coloured box

A checker never raises: a blank still raising ``NotImplementedError`` gives a result with
``status == "not implemented"`` ("not implemented yet: ..."), any other exception from the
student's code is reported in the message. ``attention grade`` grades a folder of submissions,
each in a confined worker whose raw outputs the checkers judge in the grader's own process
(:mod:`~attention.exercises.worker`, :mod:`~attention.exercises.remote`,
:mod:`~attention.exercises.sandbox`; ``docs/teachers.md``). The model solutions are not in the
package: they are in ``teachers/solutions.py`` of the source checkout.
"""

from attention.exercises._checking import (
    CheckResult,
    Exercise,  # noqa: I001
)
from attention.exercises.ex00_combining_embeddings import check_combine_embeddings
from attention.exercises.ex01_dot_product_scores import check_dot_product_scores
from attention.exercises.ex02_stable_softmax import check_stable_softmax
from attention.exercises.ex03_masking import check_masking
from attention.exercises.ex04_scaled_dot_product_attention import check_scaled_dot_product_attention
from attention.exercises.ex05_split_and_merge_heads import check_split_merge_heads
from attention.exercises.ex06_multi_head_attention import check_multi_head_attention
from attention.exercises.ex07_sinusoidal_positions import check_sinusoidal_positions
from attention.exercises.ex08_causal_self_attention import check_causal_self_attention
from attention.exercises.ex09_greedy_decoding import check_greedy_decoding
from attention.exercises.ex10_label_smoothing import check_label_smoothing
from attention.exercises.ex11_grouped_query_attention import check_grouped_query_attention
from attention.exercises.ex12_rotary_positions import check_rotary_positions
from attention.exercises.ex13_sliding_window_mask import check_sliding_window_mask
from attention.exercises.ex14_layer_norm import check_layer_norm
from attention.exercises.ex15_encoder_layer import check_encoder_layer
from attention.exercises.ex16_scaling_experiment import check_scaling_experiment
from attention.exercises.ex17_qk_norm_soft_cap import check_qk_norm_scores
from attention.exercises.ex18_streaming_cache import check_streaming_cache
from attention.exercises.ex19_linear_attention_recurrent import check_linear_attention_step
from attention.exercises.registry import EXERCISES

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
    "check_layer_norm",
    "check_encoder_layer",
    "check_scaling_experiment",
    "check_qk_norm_scores",
    "check_streaming_cache",
    "check_linear_attention_step",
]
