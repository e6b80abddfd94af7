"""Step 28a: a language model end to end: texts -> tokenizer -> packed windows -> model -> text.

The translation pipeline of :mod:`attention.application.translation` with one side: the
same runs (:mod:`attention.application.runs`: train, save, load), the same train step,
schedule, checkpoints, metrics and progress bar, on a decoder-only
:class:`attention.model.language_model.LanguageModel`.

* :func:`load_text_corpus`: train/valid/test texts of a corpus of
  :data:`attention.data.lm_corpus.LM_CORPORA` and its tokenizer (word-level for the
  synthetic stories, SentencePiece for real text);
* :func:`perplexity`: held-out perplexity, ``exp`` of the mean next-token cross-entropy over
  every token of the texts (``</s>`` included, ``<s>`` never a target);
* :func:`generate_text`: continue prompts (sampling or greedy, with the key/value cache);
* :func:`text_attention`: every head's attention on one text, with the token labels.

Notebook 12's models are recipes of :mod:`attention.application.course`.

>>> corpus = load_text_corpus("svo", num_examples=100)
>>> len(corpus.train), corpus.tokenizer.vocab_size
(100, 46)
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from attention._checks import check_positive_int
from attention.data.lm_corpus import (
    LM_CORPORA,
    load_sentences,
    stories_vocabulary,
)
from attention.data.packing import PackedBatcher, encode_texts
from attention.data.subword import train_subword
from attention.data.tokenizer import Tokenizer
from attention.model.language_model import LanguageModel, language_model_attention_maps
from attention.model.sampling import check_generate, generate
from attention.training.train import evaluate_loss

LM_DATA_NAMES = LM_CORPORA
"""The corpora of ``attention train --task lm --data NAME``; ``svo`` needs no download."""


@dataclasses.dataclass
class TextCorpus:
    """Texts of each split and the tokenizer of the language."""

    name: str
    train: list[str]
    valid: list[str]
    test: list[str]
    tokenizer: Tokenizer


def load_text_corpus(
    name: str = "svo",
    *,
    data_dir: str | pathlib.Path | None = None,
    num_examples: int = 20_000,
    vocab_size: int = 8000,
    seed: int = 0,
    tokenizer: Tokenizer | None = None,
) -> TextCorpus:
    """The splits of corpus ``name`` and a tokenizer (trained on train unless given).

    Args:
      name: one of :data:`LM_DATA_NAMES`.
      data_dir: where the real data lies (default: ``$ATTENTION_DATA``, then the cache).
      num_examples: stories generated for ``svo`` (valid and test get a tenth each).
      vocab_size: SentencePiece vocabulary size for real text.
      seed: generation seed of ``svo``.
      tokenizer: reuse this tokenizer (resuming or evaluating a trained model).

    Raises:
      ValueError: an unknown ``name``.
      DatasetNotFoundError: the real data is not there.
    """
    if name not in LM_DATA_NAMES:
        raise ValueError(f"unknown text data {name!r}; choose one of {', '.join(LM_DATA_NAMES)}.")
    splits = [load_sentences(name, split, data_dir=data_dir, num_stories=num_examples, seed=seed)
              for split in ("train", "valid", "test")]
    if tokenizer is None:
        tokenizer = (stories_vocabulary() if name == "svo"
                     else train_subword(splits[0], vocab_size=vocab_size))
    return TextCorpus(name, *splits, tokenizer)


def _check_language_model(model) -> None:
    if not isinstance(model, LanguageModel):
        raise TypeError(
            f"model must be a decoder-only LanguageModel, got {type(model).__name__}; a "
            f"translation model translates (attention.application.translate)."
        )


def perplexity(
    model: LanguageModel, tokenizer: Tokenizer, texts: Sequence[str], *, batch_size: int = 32
) -> dict[str, float]:
    """Held-out ``{"nll", "perplexity", "accuracy"}`` of ``model`` on ``texts``.

    The texts are packed as in training and cut into windows of ``config.max_len`` from the
    start, in order (the last one padded), so every token is scored once, with as much context
    as its window gives. ``perplexity = exp(nll)``, ``nll`` the mean cross-entropy per token
    in nats; a model that knew nothing would score the vocabulary size.

    Raises:
      TypeError: a model that is not a LanguageModel.
      ValueError: no text.
    """
    _check_language_model(model)
    batch_size = check_positive_int("batch_size", batch_size)
    if len(texts) == 0:
        raise ValueError("texts is empty: give at least one held-out text.")
    batcher = PackedBatcher(encode_texts(texts, tokenizer), seq_len=model.config.max_len,
                            batch_size=batch_size, shuffle=False, drop_remainder=False)
    return evaluate_loss(model, batcher.epoch(0), pad_id=model.config.pad_id)


def encode_prompts(
    prompts: Sequence[str], tokenizer: Tokenizer
) -> tuple[np.ndarray, np.ndarray]:
    """``<s>`` + the ids of each prompt, right-padded: ``(tokens [B, P], lengths [B])``.

    Raises:
      TypeError: a single str instead of a list.
      ValueError: no prompt, or an empty prompt (named by its index).
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings; wrap one prompt in [].")
    if len(prompts) == 0:
        raise ValueError("prompts is empty: give at least one prompt.")
    ids = []
    for i, prompt in enumerate(prompts):
        encoded = tokenizer.encode(prompt)
        if not encoded:
            raise ValueError(
                f"prompt {i} is empty ({prompt!r}); give at least one word to continue."
            )
        ids.append([tokenizer.bos_id, *encoded])
    lengths = np.array([len(row) for row in ids], np.int32)
    tokens = np.full((len(ids), int(lengths.max())), tokenizer.pad_id, np.int32)
    for row, seq in enumerate(ids):
        tokens[row, : len(seq)] = seq
    return tokens, lengths


