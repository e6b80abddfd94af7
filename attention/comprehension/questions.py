"""Every comprehension question of notebooks 00-15: model answer, hint and explanation.

The notebooks show the question and the empty answer; this file holds what a student sees only
after answering (the explanation) or when stuck (:func:`attention.comprehension.show_answer`).
A teacher reads the course's answers here. Ids are ``"NN.name"``, NN the notebook.

Answers are plain values (numbers, lists, a letter for a multiple choice) or small functions
(a formula to write); each function's docstring is the formula shown by ``show_answer``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Question:
    """One comprehension question.

    Attributes:
      id: ``"NN.name"``.
      prompt: a one-line reminder of what to fill in (shown while unanswered).
      solution: the model answer (a value or a function).
      hint: shown after a wrong answer; it points at the idea, not at the answer.
      explanation: shown after a right answer.
      measured: for a formula, the notebook's names that hold or compute what it must
        predict (a measuring function, the measured values): an answer that uses one fails.
    """

    id: str
    prompt: str
    solution: Any
    hint: str
    explanation: str
    measured: tuple[str, ...] = ()

    @property
    def notebook(self) -> str:
        return self.id.split(".", 1)[0]


def _formula(doc: str) -> Callable[[Callable], Callable]:
    def wrap(f: Callable) -> Callable:
        f.__doc__ = doc
        return f
    return wrap


@_formula("Var(q . k) = d_k * sigma**4")
def _variance(d_k, sigma):
    return d_k * sigma**4


@_formula("the mean of the values over the keys: value_SH.mean(axis=0)")
def _same_keys(value_SH):
    return value_SH.mean(axis=0)


@_formula("|PE_p|^2 = d_model / 2")
def _squared_length(d_model):
    return d_model / 2


@_formula("2 D F + F + D (W_1 [D, F] and b_1 [F], W_2 [F, D] and b_2 [D])")
def _ffn_params(d_model, d_ff):
    return 2 * d_model * d_ff + d_ff + d_model


@_formula("(1 - eps) + eps / V on the right word, eps / V on each other word")
def _smoothed_right(eps, vocab_size):
    return 1 - eps + eps / vocab_size


@_formula("decoder input [<s>] + ids, target ids + [</s>]")
def _shift(ids, bos_id, eos_id):
    return [bos_id, *ids], [*ids, eos_id]


@_formula("uncached: 1 + 2 + ... + L = L (L + 1) / 2")
def _uncached_updates(L):
    return L * (L + 1) // 2


@_formula("cached: one position a step, L")
def _cached_updates(L):
    return L


@_formula("4 bytes * N * T * T / 2**20")
def _weights_mib(N_heads, T_):
    return 4 * N_heads * T_ * T_ / 2**20


@_formula("2 (keys and values) * layers * B * L * K * H * itemsize")
def _kv_cache_bytes(layers, batch, length, kv_heads, head_dim, itemsize):
    return 2 * layers * batch * length * kv_heads * head_dim * itemsize


@_formula("1 / (t + 1): query t sees keys 0..t, t + 1 of them, with equal scores")
def _uniform_weight(t):
    return 1 / (t + 1)


@_formula("t - L + 1: the word after the previous occurrence of token t")
def _induction_key(t, L):
    return t - L + 1


@_formula("the mean over t = 1..T-1 of weights[t, t - 1]")
def _previous_token(weights):
    return sum(float(weights[t, t - 1]) for t in range(1, len(weights))) / (len(weights) - 1)


@_formula("V D + P D + L (12 D^2 + 13 D) + 2 D")
def _gpt2_parameters(V, P, D, L):
    return V * D + P * D + L * (12 * D * D + 13 * D) + 2 * D


@_formula("(latent_dim + rope_head_dim) * layers * itemsize")
def _mla_bytes_per_token(layers, latent_dim, rope_head_dim, itemsize):
    return (latent_dim + rope_head_dim) * layers * itemsize


@_formula("kv_heads * (head_dim * head_dim + head_dim): S [H, H] and z [H] per head")
def _linear_state_numbers(kv_heads, head_dim):
    return kv_heads * (head_dim * head_dim + head_dim)


_ALL = [
    # 00 multiplying embeddings
    Question(
        "00.orthogonal_query", "a number: what attention returns for a query orthogonal to "
        "every key", 20.0,
        "an orthogonal query scores 0 against every key; what does a softmax make of equal "
        "scores?",
        "Every score is 0, so the softmax gives equal weights 1/3 and the result is the mean "
        "of the values, (10 + 20 + 30) / 3 = 20: knowing nothing, attention averages "
        "everything."),
    Question(
        "00.narrow_bandwidth", "a letter, 'a', 'b' or 'c': what a 10x narrower kernel does "
        "to the smoother's curve", "b",
        "a narrower kernel gives the nearest training points almost all the weight.",
        "With a narrow bandwidth each query takes its weights from the one or two nearest "
        "points, so the curve follows every noisy point (it overfits); with a wide one every "
        "point weighs about the same and the curve flattens to the mean. In attention the "
        "same knob is the size of the scores: 1/sqrt(d_k) and the learned projections set "
        "it."),
    # 01 scores and scaling
    Question(
        "01.largest_weight", "a letter: the mean largest softmax weight over 10 unscaled "
        "scores at d_k = 256", "c",
        "unscaled scores at d_k = 256 have a standard deviation of 16; how far apart are the "
        "largest two?",
        "Close to 1: scores spread over tens of units make the softmax an argmax, so one key "
        "takes nearly all the weight. Scaled by 1/sqrt(d_k) the spread is about 1 and the "
        "largest weight stays moderate at every width."),
    Question(
        "01.variance_sigma", "a formula: Var(q . k) when the components have variance "
        "sigma^2", _variance,
        "each product q_h k_h of independent mean-zero terms has variance Var(q_h) Var(k_h); "
        "there are d_k of them.",
        "Each product q_h k_h has variance sigma^2 * sigma^2 = sigma^4, and the d_k products "
        "are independent, so Var(q . k) = d_k sigma^4. The scale 1/sqrt(d_k) assumes "
        "unit-variance components, which is what initialisation aims for."),
    # 02 softmax and masks
    Question(
        "02.finite_negative", "a letter: the weights of a fully masked row when the masked "
        "scores are a large finite negative", "c",
        "after subtracting the row maximum, what are the shifted scores when every score is "
        "the same large negative number?",
        "Uniform weights, 1/S each: every score is the same number, so the softmax cannot "
        "prefer one. That is the convention of jax.nn.dot_product_attention (which fills with "
        "-0.7 * finfo.max) and of Hugging Face's models (which add finfo.min); the query's "
        "output is then the mean of all the values, padding included. PyTorch's "
        "scaled_dot_product_attention returns zeros there since 2.5, as this package does."),
    Question(
        "02.causal_first_query", "a number: the weight query 0 gives key 0 under the causal "
        "mask", 1.0,
        "under the causal mask, which keys may query 0 see?",
        "Query 0 may see only key 0, and the weights of a row sum to one, so its weight is "
        "exactly 1 whatever the scores."),
    Question(
        "02.last_key", "an int: the only query that may see the last key (T = 5)", 4,
        "query t may see keys s <= t.",
        "Only the last query, t = T - 1 = 4, may see the last key: every earlier query would "
        "be looking into its future."),
    # 03 scaled dot-product attention
    Question(
        "03.same_keys", "a function of the values [S, H]: the output of any query when "
        "every key is the same vector", _same_keys,
        "if every key is the same, every score in a row is the same.",
        "All scores in a row are equal, so the weights are uniform, 1/S each, and every "
        "query's output is the mean of the values, whatever the query."),
    # 04 multi-head attention
    Question(
        "04.views_self_score", "a letter: with raw embeddings (no projections), which key "
        "scores highest against a token's own query", "a",
        "for vectors of equal length, which vector has the largest dot product with x?",
        "(a) the token itself: for vectors of similar length x . x is the largest dot "
        "product x can have, so attention without projections mostly looks at itself. Three "
        "learned matrices give each token three different roles: what it asks for (query), "
        "what it advertises (key) and what it hands over (value)."),
    Question(
        "04.params_h8_h1", "a pair of ints: the parameters of multi-head attention for "
        "d_model = 512 with h = 8 and with h = 1", (1_050_624, 1_050_624),
        "count the four d_model x d_model projections and their biases; where do the heads "
        "enter?",
        "The same for both: 4 * (512 * 512 + 512) = 1,050,624. Heads slice the projections; "
        "they do not add parameters."),
    Question(
        "04.heads_two_relations", "a letter: which model solves 'copy the previous and the "
        "next token'", "b",
        "one head gives one weighted average per query; can a linear read-out tell two "
        "averaged tokens apart by their role?",
        "(b) four heads: one head can only average the previous and the next token into one "
        "vector, and a linear read-out cannot tell which of the two was before; two of the "
        "four heads specialise, one looking back and one looking forward."),
    # 05 positional encodings
    Question(
        "05.before_after", "a letter: does PE_p . PE_(p+3) equal PE_p . PE_(p-3)", "a",
        "a dot product is symmetric, and cos is an even function.",
        "(a) equal: the raw product is a sum of cos((p - q) w_i), an even function of the "
        "offset, so it cannot tell 3 positions before from 3 after. Attention compares "
        "projected vectors, and that is where the raw picture breaks down (next section); "
        "rotary positions (notebook 11) put the offset into the scores on purpose."),
    Question(
        "05.squared_length", "a formula in d_model: PE_p . PE_p", _squared_length,
        "each (sin, cos) pair contributes sin^2 + cos^2.",
        "Each pair contributes sin^2 + cos^2 = 1, and there are d_model / 2 pairs: every "
        "positional vector has squared length d_model / 2."),
    # 06 building a layer
    Question(
        "06.ffn_params", "a formula in d_model and d_ff: the parameters of the feed-forward "
        "network", _ffn_params,
        "two weight matrices and two bias vectors.",
        "W_1 is [D, F] with a bias of F, W_2 is [F, D] with a bias of D: 2 D F + F + D. For "
        "the base model (512, 2048) that is 2.1 M per layer, about two thirds of an encoder "
        "layer."),
    Question(
        "06.residual_gradient", "a letter: where the gradient reaching the first layer of a "
        "deep stack is larger", "a",
        "with a residual, d(x + f(x)) / dx = I + df/dx.",
        "(a) with residual connections: each block's Jacobian is I + df/dx, so the identity "
        "path carries the gradient down unchanged; without them the gradient is a product of "
        "L Jacobians and shrinks (or grows) geometrically with depth."),
    Question(
        "06.influence_positions", "a list: the target input positions that can influence "
        "the logits at output position 2", [0, 1, 2],
        "the causal mask lets position t see positions u <= t.",
        "Positions 0, 1 and 2: the causal mask lets position t see u <= t, including itself "
        "(the decoder input at t is the token *before* the one it predicts)."),
    # 07 training
    Question(
        "07.shift", "a function (ids, bos_id, eos_id) -> (decoder input, target)", _shift,
        "at position t the decoder reads the token before the one it must predict.",
        "The decoder reads <s> y_1 ... y_n and predicts y_1 ... y_n </s>. If the two were "
        "the same sequence, the causal decoder could copy its own input at position t and "
        "reach zero loss without learning to translate."),
    Question(
        "07.smoothed_right", "a formula in eps and V: the smoothed target probability of the "
        "right word", _smoothed_right,
        "the smoothed target is (1 - eps) one-hot + eps / V spread over every word, the "
        "right one included.",
        "(1 - eps) + eps / V: 0.9 + 0.1 / V for eps = 0.1. The model is asked to keep eps of "
        "its probability spread over the vocabulary, so its best loss is no longer 0."),
    # 08 visualising attention
    Question(
        "08.verb_position", "an int: the 0-based source position of the verb in 'the big "
        "dog sees the small cat'", 3,
        "count from 0: the, big, dog, ...",
        "Position 3 ('the'=0, 'big'=1, 'dog'=2, 'sees'=3): the word after the subject's "
        "noun phrase. The copy head looks there while producing the verb, the last target "
        "word."),
    Question(
        "08.weights_explain", "a letter: does a head putting 0.9 of its weight on a source "
        "word prove that the output depends on that word", "b",
        "the output is the weighted sum of *values*; what if that value is small, or a "
        "later layer ignores it?",
        "(b) no: attention weights say where a head reads, not how much that changes the "
        "output. Jain & Wallace (2019) found weights that can be replaced by very different "
        "ones with the same prediction; Wiegreffe & Pinter (2019) answered that this does "
        "not make them meaningless. The sure test is an intervention: change the input and "
        "measure the output, as the verb swap of section 5 does (here: remove key 0 and the "
        "output stays the same, because key 1 carries the same value)."),
    # 09 decoding
    Question(
        "09.uncached_updates", "a formula in L: decoder position-updates without a cache",
        _uncached_updates,
        "step t runs the decoder over every position so far.",
        "Step t re-runs positions 1..t, so 1 + 2 + ... + L = L (L + 1) / 2: 300 for L = 24. "
        "(The package's uncached path feeds its whole max_len buffer at every step, to keep "
        "one shape inside the compiled loop: L * max_len updates, quadratic as well.)"),
    Question(
        "09.cached_updates", "a formula in L: decoder position-updates with the cache",
        _cached_updates,
        "with the cache, how many new positions go through the decoder at each step?",
        "One position a step, L in all. Each of those updates still attends over the t keys "
        "cached so far, so the attention work is O(t) a step and O(L^2) overall; the cache "
        "removes the recomputation of the projections and feed-forward networks."),
    # 10 fast kernels
    Question(
        "10.weights_mib", "a formula: MiB of float32 weights [1, N, T, T]", _weights_mib,
        "4 bytes per float32 entry, N T T entries, 2**20 bytes per MiB.",
        "4 * N * T^2 / 2**20 MiB: 64 N MiB at T = 4096 (256 MiB for the N = 4 heads of the "
        "full setting), N / 4 MiB at T = 256 (0.5 MiB for the N = 2 heads of the fast setting). "
        "Doubling T quadruples it, the slope-2 line; XLA may keep a few such arrays."),
    Question(
        "10.flash_flops", "a letter: how flash attention's arithmetic grows with T", "c",
        "flash attention still scores every query against every key.",
        "(c) like T^2, the same as the reference: flash attention computes every score (and "
        "recomputes them in the backward pass); it saves memory and memory traffic, not "
        "arithmetic. Skipping the tiles a mask hides changes the constant (a causal mask: "
        "about half the tiles); only a band such as a sliding window changes the growth, to "
        "linear in T."),
    # 11 attention in today's models
    Question(
        "11.kv_cache_bytes", "a formula: bytes of a self-attention key/value cache",
        _kv_cache_bytes,
        "one key array and one value array [B, L, K, H] per layer.",
        "Keys and values, one array each per layer: 2 * layers * B * L * K * H * itemsize. "
        "The cache is proportional to K, which is why grouped-query heads shrink it."),
    # 12 a small language model
    Question(
        "12.uniform_weight", "a formula in t: the weight of a uniform causal head on one key",
        _uniform_weight,
        "a causal query at position t (counting from 0) may see how many keys?",
        "Query t sees the t + 1 keys 0..t, and equal scores give each 1 / (t + 1). It is the "
        "baseline a head's weight on one diagonal must beat: it shrinks along the sequence, "
        "so a head with a steady weight on one diagonal far above it is doing something."),
    Question(
        "12.induction_key", "a formula in t and L: the key an induction head reads",
        _induction_key,
        "token t is a copy of token t - L; which token followed that earlier copy?",
        "Token t equals token t - L, and the word to predict, t + 1, equals the one that "
        "followed it, t - L + 1. The induction head finds that key by content: its query "
        "(the current word) matches keys that a layer-0 previous-token head has marked with "
        "their previous word."),
    # 13 a real model
    Question(
        "13.previous_token", "a function of one head's causal map [T, T]: its previous-token "
        "score", _previous_token,
        "which entry of row t is the key just before the query? Which rows have one?",
        "Row t's weight on key t - 1, averaged over the rows t = 1..T-1 (row 0 has no previous "
        "key). A head that scores near 1 copies the previous token's information forward; "
        "induction heads in a later layer build on such heads."),
    Question(
        "13.gpt2_parameters", "a formula in V, P, D, L: GPT-2's number of parameters",
        _gpt2_parameters,
        "count each layer: 4 attention maps D x D plus D biases, then D x 4D plus 4D and "
        "4D x D plus D, then 2 layer norms of 2D; the output matrix is the embedding itself",
        "V D (tokens) + P D (positions) + L (12 D^2 + 13 D) + 2 D (the final norm): "
        "124,439,808 for GPT-2 small, of which the embedding is 31%. The tied output matrix "
        "adds nothing."),
    # 14 attention since 2023
    Question(
        "14.mla_cache", "a formula: bytes multi-head latent attention caches per token",
        _mla_bytes_per_token,
        "what does MLA keep of a token, in each layer? Not keys and values: what are they "
        "projected up from, and what carries the positions?",
        "Per layer one latent c_KV of latent_dim numbers and one shared rotary key of "
        "rope_head_dim numbers: (C + R) * layers * itemsize. It does not depend on the number "
        "of heads: DeepSeek-V2 caches 576 numbers a layer where MHA over its 128 heads of 128 "
        "would cache 32,768."),
    Question(
        "14.linear_state", "a formula in kv_heads, head_dim: numbers in a linear-attention state",
        _linear_state_numbers,
        "per key/value head: one matrix S of H x H and one vector z of H; is there anything "
        "that grows with the tokens read?",
        "K (H^2 + H): the sums of phi(k) v^T and of phi(k) over every token read. Nothing in "
        "it grows with the context, which is the point of linear attention and also its "
        "limit: n pairs must share H^2 numbers, so recall fails once n is well past H."),
    Question(
        "15.clustered_recall", "a letter: which data an inverted-file index searches better "
        "with 16 probes", "b",
        "an index puts nearby vectors in one cell; are a random vector's nearest neighbours "
        "much nearer than the other rows?",
        "Random vectors in 300 dimensions are all nearly orthogonal: the true top 10 are "
        "barely nearer than any other row and lie in cells all over the space, so a few "
        "probes miss most of them. Clustered vectors sit near their topic, their neighbours "
        "share their cell, and a few probes find them all. Real embeddings gather around "
        "topics, which is why the index pays for them."),
]

# The notebooks' measurements that a formula must predict, not call (issue 32: a check that
# accepted `predicted_variance = measured_variance` taught nothing).
MEASURED = {
    "01.variance_sigma": ("measured_variance", "measured"),
    "03.same_keys": ("actual", "same_key", "dot_product_attention", "single_head_attention",
                     "attention_weights"),
    "05.squared_length": ("gram", "lengths", "wider", "pe", "sinusoidal_positions"),
    "06.ffn_params": ("count_params", "FeedForward", "ffn"),
    "09.uncached_updates": ("simulate", "decode_time"),
    "09.cached_updates": ("simulate", "decode_time"),
    "10.weights_mib": ("temp_megabytes", "actual_mib"),
    "11.kv_cache_bytes": ("cache_bytes", "init_kv_cache", "init_decode_cache", "nbytes"),
    "12.uniform_weight": ("flat", "maps", "attention_weights"),
    "12.induction_key": ("probe", "maps", "induction"),
    "13.previous_token": ("previous_token_score",),
    "13.gpt2_parameters": ("count_params", "model", "smaller_count", "LanguageModel"),
    "14.mla_cache": ("cache_bytes", "init_decode_cache", "nbytes", "latent_cache_bytes_per_token"),
    "14.linear_state": ("decode_bytes", "init_decode_cache", "nbytes"),
}
_ALL = [dataclasses.replace(q, measured=MEASURED.get(q.id, ())) for q in _ALL]
QUESTIONS: dict[str, Question] = {q.id: q for q in _ALL}
assert set(MEASURED) <= set(QUESTIONS), "MEASURED names a question that does not exist"
assert len(QUESTIONS) == len(_ALL), "question ids must be unique"


def questions_of(notebook: str) -> list[str]:
    """The ids of notebook ``notebook``'s questions (``"06"`` -> ``["06.ffn_params", ...]``)."""
    return [q.id for q in _ALL if q.notebook == notebook]
