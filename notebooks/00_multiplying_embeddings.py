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
# # 00 Multiplying embeddings (step 0)
#
# Attention multiplies vectors: a query times a key. Before we build it, a warm-up question:
# **does it make sense to multiply two embeddings at all?**
#
# Goals of this notebook:
#
# 1. See what the sum, the difference and the element-wise product of two embeddings can and
#    cannot express, and why the product is an *interaction* term.
# 2. Run a small experiment where the ground truth has interactions, and measure that a
#    model fed `u * v` beats one fed `u + v` or `[u, v]`.
# 3. Meet the dot product as a similarity, and make a cosine-similarity search over a
#    million 300-d vectors fast, measured against the limits of this machine.
# 4. Close the loop: attention is a *soft* database lookup with queries, keys and values.
#
# Set `ATTENTION_FAST=1` in the environment for a quick run with small sizes (the tests do).

# %%
# %matplotlib inline
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from attention import attention_weights, cosine_top_k, normalize, single_head_attention

FAST = os.environ.get("ATTENTION_FAST", "0") == "1"
NUM_ROWS = 20_000 if FAST else 1_000_000  # database rows for the search benchmark
NUM_PAIRS = 4_000 if FAST else 40_000  # (user, item) pairs in the experiment
TRAIN_STEPS = 150 if FAST else 600
print(f"fast setting: {FAST}; JAX {jax.__version__} on {jax.default_backend()}")

# %% [markdown]
# ## 1. Three ways to combine two vectors
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
# For sentence pairs (is sentence B implied by sentence A?) Conneau et al. (2017, InferSent)
# and many after them feed a classifier the concatenation
#
# $$[\,u,\; v,\; |u - v|,\; u \odot v\,]$$
#
# which hands it each sentence, where they differ, and where they agree.

# %%
pair_features = jnp.concatenate([u, v, jnp.abs(u - v), u * v])
print("the [u, v, |u - v|, u * v] features:", pair_features.shape, np.asarray(pair_features))

# %% [markdown]
# ## 2. An experiment: users, items and clicks
#
# Synthetic data where we know the truth. Each user has a taste vector `u`, each item a
# profile `v` (both `d`-dimensional, standard normal). A user clicks an item with
#
# $$P(\text{click}) = \sigma\big(3\,u \cdot v / \sqrt{d} + b \cdot v\big)$$
#
# mostly an *interaction* (does the taste match the item?), plus a little item popularity
# `b . v` that does not depend on the user. We fit the same logistic regression
# `sigma(w . x + c)` on four feature sets `x` and compare their accuracy on held-out pairs.

# %%
d = 16
key_users, key_items, key_pop, key_pairs, key_labels = jax.random.split(jax.random.key(0), 5)
users = jax.random.normal(key_users, (500, d))
items = jax.random.normal(key_items, (500, d))
popularity = 0.5 * jax.random.normal(key_pop, (d,))

user_id, item_id = jax.random.randint(key_pairs, (2, NUM_PAIRS), 0, 500)
u_all, v_all = users[user_id], items[item_id]
true_logit = 3.0 * jnp.sum(u_all * v_all, axis=1) / jnp.sqrt(d) + v_all @ popularity
clicked = jax.random.bernoulli(key_labels, jax.nn.sigmoid(true_logit)).astype(jnp.float32)
split = int(0.8 * NUM_PAIRS)
print(f"{NUM_PAIRS} pairs, {float(clicked.mean()):.1%} clicked")
# The best any model can do: predict with the true probability.
bayes = float(jnp.mean((true_logit[split:] > 0) == (clicked[split:] > 0.5)))
print(f"accuracy of the true model on the test pairs: {bayes:.3f}")

# %%
feature_sets = {
    "sum u + v": u_all + v_all,
    "concat [u, v]": jnp.concatenate([u_all, v_all], axis=1),
    "product u * v": u_all * v_all,
    "[u, v, |u-v|, u*v]": jnp.concatenate(
        [u_all, v_all, jnp.abs(u_all - v_all), u_all * v_all], axis=1
    ),
}


