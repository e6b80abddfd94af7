"""Step 30: ``attention``, the command line: train a model, translate, generate, evaluate.

    attention train                        # the toy language pair, about a minute on a CPU
    attention train --data multi30k --preset small --steps 6000 --out runs/multi30k
    attention translate --checkpoint runs/svo_to_sov "the big dog sees the cat"
    attention translate --checkpoint runs/multi30k --sample --top-p 0.9 "Ein Hund rennt."
    attention evaluate --checkpoint runs/multi30k --split test --beam-size 5
    attention train --task lm              # a small language model on synthetic stories
    attention train --task lm --data multi30k-en --out runs/lm-multi30k
    attention generate --checkpoint runs/lm-multi30k "A man in a red" --top-k 40
    attention generate --pretrained gpt2 "The capital of France is" --greedy
    attention view --pretrained gpt2 "When Mary and John went to the store, John gave"
    attention grade submissions/ --out scores.csv     # grade classroom exercises

``python -m attention ...`` is the same program. A mistake of the user's ends in one line on
stderr and exit status 2: an argument the command's checks refuse (a :class:`UsageError`, or a
``ValueError``/``TypeError`` of the package's checks while the command checks what it was
given), a missing file, data set or checkpoint. Anything else is a bug of the package: its
traceback, a line asking to report it, and exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import sys
import time
import traceback

import jax

from attention._checks import check_beam_search, check_sampling
from attention.application.language_modeling import (
    LM_DATA_NAMES,
    check_generate_text,
    generate_text,
    load_text_corpus,
    perplexity,
    text_attention,
    unigram_perplexity,
)
from attention.application.pretrained import (
    encode_texts,
    generate_pretrained_text,
    load_pretrained,
)
from attention.application.runs import (
    CompileClock,
    check_trainable,
    has_checkpoints,
    load_run,
    load_run_tokenizer,
    new_run,
    resume_run,
    train_run,
)
from attention.application.translation import (
    DATA_NAMES,
    bleu_signature,
    exact_match,
    is_real_data,
    load_corpus,
    pad_sources,
    pair_attention,
    translate,
)
from attention.application.view import (
    add_view_arguments,
    check_language_model_view,
    check_view_arguments,
    view_command,
)
from attention.data import ChecksumError, DatasetNotFoundError
from attention.inspection.plotting import plot_attention
from attention.model.config import ATTENTIONS, POSITIONAL, PRESETS
from attention.model.precision import PRECISIONS, describe_precision
from attention.model.pretrained import PretrainedError
from attention.model.transformer import count_params
from attention.training.checkpoint import CheckpointError
from attention.training.train import TrainConfig


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attention",
        description="Train and use a transformer: a translation model or a language model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model (default: the toy language pair)")
    train.add_argument("--task", choices=TASKS, default="translation",
                       help="translation (encoder-decoder) or lm (a decoder-only language "
                       "model); default: translation")
    train.add_argument("--data", default=None,
                       help=f"translation: one of {', '.join(DATA_NAMES)} (default: "
                       f"svo_to_sov); lm: one of {', '.join(LM_DATA_NAMES)} (default: svo, "
                       f"synthetic stories)")
    train.add_argument("--data-dir", help="folder holding multi30k/ or tatoeba_en_de_small/ "
                       "(default: $ATTENTION_DATA, then the download cache)")
    train.add_argument("--out", help="run directory (default: runs/<data>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--preset", choices=list(PRESETS), default=None,
                       help="model size (default: tiny for synthetic tasks, small for real data)")
    train.add_argument("--steps", type=int, help="optimizer updates")
    train.add_argument("--batch-size", type=int, help="sentence pairs per update")
    train.add_argument("--warmup", type=int, help="warm-up steps of the schedule")
    train.add_argument("--lr-scale", type=float, help="multiplies the paper's learning rate")
    train.add_argument("--label-smoothing", type=float, default=None,
                       help="epsilon_ls; default: 0.1, and 0 for the synthetic translation "
                       "tasks")
    train.add_argument("--dropout", type=float, help="P_drop")
    train.add_argument("--positional", choices=POSITIONAL, default=None,
                       help="positions: added to the embeddings (sinusoidal, learned) or "
                       "inside self-attention (rope, alibi); default: the preset's, sinusoidal")
    train.add_argument("--num-kv-heads", type=int, default=None,
                       help="key/value heads, dividing the query heads (grouped-query "
                       "attention; 1: multi-query); default: one per query head")
    train.add_argument("--attention", choices=ATTENTIONS, default=None,
                       help="the self-attention of a language model (--task lm): standard, "
                       "mla (DeepSeek's latent attention), differential, linear; default "
                       "standard")
    train.add_argument("--qk-norm", choices=("rms", "layer"), default=None,
                       help="normalise each query and key head (OLMo 2, Qwen3, Gemma 3)")
    train.add_argument("--soft-cap", type=float, default=None,
                       help="cap the attention scores at cap * tanh(s / cap) (Gemma 2: 50)")
    train.add_argument("--attention-sinks", action="store_true",
                       help="a learned sink logit per head, an extra softmax column (gpt-oss)")
    train.add_argument("--output-gate", action="store_true",
                       help="gate each head's output with sigmoid(x W_g) (Qwen3-Next)")
    train.add_argument("--clip-norm", type=float, help="clip the global gradient norm")
    _add_precision_argument(train, default="auto")
    train.add_argument("--examples", type=int, default=20_000,
                       help="training pairs (stories for --task lm) generated for synthetic "
                       "data")
    train.add_argument("--vocab-size", type=int, default=8000, help="subword vocabulary size")
    train.add_argument("--checkpoint-every", type=int, default=None,
                       help="steps between checkpoints (0: only at the end, and on Ctrl-C); "
                       "default: 500 for real text and language models, 0 for the synthetic "
                       "translation tasks, which train in about a minute")
    train.add_argument("--beam-size", type=int, default=1, help="beam for the final evaluation")
    train.add_argument("--eval-sentences", type=int, default=200,
                       help="test sentences translated at the end (0: all)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    translate = commands.add_parser("translate", help="translate sentences with a trained run")
    _add_precision_argument(translate, default=None)
    translate.add_argument("--checkpoint", required=True, help="a run directory")
    translate.add_argument("sentences", nargs="+", help="source sentences")
    translate.add_argument("--beam-size", type=int, default=4)
    translate.add_argument("--length-penalty", type=float, default=0.6)
    translate.add_argument("--average-last", type=int, default=0,
                           help="average the parameters of the last K checkpoints")
    translate.add_argument("--sample", action="store_true",
                           help="draw a translation (temperature, top-k, top-p) instead of "
                           "beam search")
    _add_sampling_arguments(translate)

    generate = commands.add_parser("generate", help="continue prompts with a trained language "
                                   "model (attention train --task lm)")
    _add_precision_argument(generate, default=None)
    source = generate.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a language-model run directory")
    source.add_argument("--pretrained", help="a GPT-2 or Llama checkpoint: a Hugging Face "
                        "folder (config.json, *.safetensors, tokenizer.json) or Hub name")
    generate.add_argument("prompts", nargs="+", help="texts to continue")
    generate.add_argument("--max-new-tokens", type=int, default=None,
                          help="tokens to add at most (default: what the context leaves)")
    generate.add_argument("--greedy", action="store_true",
                          help="the most probable token at every step (no sampling)")
    generate.add_argument("--samples", type=int, default=1,
                          help="continuations per prompt (seeds seed, seed+1, ...)")
    generate.add_argument("--no-cache", action="store_true",
                          help="recompute the prefix at every step (slower; same samples)")
    _add_sampling_arguments(generate)

    evaluate = commands.add_parser("evaluate", help="sacreBLEU of a trained run on a split")
    _add_precision_argument(evaluate, default=None)
    evaluate.add_argument("--checkpoint", required=True, help="a run directory")
    evaluate.add_argument("--split", default="test",
                          help="test (test2016 for multi30k), valid (val) or train")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--beam-size", type=int, default=4)
    evaluate.add_argument("--length-penalty", type=float, default=0.6)
    evaluate.add_argument("--average-last", type=int, default=0)
    evaluate.add_argument("--limit", type=int, default=0, help="only the first N sentences")
    view = commands.add_parser(
        "view", help="write a translation's attention as an interactive HTML page")
    add_view_arguments(view)

    grade = commands.add_parser(
        "grade", add_help=False,
        help="grade a folder of exercise submissions (see attention.exercises.grade --help)")
    grade.add_argument("grade_args", nargs=argparse.REMAINDER)
    return parser


TASKS = ("translation", "lm")
# The quick start, ``attention train`` with no arguments (any synthetic translation task
# without --preset): the tiny preset at d_model 64, the steps and rates below. Chosen by
# measurement for at least 95% test exact match on svo_to_sov within about a minute on two
# cores (benchmarks/quick_start.py).
QUICK_START_MODEL = dict(d_model=64, d_ff=256)
QUICK_START_TRAINING = dict(steps=1000, batch_size=64, warmup_steps=100, lr_scale=0.5)
EVAL_BATCH = 256
"""Sentences translated together at the end of ``attention train``."""


def _add_precision_argument(parser, *, default) -> None:
    what = ("auto: bfloat16 where it makes training faster (GPU, TPU, AMX), else float32"
            if default
            else "default: the run's own setting")
    parser.add_argument("--precision", choices=PRECISIONS, default=default,
                        help=f"float32, or bfloat16 mixed precision (bfloat16 products, float32 "
                             f"sums, parameters and optimizer); {what}")


def _add_sampling_arguments(parser) -> None:
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="> 0; below 1 sharper, above 1 flatter (default 1)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="sample among the k most probable tokens")
    parser.add_argument("--top-p", type=float, default=None,
                        help="sample in the smallest set of tokens of probability >= p (0, 1]")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")


def _is_real(args) -> bool:
    return args.data != "svo" if args.task == "lm" else is_real_data(args.data)


def _model_config(args, vocab_size: int):
    """The model preset for ``args``: tiny for synthetic data, small for real text; for
    ``--task lm`` the preset's decoder-only shape (pre-LN, tied embeddings, rotary)."""
    _resolve_data(args)
    if args.task == "lm":
        preset = args.preset or ("small" if _is_real(args) else "tiny")
        overrides = dict(positional="rope", dropout_rate=0.1 if _is_real(args) else 0.0,
                         max_len=128 if _is_real(args) else 64)
        if args.dropout is not None:
            overrides["dropout_rate"] = args.dropout
        overrides |= _attention_overrides(args)
        if overrides.get("attention", "standard") == "linear" and args.positional is None:
            overrides["positional"] = "learned"  # linear attention takes no rotary positions
        return PRESETS[preset](vocab_size=vocab_size).as_language_model(**overrides), preset
    preset = args.preset or ("small" if is_real_data(args.data) else "tiny")
    overrides = {}
    if preset == "tiny":
        # Noise-free synthetic tasks learn best without dropout; Tatoeba is small and overfits.
        overrides = dict(max_len=64, dropout_rate=0.1 if args.data == "tatoeba" else 0.0)
        if args.preset is None:  # a synthetic task by default: the quick start's width
            overrides |= QUICK_START_MODEL
    elif preset == "base":
        overrides = dict(max_len=128)
    if args.dropout is not None:
        overrides["dropout_rate"] = args.dropout
    overrides |= _attention_overrides(args)
    return PRESETS[preset](vocab_size=vocab_size, **overrides), preset


