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
# # 13 A real model: GPT-2 in the package's own classes, and the heads it grew (steps 17d-17e, 24a)
#
# Every block of the course was checked against `jax.nn`, flax and the paper's formulas. This
# notebook checks them against a model that was really trained: GPT-2 small (Radford et al.
# 2019, 124M parameters). Its weights go into the very `LanguageModel` of notebook 12, and we
# look at what its heads do.
#
# Goals:
#
# 1. read a Hugging Face checkpoint (`config.json` + `model.safetensors`) into
#    `LanguageModel`, and see which switches of `TransformerConfig` GPT-2 needs;
# 2. check that our logits equal those of Hugging Face `transformers` (when it is installed);
# 3. generate text with the key/value cache of notebook 09;
# 4. find the **previous-token**, **induction** and **attention-sink** heads with the head
#    detectors (Olsson et al. 2022; Xiao et al. 2023), and compare with what TransformerLens
#    reports for GPT-2 small.
#
# **Where the weights come from.** The notebook never downloads anything. It uses GPT-2
# small when its weights are already on this machine: a folder named by the environment
# variable `ATTENTION_PRETRAINED`, or the Hugging Face cache. To put them there once, on a
# machine with network:
#
#     python -c "import attention; attention.from_pretrained('openai-community/gpt2')"
#
# Without them, the notebook writes a **small GPT-2 with random weights** and a tokenizer
# trained on a few synthetic stories, and runs every cell on it. Everything then still runs
# and the checks still compare our code with `transformers`, **but the text and the head
# figures mean nothing**: the next cell says which of the two you have.

# %%
# %matplotlib inline
import inspect
import os

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax import nnx
from IPython.display import Code, display

from attention import LanguageModel, count_params, head_view, language_model_attention_maps
from attention.application.course import find_gpt2, random_gpt2_checkpoint
from attention.comprehension import check, show_code
from attention.data.lm_corpus import make_stories
from attention.inspection.heads import (
    head_scores,
    head_table,
    plot_head_scores,
    previous_token_score,
    repeated_random_tokens,
)
from attention.model import pretrained
from attention.model.sampling import generate

FAST = os.environ.get("ATTENTION_FAST") == "1"
folder = find_gpt2()
REAL = folder is not None
if REAL:
    print(f"GPT-2's trained weights, from {folder}")
else:
    folder = random_gpt2_checkpoint("runs/random_gpt2", make_stories(num_stories=300, seed=0))
    print("=" * 78)
    print("No GPT-2 weights on this machine: a SMALL GPT-2 WITH RANDOM WEIGHTS stands in.")
    print("Every cell runs, but the generated text and the head figures mean nothing.")
    print("Set ATTENTION_PRETRAINED to a GPT-2 folder, or download it once (see above).")
    print("=" * 78)

# %% [markdown]
# ## 1. From a checkpoint folder to `LanguageModel`
#
# A Hugging Face checkpoint is a folder. `config.json` holds the sizes and switches,
# `model.safetensors` the tensors by name, and `tokenizer.json` the tokenizer. The
# `safetensors` library reads the tensors as NumPy arrays, so neither `torch` nor
# `transformers` runs here. `config_from_hf` turns GPT-2's fields into a `TransformerConfig`.
# GPT-2 is notebook 12's model with a few switches turned:
#
# * learned positions added to the embeddings, not rotary ones;
# * pre-LN blocks with a final layer norm;
# * GELU in its tanh form in the feed-forward network;
# * biases everywhere;
# * the output matrix tied to the embedding, and no `sqrt(d_model)` scale on the embeddings.

# %%
hf = pretrained.read_json(folder / "config.json")
config = pretrained.config_from_hf(hf)
for field in ("d_model", "num_heads", "num_layers", "d_ff", "max_len", "positional", "norm",
              "norm_first", "feed_forward", "use_bias", "share_embeddings", "scale_embeddings"):
    print(f"{field:17s} {getattr(config, field)}")

# %% [markdown]
# GPT-2 stores each linear map as `[in, out]` (its `Conv1D`), the layout of `nnx.Linear`, and
# the query, key and value maps side by side in one `c_attn` matrix `[D, 3D]`. Loading splits
# that matrix in three and puts every tensor at the path of the parameter that computes the
# same thing. This is the whole mapping:

