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
# # 04 Multi-head attention (step 7)
#
# Goals:
#
# 1. Split a `[B, T, D]` activation into `N` heads of width `H = D / N` and merge them back.
# 2. Use the package's `MultiHeadAttention` module (Flax NNX) and see that it is nothing but
#    four linear maps around the attention of notebook 03.
# 3. See queries, keys and values as three learned views of one token.
# 4. Get at the weights of every head (`sow_weights=True` + `nnx.capture`) and plot them with
#    `plot_heads`.
# 5. Measure why several heads: one head against four on a task that needs two relations.
#
# The paper (section 3.2.2):
#
# $$\operatorname{MultiHead}(Q, K, V) = \operatorname{Concat}(\text{head}_1, \dots, \text{head}_h)\, W^O, \qquad \text{head}_i = \operatorname{Attention}(Q W_i^Q,\; K W_i^K,\; V W_i^V)$$
#
# with `W_i^Q, W_i^K` of shape `d_model x d_k`, `W_i^V` of shape `d_model x d_v` and
# `W^O` of shape `h d_v x d_model`; the paper uses `h = 8` and `d_k = d_v = d_model / h = 64`.
# One attention can only produce one weighted average per query; `h` heads can look at `h`
# different things (the previous word, the subject, the end of the sentence) at the cost of
# one, since each works in a `d_model / h` slice.

# %%
# %matplotlib inline
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from IPython.display import display

from attention import (
    MultiHeadAttention,
    count_params,
    dot_product_attention,
    merge_heads,
    plot_heads,
    sinusoidal_positions,
    split_heads,
)
from attention.comprehension import check, show_code

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
D, N = (16, 4) if FAST else (64, 4)
print("fast setting:", FAST, " d_model =", D, " heads =", N)

# %% [markdown]
# ## 0. Flax NNX in five minutes
#
# From here on the course builds layers with **Flax NNX**, JAX's library of modules. Five
# ideas are all it needs:
#
# * an `nnx.Module` is a Python object whose attributes hold its parameters (`nnx.Param`),
#   made when it is built from an `nnx.Rngs` (the random seeds);
# * `nnx.state(module)` is everything it holds, as arrays JAX can transform;
# * `nnx.jit` compiles a function that takes modules (and keeps their updates);
# * `nnx.value_and_grad` differentiates a loss with respect to a module's parameters;
# * `nnx.Optimizer(module, optax.adam(...), wrt=nnx.Param)` updates them with the gradients.
#
# One linear layer learning `y = 3 x - 1`:

# %%
line = nnx.Linear(1, 1, rngs=nnx.Rngs(0))  # kernel [1, 1] and bias [1], random at first
print("parameters:", {k: v.shape for k, v in nnx.to_flat_state(nnx.state(line, nnx.Param))})
line_optimizer = nnx.Optimizer(line, optax.adam(0.1), wrt=nnx.Param)
x_line = jnp.linspace(-1.0, 1.0, 32)[:, None]


@nnx.jit
def line_step(model, optimizer, x):
    def loss_fn(m):
        return jnp.mean((m(x) - (3 * x - 1)) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)  # grads: the same tree as the params
    optimizer.update(model, grads)                    # Adam, in place on the module
    return loss


for _ in range(200):
    line_loss = line_step(line, line_optimizer, x_line)
print(f"loss {float(line_loss):.5f}; kernel {float(line.kernel[0, 0]):.3f} (3), "
      f"bias {float(line.bias[0]):.3f} (-1)")
assert abs(float(line.kernel[0, 0]) - 3) < 0.05 and abs(float(line.bias[0]) + 1) < 0.05

# %% [markdown]
# ## 1. Heads are a reshape
#
# In practice the `h` projections `W_i^Q` are one `D x D` matrix whose output columns are cut
# into `h` slices: a reshape from `[B, T, D]` to `[B, T, N, H]`. Merging is the reverse
# reshape, which *is* the paper's `Concat`.