def check_generate_text(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The checks of :func:`generate_text` (the command line checks with them too).

    Returns:
      ``(tokens [B, P], lengths [B], max_new_tokens)``: the encoded prompts and the number
      of new tokens (the default filled in).

    Raises:
      TypeError, ValueError: as :func:`generate_text`.
    """
    _check_language_model(model)
    tokens, lengths = encode_prompts(prompts, tokenizer)
    room = model.config.max_len - tokens.shape[1]
    if room < 1:
        raise ValueError(
            f"the longest prompt has {tokens.shape[1]} tokens (with <s>) but the model's "
            f"context is config.max_len={model.config.max_len}: no room to generate; shorten "
            f"it."
        )
    max_new_tokens = room if max_new_tokens is None else max_new_tokens
    check_generate(model, tokens, lengths, max_new_tokens, temperature, top_k, top_p)
    return tokens, lengths, max_new_tokens


def generate_text(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    seed: int = 0,
    use_cache: bool = True,
) -> list[str]:
    """Each prompt followed by its continuation, as text, until ``</s>`` or the length.

    All prompts are continued in one batch, whatever their lengths
    (:func:`attention.model.sampling.generate`).

    Args:
      model, tokenizer: a trained language model and its tokenizer.
      prompts: B texts; each is encoded as ``<s>`` + its ids, as the training texts were.
      max_new_tokens: tokens to add at most; default: as many as the context leaves after
        the longest prompt.
      temperature, top_k, top_p, greedy, seed, use_cache: as :func:`generate`.

    Raises:
      TypeError, ValueError: an empty prompt, a prompt that fills the context, bad sampling
        knobs (see :func:`generate`).
    """
    tokens, lengths, max_new_tokens = check_generate_text(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
        top_k=top_k, top_p=top_p,
    )
    new, _ = generate(
        model, jnp.asarray(tokens), jnp.asarray(lengths), max_new_tokens=max_new_tokens,
        temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy, seed=seed,
        use_cache=use_cache,
    )
    return [tokenizer.decode([*tokens[b, : lengths[b]].tolist(), *row.tolist()])
            for b, row in enumerate(np.asarray(new))]


def text_attention(model: LanguageModel, tokenizer: Tokenizer, text: str) -> dict:
    """Every head's attention on ``text`` (read as ``<s>`` + its ids), with its labels.

    Returns:
      ``{"attention_maps": {"decoder_self": [L, 1, N, T, T]} (NumPy), "tokens": ids [1, T],
      "labels": the T token strings}``.
    """
    _check_language_model(model)
    tokens, _ = encode_prompts([text], tokenizer)
    if tokens.shape[1] > model.config.max_len:
        raise ValueError(
            f"text has {tokens.shape[1]} tokens but the model reads at most "
            f"config.max_len={model.config.max_len}."
        )
    maps = language_model_attention_maps(model, jnp.asarray(tokens))
    labels = [tokenizer.id_to_piece(int(i)) for i in tokens[0]]
    return {"attention_maps": {k: np.asarray(v) for k, v in maps.items()}, "tokens": tokens,
            "labels": labels}


def unigram_perplexity(tokenizer: Tokenizer, train: Sequence[str],
                       held_out: Sequence[str]) -> float:
    """The perplexity of the best context-free model: token frequencies of ``train``
    (add-one smoothed) scored on ``held_out``, with the same packing as :func:`perplexity`
    (every token and ``</s>``; never ``<s>``). The reference a language model must beat.
    """
    V = tokenizer.vocab_size
    counts = np.ones(V)
    for ids in encode_texts(train, tokenizer):
        np.add.at(counts, ids, 1)
    counts[tokenizer.eos_id] += len(train)
    counts[[tokenizer.pad_id, tokenizer.bos_id]] = 0
    log_p = np.log(counts / counts.sum(), where=counts > 0, out=np.full(V, -np.inf))
    nll, n = 0.0, 0
    for ids in encode_texts(held_out, tokenizer):
        nll -= log_p[ids].sum() + log_p[tokenizer.eos_id]
        n += len(ids) + 1
    return math.exp(nll / n)
