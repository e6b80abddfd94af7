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
# # 07 Training a toy translation model (steps 18-23)
#
# Goals:
#
# 1. Meet `svo_to_sov`, a made-up language pair whose word order differs from English in a
#    way we know exactly, so that we can later check what attention learned (notebook 08).
# 2. Go from sentence pairs to padded batches: tokenizer, `<s>`/`</s>`, shifting right.
# 3. Open the train step: the masked, label-smoothed loss written out and checked against
#    the package's, `nnx.value_and_grad`, the Adam update, checked against `train_step`.
# 4. Train the encoder-decoder with the package's training code (Adam with the paper's
#    warm-up schedule), with a validation curve beside the training one.
# 5. Measure the result (exact match on unseen sentences) and save a checkpoint for
#    notebooks 08 and 09.
#
# The default setting is sized to train in a few minutes on a 2-core laptop CPU; section 5
# prints how long it took on yours.

# %%
# %matplotlib inline
import dataclasses
import os
import pathlib

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax import nnx

from attention import count_params
from attention.application.course import course_run
from attention.application.runs import make_batcher, save_run, train_run
from attention.application.translation import exact_match, translate
from attention.comprehension import check, show_code
from attention.data import make_task
from attention.training.loss import (
    label_smoothed_cross_entropy,
    label_smoothed_cross_entropy_reference,
)
from attention.training.schedule import transformer_schedule
from attention.training.train import evaluate_loss, make_optimizer, train_step

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
# jumps from position 3 (counting from 0) to the end and every noun phrase turns around.
#
# The course's recipe lives in the package (`attention.application.course.course_run`), so that
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
# The `Batcher` groups sentences of similar length, pads them, and gives three arrays: `src`
# `[B, S]`, the source ids, then `</s>`, then padding; and for the target, `tgt_in` `[B, T]`,
# what the decoder reads, and `tgt_out` `[B, T]`, what it must predict at each position.
# During training the decoder reads the true target (it predicts each word from the words
# before it) and is scored on every position at once.
#
# **Question.** Write the shift as a function: given the target's ids (without `<s>` and
# `</s>`), return the pair `(decoder input, what it must predict)` as two lists. Answer
# before the next cell prints a batch; the check then runs your function on every sentence of
# that batch.

# %%
def shift(ids, bos_id, eos_id):
    return None  # your answer: (list, list)


# %%
tokenizer = run.tokenizer
print("vocabulary size:", tokenizer.vocab_size)
print(tokenizer.tokens(pairs[0][1], add_bos=True, add_eos=True))
batcher = make_batcher(run, pairs)  # a Batcher: encode, bucket by length, pad, shuffle (seeded)
batch = next(iter(batcher.epoch(0)))
print({name: batch[name].shape for name in ("src", "tgt_in", "tgt_out")})
print("tgt_in [0]:", batch["tgt_in"][0])
print("tgt_out[0]:", batch["tgt_out"][0])

# %%
def agrees_with_batch(f):
    for tgt_in, tgt_out in zip(batch["tgt_in"], batch["tgt_out"], strict=True):
        n = int((tgt_out != config.pad_id).sum()) - 1  # target words, without </s>
        ids = [int(t) for t in tgt_out[:n]]
        decoder_input, predicted = f(ids, config.bos_id, config.eos_id)
        if list(decoder_input) != tgt_in[: n + 1].tolist() or list(predicted) != tgt_out[: n + 1].tolist():
            return False
    return True


config = run.config
check("07.shift", shift, agrees_with_batch)

# %% [markdown]
# So the three arrays are:
#
# * `src` `[B, S]`: source ids, then `</s>`, then padding;
# * `tgt_in` `[B, T]`: `<s>`, then the target ids: what the decoder reads;
# * `tgt_out` `[B, T]`: the target ids, then `</s>`: what it must predict. It is `tgt_in`
#   shifted left by one ("teacher forcing": at position t the decoder reads the true token
#   t - 1 and predicts token t).

# %% [markdown]
# ## 3. The model and the optimiser
#
# A small transformer: 2 encoder and 2 decoder layers, `d_model = 64` (32 in the fast
# setting), 4 heads, no dropout (the task is noise-free and there is plenty of data); the
# cell prints the run's settings. The paper's optimiser is Adam
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
# The schedule in the package:

# %%
show_code(transformer_schedule)

# %% [markdown]
# ## 4. The train step, opened
#
# One update is: the forward pass on a batch, the loss, its gradient with respect to every
# parameter, and Adam's step. First the **loss**: the cross-entropy `-sum_v q(v) log p(v)`
# between `p = softmax(logits)` at each position and a target distribution `q`. Label
# smoothing (section 5.4, `epsilon_ls`) makes `q` less sure than the one-hot target on the
# right word `y`: it takes a share `epsilon` of the probability off and spreads it uniformly
# over the vocabulary of `V` words.
#
# **Question.** With label smoothing `eps` and a vocabulary of `V` words, what probability
# does the smoothed target `q` give the right word? Write a formula before reading on; the
# check reads it off the package's loss for two values of `eps`.