# %%
x_BTD = jnp.arange(2 * 3 * D, dtype=jnp.float32).reshape(2, 3, D)
heads_BTNH = split_heads(x_BTD, N)
print("split:", x_BTD.shape, "->", heads_BTNH.shape)
print("head 1 of token 0 holds features", np.asarray(heads_BTNH[0, 0, 1, :4]), "...")
assert jnp.array_equal(merge_heads(heads_BTNH), x_BTD)

# %% [markdown]
# Splitting and merging heads are reshapes of the last axis:

# %%
show_code(split_heads)

# %%
show_code(merge_heads)

# %% [markdown]
# ## 2. The module
#
# `MultiHeadAttention(num_heads, in_features)` holds four `nnx.Linear` layers: `query`,
# `key`, `value` (the `W^Q, W^K, W^V` of all heads at once) and `out` (`W^O`). We call it,
# then redo the same computation from its parts to see there is nothing else inside.

# %%
mha = MultiHeadAttention(num_heads=N, in_features=D, rngs=nnx.Rngs(0))
tokens = "the cat sat on the mat because it was warm".split()
T = len(tokens)
# Stand-in embeddings: random vectors per word (the two "the" share one) plus positions.
vocab = sorted(set(tokens))
table = jax.random.normal(jax.random.key(1), (len(vocab), D))
x = table[jnp.array([vocab.index(t) for t in tokens])][None] + sinusoidal_positions(T, D)[None]

y = mha(x)
by_hand = mha.out(merge_heads(dot_product_attention(
    split_heads(mha.query(x), N), split_heads(mha.key(x), N), split_heads(mha.value(x), N))))
print("output [B, T, D]:", y.shape, "  same as by hand:", bool(jnp.allclose(y, by_hand, atol=1e-5)))
print("parameters:", count_params(mha), f"(d_model = {D}, {N} heads)")

# %% [markdown]
# The module's forward pass, as it runs: project, split into heads, let the hooks act on the
# heads (rotary positions, notebook 11), attend, merge, project:

# %%
show_code(MultiHeadAttention.__call__)

# %% [markdown]
# and `attend`, the attention over the heads (the steps of notebook 03, or a fast kernel of
# notebook 10):

# %%
show_code(MultiHeadAttention.attend)

# %% [markdown]
# ### Dropout on the attention weights
#
# The paper regularises with dropout on every sub-layer's output (section 5.4); many
# implementations (the original tensor2tensor code, GPT-2, LLMs-from-scratch chapter 3) also
# drop *attention weights*: while training, each weight is zeroed with probability `p` and the
# survivors are scaled by `1 / (1 - p)`, so a query sometimes cannot see a key it relies on.
# `attend` above does it (`self.dropout(weights_BNTS, ...)`) when the module is built with
# `dropout_rate > 0`; in evaluation mode nothing is dropped.

# %%
dropping = MultiHeadAttention(num_heads=N, in_features=D, dropout_rate=0.5,
                              rngs=nnx.Rngs(params=0, dropout=1))
