"""Step 29a: a language model end to end: texts -> tokenizer -> packed windows -> model -> text.

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
* :func:`text_attention`: every head's attention on one text, with the token labels;
* :func:`lm_course_run` / :func:`load_or_train_lm_course_model`: a small model of the stories;
* :func:`induction_course_run` / :func:`load_or_train_induction_course_model`: notebook 12's
  model, the same size, trained on the stories mixed with repeated random words, so that it
  grows induction heads within a few minutes of CPU.

>>> corpus = load_text_corpus("svo", num_examples=100)
>>> len(corpus.train), corpus.tokenizer.vocab_size
(100, 46)
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from attention._checks import check_positive_int
from attention.application.runs import (
    Run,
    has_checkpoints,
    load_run,
    new_run,
    save_run,
    train_run,
)
from attention.data.lm_corpus import (
    LM_CORPORA,
    load_sentences,
    make_repeats,
    make_stories,
    stories_vocabulary,
)
from attention.data.packing import PackedBatcher, encode_texts
from attention.data.subword import train_subword
from attention.data.tokenizer import Tokenizer
from attention.model.config import TransformerConfig
from attention.model.language_model import LanguageModel, language_model_attention_maps
from attention.model.sampling import generate
from attention.training.train import TrainConfig, evaluate_loss

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
    _check_language_model(model)
    tokens, lengths = encode_prompts(prompts, tokenizer)
    room = model.config.max_len - tokens.shape[1]
    if room < 1:
        raise ValueError(
            f"the longest prompt has {tokens.shape[1]} tokens (with <s>) but the model's "
            f"context is config.max_len={model.config.max_len}: no room to generate; shorten "
            f"it."
        )
    new, _ = generate(
        model, jnp.asarray(tokens), jnp.asarray(lengths),
        max_new_tokens=room if max_new_tokens is None else max_new_tokens,
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


# ------------------------------------------------------------------ notebook 12's model


def lm_course_run(*, fast: bool = False) -> tuple[Run, TextCorpus]:
    """Notebook 12's small language model, untrained, and the synthetic stories.

    Two layers of 4 heads (d_model 64, rotary positions, no dropout), context 64, trained on
    the ``svo`` stories: 1500 updates of 32 windows from 10,000 stories (400 from 3,000 when
    ``fast``), a couple of minutes on a laptop CPU.
    """
    corpus = load_text_corpus("svo", num_examples=3_000 if fast else 10_000, seed=0)
    config = TransformerConfig.language_model(
        vocab_size=corpus.tokenizer.vocab_size, d_model=64, num_heads=4, d_ff=256,
        num_layers=2, dropout_rate=0.0, max_len=64,
    )
    train_config = TrainConfig(steps=400 if fast else 1500, batch_size=32, warmup_steps=100,
                               lr_scale=2.0, label_smoothing=0.0, log_every=50,
                               checkpoint_every=0, seed=0)
    return new_run(config, train_config, corpus.tokenizer, data="svo"), corpus


def load_or_train_lm_course_model(
    directory: str | pathlib.Path, *, fast: bool = False
) -> tuple[Run, TextCorpus, str]:
    """The run saved in ``directory``, or :func:`lm_course_run` trained now and saved there.

    Returns:
      ``(run, corpus, message)``; the message says which of the two happened.
    """
    run, corpus = lm_course_run(fast=fast)
    if has_checkpoints(directory):
        run = load_run(directory)
        return run, corpus, f"loaded the model of step {run.step} from {directory}"
    result = train_run(run, corpus.train, progress=False)
    save_run(run, directory)
    return run, corpus, (f"trained {result.step} steps in {result.seconds:.0f} s, saved to "
                         f"{directory}")


INDUCTION_TRAIN_LENGTHS = tuple(L for L in range(3, 21) if L not in (7, 10, 13))
"""Periods of the repeated random words of :func:`induction_course_run`: 3-20 but 7, 10 and
13, which are held out so that notebook 12 can test its heads on a length never trained."""


def induction_course_run(*, fast: bool = False) -> tuple[Run, TextCorpus, list[str]]:
    """Notebook 12's model, untrained, the stories, and the mixed training texts.

    The model of :func:`lm_course_run` (2 layers of 4 heads, d_model 64, rotary positions,
    no dropout; context 64, 40 when ``fast``), trained on the ``svo`` stories without echoes
    mixed with documents of :func:`attention.data.lm_corpus.make_repeats`: random words of
    the lexicon with a period drawn from :data:`INDUCTION_TRAIN_LENGTHS`, repeated to fill a
    window. The documents are packed into the stream as every text is, so a window starts
    anywhere in them. Batches of 32 windows, the paper's schedule with a peak learning rate
    of 3e-3 (``lr_scale = 3e-3 * sqrt(d_model * warmup_steps)``).

    * full: 5,000 stories and 5,000 repeats, 1000 updates, 100 warm-up steps;
    * ``fast``: 500 stories and 3,500 repeats, 800 updates, 200 warm-up steps (a slower
      decay): the fewest updates after which the induction heads had formed, measured with
      this seed (on 700 they were just forming).

    Returns:
      ``(run, corpus, texts)``: ``texts`` is what :func:`train_run` should be given.
    """
    stories, repeats, steps, warmup, max_len = ((500, 3_500, 800, 200, 40) if fast
                                                else (5_000, 5_000, 1000, 100, 64))
    corpus = load_text_corpus("svo", num_examples=stories, seed=0)
    corpus.train = make_stories(num_stories=stories, seed=0, echoes=0.0)
    mixed = corpus.train + make_repeats(num_docs=repeats, lengths=INDUCTION_TRAIN_LENGTHS,
                                        num_words=max_len - 2, seed=1)
    texts = [mixed[i] for i in np.random.default_rng(2).permutation(len(mixed))]
    config = TransformerConfig.language_model(
        vocab_size=corpus.tokenizer.vocab_size, d_model=64, num_heads=4, d_ff=256,
        num_layers=2, dropout_rate=0.0, max_len=max_len,
    )
    train_config = TrainConfig(steps=steps, batch_size=32, warmup_steps=warmup,
                               lr_scale=3e-3 * math.sqrt(config.d_model * warmup),
                               label_smoothing=0.0, log_every=50, checkpoint_every=0, seed=0)
    return new_run(config, train_config, corpus.tokenizer, data="svo"), corpus, texts


def load_or_train_induction_course_model(
    directory: str | pathlib.Path, *, fast: bool = False
) -> tuple[Run, TextCorpus, str]:
    """The run saved in ``directory``, or :func:`induction_course_run` trained now and saved
    there (as :func:`load_or_train_lm_course_model`), with its logged metrics in
    ``history.json`` so that a reloaded run still has ``run.history``.

    Returns:
      ``(run, corpus, message)``; the message says which of the two happened.
    """
    run, corpus, texts = induction_course_run(fast=fast)
    history = pathlib.Path(directory) / "history.json"
    if has_checkpoints(directory):
        run = load_run(directory)
        if history.exists():  # the training curves survive a reload
            run.history = json.loads(history.read_text())
        return run, corpus, f"loaded the model of step {run.step} from {directory}"
    result = train_run(run, texts, progress=False)
    save_run(run, directory)
    history.write_text(json.dumps(run.history))
    return run, corpus, (f"trained {result.step} steps in {result.seconds:.0f} s, saved to "
                         f"{directory}")