# %%
def smoothed_probability_of_right_word(eps, vocab_size):
    return None  # your formula


# %%
def package_q(eps, targets_BT, vocab_size):
    """The target q of the package's loss, read off its gradient at flat logits (p = 1/V):
    d loss / d logits = p - q at every real position."""
    loss = lambda logits_BTV: label_smoothed_cross_entropy(  # noqa: E731
        logits_BTV, targets_BT, label_smoothing=eps, pad_id=config.pad_id)[0]
    return 1 / vocab_size - jax.grad(loss)(jnp.zeros((*targets_BT.shape, vocab_size)))


def agrees_with_q(f):
    targets_BT = jnp.asarray(batch["tgt_out"][:, :1])  # the first word: never padding
    vocab = config.tgt_vocab_size
    return all(bool(jnp.allclose(jnp.take_along_axis(package_q(eps, targets_BT, vocab),
                                                     targets_BT[..., None], axis=-1),
                                 f(eps, vocab), atol=1e-6)) for eps in (0.1, 0.7))


check("07.smoothed_right", smoothed_probability_of_right_word, agrees_with_q)

# %% [markdown]
# Written as a formula, label smoothing replaces the one-hot target by
#
# $$q(v) = (1 - \epsilon)\,[v = y] + \epsilon / V, \qquad \text{loss} = \frac{\sum_{b, t:\, y_{bt} \ne \text{pad}} -\sum_v q_{bt}(v) \log p_{bt}(v)}{\#\{b, t: y_{bt} \ne \text{pad}\}}$$
#
# so the right word gets `1 - eps + eps / V`, and every other word `eps / V` (some codebases
# spread `eps` over the `V - 1` wrong words instead). The loss is averaged over the real
# target tokens only: padding positions carry no loss (that is the mask). Written out on the
# batch above, with the paper's `epsilon = 0.1` (the course's recipe trains with 0: the task
# has no noise to be unsure about), and checked against the package's two versions: the
# written-out twin, and the fast one that never forms `q`.

# %%
EPS = 0.1
logits_BTV = model(batch["src"], batch["tgt_in"], deterministic=True)
targets_BT = jnp.asarray(batch["tgt_out"])
V = logits_BTV.shape[-1]
log_p_BTV = jax.nn.log_softmax(logits_BTV, axis=-1)                           # log p(v)
q_BTV = (1 - EPS) * jax.nn.one_hot(targets_BT, V) + EPS / V                    # smoothed target
per_token_BT = -jnp.sum(q_BTV * log_p_BTV, axis=-1)                            # H(q, p)
real_BT = targets_BT != config.pad_id                                          # the mask
loss_by_hand = jnp.sum(per_token_BT * real_BT) / jnp.sum(real_BT)

for name, fn in [("label_smoothed_cross_entropy", label_smoothed_cross_entropy),
                 ("..._reference (written out)", label_smoothed_cross_entropy_reference)]:
    loss_sum, tokens = fn(logits_BTV, targets_BT, label_smoothing=EPS, pad_id=config.pad_id)
    print(f"{name:30s}: {float(loss_sum / tokens):.6f}   by hand: {float(loss_by_hand):.6f}")
    assert jnp.allclose(loss_sum / tokens, loss_by_hand, rtol=1e-5)
print(f"{int(real_BT.sum())} real target tokens of {real_BT.size} positions; a model that "
      f"gives every word probability 1/V scores log V = {np.log(V):.2f}. Above it, the "
      f"untrained model's logits are not flat: its random (tied) embeddings give each word its "
      f"own logit, and label smoothing charges the log-probability of every word, not only "
      f"the target's (the mean of -log p over V words is at least log V, equal only when flat).")

# %% [markdown]
# Then the **gradient** and the **update**. `nnx.value_and_grad` gives the loss and the
# gradient of every `nnx.Param` in one pass; `optimizer.update(model, grads)` applies Adam
# with the warm-up schedule. The package's `train_step` does exactly this inside one
# `nnx.jit` (with a loss that computes the output projection chunk by chunk, to save
# memory). We run one step by hand and one with `train_step`, on two copies of the
# untrained model, and compare the loss and the updated parameters. The step uses the
# recipe's label smoothing (`train_config.label_smoothing`), so the program `train_step`
# compiles here is the one the training of section 5 reuses.

# %%
def loss_fn(m, batch, eps):
    logits_BTV = m(batch["src"], batch["tgt_in"], deterministic=False)
    loss_sum, tokens = label_smoothed_cross_entropy(logits_BTV, batch["tgt_out"],
                                                    label_smoothing=eps, pad_id=config.pad_id)
    return loss_sum / tokens


inputs = {name: jnp.asarray(batch[name]) for name in ("src", "tgt_in", "tgt_out")}
mine, theirs = nnx.clone(model), nnx.clone(model)
my_optimizer = make_optimizer(mine, config.d_model, train_config)
their_optimizer = make_optimizer(theirs, config.d_model, train_config)

