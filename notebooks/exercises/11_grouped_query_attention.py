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
# # Exercise 11: grouped-query attention
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`11_attention_in_todays_models`](../11_attention_in_todays_models.ipynb) | ★★★ hard | about 30 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# In multi-head attention every query head has its own key and value head. During decoding
# the keys and values of all earlier tokens sit in the KV cache, and for long contexts that
# cache, not the weights, fills the memory. **Multi-query attention** (Shazeer 2019, "Fast
# Transformer Decoding: One Write-Head is All You Need") keeps N query heads but a single
# key/value head; **grouped-query attention** (Ainslie et al. 2023, "GQA") keeps K key/value
# heads, K dividing N, each shared by a group of N / K query heads. Llama 2 70B, Llama 3 and
# Mistral use it: the cache shrinks by N / K.
#
# The grouping is the one of `jax.nn.dot_product_attention`: **query head n uses key/value
# head n // (N / K)**, so with N = 6 and K = 2 the query heads 0, 1, 2 share key head 0 and
# 3, 4, 5 share key head 1.
#
# Write `grouped_query_attention(query, key, value, is_causal=False)` with
#
# * `query` `[B, T, N, H]`, `key` and `value` `[B, S, K, H]`,
# * result `[B, T, N, H]`: softmax(q k^T / sqrt(H)) v for each query head and its group's
#   key/value head,
# * `is_causal=True`: query t may attend keys s <= t only (counted from the first key, as
#   `jax.nn.dot_product_attention(is_causal=True)`).
#
# Two ways to write it: repeat each key/value head for its group (`jnp.repeat`, the view
# the package's reference shows) and do ordinary multi-head attention; or reshape the query
# heads to `[B, T, K, N/K, H]` and use an einsum that never copies the keys (what fast
# kernels do). Do not call `jax.nn.dot_product_attention`: the checker compares with it.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_grouped_query_attention

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# Group the query heads: `query.reshape(B, T, K, N // K, H)`; query head n = k * (N/K) + g
# belongs to group k.
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# One einsum per step with the group axis: "btkgh,bskh->bkgts" for the scores,
# "bkgts,bskh->btkgh" for the output; reshape back to [B, T, N, H].
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Alternatively `jnp.repeat(key, N // K, axis=-2)` (repeat, not tile) and ordinary multi-head
# attention. The causal mask is top-left, as jax.nn.dot_product_attention's.
#
# </details>


# %% tags=["exercise"]
def grouped_query_attention(query, key, value, is_causal=False):
    """query [B, T, N, H], key and value [B, S, K, H] -> [B, T, N, H]."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_grouped_query_attention(grouped_query_attention)
