# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 Visualising what the model learned (steps 24-26)
#
# Goals:
#
# 1. Draw the three kinds of attention of one translation (encoder self, decoder self,
#    cross) from the real weights of the trained model of notebook 07.
# 2. Read the cross-attention as an **alignment**: for `svo_to_sov` we know which source word
#    each target word translates, so we can *score* every head against the truth and find
#    the heads that copy the right source word.
# 3. Find heads that **look back** at the previous target word, and summarise all heads with
#    two numbers each: entropy and mean attention distance (`plot_head_summary`).
# 4. Browse everything with the interactive `AttentionExplorer`.
# 5. Ask what attention maps do and do not explain, and test one reading by intervention.

# %%
# %matplotlib inline
import os
import pathlib

import numpy as np
from IPython.display import display

from attention import (
    alignment_accuracy,
    plot_alignment,
    plot_attention,
    plot_head_summary,
    plot_heads,
    plot_translation_attention,
)
from attention.application.course import load_or_train_course_model
from attention.application.translation import pair_attention, translate
from attention.comprehension import check, show_code
from attention.data import make_task, svo_alignment
from attention.data.synthetic import SVO_LEXICON
from attention.inspection.explorer import AttentionExplorer

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
TASK = "svo_to_sov"
print("fast setting:", FAST)

# %% [markdown]
# ## The trained model
#
# Notebook 07 trained a model on `svo_to_sov` and saved it under `runs/`. If you run this
# notebook on its own, the cell below trains the same model with the same recipe (about two
# minutes on a laptop CPU) and saves it there.

# %%
RUN_DIR = pathlib.Path("runs") / ("notebook07_fast" if FAST else "notebook07")
course, message = load_or_train_course_model(RUN_DIR, fast=FAST, task=TASK)
model, tokenizer, config = course.model, course.tokenizer, course.config
print(message)

# %% [markdown]
# ## 1. One translation, three kinds of attention
#
# We feed a test sentence and its reference translation (teacher forcing, as in training)
# and collect every attention weight with `pair_attention`: it encodes the pair as in
# training and calls `attention_maps`, which runs the model with `sow_weights=True` and
# stacks what each layer recorded, `[L, B, N, query, key]`; it also returns the token labels
# of both axes.
#
# Row `t` of the decoder's matrices reads decoder input token `t` (`<s>` at t = 0) and
# produces the *next* target word. In the three panels below the rows are labelled with the
# input tokens; in the alignment pictures further down, with the word being produced.

# %%
test_pairs = make_task(TASK, num_examples=16 if FAST else 64, seed=7)
source, target = max(test_pairs[:20], key=lambda pair: len(pair[0].split()))  # a long one
print("source:   ", source)
print("reference:", target)
print("model:    ", translate(model, tokenizer, [source])[0])

pair = pair_attention(model, tokenizer, [(source, target)])
maps = pair["attention_maps"]
print({kind: value.shape for kind, value in maps.items()})
source_tokens = pair["source_tokens"]
input_tokens = pair["target_tokens"]    # what the decoder reads
output_tokens = pair["output_tokens"]   # what it produces at each row
# Every picture below labelled "section 1's sentence" is batch row 0 of these maps: this pair.
assert maps["decoder_cross"].shape[-1] == len(source_tokens) == len(source.split()) + 1
fig = plot_translation_attention(maps, source_tokens, input_tokens)
display(fig)

# %% [markdown]
# ## 2. Cross-attention as an alignment
#
# The same cross-attention (last layer, mean of the heads), drawn as lines from each target
# word *being produced* to the source words it looked at. A copy task would give parallel
# lines; here the verb jumps to the end and every noun phrase turns around, and the lines
# cross accordingly.

# %%
cross_TS = np.asarray(maps["decoder_cross"][-1, 0].mean(axis=0))
fig = plot_alignment(cross_TS, source_tokens, output_tokens,
                     title="cross-attention, last layer, mean of heads")
display(fig)

# %% [markdown]
# ### Scoring the heads against the true alignment
#
# Every target word except the article `ta` is the translation of exactly one source word
# (through `SVO_LEXICON`); `svo_alignment(source, target)` lists, for each target word, the
# positions of its source word (None for `ta`). For each head, `alignment_accuracy` counts
# how often the word it attends to most while producing a target word is that word's source
# (any occurrence of it), over all of `test_pairs` (64 sentences, 16 in the fast setting),
# batched and padded.

# %%
batch = pair_attention(model, tokenizer, test_pairs)
cross = batch["attention_maps"]["decoder_cross"]  # [L, B, N, T, S]
L, _, N = cross.shape[:3]
true_alignments = [svo_alignment(s, t) for s, t in test_pairs]
head_accuracy = alignment_accuracy(cross, true_alignments)  # [L, N]
scored = sum(row is not None for rows in true_alignments for row in rows)
print(f"fraction of {scored} target words whose most-attended source word is their source:")
for layer in range(L):
    print(f"  layer {layer}: " + "  ".join(f"head {n}: {head_accuracy[layer, n]:.2f}"
                                          for n in range(N)))