# %%
display(Code(inspect.getsource(pretrained.gpt2_params), language="python"))

# %% [markdown]
# `from_pretrained` does all of it: read, map, check that no tensor is missing, misshapen or
# left over, and build the model. A checkpoint of another architecture, or a setting the
# package does not compute, is refused in one line rather than approximated.

# %% [markdown]
# **Question 1 (predict, then load).** GPT-2 small has `V = 50257` tokens, `P = 1024`
# positions, width `D = 768`, `L = 12` layers and a feed-forward width of `4D`, with biases
# everywhere and the output matrix tied to the embedding. Before the model is built, write
# its number of parameters as a formula in `V, P, D, L` (each layer: four `D x D` attention
# maps with biases, two feed-forward maps with biases, two layer norms with a scale and a
# bias; then a final layer norm). Run its cell, then the next two: the check evaluates your
# formula at the sizes of the model loaded there, and at those of a smaller one, and
# compares it with the count of their parameters.

# %%
def gpt2_parameters(V, P, D, L):
    return None  # your formula


# %%
model, tokenizer = pretrained.from_pretrained(folder)
print(f"{count_params(model):,} parameters; vocabulary {tokenizer.vocab_size:,} tokens")
text = "The quick brown fox jumps over the lazy dog. The quick brown fox"
ids = tokenizer.encode(text)
print(len(ids), "tokens:", tokenizer.tokens(text)[:12], "...")
assert tokenizer.decode(ids) == text

# %%
# A smaller model of the same kind (seven more token types than the checkpoint, so its special
# tokens still fit), built as shapes only:
smaller = config.replace(src_vocab_size=config.vocab_size + 7, tgt_vocab_size=config.vocab_size + 7,
                         max_len=37, d_model=24, num_heads=4, num_kv_heads=None, d_ff=96,
                         num_layers=3)
smaller_count = count_params(nnx.eval_shape(lambda: LanguageModel(smaller, rngs=nnx.Rngs(0))))
check("13.gpt2_parameters", gpt2_parameters, lambda f: all(
    f(c.vocab_size, c.max_len, c.d_model, c.num_layers) == n
    for c, n in [(config, count_params(model)), (smaller, smaller_count)]))

# %% [markdown]
# `from_pretrained`, as the package runs it:

# %%
show_code(pretrained.from_pretrained)

# %% [markdown]
# ## 2. The same logits as `transformers`
#
# If Hugging Face `transformers` (with PyTorch) is installed, load the same folder with it
# and compare the next-token scores of every position. It is an independent implementation
# of GPT-2 (the one most people use), so equal logits mean that every block we built
# computes what the trained model computes.

# %%
logits = np.asarray(model(jnp.asarray([ids]), deterministic=True))
try:
    import torch
    import transformers
except ImportError:
    print("transformers is not installed here: skipping the comparison "
          "(pip install transformers torch to run it)")
else:
    reference = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = reference(torch.tensor([ids])).logits.numpy()
    gap = np.abs(logits - expected).max()
    print(f"largest difference of {logits.size:,} logits: {gap:.2e} "
          f"(the logits reach {np.abs(expected).max():.1f})")
    assert gap <= 1e-4 * max(1.0, np.abs(expected).max()), gap

# %% [markdown]
# ## 3. Generating text
#
# `generate` is notebook 12's sampler with the key/value cache of notebook 09: the prompt
# goes through the model once, then each new token costs one query against the cached keys
# and values. Greedy decoding first, then sampling at temperature 0.8 with top-k 40.

# %%
prompt = "The meaning of life is"
prompt_ids = jnp.asarray([tokenizer.encode(prompt)])
new_tokens = 12 if FAST else 40
for setting in (dict(greedy=True), dict(temperature=0.8, top_k=40, seed=0)):
    tokens, _ = generate(model, prompt_ids, max_new_tokens=new_tokens, stop_at_eos=False,
                         **setting)
    print(setting, repr(prompt + tokenizer.decode(np.asarray(tokens[0]).tolist())))

# %% [markdown]
# ## 4. Its attention, in the browser view
#
# The maps come out of the same `language_model_attention_maps` as notebook 12's model:
# `[L, B, N, T, T]`, every layer and head. Hover over a token to see where each head looks
# from it; the model view shows every layer by every head at once.

