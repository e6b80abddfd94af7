"""The list of exercises, in teaching order: one module per exercise holds its checker, its
known mistakes and its entry (name, title, notebook, the names a student defines, minutes)."""

from __future__ import annotations

import importlib

from attention.exercises._checking import Exercise

# Teaching order; a new exercise is one module ``exNN_name.py`` and one line here.
MODULE_NAMES = (
    "ex00_combining_embeddings",
    "ex01_dot_product_scores",
    "ex02_stable_softmax",
    "ex03_masking",
    "ex04_scaled_dot_product_attention",
    "ex05_split_and_merge_heads",
    "ex06_multi_head_attention",
    "ex07_sinusoidal_positions",
    "ex08_causal_self_attention",
    "ex09_greedy_decoding",
    "ex10_label_smoothing",
    "ex11_grouped_query_attention",
    "ex12_rotary_positions",
    "ex13_sliding_window_mask",
    "ex14_layer_norm",
    "ex15_encoder_layer",
    "ex16_scaling_experiment",
    "ex17_qk_norm_soft_cap",
    "ex18_streaming_cache",
    "ex19_linear_attention_recurrent",
)
MODULES = tuple(importlib.import_module(f"attention.exercises.{name}") for name in MODULE_NAMES)
EXERCISES: dict[str, Exercise] = {m.EXERCISE.name: m.EXERCISE for m in MODULES}

__all__ = ["EXERCISES", "Exercise", "MODULES", "MODULE_NAMES"]
