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
# # 00 Multiplying embeddings (steps 0-0h)
#
# Attention multiplies vectors: a query times a key. Before we build it, a warm-up question:
# **does it make sense to multiply two embeddings at all?**
#
# We ask it of real embeddings: word vectors trained here, in a minute, on the English text
# that ships with the course (29,000 Multi30k image captions and 4,000 Tatoeba sentences).
#
# Goals of this notebook:
#
# 1. Train word2vec's skip-gram (Mikolov et al. 2013) and look at what it learned:
#    neighbours, analogies, and a similarity score against human ratings.
# 2. See what the sum, the average, the difference and the element-wise product of two
#    embeddings can and cannot express, and why the product is an *interaction* term.
# 3. Measure it on a real pair task: do two pieces of text describe the same picture? Sum,
#    concatenation, product, `[u, v, |u - v|, u * v]` and `0.5 (A*B + A + B)`, side by side.
# 4. Meet the dot product as a similarity and search the vocabulary by cosine.
# 5. Close the loop: attention is a *soft* database lookup with queries, keys and values,
#    and a kernel smoother (Nadaraya-Watson) in disguise.
#
# How fast a search over a million vectors can be, exactly and through an inverted-file
# index, is the optional notebook 15.
#
# Set `ATTENTION_FAST=1` in the environment for a quick run with small sizes (the tests do).
# The data is found through `ATTENTION_DATA`, the folder that holds `multi30k/` and
# `tatoeba_en_de_small/`.

# %%
# %matplotlib inline
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from attention import (
    attention_weights,
    cosine_top_k,
    dot_product_attention,
    normalize,
    single_head_attention,
)
from attention import vectors as wv
from attention.comprehension import check, show_code
from attention.data import DatasetNotFoundError, load_multi30k

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
# The fast setting trains on a slice of the text for a few epochs: vectors in seconds, rougher.
LIMIT = 8_000 if FAST else None  # sentences taken from each corpus (None: all 33,000)
SETTINGS = dict(dim=48, epochs=3, learning_rate=0.01) if FAST else dict(dim=100, epochs=10)
VECTORS_PATH = pathlib.Path("runs") / ("word_vectors_fast.npz" if FAST else "word_vectors.npz")
TRAIN_STEPS = 200 if FAST else 500  # logistic-regression updates in the pair task
print(f"fast setting: {FAST}; JAX {jax.__version__} on {jax.default_backend()}")

try:
    sentences = wv.load_english_sentences(limit=LIMIT)
except DatasetNotFoundError as error:
    raise RuntimeError(
        "This notebook trains word vectors on the course's English text. Set ATTENTION_DATA "
        "to the folder that holds multi30k/ and tatoeba_en_de_small/ (in the project, "
        f"../shared/data beside the checkout) and restart the kernel.\n{error}"
    ) from None
print(f"{len(sentences):,} English sentences, for example: {sentences[0]!r}")

# %% [markdown]
# ## 1. Word vectors in a minute: skip-gram with negative sampling
#
# Skip-gram learns two vectors per word, an input vector `v_w` (the word vector we keep) and
# an output vector `u_w`. Every word `c` of the text and every word `o` at most a few
# positions away make a positive pair; `k` words drawn at random make negatives; and the
# loss (Mikolov et al. 2013, eq. 4) pushes `u_o . v_c` up and `u_n . v_c` down:
#
# $$\ell(c, o) = -\log \sigma(u_o \cdot v_c) - \sum_{i=1}^{k} \log \sigma(-u_{n_i} \cdot v_c),
# \qquad n_i \sim P_n(w) \propto \text{count}(w)^{3/4}$$
#
# So the whole model is dot products of embeddings: two words whose vectors have a large dot
# product are predicted to occur together, and words used in the same contexts end up with
# similar vectors. Two tricks of the paper matter on real text: the noise distribution is
# the word counts to the power 3/4 (rare words are drawn more often than their frequency),
# and frequent words ("a", "the") are *subsampled*, each occurrence dropped with probability
# `1 - sqrt(t / f(w))`. `attention.vectors` implements both, with the loss above; training is
# one `jax.jit`-compiled scan over batches of pairs, with Adam.
#
# The first run trains and saves the vectors to `runs/`; a second run loads them.

