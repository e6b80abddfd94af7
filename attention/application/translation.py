"""The main job, end to end: data -> tokenizer -> batches -> model -> translations.

:func:`load_corpus` gives train/validation/test sentence pairs and a tokenizer for any of the
package's data sets (the synthetic tasks of :mod:`attention.data.synthetic`, Multi30k,
Tatoeba); :func:`translate` turns sentences into translations with a trained model (greedy or
beam search); :func:`corpus_bleu` scores them with sacreBLEU. The command line
(:mod:`attention.application.cli`) and the benchmarks are thin layers over these functions.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterator, Sequence

import jax.numpy as jnp
import numpy as np

from attention.data import (
    TASKS,
    Batcher,
    encode_pairs,
    load_multi30k,
    load_tatoeba,
    load_tokenizer,
    make_task,
    prefetch,
    task_vocabulary,
    train_subword,
)
from attention.data.tokenizer import Tokenizer
from attention.model.decoding import beam_search, greedy_decode

REAL_DATA = ("multi30k", "tatoeba")
DATA_NAMES = (*TASKS, *REAL_DATA)


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


def batch_stream(
    batcher: Batcher, start_step: int = 0, *, prefetch_size: int = 2
) -> Iterator[dict]:
    """Endless batches, epoch after epoch, beginning at global update ``start_step``.

    Step k of the stream is batch ``k % len(batcher)`` of epoch ``k // len(batcher)``, so a run
    resumed at step k sees exactly the batches an unbroken run would have seen.
    """
    per_epoch = len(batcher)
    if per_epoch == 0:
        raise ValueError("the training data gives no batch: lower batch_size or add data.")

    def generate():
        epoch, step_in_epoch = divmod(start_step, per_epoch)
        while True:
            yield from batcher.epoch(epoch, start_step=step_in_epoch)
            epoch, step_in_epoch = epoch + 1, 0

    return prefetch(generate(), size=prefetch_size)


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
) -> list[str]:
    """Translate ``sentences`` (greedy when ``beam_size == 1``, else beam search).

    Sentences are sorted by length into batches (less padding), and returned in input order.
    """
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
        if beam_size == 1:
            tokens, _ = greedy_decode(model, src, max_len=steps)
        else:
            tokens, _ = beam_search(model, src, beam_size=beam_size, max_len=steps,
                                    length_penalty=length_penalty)
        for i, row in zip(chunk, np.asarray(tokens), strict=True):
            results[i] = tokenizer.decode(row.tolist())
    return results


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]):
    """sacreBLEU (cased, 13a tokenization, on detokenized text): returns the BLEU object.

    ``str(result)`` gives the score line; :func:`bleu_signature` the reproducibility string.
    """
    import sacrebleu

    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)])


def bleu_signature(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, str]:
    """The BLEU score and sacreBLEU's signature string (cite both)."""
    import sacrebleu

    metric = sacrebleu.BLEU()
    score = metric.corpus_score(list(hypotheses), [list(references)])
    return score.score, str(metric.get_signature())


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of hypotheses equal to their reference (whitespace-normalised)."""
    same = sum(" ".join(h.split()) == " ".join(r.split())
               for h, r in zip(hypotheses, references, strict=True))
    return same / max(len(references), 1)


def load_run_tokenizer(run_dir: str | pathlib.Path) -> Tokenizer:
    """The tokenizer saved beside a run's checkpoints."""
    run_dir = pathlib.Path(run_dir)
    for candidate in ("tokenizer.json", "tokenizer.model"):
        if (run_dir / candidate).is_file():
            return load_tokenizer(run_dir / candidate)
    raise FileNotFoundError(f"no tokenizer.json or tokenizer.model in {run_dir}.")


def train_course_model(*, fast: bool = False, task: str = "svo_to_sov"):
    """Train the course's toy translator with the recipe of notebook 07.

    d_model 64 (32 when ``fast``), 4 heads, 2+2 layers, no dropout or label smoothing,
    1200 updates of 64 pairs from 10,000 generated ones (20 of 32 from 1,000 when ``fast``):
    about two minutes on a laptop CPU.

    Returns:
      ``(model, tokenizer, train_config, fit_result)``.
    """
    from flax import nnx

    from attention.model.config import TransformerConfig
    from attention.training.train import TrainConfig, fit, make_optimizer
    from attention.model.transformer import Transformer

    tokenizer = task_vocabulary(task)
    d_model = 32 if fast else 64
    config = TransformerConfig.tiny(vocab_size=tokenizer.vocab_size, d_model=d_model,
                                    num_heads=4, d_ff=2 * d_model, num_layers=2,
                                    dropout_rate=0.0, max_len=32)
    train_config = TrainConfig(steps=20 if fast else 1200, batch_size=32 if fast else 64,
                               warmup_steps=100, lr_scale=1.0, label_smoothing=0.0,
                               log_every=10, checkpoint_every=0, seed=0)
    model = Transformer(config, rngs=nnx.Rngs(params=0, dropout=1))
    optimizer = make_optimizer(model, config.d_model, train_config)
    pairs = make_task(task, num_examples=1_000 if fast else 10_000, seed=0)
    batcher = Batcher(encode_pairs(pairs, tokenizer), batch_size=train_config.batch_size,
                      max_len=config.max_len, seed=0, drop_remainder=True)
    result = fit(model, optimizer, lambda step: batch_stream(batcher, step), train_config,
                 pad_id=config.pad_id, progress=False)
    return model, tokenizer, train_config, result


def load_or_train_course_model(
    run_dir: str | pathlib.Path, *, fast: bool = False, task: str = "svo_to_sov"
):
    """The model notebook 07 saved in ``run_dir``, or, if there is none, the same recipe
    trained now (:func:`train_course_model`) and saved there, so a notebook runs on its own.

    Returns:
      ``(model, tokenizer, message)``; the message says which of the two happened.
    """
    from flax import nnx

    from attention.training.checkpoint import Checkpointer, read_config
    from attention.model.config import TransformerConfig
    from attention.model.transformer import Transformer

    run_dir = pathlib.Path(run_dir)
    if (run_dir / "config.json").is_file():
        model = Transformer(TransformerConfig.from_dict(read_config(run_dir)["model"]),
                            rngs=nnx.Rngs(0))
        step = Checkpointer(run_dir).restore(model)["step"]
        return model, task_vocabulary(task), f"loaded the model of step {step} from {run_dir}"
    model, tokenizer, train_config, result = train_course_model(fast=fast, task=task)
    checkpointer = Checkpointer(run_dir)
    checkpointer.write_config({"model": model.config.to_dict(), "train": train_config.to_dict(),
                               "data": task})
    checkpointer.save(result.step, model)
    return model, tokenizer, (f"trained {result.step} steps in {result.seconds:.0f} s, "
                              f"saved to {run_dir}")
