"""Regenerate the pictures the README shows, into figures/, with one command.

    python scripts/make_figures.py            # the real figures (trains a toy model, ~2 min CPU)
    python scripts/make_figures.py --fast     # a quick smoke run into a temporary folder

Every picture is computed here from the package (nothing is copied from a notebook's output):

    attention_masks.png            attention weights of a batch with causal + padding masks
    positional_encoding.png        the sinusoidal position table and dot products between positions
    training_curves.png            loss and learning rate of the toy translation model
    translation_attention.png      encoder self, decoder self and cross-attention of a translation
    cross_attention_alignment.png  the best "copy" head of the trained model, drawn as an alignment
    cross_attention_heads.png      every cross-attention head of every layer
    head_summary.png               entropy and mean attention distance of the decoder's heads

The toy model is the one of notebook 07: svo_to_sov, d_model 64, 2+2 layers, 1200 steps.
``figures/attention_benchmark*.png`` are made by ``benchmarks/attention.py``, not here.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from attention import (  # noqa: E402
    alignment_accuracy,
    attention_weights,
    combine_masks,
    padding_mask,
    plot_alignment,
    plot_attention,
    plot_head_summary,
    plot_layers,
    plot_training_curves,
    plot_translation_attention,
    sinusoidal_positions,
)
from attention.application.course import train_course_model  # noqa: E402
from attention.application.translation import (  # noqa: E402
    exact_match,
    pair_attention,
    translate,
)
from attention.data import make_task, svo_alignment  # noqa: E402

TASK = "svo_to_sov"


def masks_figure(out: pathlib.Path) -> pathlib.Path:
    """Self-attention weights of a padded sentence under a causal + padding mask."""
    tokens = ["the", "cat", "sat", "on", "the", "mat", "<pad>", "<pad>"]
    T = len(tokens)
    x = jax.random.normal(jax.random.key(0), (1, T, 1, 16))
    mask = combine_masks(padding_mask(jnp.array([6]), T), jnp.tril(jnp.ones((T, T), bool)))
    weights = attention_weights(x, x, mask)[0, 0]
    path = out / "attention_masks.png"
    fig = plot_attention(weights, query_tokens=tokens, key_tokens=tokens, mask=mask[0, 0],
                         title="causal + padding mask (hatched: masked)")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return path


def positional_figure(out: pathlib.Path) -> pathlib.Path:
    pe = np.asarray(sinusoidal_positions(128, 128))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=[3, 2])
    image = axes[0].imshow(pe, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1,
                           interpolation="nearest")
    axes[0].set(xlabel="dimension", ylabel="position", title="sinusoidal positional encodings")
    fig.colorbar(image, ax=axes[0], label="value")
    gram = pe @ pe.T
    image = axes[1].imshow(gram, cmap="viridis", interpolation="nearest")
    axes[1].set(xlabel="position q", ylabel="position p", title="dot products PE_p . PE_q")
    fig.colorbar(image, ax=axes[1], label="dot product")
    fig.tight_layout()
    path = out / "positional_encoding.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def best_copy_head(model, tokenizer, pairs) -> tuple[int, int, float]:
    """The (layer, head) whose most-attended source word is most often the right one."""
    cross = pair_attention(model, tokenizer, pairs)["attention_maps"]["decoder_cross"]
    accuracy = alignment_accuracy(cross, [svo_alignment(s, t) for s, t in pairs])  # [L, N]
    layer, head = np.unravel_index(accuracy.argmax(), accuracy.shape)
    return int(layer), int(head), float(accuracy[layer, head])


def model_figures(out: pathlib.Path, fast: bool) -> list[pathlib.Path]:
    start = time.perf_counter()
    run = train_course_model(fast=fast, task=TASK)
    model, tokenizer = run.model, run.tokenizer
    path = out / "training_curves.png"
    plot_training_curves(run.history, save=path)
    paths = [path]
    test = make_task(TASK, num_examples=200, seed=123)
    score = exact_match(translate(model, tokenizer, [s for s, _ in test]), [t for _, t in test])
    print(f"trained {run.step} steps in {time.perf_counter() - start:.0f} s; "
          f"exact match {score:.1%} on {len(test)} unseen sentences")

    examples = make_task(TASK, num_examples=20, seed=7)
    pair = pair_attention(model, tokenizer, [max(examples, key=lambda p: len(p[0].split()))])
    maps = pair["attention_maps"]
    source_tokens, input_tokens = pair["source_tokens"], pair["target_tokens"]
    output_tokens = pair["output_tokens"]

    path = out / "translation_attention.png"
    plot_translation_attention(maps, source_tokens, input_tokens).savefig(
        path, dpi=110, bbox_inches="tight")
    paths.append(path)

    layer, head, accuracy = best_copy_head(model, tokenizer, examples)
    print(f"best copy head: layer {layer}, head {head} ({accuracy:.0%} of words aligned)")
    path = out / "cross_attention_alignment.png"
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), width_ratios=[1.15, 1])
    plot_attention(maps["decoder_cross"][layer, 0, head], query_tokens=output_tokens,
                   key_tokens=source_tokens, ax=axes[0], xlabel="source",
                   ylabel="target word being produced",
                   title=f"cross-attention, layer {layer}, head {head}")
    plot_alignment(maps["decoder_cross"][layer, 0, head], source_tokens, output_tokens,
                   ax=axes[1], title="the same head as an alignment")
    fig.suptitle(f"svo_to_sov: the verb moves to the end, noun phrases turn around "
                 f"(model: {score:.0%} exact match)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)

    path = out / "cross_attention_heads.png"
    plot_layers(maps["decoder_cross"][:, 0], query_tokens=output_tokens,
                key_tokens=source_tokens, xlabel="source", ylabel="target word being produced",
                max_labels=16, title="cross-attention, every layer and head").savefig(
        path, dpi=100, bbox_inches="tight")
    paths.append(path)

    path = out / "head_summary.png"
    T = len(input_tokens)
    plot_head_summary(maps["decoder_self"][:, 0], mask=np.tril(np.ones((T, T), bool)),
                      title="decoder self-attention heads").savefig(
        path, dpi=120, bbox_inches="tight")
    paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true",
                        help="tiny training run (untrained-looking pictures), for a smoke test")
    parser.add_argument("--out", help="output folder (default: figures/, or a temporary "
                        "folder with --fast so the real figures are not overwritten)")
    args = parser.parse_args(argv)
    if args.out:
        out = pathlib.Path(args.out)
    elif args.fast:
        out = pathlib.Path(tempfile.mkdtemp(prefix="attention_figures_"))
    else:
        out = REPO / "figures"
    out.mkdir(parents=True, exist_ok=True)
    paths = [masks_figure(out), positional_figure(out), *model_figures(out, args.fast)]
    for path in paths:
        print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
