"""Step 30: ``attention``, the command line: train a translation model, translate, evaluate.

    attention train                        # the toy language pair, about a minute on a CPU
    attention train --data multi30k --preset small --steps 6000 --out runs/multi30k
    attention translate --checkpoint runs/svo_to_sov "the big dog sees the cat"
    attention evaluate --checkpoint runs/multi30k --split test --beam-size 5
    attention grade submissions/ --out scores.csv     # grade classroom exercises

``python -m attention ...`` is the same program. Errors in the arguments, the data or the
checkpoint end with a one-line message (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax

from attention.application.runs import (
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
    pair_attention,
    translate,
)
from attention.data import ChecksumError, DatasetNotFoundError
from attention.inspection.plotting import plot_attention
from attention.model.config import POSITIONAL, PRESETS
from attention.model.transformer import count_params
from attention.training.checkpoint import CheckpointError
from attention.training.train import TrainConfig


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attention", description="Train and use a transformer translation model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model (default: the toy language pair)")
    train.add_argument("--data", default="svo_to_sov",
                       help=f"one of {', '.join(DATA_NAMES)} (default: svo_to_sov)")
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
    train.add_argument("--label-smoothing", type=float, default=0.1)
    train.add_argument("--dropout", type=float, help="P_drop")
    train.add_argument("--positional", choices=POSITIONAL, default=None,
                       help="positions: added to the embeddings (sinusoidal, learned) or "
                       "inside self-attention (rope, alibi); default: the preset's, sinusoidal")
    train.add_argument("--num-kv-heads", type=int, default=None,
                       help="key/value heads, dividing the query heads (grouped-query "
                       "attention; 1: multi-query); default: one per query head")
    train.add_argument("--clip-norm", type=float, help="clip the global gradient norm")
    train.add_argument("--examples", type=int, default=20_000,
                       help="training pairs generated for a synthetic task")
    train.add_argument("--vocab-size", type=int, default=8000, help="subword vocabulary size")
    train.add_argument("--checkpoint-every", type=int, default=500)
    train.add_argument("--beam-size", type=int, default=1, help="beam for the final evaluation")
    train.add_argument("--eval-sentences", type=int, default=200,
                       help="test sentences translated at the end (0: all)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    translate = commands.add_parser("translate", help="translate sentences with a trained run")
    translate.add_argument("--checkpoint", required=True, help="a run directory")
    translate.add_argument("sentences", nargs="+", help="source sentences")
    translate.add_argument("--beam-size", type=int, default=4)
    translate.add_argument("--length-penalty", type=float, default=0.6)
    translate.add_argument("--average-last", type=int, default=0,
                           help="average the parameters of the last K checkpoints")

    evaluate = commands.add_parser("evaluate", help="sacreBLEU of a trained run on a split")
    evaluate.add_argument("--checkpoint", required=True, help="a run directory")
    evaluate.add_argument("--split", default="test",
                          help="test (test2016 for multi30k), valid (val) or train")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--beam-size", type=int, default=4)
    evaluate.add_argument("--length-penalty", type=float, default=0.6)
    evaluate.add_argument("--average-last", type=int, default=0)
    evaluate.add_argument("--limit", type=int, default=0, help="only the first N sentences")
    grade = commands.add_parser(
        "grade", add_help=False,
        help="grade a folder of exercise submissions (see attention.exercises.grade --help)")
    grade.add_argument("grade_args", nargs=argparse.REMAINDER)
    return parser


def _model_config(args, vocab_size: int):
    """The model preset for ``args``: tiny for a synthetic task, small for real text."""
    preset = args.preset or ("small" if is_real_data(args.data) else "tiny")
    overrides = {}
    if preset == "tiny":
        # Noise-free synthetic tasks learn best without dropout; Tatoeba is small and overfits.
        overrides = dict(max_len=64, dropout_rate=0.1 if args.data == "tatoeba" else 0.0)
    elif preset == "base":
        overrides = dict(max_len=128)
    if args.dropout is not None:
        overrides["dropout_rate"] = args.dropout
    if args.positional is not None:
        overrides["positional"] = args.positional
    if args.num_kv_heads is not None:
        overrides["num_kv_heads"] = args.num_kv_heads
    return PRESETS[preset](vocab_size=vocab_size, **overrides), preset


def _train_config(args) -> TrainConfig:
    defaults = dict(steps=6000, batch_size=128, warmup_steps=1000, lr_scale=1.0) \
        if is_real_data(args.data) else dict(steps=1200, batch_size=64, warmup_steps=100,
                                             lr_scale=0.7)
    chosen = {
        "steps": args.steps, "batch_size": args.batch_size, "warmup_steps": args.warmup,
        "lr_scale": args.lr_scale,
    }
    values = defaults | {k: v for k, v in chosen.items() if v is not None}
    return TrainConfig(**values, label_smoothing=args.label_smoothing, clip_norm=args.clip_norm,
                       seed=args.seed, checkpoint_every=args.checkpoint_every)


def _train(args) -> int:
    out = pathlib.Path(args.out or f"runs/{args.data}")
    resume = args.resume and has_checkpoints(out)
    if has_checkpoints(out) and not args.resume:
        raise UsageError(f"{out} already holds a run; pass --resume to continue it or choose "
                         f"another --out (nothing was overwritten).")
    print(f"data: {args.data}", flush=True)
    corpus = load_corpus(args.data, data_dir=args.data_dir, num_examples=args.examples,
                         vocab_size=args.vocab_size, seed=args.seed,
                         tokenizer=load_run_tokenizer(out) if resume else None)
    config, preset = _model_config(args, corpus.tokenizer.vocab_size)
    run = new_run(config, _train_config(args), corpus.tokenizer, data=args.data, preset=preset)
    if resume:
        print(f"resumed from step {resume_run(run, out)}")
    print(f"model: {preset}, {count_params(run.model) / 1e6:.2f}M parameters, d_model "
          f"{config.d_model}, {config.num_layers}+{config.num_layers} layers; "
          f"{len(corpus.train)} training pairs, {jax.device_count()} "
          f"{jax.default_backend()} device(s)", flush=True)
    result = train_run(run, corpus.train, directory=out, progress=not args.no_progress)
    if result.interrupted:
        print(f"interrupted at step {result.step}; saved a checkpoint in {out}. "
              f"Continue with: attention train --resume --out {out} ...")
        return 130
    last = result.history[-1] if result.history else {}
    print(f"trained {result.step} steps in {result.seconds:.0f} s; last loss "
          f"{last.get('loss', float('nan')):.3f}, token accuracy {last.get('accuracy', 0):.3f}")

    test = corpus.test[: args.eval_sentences or None]
    hypotheses = translate(run.model, run.tokenizer, [s for s, _ in test],
                           beam_size=args.beam_size)
    references = [t for _, t in test]
    for (source, target), hypothesis in list(zip(test, hypotheses, strict=True))[:3]:
        print(f"  source:     {source}\n  reference:  {target}\n  model:      {hypothesis}")
    if is_real_data(args.data):
        score, signature = bleu_signature(hypotheses, references)
        print(f"test BLEU on {len(test)} sentences: {score:.1f}  ({signature})")
    else:
        print(f"test exact match on {len(test)} sentences: "
              f"{exact_match(hypotheses, references):.1%}")
    figure = _plot_example(run, test[0][0], out / "cross_attention.png")
    print(f"saved: {out}/ (checkpoints, config.json, metrics.jsonl, training_curves.png, "
          f"{figure.name})")
    return 0


def _plot_example(run, sentence: str, path: pathlib.Path) -> pathlib.Path:
    """Translate one sentence and save the last layer's cross-attention (mean over heads)."""
    translation = translate(run.model, run.tokenizer, [sentence])[0]
    pair = pair_attention(run.model, run.tokenizer, [(sentence, translation)])
    plot_attention(
        pair["attention_maps"]["decoder_cross"][-1, 0].mean(axis=0),
        query_tokens=pair["target_tokens"], key_tokens=pair["source_tokens"],
        title="Cross-attention (last layer, mean of heads)",
        xlabel="source", ylabel="target (decoder input)", save=path,
    )
    return path