SMOOTHING = train_config.label_smoothing
loss, grads = nnx.value_and_grad(loss_fn)(mine, inputs, SMOOTHING)  # forward + backward
grad_norm = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads))))
my_optimizer.update(mine, grads)                                   # Adam, warm-up schedule
metrics = train_step(theirs, their_optimizer, inputs, label_smoothing=SMOOTHING,
                     pad_id=config.pad_id)
print(f"by hand: loss {float(loss):.6f}, |grad| {grad_norm:.4f};   train_step: loss "
      f"{float(metrics['loss']):.6f}, |grad| {float(metrics['grad_norm']):.4f}")
start = jax.tree.leaves(nnx.state(model, nnx.Param))  # the untrained parameters
ours = jax.tree.leaves(nnx.state(mine, nnx.Param))
package = jax.tree.leaves(nnx.state(theirs, nnx.Param))
step_size = np.mean([float(jnp.abs(a - s0).mean()) for a, s0 in zip(ours, start, strict=True)])
disagreement = np.mean([float(jnp.abs(a - b).mean()) for a, b in zip(ours, package, strict=True)])
print(f"mean parameter change {step_size:.2e}; mean difference between the two updated "
      f"models {disagreement:.2e} ({disagreement / step_size:.1%} of the change)")
assert jnp.allclose(loss, metrics["loss"], rtol=1e-5) and disagreement < 0.05 * step_size

# %% [markdown]
# The package's loss, as it runs:

# %%
show_code(label_smoothed_cross_entropy)

# %% [markdown]
# and its training step, compiled once with `nnx.jit`:

# %%
show_code(train_step)

# %% [markdown]
# The two agree on the loss to float32 rounding, and on the update up to a few parameters:
# Adam's first step is about `lr * sign(gradient)` for every parameter, so a gradient that is
# zero up to rounding (the two losses are computed in different orders) can step either way.

# %% [markdown]
# ## 5. Training, with a validation curve
#
# `train_run` batches the pairs as above and hands an endless stream of batches to the loop
# `fit`, which runs `train_step` and logs the metrics every `log_every` steps. The first
# step is slow: that is the compilation. We train in chunks and, after each, measure the
# loss on **validation** pairs the model never trains on (`evaluate_loss`, no dropout, no
# label smoothing): the training loss says the model fits its data, the validation loss
# that it generalises. The chunks change nothing: the batch stream resumes where it
# stopped, so this is the same run as one call.

# %%
valid_pairs = make_task(TASK, num_examples=64 if FAST else 320, seed=456)
valid_batches = list(make_batcher(run, valid_pairs).epoch(0))
full_config = run.train_config
chunk = 10 if FAST else 100
validation = []
seconds = 0.0
for stop in range(chunk, full_config.steps + 1, chunk):
    run.train_config = dataclasses.replace(full_config, steps=stop)
    seconds += train_run(run, pairs, progress=False).seconds
    validation.append({"step": run.step, **evaluate_loss(model, valid_batches,
                                                           pad_id=config.pad_id)})
run.train_config = full_config  # what save_run records below
history = run.history
print(f"{run.step} steps in {seconds:.0f} s; last training loss {history[-1]['loss']:.3f}, "
      f"validation loss {validation[-1]['nll']:.3f}, validation token accuracy "
      f"{validation[-1]['accuracy']:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
logged = [h["step"] for h in history]
axes[0].semilogy(logged, [h["nll"] for h in history], label="training (batch)")
axes[0].semilogy([v["step"] for v in validation], [v["nll"] for v in validation], "o-",
                 label="validation")
axes[0].set_ylabel("cross-entropy per token (nats)")
axes[1].plot(logged, [h["accuracy"] for h in history], label="training (batch)")
axes[1].plot([v["step"] for v in validation], [v["accuracy"] for v in validation], "o-",
             label="validation")
axes[1].set_ylabel("token accuracy (teacher forcing)")
for ax in axes:
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle(f"Training on {TASK}")
fig.tight_layout()
plt.show()

# %% [markdown]
# Compare the two curves. Early on they fall together. In a full run they part even on a
# generated task: the training loss goes on falling towards zero while the validation loss
# levels off well above it, and exact match (every token of a sentence right) stays below
# token accuracy, because one wrong token spoils a whole sentence. The fast setting trains
# too briefly to show it. On real data (Multi30k) the gap opens sooner, and the validation
# loss is the one to stop on.

# %% [markdown]
# ## 6. Translating unseen sentences
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
# ## 7. Saving the model
#
# `save_run` writes the run to `RUN_DIR`, relative to the directory the notebook runs in: the
# checkpoint (parameters and optimiser state), `config.json` and the tokenizer. Notebooks 08
# and 09 load it from there with `load_run` (and train their own copy if they find none).
# Running this notebook again trains the same recipe again and replaces what it saved
# (`overwrite=True`); without it, `save_run` refuses to replace a saved checkpoint.

# %%
print("saved step", run.step, "to", save_run(run, RUN_DIR, overwrite=True))

# %%
if not FAST:
    assert score > 0.8, f"the model should translate most sentences; got {score:.1%}"