weights_BNTS = jax.nn.softmax(jnp.einsum("BTNH,BSNH->BNTS", split_heads(dropping.query(x), N),
                                         split_heads(dropping.key(x), N)) / (D // N) ** 0.5)
dropped = dropping.dropout(weights_BNTS, deterministic=False)
kept = dropped != 0
print(f"weights kept: {float(kept.mean()):.2f} (p = 0.5 drops about half)")
assert jnp.allclose(dropped[kept], weights_BNTS[kept] / 0.5)  # the survivors, scaled by 1/(1-p)
training = [dropping(x) for _ in range(2)]       # a fresh mask at every call
dropping.eval()                                  # evaluation mode: deterministic
evaluating = [dropping(x) for _ in range(2)]
assert not jnp.allclose(training[0], training[1]) and jnp.array_equal(*evaluating)
print("training: two calls differ; evaluation: two calls agree")

# %% [markdown]
# ## 3. Queries, keys and values: three views of one token
#
# Every token plays three parts. As a **query** it asks "what am I looking for?", as a
# **key** it answers "what do I offer?", as a **value** it says "what I hand over if chosen".
# Could the same embedding `x_t` play all three parts? Without projections the score of
# token `t` with token `s` is `x_t . x_s`.
#
# **Predict, then run.** With raw embeddings (scores `x_t . x_s`, no projections), which key
# scores highest against token t's query in our sentence: (a) the token itself, (b) its
# neighbour, or (c) no pattern? Write your letter, then run the next two cells.

# %%
my_prediction = None  # "a", "b" or "c"

# %%
x_TD = x[0]
raw_TS = x_TD @ x_TD.T                                    # scores without projections
projected_TS = mha.query(x_TD) @ mha.key(x_TD).T          # all heads' q . k summed
for name, scores_TS in [("raw x . x", raw_TS), ("projected q . k", projected_TS)]:
    best = np.asarray(scores_TS.argmax(axis=1))
    print(f"{name:16s}: best key of each token {best.tolist()}  "
          f"({np.mean(best == np.arange(T)):.0%} pick themselves)")
raw_self = float(np.mean(np.asarray(raw_TS.argmax(axis=1)) == np.arange(T)))
measured = "a" if raw_self >= 0.8 else "b" if np.mean(
    np.abs(np.asarray(raw_TS.argmax(axis=1)) - np.arange(T)) == 1) >= 0.5 else "c"
check("04.views_self_score", my_prediction, lambda answer: answer == measured)

# %% [markdown]
# For vectors of similar length no token matches `x_t` better than `x_t` itself: without
# projections every token would mostly look at itself. `W^Q`, `W^K`, `W^V` are three learned
# views of one token, so that "cat" can ask for a verb while advertising itself as a noun.
# Even random projections break the "look at yourself" default; training then shapes the
# three views for the task.
#
# ## 4. Looking at the heads
#
# Called with `sow_weights=True`, the module records its weights `[B, N, T, S]` as an
# `nnx.Intermediate`; `nnx.capture` runs a function and hands back what was sown. This is
# how every attention picture in this course gets the real weights of the real model.

# %%
_, sown = nnx.capture(lambda m: m(x, sow_weights=True), nnx.Intermediate)(mha)
(weights_BNTS,) = sown["attention_weights"].get_value()
print("weights [B, N, T, S]:", weights_BNTS.shape)
fig = plot_heads(weights_BNTS[0], query_tokens=tokens, key_tokens=tokens,
                 title="self-attention of an untrained layer, one panel per head")
display(fig)

# %% [markdown]
# Untrained, the heads already differ (their projections are random), but none means
# anything yet; notebook 08 looks at heads after training, some of which learn to look one
# word back and some to find the source word being translated.
#
# A causal self-attention (as in the decoder) is the same module called with
# `is_causal=True`:

# %%
_, sown = nnx.capture(lambda m: m(x, is_causal=True, sow_weights=True), nnx.Intermediate)(mha)
(causal_BNTS,) = sown["attention_weights"].get_value()
fig = plot_heads(causal_BNTS[0], query_tokens=tokens, key_tokens=tokens,
                 mask=jnp.tril(jnp.ones((T, T), bool)), title="the same layer, causal")
display(fig)

# %% [markdown]
# ## 5. Why several heads? A measured answer
#
# One head produces one weighted average per query. Suppose a token must report **both** its
# neighbours: the token before it and the token after it, each in its own output slot. We
# train two models that differ only in `num_heads` (1 or 4, same width `D = 32`) on random
# token sequences, and measure the accuracy of each output slot on fresh sequences. The
# model: embeddings plus sinusoidal positions, one `MultiHeadAttention`, two linear
# read-outs ("previous", "next").
#
# **Predict, then run.** Which model will solve it, both slots above 95% accuracy: (a) the
# one-head model, (b) the four-head model, or (c) both? Write your letter before you run the
# training below; the check after it compares your letter with what was measured.

# %%
my_prediction = None  # "a", "b" or "c"

# %%
V_TOK, T_SEQ, D_HEADS = 10, 8, 32
HEAD_STEPS = 150 if FAST else 400  # Adam steps of 128 sequences


class NeighbourModel(nnx.Module):
    """Embeddings + positions, one multi-head self-attention, two linear read-outs."""

    def __init__(self, num_heads, *, rngs):
        self.embed = nnx.Embed(V_TOK, D_HEADS, rngs=rngs)
        self.attention = MultiHeadAttention(num_heads=num_heads, in_features=D_HEADS, rngs=rngs)
        self.previous = nnx.Linear(D_HEADS, V_TOK, rngs=rngs)
        self.next = nnx.Linear(D_HEADS, V_TOK, rngs=rngs)

    def __call__(self, tokens_BT):
        h_BTD = self.attention(self.embed(tokens_BT) + sinusoidal_positions(T_SEQ, D_HEADS)[None])
        return self.previous(h_BTD), self.next(h_BTD)


def neighbour_batch(key, size):
    """Random tokens; the targets are each token's previous and next token (cyclically)."""
    tokens = jax.random.randint(key, (size, T_SEQ), 0, V_TOK)
    return tokens, jnp.roll(tokens, 1, axis=1), jnp.roll(tokens, -1, axis=1)


def neighbour_loss(model, tokens, previous, following):
    logits_previous, logits_next = model(tokens)
    ce = optax.softmax_cross_entropy_with_integer_labels
    return ce(logits_previous, previous).mean() + ce(logits_next, following).mean()


@nnx.jit
def neighbour_step(model, optimizer, tokens, previous, following):
    loss, grads = nnx.value_and_grad(neighbour_loss)(model, tokens, previous, following)
    optimizer.update(model, grads)
    return loss


fresh = neighbour_batch(jax.random.key(99), 512)
head_accuracy = {}
for num_heads in (1, 4):
    neighbours = NeighbourModel(num_heads, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(neighbours, optax.adam(1e-2), wrt=nnx.Param)
    for step_key in jax.random.split(jax.random.key(1), HEAD_STEPS):
        loss = neighbour_step(neighbours, optimizer, *neighbour_batch(step_key, 128))
    logits_previous, logits_next = neighbours(fresh[0])
    head_accuracy[num_heads] = (float((logits_previous.argmax(-1) == fresh[1]).mean()),
                                float((logits_next.argmax(-1) == fresh[2]).mean()))
    print(f"{num_heads} head{'s' if num_heads > 1 else ' '} ({count_params(neighbours):,} "
          f"parameters): accuracy previous {head_accuracy[num_heads][0]:.2f}, next "
          f"{head_accuracy[num_heads][1]:.2f} (chance {1 / V_TOK:.2f}), final loss {float(loss):.3f}")

# %% [markdown]
# The accuracies above answer your prediction; the check compares them with it.

# %%
solved = {h: min(acc) > 0.95 for h, acc in head_accuracy.items()}
measured = "c" if all(solved.values()) else "b" if solved[4] else "a" if solved[1] else None
check("04.heads_two_relations", my_prediction, lambda answer: answer == measured)

# %% [markdown]
# One head can attend to both neighbours, but then it hands over one blend of the two values,
# and a linear read-out cannot tell which of the two came first. Several narrower heads can
# each attend to one neighbour.

# %% [markdown]
# ## Check your understanding
#
# **Question.** For `d_model = 512`, how many parameters does multi-head attention have with
# `h = 8` heads, and with `h = 1`? (Biases included, as in the module.) Write them as a pair
# `(with_8_heads, with_1_head)`.

# %%
my_answer = None  # (an int, an int)
counted = tuple(count_params(MultiHeadAttention(num_heads=h, in_features=512, rngs=nnx.Rngs(0)))
                for h in (8, 1))
check("04.params_h8_h1", my_answer, lambda answer: tuple(answer) == counted)