# %%
vectors = None
if VECTORS_PATH.exists():
    vectors = wv.WordVectors.load(VECTORS_PATH)
    saved = {**SETTINGS, "sentences": len(sentences)}
    if any(vectors.meta.get(name) != value for name, value in saved.items()):
        vectors = None  # saved with other settings or another slice of the text: train again
    else:
        print(f"loaded {VECTORS_PATH} (trained in {vectors.meta['seconds']:.0f} s)")
if vectors is None:
    vectors = wv.train_word_vectors(sentences, **SETTINGS)
    vectors.save(VECTORS_PATH, overwrite=True)
    print(f"trained in {vectors.meta['seconds']:.1f} s, saved to {VECTORS_PATH}")
meta = vectors.meta
print(f"{meta['words_in_corpus']:,} words of text, vocabulary {len(vectors):,} words seen at "
      f"least {meta['min_count']} times, D = {vectors.dim}, {meta['epochs']} epochs of "
      f"~{meta['pairs_per_epoch'][0]:,} pairs")
print("mean loss per epoch:", [round(x, 3) for x in meta["epoch_losses"]])

# %% [markdown]
# **Nearest neighbours** by cosine similarity (section 4 explains the search). On the full
# text, expect neighbours of one kind: colours next to colours, instruments next to
# instruments, "dog" next to "puppy" and dog breeds. The captions describe photographs, so
# the vectors know what people do in pictures, not what words mean in general.

# %%
for word in ["dog", "man", "woman", "red", "food", "beach", "guitar", "street", "two",
             "running"]:
    if word in vectors:
        neighbours = ", ".join(f"{w} {s:.2f}" for w, s in vectors.nearest(word, 6))
        print(f"{word:8s} -> {neighbours}")

# %% [markdown]
# **Analogies**: "a is to b as c is to ?" answered by the word nearest to `b - a + c`
# (Mikolov, Yih, Zweig 2013), leaving out a, b and c. The captions support a few of them,
# about gender and number, the things they say all the time; they do not support ones about
# sizes or colours, which come out wrong. We show both.

# %%
ANALOGIES = [("man", "woman", "boy"), ("man", "men", "woman"), ("boy", "boys", "girl"),
             ("dog", "dogs", "man"), ("man", "woman", "he"), ("walking", "walk", "running"),
             ("sitting", "sit", "standing"), ("big", "small", "tall"),
             ("black", "white", "dark")]
for a, b, c in ANALOGIES:
    if all(w in vectors for w in (a, b, c)):
        answers = ", ".join(f"{w} {s:.2f}" for w, s in vectors.analogy(a, b, c, k=3))
        print(f"{a}:{b} :: {c}:?  ->  {answers}")

# %% [markdown]
# **A similarity score.** People rated how similar word pairs are; good vectors rank the
# pairs' cosines in the same order, measured by Spearman's rank correlation (1: the same
# order, 0: unrelated). The two classic public lists, WordSim-353 (Finkelstein et al. 2002)
# and SimLex-999 (Hill et al. 2015), ship inside the `gensim` package on PyPI (as its test
# data); `wv.load_word_similarity` reads them from there if gensim is installed
# (`pip install gensim`). Our captions cover only part of each list, and SimLex-999 rates
# *similarity* only ("cup" and "coffee" are related but not similar), which context-window
# vectors do not separate, so expect modest scores there. A small hand-made list of 40 pairs
# on words the captions use, rated by us on the same 0-10 scale, is always scored; it is
# shown here in full, so you can judge it.

# %%
print("hand-made pairs:", "; ".join(f"{a}-{b} {r:g}" for a, b, r in wv.WORD_SIMILARITY_PAIRS))
score = wv.evaluate_similarity(vectors, wv.WORD_SIMILARITY_PAIRS)
print(f"\nhand-made list : Spearman {score.spearman:.2f} on {score.pairs} pairs")
for name in ("wordsim353", "simlex999"):
    try:
        score = wv.evaluate_similarity(vectors, wv.load_word_similarity(name))
        print(f"{name:15s}: Spearman {score.spearman:.2f} on the {score.pairs} pairs whose "
              f"words we know ({score.missing} left out)")
    except FileNotFoundError as error:
        print(f"{name:15s}: not scored ({error})")