best_layer, best_head = np.unravel_index(head_accuracy.argmax(), head_accuracy.shape)
print(f"best: layer {best_layer}, head {best_head}")

# %% [markdown]
# The score, as the package computes it:

# %%
show_code(alignment_accuracy)

# %% [markdown]
# The best head is a **copy head**: to produce a word it looks straight at the source word to
# translate, wherever the reordering put it. Its picture for our sentence:

# %%
fig = plot_attention(maps["decoder_cross"][best_layer, 0, best_head],  # section 1's sentence
                     query_tokens=output_tokens, key_tokens=source_tokens,
                     title=f"cross-attention, layer {best_layer}, head {best_head}",
                     xlabel="source", ylabel="target word being produced")
display(fig)

# %% [markdown]
# ## 3. Heads that look back
#
# The decoder's self-attention tells it where it is in the output: after a noun come its
# adjectives, then `ta` (the end of the noun phrase); after `ta` comes the next phrase's noun,
# a postposition, an adverb or the verb. For each head
# we measure the mean weight on the previous position, then draw all heads of the layer
# where it is largest. Look for heads that look at the token itself (the diagonal), at the
# one before it (just below the diagonal), or jump back to a landmark such as the last `ta`.

# %%
self_weights = batch["attention_maps"]["decoder_self"]  # [L, B, N, T, T]
real_rows = batch["tgt_in"] != config.pad_id            # [B, T]
previous = np.diagonal(self_weights, offset=-1, axis1=3, axis2=4)  # [L, B, N, T-1]
look_back = (previous * real_rows[None, :, None, 1:]).sum(axis=(1, 3)) / real_rows[:, 1:].sum()
for layer in range(L):
    print(f"layer {layer}: weight on the previous word per head", np.round(look_back[layer], 2))
back_layer, back_head = np.unravel_index(look_back.argmax(), look_back.shape)
fig = plot_heads(maps["decoder_self"][back_layer, 0], query_tokens=input_tokens,
                 key_tokens=input_tokens, mask=np.tril(np.ones((len(input_tokens),) * 2, bool)),
                 title=f"decoder self-attention, layer {back_layer}")
display(fig)

# %% [markdown]
# ### All heads at a glance
#
# `plot_head_summary` gives two numbers per head, averaged over the rows: the **entropy** of
# its weights in bits (0 = looks at one token; log2 of the number of keys = spreads evenly)
# and the **mean attention distance** `sum_s w_ts |t - s|` in positions. Low entropy and
# distance 1 in the decoder self-attention is a look-back head. The first test sentence is
# padded to the longest of the batch: the mask keeps only its real rows and keys, so that the
# padding rows do not enter the averages.

# %%
rows_T = np.asarray(real_rows[0])                             # the first sentence's real rows
keys_S = np.asarray(batch["src_tokens"][0] != config.pad_id)  # and its real source tokens
causal = np.tril(np.ones(self_weights.shape[-2:], bool)) & rows_T[:, None]
fig = plot_head_summary(self_weights[:, 0], mask=causal[None, None],
                        title="decoder self-attention heads (first test sentence)")
display(fig)

# %%
fig = plot_head_summary(cross[:, 0], mask=(rows_T[:, None] & keys_S[None, :])[None, None],
                        title="cross-attention heads (first test sentence)")
display(fig)

# %% [markdown]
# ## 4. The attention explorer
#
# `AttentionExplorer` takes precomputed maps (so it works for any model, even one no longer
# in memory) and draws with matplotlib into ipywidgets: pick a sentence, a kind of
# attention, a layer and a head (or their mean, or all of them).
# Its rows are labelled with the decoder's *input* tokens (`<s>` first), so in the alignment
# view each line starts at the word *before* the one being produced.

# %%
examples = [pair_attention(model, tokenizer, [p]) for p in test_pairs[: 2 if FAST else 5]]
explorer = AttentionExplorer(examples)
display(explorer.widget)

# %% [markdown]
# The controls can be set from code too; the figure follows:

# %%
explorer.kind.value = "alignment"
explorer.head.value = int(best_head)
explorer.layer.value = int(best_layer)
print(explorer.current_title())
display(explorer.figure)

# %% [markdown]
# The same maps as one self-contained HTML page from `attention.inspection.views`, which shows
# in any notebook and browser (`.save("view.html")` writes it to a file): hover a token to keep
# only its lines, click a head to switch it off, or pick the *model view* of every layer and head.

# %%
from attention.inspection.views import translation_view  # noqa: E402 (shown where it is used)

translation_view(maps, source_tokens, input_tokens, title=f"{source} \u2192 {target}")

