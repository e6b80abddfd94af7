"""The list of exercises: names, notebooks, what the student defines, and how to check it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from attention.exercises import checkers
from attention.exercises._checking import CheckResult


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise.

    Attributes:
      name: short id, used as the CSV column and in ``solution_source``.
      title: what the notebook is called.
      notebook: file name under ``notebooks/exercises/`` (without extension).
      names: the top-level names the student defines (functions, and for 00 the answer).
      check: the checker; called with the student's objects in the order of ``names``.
      minutes: how long it usually takes (for the teacher's guide).
    """

    name: str
    title: str
    notebook: str
    names: tuple[str, ...]
    check: Callable[..., CheckResult]
    minutes: int
    optional: tuple[str, ...] = ()

    def check_namespace(self, namespace: dict) -> CheckResult:
        """Run the checker on the objects a submission defined (the grader's entry point)."""
        missing = [n for n in self.names if n not in namespace and n not in self.optional]
        if missing:
            return CheckResult(
                self.name, False, f"not submitted: {', '.join(missing)} not defined.",
                "not implemented",
            )
        return self.check(*(namespace.get(n) for n in self.names))


EXERCISES: dict[str, Exercise] = {
    e.name: e
    for e in (
        Exercise("combine_embeddings", "Combining two embeddings", "00_combining_embeddings",
                 ("combine_embeddings", "INTERACTION_ANSWER"),
                 checkers.check_combine_embeddings, 15, optional=("INTERACTION_ANSWER",)),
        Exercise("dot_product_scores", "Dot-product scores", "01_dot_product_scores",
                 ("dot_product_scores",), checkers.check_dot_product_scores, 20),
        Exercise("stable_softmax", "A numerically stable softmax", "02_stable_softmax",
                 ("stable_softmax",), checkers.check_stable_softmax, 20),
        Exercise("masking", "Causal and padding masks, masked softmax", "03_masking",
                 ("causal_mask", "padding_mask", "masked_softmax"), checkers.check_masking, 35),
        Exercise("scaled_dot_product_attention", "Scaled dot-product attention",
                 "04_scaled_dot_product_attention", ("scaled_dot_product_attention",),
                 checkers.check_scaled_dot_product_attention, 30),
        Exercise("split_merge_heads", "Splitting and merging heads", "05_split_and_merge_heads",
                 ("split_heads", "merge_heads"), checkers.check_split_merge_heads, 15),
        Exercise("multi_head_attention", "Multi-head attention", "06_multi_head_attention",
                 ("multi_head_attention",), checkers.check_multi_head_attention, 35),
        Exercise("sinusoidal_positions", "Sinusoidal positional encoding",
                 "07_sinusoidal_positions", ("sinusoidal_positions",),
                 checkers.check_sinusoidal_positions, 20),
        Exercise("causal_self_attention", "The decoder's causal self-attention",
                 "08_causal_self_attention", ("causal_self_attention",),
                 checkers.check_causal_self_attention, 30),
        Exercise("greedy_decoding", "Greedy decoding", "09_greedy_decoding",
                 ("greedy_decode",), checkers.check_greedy_decoding, 30),
        Exercise("label_smoothing", "Label-smoothed cross-entropy", "10_label_smoothing",
                 ("label_smoothed_loss",), checkers.check_label_smoothing, 25),
        Exercise("grouped_query_attention", "Grouped-query attention",
                 "11_grouped_query_attention", ("grouped_query_attention",),
                 checkers.check_grouped_query_attention, 30),
        Exercise("rotary_positions", "Rotary position embeddings (RoPE)",
                 "12_rotary_positions", ("apply_rope", "rope_attention"),
                 checkers.check_rotary_positions, 35),
        Exercise("sliding_window_mask", "A sliding-window mask", "13_sliding_window_mask",
                 ("sliding_window_mask",), checkers.check_sliding_window_mask, 15),
    )
}