def fit_logistic(x_train, y_train, steps=TRAIN_STEPS):
    """Logistic regression sigma(x . w + c), full-batch Adam on the mean log-loss."""
    params = {"w": jnp.zeros(x_train.shape[1]), "c": jnp.zeros(())}
    tx = optax.adam(0.05)
    opt_state = tx.init(params)

    def loss_fn(p):
        logits = x_train @ p["w"] + p["c"]
        return optax.sigmoid_binary_cross_entropy(logits, y_train).mean()

    @jax.jit
    def step(p, s):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = tx.update(grads, s)
        return optax.apply_updates(p, updates), s, loss

    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state)
    return params, float(loss)


results = {}
for name, x in feature_sets.items():
    params, train_loss = fit_logistic(x[:split], clicked[:split])
    predicted = (x[split:] @ params["w"] + params["c"]) > 0
    results[name] = float(jnp.mean(predicted == (clicked[split:] > 0.5)))
    print(f"{name:20s} train log-loss {train_loss:.3f}   test accuracy {results[name]:.3f}")

# %% [markdown]
# The sum and the concatenation learn only the popularity part: a linear model on `[u, v]`
# is `w_1 . u + w_2 . v`, a sum of a user effect and an item effect, and no choice of
# weights makes it depend on whether the two *match*. The product hands the model `u_i v_i`,
# and with `w_i = 3 / sqrt(d)` it recovers the dot product exactly. (With `u * v` alone the
# popularity term is out of reach again; the four-part concatenation has both.)

# %%
assert results["product u * v"] > results["sum u + v"] + 0.05, results
assert results["product u * v"] > results["concat [u, v]"] + 0.05, results

# %% [markdown]
# ## 3. The dot product as similarity
#
# Summing the product gives the dot product `u . v = |u| |v| cos(theta)`. Divided by the two
# lengths it is the **cosine similarity**, a number in [-1, 1] that ignores length:
# 1 for the same direction, 0 for orthogonal, -1 for opposite. Word vectors such as
# word2vec or GloVe (300-d) are searched this way: "which stored vectors point the same way
# as this query?"
#
# `attention.mechanism.similarity.cosine_top_k(queries, database, k)` returns the k best rows. Its
# docstring explains the plan: normalise the database once (`normalize`), so a search is one
# matrix-vector product plus a top-k, and stream the database in chunks for many queries.

# %%
a, b = jnp.array([1.0, 2.0, 0.0]), jnp.array([2.0, 4.0, 0.0])
c = jnp.array([-2.0, 1.0, 0.0])
print("cos(a, 2a) =", float(normalize(a) @ normalize(b)), "  cos(a, c) =", float(normalize(a) @ normalize(c)))

# %% [markdown]
# ### How fast can a search be?
#
# A database of `M` rows of `D = 300` float32 numbers is `1.2 GB` for a million rows. One query
# does `2 M D` flops and reads `4 M D` bytes: half a flop per byte, far too little arithmetic
# to keep a CPU busy, so the time is set by **memory bandwidth**. The floor is the time to
# read the matrix once, which we measure with a plain reduction over it. A **batch** of `Q`
# queries reads the matrix once for all of them, does `2 Q M D` flops, and with `Q` in the
# hundreds becomes **compute-bound**: its floor is the matrix-multiply peak, also measured
# here, in the same run, on the same machine.