def _attention_overrides(args) -> dict:
    """The config fields that the attention flags set (both tasks); the config checks them."""
    flags = dict(positional=args.positional, num_kv_heads=args.num_kv_heads,
                 attention=args.attention, qk_norm=args.qk_norm, attn_soft_cap=args.soft_cap,
                 attention_sinks=args.attention_sinks or None,
                 output_gate=args.output_gate or None)
    overrides = {name: value for name, value in flags.items() if value is not None}
    return overrides | {"precision": args.precision}


def _train_config(args) -> TrainConfig:
    _resolve_data(args)
    if args.task == "lm":  # batches of windows of max_len tokens, not of sentence pairs
        defaults = dict(steps=4000, batch_size=32, warmup_steps=400, lr_scale=1.0) \
            if _is_real(args) else dict(steps=1000, batch_size=32, warmup_steps=100,
                                        lr_scale=1.0)
    elif is_real_data(args.data):
        defaults = dict(steps=6000, batch_size=128, warmup_steps=1000, lr_scale=1.0)
    else:
        defaults = dict(QUICK_START_TRAINING)
    defaults["checkpoint_every"] = 500 if args.task == "lm" or is_real_data(args.data) else 0
    chosen = {
        "steps": args.steps, "batch_size": args.batch_size, "warmup_steps": args.warmup,
        "lr_scale": args.lr_scale, "checkpoint_every": args.checkpoint_every,
    }
    values = defaults | {k: v for k, v in chosen.items() if v is not None}
    # The synthetic pairs have no noise to be unsure about: no label smoothing by default.
    label_smoothing = args.label_smoothing
    if label_smoothing is None:
        label_smoothing = 0.0 if args.task == "translation" and not is_real_data(args.data) \
            else 0.1
    return TrainConfig(**values, label_smoothing=label_smoothing, clip_norm=args.clip_norm,
                       seed=args.seed)


