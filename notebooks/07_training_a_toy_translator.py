# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 Training a toy translation model (steps 18-23)
#
# Goals:
#
# 1. Meet `svo_to_sov`, a made-up language pair whose word order differs from English in a
#    way we know exactly, so that we can later check what attention learned (notebook 08).
# 2. Go from sentence pairs to padded batches: tokenizer, `<s>`/`</s>`, shifting right.
# 3. Train the encoder-decoder with the package's training code: Adam with the paper's
#    warm-up schedule, one jit-compiled step, the loop `fit`. Watch the loss fall.
# 4. Measure the result (exact match on unseen sentences) and save a checkpoint for
#    notebooks 08 and 09.
#
# On a 2-core laptop CPU the default setting trains for about two minutes.

# %%
# %matplotlib inline
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

from attention import count_params
from attention.application.runs import course_run, make_batcher, save_run, train_run
from attention.application.translation import exact_match, translate
from attention.data import make_task
from attention.training.schedule import transformer_schedule

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
TASK = "svo_to_sov"
RUN_DIR = pathlib.Path("runs") / ("notebook07_fast" if FAST else "notebook07")
print("fast setting:", FAST, " run directory:", RUN_DIR)

# %% [markdown]
# ## 1. The task
#
# The source is English-like (subject, verb, object; adjectives before the noun). The target
# language puts the verb last, adjectives after the noun, the article `ta` at the end of the
# noun phrase and prepositions after it, and translates every word through a small lexicon.
# So `the big dog sees the small cat` becomes `doro gana ta kima piti ta miru`: the verb
# jumps from position 4 to the end and every noun phrase turns around.
#
#
# The course's recipe lives in the package (`attention.application.runs.course_run`), so that
# notebooks 08 and 09 and `scripts/make_figures.py` train exactly this model: it gives a
# *run* (an untrained model, its tokenizer, its optimiser and its training settings) and the
# generated training pairs. The sections below take the run apart.

# %%
run, pairs = course_run(fast=FAST, task=TASK)
test_pairs = make_task(TASK, num_examples=32 if FAST else 300, seed=123)
for source, target in pairs[:3]:
    print(f"{source}\n  -> {target}")
lengths = [len(s.split()) for s, _ in pairs]
print(f"{len(pairs)} training pairs, {min(lengths)} to {max(lengths)} source words")

# %% [markdown]
# ## 2. Tokens and batches
#
# One shared word vocabulary for both languages; ids 0, 1, 2 are `<pad>`, `<s>` and `</s>`.
# The `Batcher` groups sentences of similar length, pads them, and gives three arrays:
#
# * `src` `[B, S]`: source ids, then `</s>`, then padding;
# * `tgt_in` `[B, T]`: `<s>`, then the target ids: what the decoder reads;
# * `tgt_out` `[B, T]`: the target ids, then `</s>`: what it must predict. It is `tgt_in`
#   shifted left by one ("teacher forcing": at position t the decoder reads the true token
#   t - 1 and predicts token t).

# %%
tokenizer = run.tokenizer
print("vocabulary size:", tokenizer.vocab_size)
print(tokenizer.tokens(pairs[0][1], add_bos=True, add_eos=True))
batcher = make_batcher(run, pairs)  # a Batcher: encode, bucket by length, pad, shuffle (seeded)
batch = next(iter(batcher.epoch(0)))
print({name: batch[name].shape for name in ("src", "tgt_in", "tgt_out")})
print("tgt_in [0]:", batch["tgt_in"][0])
print("tgt_out[0]:", batch["tgt_out"][0])

# %% [markdown]
# ## 3. The model and the optimiser
#
# A small transformer: 2 encoder and 2 decoder layers, `d_model = 64`, 4 heads, no dropout
# (the task is noise-free and there is plenty of data). The paper's optimiser is Adam
# (`beta_1 = 0.9, beta_2 = 0.98, eps = 1e-9`) with a learning rate that warms up linearly and
# then decays like `1 / sqrt(step)` (section 5.3):
#
# $$lrate = d_{model}^{-0.5} \cdot \min(step^{-0.5},\; step \cdot warmup\_steps^{-1.5}).$$