# %%
def best_time(fn, *args, repeats=5):
    """Fastest of `repeats` calls, in seconds, after one warm-up call (compilation)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


D, K = 300, 10
database = normalize(jax.random.normal(jax.random.key(1), (NUM_ROWS, D)))
database_np = np.asarray(database)
query = normalize(jax.random.normal(jax.random.key(2), (D,)))
query_np = np.asarray(query)
gigabytes = database.nbytes / 1e9
print(f"database: {NUM_ROWS:,} x {D} float32 = {gigabytes:.2f} GB")

# The memory-bandwidth floor: one pass over the matrix, doing almost no arithmetic. Two
# ways to sum every entry; the faster one is our estimate of the time to read it once.
t_read = min(best_time(jax.jit(jnp.sum), database), best_time(np.sum, database_np))


def numpy_top_k(q, db, k):
    scores = db @ q
    top = np.argpartition(-scores, k)[:k]
    return scores[top[np.argsort(-scores[top])]], top[np.argsort(-scores[top])]


t_numpy = best_time(numpy_top_k, query_np, database_np, K)
t_jax = best_time(lambda q, db: cosine_top_k(q, db, K, normalized=True), query, database)
print(f"read the matrix once : {1e3 * t_read:8.1f} ms  ({gigabytes / t_read:.1f} GB/s)")
print(f"NumPy matvec + top-k : {1e3 * t_numpy:8.1f} ms  ({t_numpy / t_read:.1f}x the floor)")
print(f"cosine_top_k         : {1e3 * t_jax:8.1f} ms  ({t_jax / t_read:.1f}x the floor)")

scores_jax, rows_jax = cosine_top_k(query, database, K, normalized=True)
scores_np, rows_np = numpy_top_k(query_np, database_np, K)
assert np.array_equal(np.asarray(rows_jax), rows_np)
print("same top-10 rows as NumPy:", np.asarray(rows_jax))

# %% [markdown]
# Now a batch of queries, against the matrix-multiply peak of this machine.

# %%
Q = 64 if FAST else 256
queries = normalize(jax.random.normal(jax.random.key(3), (Q, D)))
n = 512 if FAST else 2048
square = jax.random.normal(jax.random.key(4), (n, n))
matmul = jax.jit(lambda x: x @ x)
peak = 2 * n**3 / best_time(matmul, square, repeats=3)
t_batch = best_time(lambda q, db: cosine_top_k(q, db, K, normalized=True), queries, database,
                    repeats=3)
achieved = 2 * Q * NUM_ROWS * D / t_batch
print(f"matmul peak ({n}x{n}) : {peak / 1e9:7.1f} GFLOP/s")
print(f"{Q} queries at once  : {1e3 * t_batch:7.1f} ms = {1e3 * t_batch / Q:.2f} ms a query, "
      f"{achieved / 1e9:.1f} GFLOP/s ({achieved / peak:.0%} of the peak)")
print(f"one query at a time  : {1e3 * t_jax:7.1f} ms a query")

# %% [markdown]
# On a laptop-class CPU a single query should sit within a small factor of the bandwidth
# floor, and the batch should run many times faster *per query* than one query at a time,
# at a good fraction of the matmul peak: the same lesson that makes attention kernels fast
# (notebook 10). Numbers on a shared or busy machine vary from run to run.
#
# ## 4. Attention: a soft database lookup
#
# A Python dict is a *hard* lookup: the query must equal one key exactly, and you get that
# key's value. Attention makes it soft. Compare the query `q` with every key `k_s` by a dot
# product, turn the scores into weights that sum to one with a softmax, and return the
# weighted average of the values:
#
# $$\operatorname{Attention}(q, K, V) = \sum_s \operatorname{softmax}_s\!\Big(\frac{q \cdot k_s}{\sqrt{d_k}}\Big)\, v_s$$
#
# Everything is differentiable, so a network can *learn* what to ask for (queries), how to be
# found (keys) and what to hand back (values). The rest of the course builds this formula
# step by step.

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
# ## Check your understanding
#
# **Question.** A query is orthogonal to all three keys above (for example
# `[0, 0, 0, 1]`). What does attention return, and why? Write your answer as a number in
# `my_answer`, then run the cell.
#
# <details><summary>Answer</summary>
# Every score is 0, so the softmax gives equal weights 1/3 and the result is the mean of the
# values, (10 + 20 + 30) / 3 = 20: knowing nothing, attention averages everything.
# </details>

# %%
my_answer = 20.0  # replace with your own answer and re-run
orthogonal = single_head_attention(jnp.array([[0.0, 0.0, 0.0, 1.0]]), keys, values)
assert abs(float(orthogonal[0, 0]) - my_answer) < 1e-4, "not quite: look at the weights"
print("correct:", float(orthogonal[0, 0]))