def _resolve_data(args) -> None:
    """The default ``--data`` of the task: synthetic text that needs no download."""
    if getattr(args, "data", None) is None:
        args.data = "svo" if getattr(args, "task", "translation") == "lm" else "svo_to_sov"


def _train(args) -> int:
    _resolve_data(args)
    names = LM_DATA_NAMES if args.task == "lm" else DATA_NAMES
    if args.data not in names:
        raise UsageError(f"unknown data {args.data!r} for --task {args.task}; choose one of "
                         f"{', '.join(names)}.")
    default_out = f"runs/lm-{args.data}" if args.task == "lm" else f"runs/{args.data}"
    out = pathlib.Path(args.out or default_out)
    resume = args.resume and has_checkpoints(out)
    if has_checkpoints(out) and not args.resume:
        raise UsageError(f"{out} already holds a run; pass --resume to continue it or choose "
                         f"another --out (nothing was overwritten).")
    started = time.perf_counter()
    with CompileClock() as clock:
        train = _train_language_model if args.task == "lm" else _train_translation
        status = train(args, out, resume)
    if status == 0:
        print(f"time: {time.perf_counter() - started:.1f} s, of which {clock.seconds:.1f} s "
              f"compiling (the training's own: the last line of {out}/metrics.jsonl)")
    return status