# %% [markdown]
# ## 2. Three ways to combine two vectors
#
# Take two embeddings `u` and `v` of the same width `d`. Three element-wise combinations:
#
# * the **sum** `u + v` says what the two have in total; it cannot tell `(u, v)` from `(v, u)`
#   and, fed to a linear model, it is the same as giving `u` and `v` separate weights
#   *tied together*: `w . (u + v) = w . u + w . v`. Each vector contributes on its own.
# * the **difference** `u - v` (or `|u - v|`) says where they disagree.
# * the **product** `u * v` is large where *both* are large, and its sign says whether they
#   agree. A linear model on it computes `sum_i w_i u_i v_i`: a weighted dot product. With
#   all `w_i = 1` it *is* the dot product `u . v`.
#
# First on four made-up numbers, where we can read every coordinate:

# %%
u = jnp.array([2.0, 2.0, -2.0, 0.1])
v = jnp.array([3.0, -3.0, -3.0, 3.0])
for name, value in [("u + v", u + v), ("u - v", u - v), ("u * v", u * v)]:
    print(f"{name:6s} = {np.asarray(value)}")
print("u . v  =", float(u @ v), " = sum(u * v) =", float(jnp.sum(u * v)))

# %% [markdown]
# Read the product column by column: big times big is big (2 x 3 = 6); big positive times
# big negative is big *negative* (2 x -3 = -6); two negatives agree (-2 x -3 = 6); and
# anything times almost nothing is almost nothing (0.1 x 3 = 0.3), however big the other one
# is. The sum hides all of that: `2 + 3 = 5` but also `5 + 0 = 5`.
#
# This is the *interaction term* of statistics: in `y = a x_1 + b x_2 + c x_1 x_2` the
# effect of `x_1` on `y` depends on `x_2`. A sum feeds a linear model only the `a` and `b`
# parts; only the product supplies `c`.
#
# ### Sums, averages and differences of real words
#
# "I want non-American food": take `eat + food`, and subtract `american`. With word vectors
# the sum is a query, "what is near both?", and the **average** is the same query: a cosine
# search ignores length, and `(u + v) / 2` points the same way as `u + v`. The difference
# pushes a direction away. In these captions "american" lives among nationalities and
# peoples ("african", "native", "tribe"), so we look at where such words land when we add
# `american` to `food` and when we subtract it.

# %%
def unit(word):
    return vectors.unit_vectors[vectors.index[word]]


def show(label, query, exclude):
    hits = vectors.nearest(query, 6, exclude=[w for w in exclude if w in vectors])
    print(f"{label:22s} -> " + ", ".join(f"{w} {s:.2f}" for w, s in hits))


show("eat + food", unit("eat") + unit("food"), ["eat", "food"])
show("(eat + food) / 2", (unit("eat") + unit("food")) / 2, ["eat", "food"])
show("eat + food - american", unit("eat") + unit("food") - unit("american"),
     ["eat", "food", "american"])
show("food + american", unit("food") + unit("american"), ["food", "american"])
show("food - american", unit("food") - unit("american"), ["food", "american"])
peoples = [w for w in ("african", "native", "tribe", "mexican", "asian") if w in vectors]
for label, query in [("food + american", unit("food") + unit("american")),
                     ("food - american", unit("food") - unit("american"))]:
    cosines = cosine_top_k(query, vectors.unit_vectors, len(vectors))
    rank = {int(r): i for i, r in enumerate(np.asarray(cosines[1]))}
    print(f"rank among {len(vectors)} words, {label}: "
          + ", ".join(f"{w} #{rank[vectors.index[w]]}" for w in peoples))

# %% [markdown]
# The sum finds meals and dishes; the average finds exactly the same list with the same
# cosines: length does not matter. Adding `american` pulls nationalities and
# peoples up among the nearest words; subtracting it sends them to the bottom of the ranking,
# and what stays is the food. The difference did remove a direction. It did not find
# "non-American cuisine": the captions name few cuisines, so there is nothing of that kind
# to find. Vector arithmetic only moves you around in what the text talked about.
#
# And the **product** as a query? `blood * color` is no point in word space: its coordinates
# are products of small numbers, mostly near zero, and its neighbours are noise. The product
# is not a word; it is a *feature*, to be weighed by a model (and summed, it is the dot
# product of the two words: their similarity).

# %%
if "blood" in vectors and "color" in vectors:
    show("blood + color", unit("blood") + unit("color"), ["blood", "color"])
    show("blood * color", unit("blood") * unit("color"), ["blood", "color"])
