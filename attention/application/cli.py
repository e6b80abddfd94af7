"""``attention``: train a translation model, translate with it, evaluate it.

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
import dataclasses
import json
import pathlib
import sys
import time

PRESETS = ("tiny", "small", "base")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attention", description="Train and use a transformer translation model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model (default: the toy language pair)")
    train.add_argument("--data", default="svo_to_sov",
                       help="svo_to_sov (default), copy, reverse, dates, multi30k or tatoeba")
    train.add_argument("--data-dir", help="folder holding multi30k/ or tatoeba_en_de_small/ "
                       "(default: $ATTENTION_DATA, then the download cache)")
    train.add_argument("--out", help="run directory (default: runs/<data>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--preset", choices=PRESETS, default=None,
                       help="model size (default: tiny for synthetic tasks, small for real data)")
    train.add_argument("--steps", type=int, help="optimizer updates")
    train.add_argument("--batch-size", type=int, help="sentence pairs per update")
    train.add_argument("--warmup", type=int, help="warm-up steps of the schedule")
    train.add_argument("--lr-scale", type=float, help="multiplies the paper's learning rate")
    train.add_argument("--label-smoothing", type=float, default=0.1)
    train.add_argument("--dropout", type=float, help="P_drop")
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
    from attention.model.config import TransformerConfig

    preset = args.preset or ("tiny" if args.data not in ("multi30k", "tatoeba") else "small")
    common = dict(share_embeddings=True)
    if preset == "base":
        config = TransformerConfig.base(vocab_size=vocab_size, max_len=128)
    elif preset == "small":
        # A Multi30k-sized model: the 3+3-layer, d_model 256 setting that fits a CPU.
        config = TransformerConfig(src_vocab_size=vocab_size, tgt_vocab_size=vocab_size,
                                   d_model=256, num_heads=8, d_ff=1024, num_layers=3,
                                   dropout_rate=0.1, max_len=128, **common)
    else:
        config = TransformerConfig.tiny(vocab_size=vocab_size, max_len=64,
                                        dropout_rate=0.0 if args.data != "tatoeba" else 0.1,
                                        **common)
    if args.dropout is not None:
        config = dataclasses.replace(config, dropout_rate=args.dropout)
    return config, preset


def _train_config(args, preset: str):
    from attention.training.train import TrainConfig

    synthetic = args.data not in ("multi30k", "tatoeba")
    defaults = dict(steps=1200, batch_size=64, warmup_steps=100, lr_scale=0.7) if synthetic \
        else dict(steps=6000, batch_size=128, warmup_steps=1000, lr_scale=1.0)
    chosen = {
        "steps": args.steps, "batch_size": args.batch_size, "warmup_steps": args.warmup,
        "lr_scale": args.lr_scale,
    }
    values = defaults | {k: v for k, v in chosen.items() if v is not None}
    return TrainConfig(**values, label_smoothing=args.label_smoothing, clip_norm=args.clip_norm,
                       seed=args.seed, checkpoint_every=args.checkpoint_every)


def _train(args) -> int:
    import jax
    from flax import nnx

    from attention.training.checkpoint import Checkpointer
    from attention.data import Batcher, encode_pairs
    from attention.training.parallel import make_mesh, replicate, shard_batch
    from attention.training.train import fit, make_optimizer, plot_training_curves
    from attention.model.transformer import Transformer, count_params
    from attention.application.translation import (
        batch_stream,
        bleu_signature,
        exact_match,
        load_corpus,
        load_run_tokenizer,
        translate,
    )

    out = pathlib.Path(args.out or f"runs/{args.data}")
    has_checkpoints = (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir())
    if has_checkpoints and not args.resume:
        raise UsageError(f"{out} already holds a run; pass --resume to continue it or choose "
                         f"another --out (nothing was overwritten).")
    tokenizer = load_run_tokenizer(out) if args.resume and has_checkpoints else None
    print(f"data: {args.data}", flush=True)
    corpus = load_corpus(args.data, data_dir=args.data_dir, num_examples=args.examples,
                         vocab_size=args.vocab_size, seed=args.seed, tokenizer=tokenizer)
    config, preset = _model_config(args, corpus.tokenizer.vocab_size)
    train_config = _train_config(args, preset)

    checkpointer = Checkpointer(out, max_to_keep=train_config.keep_checkpoints)
    checkpointer.write_config({"model": config.to_dict(), "train": train_config.to_dict(),
                               "data": args.data, "preset": preset})
    tokenizer_file = out / ("tokenizer.model" if args.data in ("multi30k", "tatoeba")
                            else "tokenizer.json")
    if not tokenizer_file.exists():
        corpus.tokenizer.save(tokenizer_file)

    mesh = make_mesh()
    num_devices = mesh.devices.size
    if train_config.batch_size % num_devices:
        raise UsageError(f"--batch-size {train_config.batch_size} must be a multiple of the "
                         f"{num_devices} devices.")
    model = Transformer(config, rngs=nnx.Rngs(params=train_config.seed,
                                              dropout=train_config.seed + 1))
    optimizer = make_optimizer(model, config.d_model, train_config)
    start_step = 0
    if args.resume and has_checkpoints:
        start_step = checkpointer.restore(model, optimizer)["step"]
        print(f"resumed from step {start_step}")
    if num_devices > 1:
        nnx.update((model, optimizer), replicate(nnx.state((model, optimizer)), mesh))

    batcher = Batcher(encode_pairs(corpus.train, corpus.tokenizer),
                      batch_size=train_config.batch_size, max_len=config.max_len,
                      seed=train_config.seed, drop_remainder=True)
    print(f"model: {preset}, {count_params(model) / 1e6:.2f}M parameters, d_model "
          f"{config.d_model}, {config.num_layers}+{config.num_layers} layers; "
          f"{len(corpus.train)} training pairs, {len(batcher)} batches per epoch, "
          f"{num_devices} {jax.default_backend()} device(s)", flush=True)
    result = fit(
        model, optimizer, lambda step: batch_stream(batcher, step), train_config,
        pad_id=config.pad_id, checkpointer=checkpointer, start_step=start_step,
        metrics_path=out / "metrics.jsonl",
        shard=(lambda b: shard_batch(b, mesh)) if num_devices > 1 else None,
        progress=not args.no_progress,
    )
    if result.history:
        plot_training_curves(result.history, out / "training_curves.png")
    if result.interrupted:
        print(f"interrupted at step {result.step}; saved a checkpoint in {out}. "
              f"Continue with: attention train --resume --out {out} ...")
        return 130
    last = result.history[-1] if result.history else {}
    print(f"trained {result.step} steps in {result.seconds:.0f} s; last loss "
          f"{last.get('loss', float('nan')):.3f}, token accuracy {last.get('accuracy', 0):.3f}")

    test = corpus.test[: args.eval_sentences or None]
    hypotheses = translate(model, corpus.tokenizer, [s for s, _ in test],
                           beam_size=args.beam_size)
    references = [t for _, t in test]
    for (source, target), hypothesis in list(zip(test, hypotheses, strict=True))[:3]:
        print(f"  source:     {source}\n  reference:  {target}\n  model:      {hypothesis}")
    if args.data in ("multi30k", "tatoeba"):
        score, signature = bleu_signature(hypotheses, references)
        print(f"test BLEU on {len(test)} sentences: {score:.1f}  ({signature})")
    else:
        print(f"test exact match on {len(test)} sentences: "
              f"{exact_match(hypotheses, references):.1%}")
    figure = _plot_example(model, corpus.tokenizer, test[0][0], out / "cross_attention.png")
    print(f"saved: {out}/ (checkpoints, config.json, metrics.jsonl, training_curves.png, "
          f"{figure.name})")
    return 0


def _plot_example(model, tokenizer, sentence: str, path: pathlib.Path) -> pathlib.Path:
    """Translate one sentence and save the last layer's cross-attention (mean over heads)."""
    import jax.numpy as jnp

    from attention.inspection.plotting import plot_attention
    from attention.model.transformer import attention_maps
    from attention.application.translation import translate

    translation = translate(model, tokenizer, [sentence])[0]
    src = jnp.asarray([tokenizer.encode(sentence, add_eos=True)])
    tgt = jnp.asarray([tokenizer.encode(translation, add_bos=True)])
    maps = attention_maps(model, src, tgt)
    cross_TS = maps["decoder_cross"][-1, 0].mean(axis=0)
    plot_attention(
        cross_TS, query_tokens=tokenizer.tokens(translation, add_bos=True),
        key_tokens=tokenizer.tokens(sentence, add_eos=True),
        title="Cross-attention (last layer, mean of heads)",
        xlabel="source", ylabel="target (decoder input)", save=path,
    )
    return path