def _train_translation(args, out: pathlib.Path, resume: bool) -> int:
    print(f"data: {args.data}", flush=True)
    with _checking_arguments():
        corpus = load_corpus(args.data, data_dir=args.data_dir, num_examples=args.examples,
                             vocab_size=args.vocab_size, seed=args.seed,
                             tokenizer=load_run_tokenizer(out) if resume else None)
    run, result = _train_model(
        args, out, resume, corpus,
        lambda config, preset: f"{preset}, d_model {config.d_model}, {config.num_layers}+"
        f"{config.num_layers} layers; {len(corpus.train)} training pairs")
    if result is None:
        return 130

    test = corpus.test[: args.eval_sentences or None]
    # One batch (up to EVAL_BATCH): one decoder program to compile, not one per chunk.
    hypotheses = translate(run.model, run.tokenizer, [s for s, _ in test],
                           beam_size=args.beam_size, batch_size=EVAL_BATCH)
    references = [t for _, t in test]
    for (source, target), hypothesis in list(zip(test, hypotheses, strict=True))[:3]:
        print(f"  source:     {source}\n  reference:  {target}\n  model:      {hypothesis}")
    if is_real_data(args.data):
        score, signature = bleu_signature(hypotheses, references)
        print(f"test BLEU on {len(test)} sentences: {score:.1f}  ({signature})")
    else:
        print(f"test exact match on {len(test)} sentences: "
              f"{exact_match(hypotheses, references):.1%}")
    figure = _plot_example(run, test[0][0], hypotheses[0], out / "cross_attention.png")
    print(f"saved: {out}/ (checkpoints, config.json, metrics.jsonl, training_curves.png, "
          f"{figure.name})")
    return 0