if "puppy" in vectors:
    print(f"sum(dog * puppy) = {float(jnp.sum(unit('dog') * unit('puppy'))):.4f} = cos(dog, puppy)"
          f" = {vectors.similarity('dog', 'puppy'):.4f}")

# %% [markdown]
# ## 3. A real pair task: do two pieces of text describe the same picture?
#
# For sentence pairs (is sentence B implied by sentence A?) Conneau et al. (2017, InferSent)
# and many after them feed a classifier the concatenation
#
# $$[\,u,\; v,\; |u - v|,\; u \odot v\,]$$
#
# which hands it each sentence, where they differ, and where they agree. Someone else
# proposes `0.5 (A*B + A + B)` to combine a phrase with its context. Let us measure.
#
# The task, from the Multi30k validation and test captions (2,014 captions the word vectors
# never saw): cut each caption in two halves. A **positive** pair is the two halves of one
# caption ("a brown dog runs" + "through the tall grass"); a **negative** pair is the first
# half of one caption and the second half of another. Each half becomes a sentence vector,
# the average of its word vectors (scaled to length 1), and a logistic regression
# `sigma(w . x + c)` is trained on each feature set `x` on three quarters of the captions
# and tested on the pairs of the other quarter.

# %%
captions = [en for split in ("val", "test2016") for _, en in load_multi30k(split)]
halves = [wv.tokenize_words(c) for c in captions]
firsts = [" ".join(w[: len(w) // 2]) for w in halves]
seconds = [" ".join(w[len(w) // 2:]) for w in halves]
A_all = np.asarray(normalize(jnp.asarray(wv.sentence_vectors(vectors, firsts))))
B_all = np.asarray(normalize(jnp.asarray(wv.sentence_vectors(vectors, seconds))))
rng = np.random.default_rng(0)
order = rng.permutation(len(captions))
train_ids, test_ids = order[: 3 * len(order) // 4], order[3 * len(order) // 4:]


def make_pairs(ids):
    """Positives (a caption's own halves) and negatives (a first half with the next caption's
    second half, so no caption's halves leave its own part of the split)."""
    other = np.roll(ids, 1)
    a = np.concatenate([A_all[ids], A_all[ids]])
    b = np.concatenate([B_all[ids], B_all[other]])
    y = np.concatenate([np.ones(len(ids)), np.zeros(len(ids))]).astype(np.float32)
    return a, b, y


def features(a, b):
    return {
        "sum u + v": a + b,
        "concat [u, v]": np.concatenate([a, b], axis=1),
        "0.5 (u*v + u + v)": 0.5 * (a * b + a + b),
        "|u - v|": np.abs(a - b),
        "product u * v": a * b,
        "[u, v, |u-v|, u*v]": np.concatenate([a, b, np.abs(a - b), a * b], axis=1),
    }


def fit_logistic(x_train, y_train, steps=TRAIN_STEPS):
    """Logistic regression sigma(x . w + c), full-batch Adam on the mean log-loss plus a
    little weight decay, on features standardised with the training set's statistics."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    x = jnp.asarray((x_train - mean) / std)
    params = {"w": jnp.zeros(x.shape[1]), "c": jnp.zeros(())}
    tx = optax.adam(0.05)
    opt_state = tx.init(params)

    def loss_fn(p):
        logits = x @ p["w"] + p["c"]
        return optax.sigmoid_binary_cross_entropy(logits, y_train).mean() + 1e-3 * p["w"] @ p["w"]

    def step(carry, _):
        p, s = carry
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = tx.update(grads, s)
        return (optax.apply_updates(p, updates), s), loss

    # All the updates in one compiled loop: one call instead of one per step.
    (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, length=steps))((params, opt_state))
    return lambda x_new: np.asarray(jnp.asarray((x_new - mean) / std) @ params["w"]
                                    + params["c"]) > 0


(a_train, b_train, y_train), (a_test, b_test, y_test) = make_pairs(train_ids), make_pairs(test_ids)
results = {}
for (name, x_train), x_test in zip(features(a_train, b_train).items(),
                                   features(a_test, b_test).values(), strict=True):
    predict = fit_logistic(x_train, jnp.asarray(y_train))
    results[name] = float(np.mean(predict(x_test) == (y_test > 0.5)))
    train_accuracy = float(np.mean(predict(x_train) == (y_train > 0.5)))
    print(f"{name:20s} train accuracy {train_accuracy:.3f}   test accuracy {results[name]:.3f}"
          f"   ({len(y_test)} test pairs)")
print("measured order, worst to best:", " < ".join(sorted(results, key=results.get)))

# %% [markdown]
# The sum and the concatenation sit at chance (50%): a linear model on `[u, v]` is
# `w_1 . u + w_2 . v`, a score for the first half plus a score for the second, and no choice
# of weights makes it depend on whether the two halves *match*. The product hands the model
# `u_i v_i`; with equal weights that is the cosine of the two halves, and with learned
# weights a cosine that counts some directions more (`|u - v|` carries much the same
# information, through `|u - v|^2 = 2 - 2 u . v` for unit vectors). The four-part
# concatenation has everything and comes out on top.
#
# `0.5 (A*B + A + B)` lands a few points above chance, far below the product (in our runs;
# read the printed table). It gives the model one weight per coordinate for
# `u_i v_i + u_i + v_i`, so it cannot weigh the interaction apart from the two sums, and the
# sums are the bigger part: coordinates of unit vectors are small, and a product of two
# small numbers is smaller still. Concatenating `[u * v, u + v]` instead would let the model
# weigh each part; mixing them into one number per coordinate wastes the product.
#
# (Accuracies differ by a point or two from run to run of the fast setting and between the
# fast and full settings; the order of sum, product and the four-part features is checked
# below.)

# %%
assert results["product u * v"] > results["sum u + v"] + 0.05, results
assert results["product u * v"] > results["concat [u, v]"] + 0.05, results
assert results["[u, v, |u-v|, u*v]"] > results["sum u + v"] + 0.05, results

# %% [markdown]
# ## 4. The dot product as similarity
#
# Summing the product gives the dot product `u . v = |u| |v| cos(theta)`. Divided by the two
# lengths it is the **cosine similarity**, a number in [-1, 1] that ignores length:
# 1 for the same direction, 0 for orthogonal, -1 for opposite. Every neighbour list above was
# a cosine search: "which stored vectors point the same way as this query?"
#
# `attention.vectors.cosine_top_k(queries, database, k)` returns the k best rows.
# Its docstring explains the plan: normalise the database once (`normalize`), so a search is
# one matrix-vector product plus a top-k, and stream the database in chunks for many queries.
# `vectors.unit_vectors` is our vocabulary, normalised once.

# %%
a, b = jnp.array([1.0, 2.0, 0.0]), jnp.array([2.0, 4.0, 0.0])
c = jnp.array([-2.0, 1.0, 0.0])
print("cos(a, 2a) =", float(normalize(a) @ normalize(b)), "  cos(a, c) =", float(normalize(a) @ normalize(c)))

database = vectors.unit_vectors  # [V, D], rows of length 1
scores, rows = cosine_top_k(database[vectors.index["dog"]], database, 6, normalized=True)
print("cosine_top_k('dog'):", [(vectors.words[r], round(s, 2)) for r, s in
                               zip(rows.tolist(), scores.tolist(), strict=True)])
print("(the first hit is 'dog' itself, cosine 1; vectors.nearest leaves it out)")

# Every word's nearest neighbour at once: V queries against V rows, one call.
start = time.perf_counter()
scores_all, rows_all = jax.block_until_ready(cosine_top_k(database, database, 2, normalized=True))
print(f"{len(vectors)} queries x {len(vectors)} words in {1e3 * (time.perf_counter() - start):.0f}"
      f" ms (compilation included); e.g. "
      + ", ".join(f"{vectors.words[i]} -> {vectors.words[int(rows_all[i, 1])]}"
                  for i in range(0, 50, 10)))

# %% [markdown]
# The search itself, as the package runs it: normalise, one matrix product of the queries with
# the database, and the top k of each row (`show_code` shows a function's body without its
# docstring and argument checks):

# %%
from attention.vectors.search import cosine_top_k

show_code(cosine_top_k)

# %% [markdown]
# A vocabulary of a few thousand words is searched in no time. Real systems search millions
# of vectors (documents, images, products), and there the time is set by the machine's
# memory: the optional notebook 15 measures that.
#
# ## 5. Attention: a soft database lookup
#
# A Python dict is a *hard* lookup: the query must equal one key exactly, and you get that
# key's value. The cosine search above is a hard lookup too: it returns the best rows and
# nothing else. Attention makes it soft. Compare the query `q` with every key `k_s` by a dot
# product, turn the scores into weights that sum to one with a softmax, and return the
# weighted average of the values:
#
# $$\operatorname{Attention}(q, K, V) = \sum_s \operatorname{softmax}_s\!\Big(\frac{q \cdot k_s}{\sqrt{d_k}}\Big)\, v_s$$
#
# Everything is differentiable, so a network can *learn* what to ask for (queries), how to be
# found (keys) and what to hand back (values). The rest of the course builds this formula
# step by step.
#
# **Axis letters.** The course writes every array's shape with one letter per axis, in the
# order `jax.nn.dot_product_attention` uses: `B` batch, `T` queries (the target), `S` keys
# (the source), `N` heads, `H` the width of a head, `D` the model's width. So queries are
# `[B, T, N, H]`, keys `[B, S, N, H]`, and the weights `[B, N, T, S]`: for each head, one
# row per query and one column per key. A name ending in the letters says the shape
# (`weights_TS` is `[T, S]`). The full list is in the package's `attention/__init__.py`.

# %%
keys = jnp.array([[1.0, 0.0, 0.0, 0.0],   # "cat"
                  [0.0, 1.0, 0.0, 0.0],   # "dog"
                  [0.0, 0.0, 1.0, 0.0]])  # "fish"
values = jnp.array([[10.0], [20.0], [30.0]])  # what each entry stores
q = jnp.array([[0.0, 3.0, 0.5, 0.0]])  # mostly "dog", a little "fish"

out = single_head_attention(q, keys, values)
weights = attention_weights(q[:, None, :], keys[:, None, :])[0, 0]  # [N, T, S]: head 0, query 0
print("weights over (cat, dog, fish):", np.round(np.asarray(weights), 3))
print("soft lookup result:", float(out[0, 0]), " (a hard lookup of 'dog' gives 20)")
# The sharper the query, the closer the soft lookup comes to the hard one.
sharp = single_head_attention(10 * q, keys, values)
print("with a 10x sharper query:", float(sharp[0, 0]))

# %% [markdown]
# The same soft lookup over real word vectors: the keys are the vectors of a few words, the
# values say which of three groups each word belongs to, and the query is a word that is not
# among the keys. The weights go to the keys whose vectors point its way.

# %%
key_words = [w for w in ("dog", "puppy", "red", "blue", "guitar", "piano") if w in vectors]
group = {"dog": 0, "puppy": 0, "red": 1, "blue": 1, "guitar": 2, "piano": 2}
word_keys = jnp.stack([vectors.unit_vectors[vectors.index[w]] for w in key_words])  # [S, D]
word_values = jax.nn.one_hot(jnp.array([group[w] for w in key_words]), 3)  # [S, 3]
for query_word in ("poodle", "green", "violin"):
    if query_word in vectors:
        # Attention divides the scores by sqrt(D), and cosines in [-1, 1] are too close for
        # a softmax to separate: scale the query so the scores are 5 x cosine. A trained
        # model learns such a scale in its query and key projections.
        sharpness = 5 * np.sqrt(vectors.dim)
        query_vector = sharpness * vectors.unit_vectors[vectors.index[query_word]][None, :]
        w = attention_weights(query_vector[:, None, :], word_keys[:, None, :])[0, 0]  # [S]
        looked_up = single_head_attention(query_vector, word_keys, word_values)[0]
        print(f"{query_word:7s}: weights " + ", ".join(
            f"{k} {x:.2f}" for k, x in zip(key_words, np.asarray(w).tolist(), strict=True))
            + f"  -> groups (animal, colour, instrument) {np.round(np.asarray(looked_up), 2)}")

# %% [markdown]
# ### Attention is a kernel smoother (Nadaraya-Watson)
#
# The soft lookup is older than transformers. To estimate a function from noisy samples
# `(x_i, y_i)`, Nadaraya (1964) and Watson (1964) averaged the `y_i` with weights that fall
# off with the distance from the query `x`:
#
# $$\hat f(x) = \sum_i \frac{K(x - x_i)}{\sum_j K(x - x_j)}\, y_i, \qquad K(u) = e^{-u^2 / 2h^2}
# \quad\Longrightarrow\quad \text{weights} = \operatorname{softmax}_i\Big(-\frac{(x - x_i)^2}{2h^2}\Big).$$
#
# Expand the square: `-(x - x_i)^2 / 2h^2 = x x_i / h^2 - x_i^2 / 2h^2 - x^2 / 2h^2`. The
# last term is the same for every `i`, and a softmax does not change when a row is shifted,
# so the Gaussian kernel smoother *is* dot-product attention, exactly: the query
# `[x / h^2, 1]`, the key `[x_i, -x_i^2 / 2h^2]`, the value `y_i` (d2l, chapter 11.2, tells
# this story). The bandwidth `h` plays the part that the size of the scores plays in
# attention: it decides how many keys share the weight.

# %%
rng_nw = np.random.default_rng(0)
x_i = np.sort(rng_nw.uniform(0, 5, 50))                       # [S] sample points (keys)
y_i = np.sin(2 * x_i) + 0.3 * rng_nw.normal(size=x_i.shape)  # [S] noisy values
x_query = np.linspace(0, 5, 200)                              # [T] where we estimate f


def kernel_smoother(h):
    """Nadaraya-Watson with a Gaussian kernel, computed by the package's attention."""
    q_T1H = jnp.stack([x_query / h**2, np.ones_like(x_query)], -1)[:, None]  # [T, N=1, 2]
    k_S1H = jnp.stack([x_i, -x_i**2 / (2 * h**2)], -1)[:, None]             # [S, N=1, 2]
    v_S1H = jnp.asarray(y_i)[:, None, None]                                  # [S, N=1, 1]
    return np.asarray(dot_product_attention(q_T1H, k_S1H, v_S1H, scale=1.0))[:, 0, 0]


def kernel_smoother_numpy(h):
    """The same estimate from the textbook formula, in NumPy."""
    k_TS = np.exp(-((x_query[:, None] - x_i[None, :]) ** 2) / (2 * h**2))
    return (k_TS @ y_i) / k_TS.sum(axis=1)


wide = kernel_smoother(0.5)
print("max |attention - Nadaraya-Watson formula| =",
      f"{np.abs(wide - kernel_smoother_numpy(0.5)).max():.1e}")
assert np.allclose(wide, kernel_smoother_numpy(0.5), atol=1e-4)

# %% [markdown]
# **Predict, then run.** The cell above computed the estimate with `h = 0.5` (the plot below
# shows it). With a bandwidth ten times narrower, `h = 0.05`, will the estimated curve
# (a) get smoother, (b) follow the noisy points more closely, or (c) stay the same? Write
# your letter, then run the next two cells.

# %%
my_prediction = None  # "a", "b" or "c"

# %%
narrow = kernel_smoother(0.05)
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(x_i, y_i, "k.", label="noisy samples (keys, values)")
ax.plot(x_query, np.sin(2 * x_query), "k:", label="sin(2x), the truth")
ax.plot(x_query, wide, label="h = 0.5")
ax.plot(x_query, narrow, label="h = 0.05")
ax.set_xlabel("x (query)")
ax.legend(fontsize=8)
ax.set_title("Nadaraya-Watson = attention with Gaussian-kernel scores")
plt.show()
# How wiggly each curve is (mean |second difference|) and how close it passes to the samples.
wiggle = {h: float(np.abs(np.diff(c, 2)).mean()) for h, c in ((0.5, wide), (0.05, narrow))}
near = np.abs(x_query[:, None] - x_i[None, :]).argmin(axis=0)  # the query nearest each sample
fit = {h: float(np.abs(c[near] - y_i).mean()) for h, c in ((0.5, wide), (0.05, narrow))}
print("wiggliness:", wiggle, "  mean distance to the samples:", fit)
measured = ("b" if wiggle[0.05] > wiggle[0.5] and fit[0.05] < fit[0.5]
            else "a" if wiggle[0.05] < wiggle[0.5] else "c")
check("00.narrow_bandwidth", my_prediction, lambda answer: answer == measured)

# %% [markdown]
# ## Check your understanding
#
# **Question.** A query is orthogonal to all three keys of the cat-dog-fish example above
# (for example `[0, 0, 0, 1]`). What does attention return? Write your answer as a number in
# `my_answer`, then run the cell; the explanation appears once your answer is right
# (`show_answer("00.orthogonal_query")` if you are stuck).

# %%
my_answer = None  # a number
orthogonal = single_head_attention(jnp.array([[0.0, 0.0, 0.0, 1.0]]), keys, values)
check("00.orthogonal_query", my_answer,
      lambda answer: abs(float(orthogonal[0, 0]) - float(answer)) < 1e-4)