def _load_run(run_dir: str, average_last: int):
    from flax import nnx

    from attention.training.checkpoint import Checkpointer, read_config
    from attention.model.config import TransformerConfig
    from attention.model.transformer import Transformer
    from attention.application.translation import load_run_tokenizer

    saved = read_config(run_dir)
    config = TransformerConfig.from_dict(saved["model"])
    model = Transformer(config, rngs=nnx.Rngs(0))
    checkpointer = Checkpointer(run_dir)
    if average_last > 1:
        steps = checkpointer.average(model, average_last)
        print(f"averaged checkpoints {steps}", file=sys.stderr)
    else:
        checkpointer.restore(model)
    return model, load_run_tokenizer(run_dir), saved


def _translate(args) -> int:
    from attention.application.translation import translate

    model, tokenizer, _ = _load_run(args.checkpoint, args.average_last)
    for line in translate(model, tokenizer, args.sentences, beam_size=args.beam_size,
                          length_penalty=args.length_penalty):
        print(line)
    return 0


def _evaluate(args) -> int:
    from attention.application.translation import bleu_signature, exact_match, load_corpus, translate

    model, tokenizer, saved = _load_run(args.checkpoint, args.average_last)
    corpus = load_corpus(saved["data"], data_dir=args.data_dir, tokenizer=tokenizer,
                         seed=saved["train"]["seed"])
    split = {"test": "test", "test2016": "test", "valid": "valid", "val": "valid",
             "train": "train"}.get(args.split)
    if split is None:
        raise UsageError(f"unknown --split {args.split!r}; use test, valid or train.")
    pairs = getattr(corpus, split)[: args.limit or None]
    start = time.perf_counter()
    hypotheses = translate(model, tokenizer, [s for s, _ in pairs], beam_size=args.beam_size,
                           length_penalty=args.length_penalty)
    references = [t for _, t in pairs]
    score, signature = bleu_signature(hypotheses, references)
    result = {"data": saved["data"], "split": args.split, "sentences": len(pairs),
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
    from attention.training.checkpoint import CheckpointError
    from attention.data import ChecksumError, DatasetNotFoundError

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