def _train_model(args, out: pathlib.Path, resume: bool, corpus, describe):
    """Build the run from the arguments, train it (both tasks share this), print the summary.

    Returns (run, result), or (run, None) when Ctrl-C interrupted training (a checkpoint was
    saved). ``describe(config, preset)`` words the model line for the task.
    """
    with _checking_arguments():
        config, preset = _model_config(args, corpus.tokenizer.vocab_size)
        run = new_run(config, _train_config(args), corpus.tokenizer, data=args.data,
                      preset=preset)
        if resume:
            print(f"resumed from step {resume_run(run, out)}")
        batcher = check_trainable(run, corpus.train)
    print(f"model: {count_params(run.model) / 1e6:.2f}M parameters, "
          f"{describe(config, preset)}, {jax.device_count()} {jax.default_backend()} "
          f"device(s)", flush=True)
    print(describe_precision(config.precision), flush=True)
    result = train_run(run, corpus.train, directory=out, progress=not args.no_progress,
                       batcher=batcher)
    if result.interrupted:
        task = " --task lm" if args.task == "lm" else ""
        print(f"interrupted at step {result.step}; saved a checkpoint in {out}. "
              f"Continue with: attention train{task} --resume --out {out} ...")
        return run, None
    last = result.history[-1] if result.history else {}
    accuracy = (f", token accuracy {last.get('accuracy', 0):.3f}" if args.task != "lm" else "")
    print(f"trained {result.step} steps in {result.seconds:.0f} s; last loss "
          f"{last.get('loss', float('nan')):.3f}{accuracy}")
    return run, result


def _train_language_model(args, out: pathlib.Path, resume: bool) -> int:
    print(f"data: {args.data} (language model)", flush=True)
    with _checking_arguments():
        corpus = load_text_corpus(args.data, data_dir=args.data_dir, num_examples=args.examples,
                                  vocab_size=args.vocab_size, seed=args.seed,
                                  tokenizer=load_run_tokenizer(out) if resume else None)
    run, result = _train_model(
        args, out, resume, corpus,
        lambda config, preset: f"{preset} decoder-only, d_model {config.d_model}, "
        f"{config.num_layers} layers, {config.positional} positions, context "
        f"{config.max_len}; {len(corpus.train)} training texts")
    if result is None:
        return 130
    config = run.model.config
    held_out = perplexity(run.model, run.tokenizer, corpus.test)
    reference = unigram_perplexity(run.tokenizer, corpus.train, corpus.test)
    print(f"test perplexity {held_out['perplexity']:.2f} (unigram reference {reference:.2f}, "
          f"vocabulary {run.tokenizer.vocab_size}); next-token accuracy "
          f"{held_out['accuracy']:.3f}")
    prompts = [" ".join(text.split()[:3]) for text in corpus.test[:3]]
    for text in generate_text(run.model, run.tokenizer, prompts, top_k=40, seed=args.seed,
                              max_new_tokens=min(40, config.max_len - 8)):
        print(f"  sample: {text}")
    saved = "checkpoints, config.json, metrics.jsonl, training_curves.png"
    if config.attention == "linear":  # phi(Q) (phi(K)^T V): no T x S map to draw
        print(f"saved: {out}/ ({saved}; linear attention forms no attention map)")
        return 0
    maps = text_attention(run.model, run.tokenizer, corpus.test[0])
    figure = out / "self_attention.png"
    labels = maps["labels"][: config.max_len]
    plot_attention(maps["attention_maps"]["decoder_self"][-1, 0].mean(axis=0),
                   query_tokens=labels, key_tokens=labels,
                   title="Self-attention (last layer, mean of heads)", xlabel="key",
                   ylabel="query", save=figure)
    print(f"saved: {out}/ ({saved}, {figure.name})")
    return 0


