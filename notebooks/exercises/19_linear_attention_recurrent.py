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
# # Exercise 19: the recurrent form of linear attention
#
# | main notebook | difficulty | time |
# |---|---|---|
# | [`14_attention_since_2023`](../14_attention_since_2023.ipynb) | ★★☆ medium | about 25 min |
#
# Read the main notebook first. Hints are folded below the task: open one only when you are
# stuck.
#
# Softmax attention compares every query with every key: T^2 work, and a KV cache that grows
# with the text. **Linear attention** (Katharopoulos et al. 2020, "Transformers are RNNs",
# section 3.2) replaces the similarity exp(q . k) by phi(q) . phi(k), with the positive
# feature map
#
#     phi(x) = elu(x) + 1                                     (section 3.2.1)
#
# Then the sums over the keys can be regrouped, and with a causal mask they become running
# sums, a recurrent network with a state of constant size (section 3.4). For each new token
# t, with its query q, key k `[H]` and value v `[Hv]`:
#
#     S_t = S_{t-1} + phi(k_t) v_t^T      [H, Hv]
#     z_t = z_{t-1} + phi(k_t)            [H]
#     out_t = phi(q_t) S_t / (phi(q_t) . z_t)    [Hv]
#
# Token t attends itself (s <= t), so the state takes token t before the output is read.
#
# Write `linear_attention_step(S, z, q, k, v)` returning `(out, S, z)`: the output and the
# updated state. The checker tests one step from a given state, then runs your step over a
# sequence from `S = 0, z = 0` and compares it with the package's parallel form,
# `attention.mechanism.linear.linear_attention(..., is_causal=True)`.
#
# **How this works.** Fill in the cell marked *exercise* (replace
# `raise NotImplementedError("your code here")` with your code), run it, then run the *check*
# cell below it. The checker runs your code on many inputs, with a different size on every
# axis, compares it with the `attention` package and explains the first problem it finds.
# Until you fill the blank, the check says "not implemented yet" (it never stops the notebook).


# %%
import jax  # noqa: F401  (for your code)
import jax.numpy as jnp  # noqa: F401  (for your code)

from attention.exercises import check_linear_attention_step

# %% [markdown]
# **Hints** (click to open, one at a time)
#
# <details><summary>Hint 1</summary>
#
# `jax.nn.elu(x) + 1`, applied to both the query and the key (not to the value).
#
# </details>
#
# <details><summary>Hint 2</summary>
#
# phi(k) v^T is `jnp.outer(phi_k, v)`, shape [H, Hv]: then phi(q) S is `phi_q @ S`, shape
# [Hv].
#
# </details>
#
# <details><summary>Hint 3</summary>
#
# Update S and z first, then divide `phi_q @ S` by `phi_q @ z`.
#
# </details>


# %% tags=["exercise"]
def linear_attention_step(S, z, q, k, v):
    """One token: state S [H, Hv] and z [H], q and k [H], v [Hv] -> (out [Hv], S, z)."""
    raise NotImplementedError("your code here")


# %% tags=["check"]
check_linear_attention_step(linear_attention_step)
