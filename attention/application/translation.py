"""Step 28: translation end to end: data -> tokenizer -> batches -> model -> translations.

:func:`load_corpus` gives train/validation/test sentence pairs and a tokenizer for any of the
package's data sets (the synthetic tasks of :mod:`attention.data.synthetic`, Multi30k,
Tatoeba); :func:`translate` turns sentences into translations with a trained model (greedy or
beam search); :func:`pair_attention` encodes sentence pairs and returns every attention map of
the model with the token labels of its axes; :func:`corpus_bleu` scores translations with
sacreBLEU. Training, saving and loading a model is :mod:`attention.application.runs`; the
command line (:mod:`attention.application.cli`), the notebooks and the benchmarks are thin
layers over these two modules.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from attention.data import (
    TASKS,
    load_multi30k,
    load_tatoeba,
    make_task,
    task_vocabulary,
    train_subword,
)
from attention.data.tokenizer import Tokenizer
from attention.model.decoding import beam_search, greedy_decode, sample_decode
from attention.model.transformer import attention_maps

REAL_DATA = ("multi30k", "tatoeba")
"""Data sets of real text: a SentencePiece tokenizer, BLEU, and the ``small`` preset."""
DATA_NAMES = (*TASKS, *REAL_DATA)


def is_real_data(name: str) -> bool:
    """True for real text (:data:`REAL_DATA`), False for a synthetic task."""
    return name in REAL_DATA


@dataclasses.dataclass
class Corpus:
    """Sentence pairs (source, target) for each split, and the tokenizer for both sides."""

    name: str
    train: list[tuple[str, str]]
    valid: list[tuple[str, str]]
    test: list[tuple[str, str]]
    tokenizer: Tokenizer


def load_corpus(
    name: str,
    *,
    data_dir: str | pathlib.Path | None = None,
    num_examples: int = 20_000,
    vocab_size: int = 8000,
    seed: int = 0,
    tokenizer: Tokenizer | None = None,
) -> Corpus:
    """The splits of data set ``name`` and a tokenizer (trained on train unless given).

    Args:
      name: a synthetic task (``copy``, ``reverse``, ``svo_to_sov``, ``dates``) or real data
        (``multi30k`` de->en, ``tatoeba`` de->en).
      data_dir: where the real data lies (default: ``$ATTENTION_DATA``, then the cache).
      num_examples: training pairs to generate for a synthetic task (validation and test get
        a tenth each, from other seeds).
      vocab_size: SentencePiece vocabulary size for real data.
      seed: generation seed of the synthetic tasks.
      tokenizer: reuse this tokenizer (when resuming or evaluating a trained model).

    Raises:
      ValueError: an unknown ``name``.
    """
    if name in TASKS:
        held_out = max(num_examples // 10, 64)
        train = make_task(name, num_examples=num_examples, seed=seed)
        valid = make_task(name, num_examples=held_out, seed=seed + 10_001)
        test = make_task(name, num_examples=held_out, seed=seed + 20_002)
        return Corpus(name, train, valid, test, tokenizer or task_vocabulary(name))
    if name == "multi30k":
        splits = [load_multi30k(s, data_dir=data_dir) for s in ("train", "val", "test2016")]
    elif name == "tatoeba":
        splits = [load_tatoeba(s, data_dir=data_dir) for s in ("train", "valid", "test")]
    else:
        raise ValueError(f"unknown data {name!r}; choose one of {', '.join(DATA_NAMES)}.")
    if tokenizer is None:
        tokenizer = train_subword([s for pair in splits[0] for s in pair], vocab_size=vocab_size)
    return Corpus(name, *splits, tokenizer)


def pad_sources(
    sentences: Sequence[str], tokenizer: Tokenizer, *, max_len: int, pad_to_multiple: int = 8
) -> np.ndarray:
    """Encode sentences as the model saw them in training (ids + eos), padded to one length.

    Raises:
      ValueError: a sentence longer than ``max_len`` tokens (eos included).
    """
    ids = [tokenizer.encode(s, add_eos=True) for s in sentences]
    longest = max(len(i) for i in ids)
    if longest > max_len:
        raise ValueError(
            f"a source sentence has {longest} tokens (with </s>) but the model takes at most "
            f"max_len={max_len}; shorten it."
        )
    width = min(max_len, -(-longest // pad_to_multiple) * pad_to_multiple)
    out = np.full((len(ids), width), tokenizer.pad_id, np.int32)
    for row, seq in enumerate(ids):
        out[row, : len(seq)] = seq
    return out


def translate(
    model,
    tokenizer: Tokenizer,
    sentences: Sequence[str],
    *,
    beam_size: int = 1,
    length_penalty: float = 0.6,
    max_len: int | None = None,
    batch_size: int = 64,
    sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
) -> list[str]:
    """Translate ``sentences`` (greedy when ``beam_size == 1``, else beam search; with
    ``sample=True``, one translation drawn with temperature / top-k / top-p sampling,
    :func:`attention.model.decoding.sample_decode`, reproducible by ``seed``).

    Sentences are sorted by length into batches (less padding), and returned in input order.

    Raises:
      TypeError: a decoder-only language model (it continues text: ``generate_text``).
      ValueError: a source longer than the model's context; bad sampling knobs.
    """
    if getattr(getattr(model, "config", None), "is_language_model", False):
        raise TypeError(
            "model is a decoder-only language model, which continues text rather than "
            "translating it; use attention.application.language_modeling.generate_text."
        )
    config = model.config
    max_len = max_len or config.max_len
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    results: list[str] = [""] * len(sentences)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        src = jnp.asarray(pad_sources([sentences[i] for i in chunk], tokenizer,
                                      max_len=config.max_len))
        # Outputs are rarely much longer than inputs: bound the loop to save compute.
        steps = int(min(max_len, 2 * src.shape[1] + 10))
        if sample:
            tokens, _ = sample_decode(model, src, max_len=steps, temperature=temperature,
                                      top_k=top_k, top_p=top_p, seed=seed + start)
        elif beam_size == 1:
            tokens, _ = greedy_decode(model, src, max_len=steps)
        else:
            tokens, _ = beam_search(model, src, beam_size=beam_size, max_len=steps,
                                    length_penalty=length_penalty)
        for i, row in zip(chunk, np.asarray(tokens), strict=True):
            results[i] = tokenizer.decode(row.tolist())
    return results


def pad_targets(
    sentences: Sequence[str], tokenizer: Tokenizer, *, pad_to_multiple: int = 1
) -> np.ndarray:
    """Encode target sentences as the decoder reads them (bos + ids), padded to one length."""
    ids = [tokenizer.encode(s, add_bos=True) for s in sentences]
    width = -(-max(len(i) for i in ids) // pad_to_multiple) * pad_to_multiple
    out = np.full((len(ids), width), tokenizer.pad_id, np.int32)
    for row, seq in enumerate(ids):
        out[row, : len(seq)] = seq
    return out


def pair_attention(
    model, tokenizer: Tokenizer, pairs: Sequence[tuple[str, str]]
) -> dict:
    """Every attention map of ``model`` on sentence pairs, with the token labels of its axes.

    The pairs are encoded as in training (source ids + ``</s>``; decoder input ``<s>`` + target
    ids, teacher forcing) and padded into one batch, and the model runs once with its weights
    sown (:func:`attention.attention_maps`). Row t of the decoder's maps reads input token t and
    produces output token t.

    Args:
      model: a trained :class:`attention.Transformer`.
      tokenizer: the tokenizer it was trained with.
      pairs: ``(source, target)`` sentences; B of them.

    Returns:
      A dict with ``attention_maps`` (``encoder_self [L, B, N, S, S]``, ``decoder_self
      [L, B, N, T, T]``, ``decoder_cross [L, B, N, T, S]``, NumPy, padded to the longest
      pair), ``src_tokens [B, S]`` and ``tgt_in [B, T]`` (the ids), and, for one pair, the
      labels ``source_tokens`` (length S), ``target_tokens`` (the decoder input, length T) and
      ``output_tokens`` (what each row produces); for several pairs each label is a list per
      pair, of that pair's own length. For one pair the dict is an example for
      :class:`attention.inspection.explorer.AttentionExplorer`.

    Raises:
      ValueError: no pairs, or a source longer than the model's ``max_len``.
    """
    if isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs):
        raise TypeError("pairs must be a list of (source, target) pairs; wrap one pair in [].")
    if len(pairs) == 0:
        raise ValueError("pairs is empty: give at least one (source, target) pair.")
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    src = pad_sources(sources, tokenizer, max_len=model.config.max_len, pad_to_multiple=1)
    tgt_in = pad_targets(targets, tokenizer)
    maps = {kind: np.asarray(value)
            for kind, value in attention_maps(model, jnp.asarray(src), jnp.asarray(tgt_in)).items()}
    labels = {
        "source_tokens": [tokenizer.tokens(s, add_eos=True) for s in sources],
        "target_tokens": [tokenizer.tokens(t, add_bos=True) for t in targets],
        "output_tokens": [tokenizer.tokens(t, add_eos=True) for t in targets],
    }
    if len(pairs) == 1:
        labels = {name: value[0] for name, value in labels.items()}
    return {"attention_maps": maps, "src_tokens": src, "tgt_in": tgt_in, **labels}


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]):
    """sacreBLEU (cased, 13a tokenization, on detokenized text): returns the BLEU object.

    ``str(result)`` gives the score line; :func:`bleu_signature` the reproducibility string.
    """
    import sacrebleu

    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)])


def bleu_signature(hypotheses: Sequence[str], references: Sequence[str], *,
                   lowercase: bool = False) -> tuple[float, str]:
    """The BLEU score and sacreBLEU's signature string (cite both).

    The default is sacreBLEU's standard: cased, 13a tokenization of detokenized text.
    ``lowercase=True`` scores lower-cased text (signature ``case:lc``), closer to what older
    tutorials report (BLEU on lower-cased, tokenized words), so the two can be compared.
    """
    import sacrebleu

    metric = sacrebleu.BLEU(lowercase=lowercase)
    score = metric.corpus_score(list(hypotheses), [list(references)])
    return score.score, str(metric.get_signature())


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of hypotheses equal to their reference (whitespace-normalised)."""
    same = sum(" ".join(h.split()) == " ".join(r.split())
               for h, r in zip(hypotheses, references, strict=True))
    return same / max(len(references), 1)