def _plot_example(run, sentence: str, translation: str, path: pathlib.Path) -> pathlib.Path:
    """Save the last layer's cross-attention (mean over heads) of the model's translation of
    one sentence."""
    pair = pair_attention(run.model, run.tokenizer, [(sentence, translation)])
    plot_attention(
        pair["attention_maps"]["decoder_cross"][-1, 0].mean(axis=0),
        query_tokens=pair["target_tokens"], key_tokens=pair["source_tokens"],
        title="Cross-attention (last layer, mean of heads)",
        xlabel="source", ylabel="target (decoder input)", save=path,
    )
    return path


def _load_run(run_dir: str, average_last: int, *, command: str, precision: str | None = None):
    with _checking_arguments():
        run = load_run(run_dir, average_last=average_last, precision=precision)
    if command == "generate" and not run.config.is_language_model:
        raise UsageError(
            f"{run_dir} holds a translation model (encoder-decoder), not a language model; "
            f"use attention translate with it, or train one with attention train --task lm."
        )
    if command == "translate" and run.config.is_language_model:
        raise UsageError(
            f"{run_dir} holds a language model (decoder-only), not a translation model; "
            f"continue text with attention generate --checkpoint {run_dir} \"TEXT\"."
        )
    if average_last > 1:
        print(f"averaged the last {average_last} checkpoints, up to step {run.step}",
              file=sys.stderr)
    return run


def _translate(args) -> int:
    run = _load_run(args.checkpoint, args.average_last, command="translate",
                    precision=args.precision)
    with _checking_arguments():
        _check_translation_arguments(run, args, args.sentences)
    for line in translate(run.model, run.tokenizer, args.sentences, beam_size=args.beam_size,
                          length_penalty=args.length_penalty, sample=args.sample,
                          temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          seed=args.seed):
        print(line)
    return 0


def _generate(args) -> int:
    if args.pretrained:
        return _generate_pretrained(args)
    run = _load_run(args.checkpoint, 0, command="generate",
                    precision=args.precision)
    if args.samples < 1:
        raise UsageError(f"--samples must be a positive int, got {args.samples}.")
    with _checking_arguments():
        check_generate_text(run.model, run.tokenizer, args.prompts,
                            max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            top_k=args.top_k, top_p=args.top_p)
    for i in range(args.samples):
        for text in generate_text(
            run.model, run.tokenizer, args.prompts, max_new_tokens=args.max_new_tokens,
            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
            greedy=args.greedy, seed=args.seed + i, use_cache=not args.no_cache,
        ):
            print(text)
    return 0


def _generate_pretrained(args) -> int:
    if args.samples < 1:
        raise UsageError(f"--samples must be a positive int, got {args.samples}.")
    model, tokenizer = load_pretrained(args.pretrained)
    max_new_tokens = 40 if args.max_new_tokens is None else args.max_new_tokens
    with _checking_arguments():
        check_sampling(model.config.vocab_size, args.temperature, args.top_k, args.top_p)
        if max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens must be a positive int, got {max_new_tokens}.")
        encode_texts(model, tokenizer, args.prompts, room=max_new_tokens)
    for i in range(args.samples):
        for text in generate_pretrained_text(
            model, tokenizer, args.prompts, max_new_tokens=max_new_tokens,
            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
            greedy=args.greedy, seed=args.seed + i, use_cache=not args.no_cache,
        ):
            print(text)
    return 0


def _split(name: str) -> str:
    """The corpus attribute for ``--split`` (test2016 is Multi30k's name for its test set)."""
    split = {"test": "test", "test2016": "test", "valid": "valid", "val": "valid",
             "train": "train"}.get(name)
    if split is None:
        raise UsageError(f"unknown --split {name!r}; use test, valid or train.")
    return split