def _load_run(run_dir: str, average_last: int):
    run = load_run(run_dir, average_last=average_last)
    if average_last > 1:
        print(f"averaged the last {average_last} checkpoints, up to step {run.step}",
              file=sys.stderr)
    return run


def _translate(args) -> int:
    run = _load_run(args.checkpoint, args.average_last)
    for line in translate(run.model, run.tokenizer, args.sentences, beam_size=args.beam_size,
                          length_penalty=args.length_penalty):
        print(line)
    return 0


def _evaluate(args) -> int:
    run = _load_run(args.checkpoint, args.average_last)
    corpus = load_corpus(run.data, data_dir=args.data_dir, tokenizer=run.tokenizer,
                         seed=run.train_config.seed)
    split = {"test": "test", "test2016": "test", "valid": "valid", "val": "valid",
             "train": "train"}.get(args.split)
    if split is None:
        raise UsageError(f"unknown --split {args.split!r}; use test, valid or train.")
    pairs = getattr(corpus, split)[: args.limit or None]
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


class UsageError(Exception):
    """A problem the user can fix: reported as one line, exit status 2."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["grade"]:  # the grader has its own argument parser and messages
        from attention.exercises.grade import main as grade_main

        return grade_main(argv[1:])
    args = _build_parser().parse_args(argv)
    handlers = {"train": _train, "translate": _translate, "evaluate": _evaluate}
    try:
        return handlers[args.command](args)
    except (UsageError, CheckpointError, ChecksumError, DatasetNotFoundError,
            FileNotFoundError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"attention {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