# %%
config, train_config = run.config, run.train_config
model, optimizer = run.model, run.optimizer  # Transformer(config), make_optimizer(...)
print(f"d_model {config.d_model}, {config.num_heads} heads, {config.num_layers}+"
      f"{config.num_layers} layers, d_ff {config.d_ff}, dropout {config.dropout_rate}")
print(f"{train_config.steps} steps of {train_config.batch_size} pairs, warm-up "
      f"{train_config.warmup_steps}, label smoothing {train_config.label_smoothing}")
print(f"{count_params(model):,} parameters")

schedule = transformer_schedule(config.d_model, train_config.warmup_steps)
steps = np.arange(1, train_config.steps + 1)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(steps, [float(schedule(s)) for s in steps])
ax.set_xlabel("step")
ax.set_ylabel("learning rate")
ax.set_title(f"warm-up {train_config.warmup_steps} steps, then 1/sqrt(step)")
plt.show()

# %% [markdown]
# ## 4. Training
#
# `train_run` batches the pairs as above and hands an endless stream of batches to the loop
# `fit`, which runs `train_step` (one `nnx.jit`-compiled program: forward pass, loss,
# gradient, Adam update) and logs the metrics every `log_every` steps. The first step is
# slow: that is the compilation.

# %%
result = train_run(run, pairs, progress=False)
history = result.history
print(f"{result.step} steps in {result.seconds:.0f} s; last loss {history[-1]['loss']:.3f}, "
      f"token accuracy {history[-1]['accuracy']:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
logged = [h["step"] for h in history]
axes[0].semilogy(logged, [h["loss"] for h in history])
axes[0].set_ylabel("cross-entropy per token (nats)")
axes[1].plot(logged, [h["accuracy"] for h in history])
axes[1].set_ylabel("token accuracy (teacher forcing)")
for ax in axes:
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
fig.suptitle(f"Training on {TASK}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Translating unseen sentences
#
# Training used teacher forcing; translating for real means generating one token at a time
# from `<s>` and feeding each prediction back (greedy decoding, notebook 09). A sentence is
# right only if every word is right and in the right place.

# %%
hypotheses = translate(model, tokenizer, [s for s, _ in test_pairs])
score = exact_match(hypotheses, [t for _, t in test_pairs])
print(f"exact match on {len(test_pairs)} unseen sentences: {score:.1%}")
for (source, target), hypothesis in list(zip(test_pairs, hypotheses, strict=True))[:4]:
    print(f"  source:    {source}\n  reference: {target}\n  model:     {hypothesis}"
          f"   {'OK' if hypothesis == target else 'WRONG'}")

# %% [markdown]
# ## 6. Saving the model
#
# `save_run` writes the run to `RUN_DIR`, relative to the directory the notebook runs in: the
# checkpoint (parameters and optimiser state), `config.json` and the tokenizer. Notebooks 08
# and 09 load it from there with `load_run` (and train their own copy if they find none).
# Running this notebook again trains the same recipe again and replaces what it saved
# (`overwrite=True`); without it, `save_run` refuses to replace a saved checkpoint.

# %%
print("saved step", run.step, "to", save_run(run, RUN_DIR, overwrite=True))

# %% [markdown]
# ## Check your understanding
#
# **Question.** Why does the decoder *read* `<s> y_1 ... y_n` but *predict*
# `y_1 ... y_n </s>`? What would the model learn if both were the same sequence?
#
# <details><summary>Answer</summary>
# At position t it must predict the next token from the tokens before it. If input and
# output were the same, the (causal) decoder could copy its own input token at position t
# and reach zero loss without learning to translate. The check below verifies the shift in
# a real batch.
# </details>

# %%
shifted = batch["tgt_out"][:, :-1]
real = (shifted != config.pad_id) & (shifted != config.eos_id)  # the target words y_1 .. y_n
assert np.array_equal(batch["tgt_in"][:, 1:][real], shifted[real])
assert np.all(batch["tgt_in"][:, 0] == config.bos_id)
if not FAST:
    assert score > 0.8, f"the model should translate most sentences; got {score:.1%}"
print("correct")