def _evaluate(args) -> int:
    run = _load_run(args.checkpoint, args.average_last, command="evaluate",
                    precision=args.precision)
    if run.config.is_language_model:
        return _evaluate_language_model(args, run)
    with _checking_arguments():
        corpus = load_corpus(run.data, data_dir=args.data_dir, tokenizer=run.tokenizer,
                             seed=run.train_config.seed)
    split = _split(args.split)
    pairs = getattr(corpus, split)[: args.limit or None]
    with _checking_arguments():
        _check_translation_arguments(run, args, [s for s, _ in pairs])
    start = time.perf_counter()
    hypotheses = translate(run.model, run.tokenizer, [s for s, _ in pairs],
                           beam_size=args.beam_size, length_penalty=args.length_penalty)
    references = [t for _, t in pairs]
    score, signature = bleu_signature(hypotheses, references)
    result = {"data": run.data, "split": args.split, "sentences": len(pairs),
              "beam_size": args.beam_size, "bleu": round(score, 2), "signature": signature,
              "exact_match": round(exact_match(hypotheses, references), 4),
              "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(result))
    return 0


def _evaluate_language_model(args, run) -> int:
    """Held-out perplexity of a language-model run (``attention evaluate`` on one)."""
    with _checking_arguments():
        corpus = load_text_corpus(run.data, data_dir=args.data_dir, tokenizer=run.tokenizer,
                                  seed=run.train_config.seed)
    split = _split(args.split)
    texts = getattr(corpus, split)[: args.limit or None]
    start = time.perf_counter()
    scores = perplexity(run.model, run.tokenizer, texts)
    reference = unigram_perplexity(run.tokenizer, corpus.train, texts)
    result = {"data": run.data, "split": args.split, "texts": len(texts),
              "perplexity": round(scores["perplexity"], 3), "nll": round(scores["nll"], 4),
              "accuracy": round(scores["accuracy"], 4),
              "unigram_perplexity": round(reference, 3),
              "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(result))
    return 0


def _check_translation_arguments(run, args, sentences) -> None:
    """The checks of the decoding knobs and of the sources, before any decoding."""
    config = run.config
    if getattr(args, "sample", False):
        check_sampling(config.tgt_vocab_size, args.temperature, args.top_k, args.top_p)
    else:
        check_beam_search(config.tgt_vocab_size, args.beam_size, args.length_penalty)
    if sentences:
        pad_sources(sentences, run.tokenizer, max_len=config.max_len)


def _view(args) -> int:
    run = None
    with _checking_arguments():
        check_view_arguments(args)
        if args.checkpoint:
            run = load_run(args.checkpoint)
            if run.config.is_language_model:
                check_language_model_view(run, args.target, args.beam_size)
    return view_command(args, run)


class UsageError(Exception):
    """A problem the user can fix: reported as one line, exit status 2."""


USER_ERRORS = (UsageError, CheckpointError, PretrainedError, ChecksumError,
               DatasetNotFoundError, FileNotFoundError)
"""What a user's mistake raises, wherever it is found: one line on stderr, exit status 2."""

@contextlib.contextmanager
def _checking_arguments():
    """Around the calls that check what the user gave (arguments, files, the run it names):
    their ``ValueError`` or ``TypeError`` is the user's to fix, a :class:`UsageError`. The
    same exceptions raised later, while the command works, are bugs."""
    try:
        yield
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from error


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["grade"]:  # the grader has its own argument parser and messages
        from attention.exercises.grade import main as grade_main

        return grade_main(argv[1:])
    args = _build_parser().parse_args(argv)
    handlers = {"train": _train, "translate": _translate, "generate": _generate,
                "evaluate": _evaluate,
                "view": _view}
    try:
        return handlers[args.command](args)
    except USER_ERRORS as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"attention {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Exception:  # a bug: everything a report needs, not a one-line message
        traceback.print_exc()
        print(f"attention {args.command}: this is a bug in attention, not a mistake in the "
              f"command; please report it, with the traceback above, to the project's issues.",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
