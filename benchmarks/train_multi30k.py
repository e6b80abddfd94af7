"""Train German -> English on Multi30k within a time budget and report test2016 sacreBLEU.

    python benchmarks/train_multi30k.py --minutes 20         # the issue's budget
    python benchmarks/train_multi30k.py --quick              # a 1-minute smoke run

The data is read from --data-dir, else $ATTENTION_DATA, else ../shared/data beside the
repository (no download is attempted when that folder is there). The model is the package's
Transformer (post-LN, sinusoidal positions, shared joint subword vocabulary), trained with
the paper's Adam schedule and label smoothing; BLEU is sacreBLEU (cased, 13a, detokenized
text) of greedy and beam-5 decoding, with its signature, and the same lower-cased (what older
tutorials report, on lower-cased tokens). ``--precision auto`` (the default) trains in
bfloat16 mixed precision where that is faster (a CPU with AMX), else in float32. Results
(BLEU, wall time, tokens/s, the seconds spent compiling train steps and the number of batch
shapes, the whole config) are printed and written to
benchmarks/results/train_multi30k_<minutes>min.json.

Each batch shape compiles the train step once more (about 10 s each on the 2-core CPU), so the
batches are padded to at most ``--num-buckets`` lengths (multiples of ``--pad-to-multiple``),
each bucket's last batch filled with empty rows (``Batcher(num_buckets=...,
pad_remainder=True)``): at most that many shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

# benchmarks/attention.py would shadow the package: take this folder off the import path.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from attention._machine import cpu_description  # noqa: E402
from attention.application.runs import batch_stream  # noqa: E402
from attention.application.translation import bleu_signature, load_corpus, translate  # noqa: E402
from attention.data import Batcher, encode_pairs  # noqa: E402
from attention.model.config import TransformerConfig  # noqa: E402
from attention.model.precision import PRECISIONS, describe_precision  # noqa: E402
from attention.model.transformer import Transformer, count_params  # noqa: E402
from attention.training.checkpoint import Checkpointer  # noqa: E402
from attention.training.train import TrainConfig, evaluate_loss, fit, make_optimizer  # noqa: E402

RESULTS = pathlib.Path(__file__).parent / "results"
SHARED_DATA = str(_HERE.parent.parent / "shared" / "data")
# Chosen by measurement (benchmarks/README.md, Multi30k, "Compilation"): 6 shapes, not 11, and
# 7% fewer batches an epoch than one bucket per multiple of 8.
NUM_BUCKETS, PAD_TO_MULTIPLE = 6, 4


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training time budget")
    parser.add_argument("--data-dir", default=os.environ.get("ATTENTION_DATA", SHARED_DATA),
                        help="folder holding multi30k/ (default: $ATTENTION_DATA, else "
                             "../shared/data beside the repository)")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--d-ff", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--num-buckets", type=int, default=NUM_BUCKETS,
                        help="pad to at most this many lengths (one compiled step each); "
                             "0 = one bucket per padded length, the last batches smaller")
    parser.add_argument("--pad-to-multiple", type=int, default=PAD_TO_MULTIPLE,
                        help="padded lengths are multiples of this")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--lr-scale", type=float, default=0.8)
    parser.add_argument("--average-last", type=int, default=3,
                        help="average the last K checkpoints (section 6.1); 0 = off")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--test-limit", type=int, default=0, help="only the first N test pairs")
    parser.add_argument("--quick", action="store_true", help="1 minute, 100 test sentences")
    parser.add_argument("--out", default=None,
                        help="results file stem (default: train_multi30k_<minutes>min)")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.test_limit = 1.0, 100
    if args.out is None:
        args.out = "train_multi30k_quick" if args.quick else f"train_multi30k_{args.minutes:g}min"

    setup_start = time.perf_counter()
    corpus = load_corpus("multi30k", data_dir=args.data_dir, vocab_size=args.vocab_size)
    tokenizer = corpus.tokenizer
    config = TransformerConfig(
        src_vocab_size=tokenizer.vocab_size, tgt_vocab_size=tokenizer.vocab_size,
        d_model=args.d_model, num_heads=args.heads, d_ff=args.d_ff, num_layers=args.layers,
        dropout_rate=args.dropout, max_len=128, share_embeddings=True,
        precision=args.precision,
    )
    print(describe_precision(config.precision), flush=True)
    train_config = TrainConfig(steps=1_000_000, batch_size=1, warmup_steps=args.warmup,
                               lr_scale=args.lr_scale, label_smoothing=0.1, log_every=50,
                               checkpoint_every=args.checkpoint_every, keep_checkpoints=5)
    buckets = dict(pad_to_multiple=args.pad_to_multiple)
    if args.num_buckets:
        buckets |= dict(num_buckets=args.num_buckets, pad_remainder=True)
    train_batcher = Batcher(encode_pairs(corpus.train, tokenizer), batch_tokens=args.batch_tokens,
                            max_len=config.max_len, seed=0, **buckets)
    valid_batcher = Batcher(encode_pairs(corpus.valid, tokenizer), batch_tokens=args.batch_tokens,
                            max_len=config.max_len, shuffle=False, **buckets)
    model = Transformer(config, rngs=nnx.Rngs(params=0, dropout=1))
    optimizer = make_optimizer(model, config.d_model, train_config)
    setup_seconds = time.perf_counter() - setup_start

    with tempfile.TemporaryDirectory() as run_dir:
        checkpointer = Checkpointer(run_dir, max_to_keep=5)
        result = fit(model, optimizer, lambda s: batch_stream(train_batcher, s), train_config,
                     pad_id=config.pad_id, checkpointer=checkpointer, progress=False,
                     max_seconds=60 * args.minutes,
                     on_log=lambda line: print(
                         f"step {line['step']:5d}  loss {line['loss']:.3f}  "
                         f"tok/s {line['tokens_per_second']:.0f}  {line['elapsed']:.0f}s",
                         flush=True))
        print(f"compiling: {result.compile_seconds:.1f} s for {result.num_shapes} batch shapes "
              f"(buckets {train_batcher.bucket_lengths})", flush=True)
        averaged = []
        if args.average_last > 1 and len(checkpointer.steps) > 1:
            averaged = checkpointer.average(model, args.average_last)
        checkpointer.close()
    model.eval()
    valid = evaluate_loss(model, valid_batcher.epoch(0), pad_id=config.pad_id)

    test = corpus.test[: args.test_limit or None]
    sources, references = [s for s, _ in test], [t for _, t in test]
    scores = {}
    for beam in sorted({1, args.beam_size}):
        start = time.perf_counter()
        hypotheses = translate(model, tokenizer, sources, beam_size=beam)
        seconds = time.perf_counter() - start
        bleu, signature = bleu_signature(hypotheses, references)
        bleu_lc, signature_lc = bleu_signature(hypotheses, references, lowercase=True)
        scores[f"beam{beam}"] = {"bleu": round(bleu, 2), "bleu_lowercased": round(bleu_lc, 2),
                                 "seconds": round(seconds, 1), "example": hypotheses[0]}
    trained_tokens = _trained_tokens(train_batcher, result.step)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}, "
                   f"{jax.default_backend()}",
        "train_minutes": round(result.seconds / 60, 2),
        "steps": result.step,
        "epochs": round(result.step / len(train_batcher), 2),
        "tokens_per_second": round(trained_tokens / result.seconds),
        "setup_seconds": round(setup_seconds, 1),
        "compile_seconds": round(result.compile_seconds, 1),
        "batch_shapes": result.num_shapes,
        "bucket_lengths": train_batcher.bucket_lengths,
        "averaged_checkpoints": averaged,
        "valid_nll": round(valid["nll"], 3),
        "valid_accuracy": round(valid["accuracy"], 4),
        "test_sentences": len(test),
        "bleu_signature": signature,
        "bleu_lowercased_signature": signature_lc,
        "precision": describe_precision(config.precision),
        "cpu": cpu_description(),
        "load_average_end": round(os.getloadavg()[0], 2),
        **scores,
        "parameters": count_params(model),
        "model": config.to_dict(),
        "train": train_config.to_dict() | {"batch_size": None, "batch_tokens": args.batch_tokens,
                                           "num_buckets": args.num_buckets or None,
                                           "pad_to_multiple": args.pad_to_multiple,
                                           "steps": result.step},
    }
    print(json.dumps(report, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")


def _trained_tokens(batcher: Batcher, steps: int) -> int:
    """Source + target tokens (padding excluded) in the first ``steps`` batches of the stream."""
    total, seen = 0, 0
    epoch = 0
    while seen < steps:
        for batch in batcher.epoch(epoch):
            if seen == steps:
                break
            total += int(np.sum(batch["src_lengths"]) + np.sum(batch["tgt_lengths"]))
            seen += 1
        epoch += 1
    return total


if __name__ == "__main__":
    main()