# %%
maps = np.asarray(language_model_attention_maps(model, jnp.asarray([ids]))["decoder_self"])
print("maps", maps.shape)
display(head_view(maps[:, 0], tokenizer.tokens(text), causal=True,
                  title="GPT-2" if REAL else "a random-weight stand-in for GPT-2"))

# %% [markdown]
# ## 5. Finding heads by what they do
#
# A head detector is a number per head: the attention mass that falls where a head of that
# kind would look, averaged over the queries it applies to. Before running the package's
# detectors, write the simplest one. A **previous-token head** puts its weight on key `t - 1`
# at every query `t >= 1`.
#
# **Question 2.** Write `previous_token(weights)` for one head's causal map `[T, T]`: the mean
# over queries `t = 1 .. T-1` of `weights[t, t - 1]`. The check compares it with the
# package's detector on every head of the map above.

# %%
def previous_token(weights):
    return None  # your code


check("13.previous_token", previous_token,
      lambda f: all(abs(float(f(maps[layer, 0, head])) -
                        float(previous_token_score(maps[layer, 0, head]))) < 1e-5
                    for layer in range(maps.shape[0]) for head in range(maps.shape[2])))

# %% [markdown]
# A head detector is a few lines: the previous-token score is the mean weight on the diagonal
# just below the main one:

# %%
show_code(previous_token_score)

# %% [markdown]
# The other detectors need a text in which copying is the only way to predict: **repeated
# random tokens**, a random sequence shown twice. In the second copy every token occurred
# exactly `period` positions before, and an **induction head** (Olsson et al. 2022) attends
# from it to the token that *followed* that earlier occurrence: "A B ... A -> look at B".
# A **duplicate-token** head looks at the earlier occurrence itself. The **sink** score is
# the weight on the first token, which many heads use as a place to put attention they have
# no use for (Xiao et al. 2023).

# %%
period = 20 if FAST else 50
batch = 4 if FAST else 16
eos = tokenizer.inner.token_to_id("<|endoftext|>")
random_tokens = repeated_random_tokens(tokenizer.vocab_size, period, batch, first=eos,
                                       low=min(1000, tokenizer.vocab_size // 4), seed=0)
probe_maps = language_model_attention_maps(model, jnp.asarray(random_tokens))["decoder_self"]
scores = head_scores(np.asarray(probe_maps), random_tokens)
print(head_table(scores, top=8))
fig = plot_head_scores(scores, title="GPT-2 small" if REAL else "random-weight stand-in")
display(fig)
plt.close(fig)

# %% [markdown]
# **What to compare with.** TransformerLens's head detector and the ARENA exercises find the
# induction heads of GPT-2 small in layers 5 to 7 (heads such as 5.1, 5.5, 6.9, 7.2, 7.10),
# fed by previous-token heads in the layers below (4.11 among them), and many heads of the
# later layers send most of their weight to the first token. The next cell prints where our
# detectors put the strongest heads of each kind; with GPT-2's real weights, compare them with
# that list. With the random stand-in every score sits near the uniform baseline.

# %%
for name in ("previous_token", "induction", "sink"):
    best = np.argsort(-np.nan_to_num(scores[name]), axis=None)[:5]
    heads = [f"{layer}.{head}" for layer, head in zip(*np.unravel_index(best, scores[name].shape),
                                                      strict=True)]
    print(f"{name:15s} strongest heads: {', '.join(heads)}")
uniform = np.mean(1.0 / np.arange(2, random_tokens.shape[1] + 1))
print(f"a head with equal weights on every visible key: {uniform:.3f} on any one key")

# %% [markdown]
# ## What we saw
#
# * A real checkpoint is a config of sizes and switches plus named tensors; mapping the names
#   onto the course's modules is all it takes to run GPT-2 in them, and the logits equal
#   those of `transformers` to float32 rounding.
# * The same views and detectors serve the course's toy models and a real one. On repeated
#   random tokens, the detectors pick out previous-token, induction and sink heads; with
#   GPT-2's own weights, compare the layers they name with the published ones above.
# * Llama-family checkpoints (SmolLM2, TinyLlama, Llama 3.x) load the same way, with
#   RMSNorm, SwiGLU, rotary positions and grouped-query heads switched on:
#   `attention.from_pretrained(folder)`.
