# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 10: label-smoothed cross-entropy
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`07_training_a_toy_translator`](../07_training_a_toy_translator.ipynb) | ★★☆ medium | about 25 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# The paper trains with label smoothing `eps = 0.1` (section 5.4): the one-hot target is
# replaced by
#
#     q(v) = (1 - eps) * [v == target] + eps / V
#
# and the loss is the cross-entropy `-sum_v q(v) log p(v)`, `p = softmax(logits)`, averaged
# over the **real** target tokens (`targets != pad_id`). Write
# `label_smoothed_loss(logits [B, T, V], targets [B, T], label_smoothing, pad_id)` returning
# that mean, one number. Large logits must not give NaN.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_label_smoothing

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# `jax.nn.log_softmax(logits, axis=-1)` gives log p without overflow; `jax.nn.one_hot(targets,
# V)` the one-hot target.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# Build q, take -sum(q * log p) over the vocabulary, then average over the positions where
# targets != pad_id (sum of the masked losses / number of real tokens).
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Where the smoothing mass goes is a convention: eps / V on every word (the package) or eps / (V
# - 1) on the wrong words (fairseq). Both pass; the checker tells you which one you wrote.
#
# </details>


# %% tags=["exercise"]
def label_smoothed_loss(logits, targets, label_smoothing=0.1, pad_id=0):
    """Mean label-smoothed cross-entropy over the targets that are not pad_id."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_label_smoothing(label_smoothed_loss)