# %% [markdown]
# ## 5. What attention maps do and do not explain
#
# **Question.** A head puts 0.9 of its weight on one source word. Does that prove that the
# output depends on that word: (a) yes, (b) no? Answer, then run the check below it (it tests
# your answer against a case built to separate the two: a head that reads a word whose value
# another word carries too).

# %%
my_answer = None  # "a" or "b"

# %%
# Keys 0 and 1 hand over the same value; the head puts 0.9 on key 0. Remove key 0 (mask it,
# so that all the weight goes to key 1) and compare the outputs.
values_SH = np.array([[1.0, 2.0], [1.0, 2.0], [3.0, -1.0]])
weights_S = np.array([0.9, 0.1, 0.0])
output_with = weights_S @ values_SH
output_without = np.array([0.0, 1.0, 0.0]) @ values_SH
measured = "b" if np.allclose(output_with, output_without) else "a"
check("08.weights_explain", my_answer, lambda answer: answer == measured)
print("output reading key 0:", output_with, "  with key 0 removed:", output_without)

# %% [markdown]
# A map says where a head *reads*; it does not say how much that reading changes the output.
# The output is a weighted sum of *values*, and a value can be small, or cancelled by
# another head, or ignored by the layers above. Jain & Wallace (2019, "Attention is not
# Explanation") found, in text classifiers, attention distributions that could be replaced
# by very different ones with the same prediction; Wiegreffe & Pinter (2019, "Attention is
# not not Explanation") replied that this does not make the weights meaningless, only that
# they are one explanation among many. And in a deep model information mixes across
# positions from layer to layer, so the last layer's map of position s is already about a
# mixture of tokens: **attention rollout** (Abnar & Zuidema 2020) multiplies the layers'
# maps, each averaged over heads and mixed with the identity for the residual path,
# `R = (A_L + I)/2 ... (A_1 + I)/2` (rows renormalised), to follow the flow down to the
# input tokens.
#
# The sure test is an **intervention**: change the input and watch the output. Our copy head
# says that producing the verb reads the source verb. Replace the source verb by another one
# and translate again: if the reading is right, the last target word changes with it, and
# nothing else should.

# %%
verbs = list(SVO_LEXICON["verb"])
words = source.split()
verb_at = next(i for i, word in enumerate(words) if word in verbs)
other_verb = next(v for v in verbs if v != words[verb_at])
swapped = " ".join(words[:verb_at] + [other_verb] + words[verb_at + 1:])
before_swap, after_swap = translate(model, tokenizer, [source, swapped])
print(f"source : {source}\n  -> {before_swap}\nswapped: {swapped}\n  -> {after_swap}")
changed = [i for i, (a, b) in enumerate(zip(before_swap.split(), after_swap.split(),
                                               strict=False)) if a != b]
print("target positions that changed:", changed, f"(the verb is target word {len(target.split()) - 1})")

# Attention rollout of the encoder self-attention for section 1's sentence (heads averaged).
encoder_LSS = np.asarray(maps["encoder_self"][:, 0].mean(axis=1))  # [L, S, S]
rollout_SS = np.eye(encoder_LSS.shape[-1])
for layer_SS in encoder_LSS:
    mixed = 0.5 * layer_SS + 0.5 * np.eye(len(layer_SS))
    rollout_SS = (mixed / mixed.sum(axis=1, keepdims=True)) @ rollout_SS
print(f"encoder position of '{words[verb_at]}': last-layer attention to itself "
      f"{encoder_LSS[-1, verb_at, verb_at]:.2f}, rollout from itself {rollout_SS[verb_at, verb_at]:.2f}")
fig = plot_attention(rollout_SS, query_tokens=source_tokens, key_tokens=source_tokens,
                     title="attention rollout of the encoder (section 1's sentence)")
display(fig)

# %% [markdown]
# ## Check your understanding
#
# **Question.** In `svo_to_sov`, the last target word before `</s>` is always the verb. While
# producing it, the copy head should look at the source verb. In "the big dog sees the small
# cat", what is the source position (0-based) of the verb? Give it as `my_answer`.

# %%
my_answer = None  # an int
example = "the big dog sees the small cat"
check("08.verb_position", my_answer,
      lambda answer: answer == next(i for i, w in enumerate(example.split()) if w in verbs))

# %% [markdown]
# The same reading on section 1's sentence, through the trained model's copy head:

# %%
verb_row = len(target.split()) - 1  # the row that produces the last word, the verb
looked_at = int(maps["decoder_cross"][best_layer, 0, best_head, verb_row].argmax())
print(f"section 1's sentence: producing '{target.split()[-1]}', head ({best_layer}, "
      f"{best_head}) looks at source position {looked_at} ('{source_tokens[looked_at]}'); "
      f"the verb is at {verb_at}")
if not FAST:  # the fast setting trains for seconds: its heads have learned little
    assert looked_at == verb_at
    assert head_accuracy.max() > 0.8, "a trained model should have a copy head"
