"""Step 29b: ``attention view``, a translation's (or a text's) attention as one HTML file.

    attention view --checkpoint runs/svo_to_sov "the big dog sees the cat"
    attention view --checkpoint runs/multi30k "ein Hund läuft" --out dog.html --view model
    attention view --pretrained gpt2 "the text to read"      # a Hugging Face checkpoint

The run translates the sentence (greedy, or ``--beam-size``), or takes ``--target`` as the
translation to read (teacher forcing, as in training), then runs the model once with its
weights sown (:func:`attention.application.translation.pair_attention`) and writes the
three kinds of attention of every layer and head into a self-contained page
(:func:`attention.inspection.views.translation_view`): open it in any browser, no server.
A language-model run (``attention train --task lm``) shows its self-attention reading the
text. With ``--pretrained`` (a checkpoint folder or Hub name) the page shows a loaded GPT-2 or
Llama model reading the text (:func:`attention.application.pretrained.pretrained_view`).
"""

from __future__ import annotations

import argparse
import pathlib

from attention.application.language_modeling import text_attention
from attention.application.pretrained import load_pretrained, pretrained_view
from attention.application.runs import load_run
from attention.application.translation import pair_attention, translate
from attention.inspection.views import VIEWS, AttentionView, head_view, translation_view
from attention.model.language_model import LanguageModel


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``attention view``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a run directory")
    source.add_argument("--pretrained", help="a GPT-2 or Llama checkpoint: a Hugging Face "
                        "folder (config.json, *.safetensors, tokenizer.json) or Hub name")
    parser.add_argument("sentence", help="the source sentence (with --pretrained: the text)")
    parser.add_argument("--out", default="attention_view.html",
                        help="the HTML file to write (default: attention_view.html)")
    parser.add_argument("--target", help="read this translation instead of the model's own")
    parser.add_argument("--beam-size", type=int, default=1,
                        help="beam for the model's translation (default: 1, greedy)")
    parser.add_argument("--view", choices=VIEWS, default="head", help="the view it opens on")


def translation_view_of_run(
    run_dir,
    sentence: str,
    *,
    target: str | None = None,
    beam_size: int = 1,
    view: str = "head",
) -> tuple[AttentionView, str]:
    """The attention view of one sentence for the run saved in ``run_dir``.

    Returns:
      ``(view, translation)``: the :class:`attention.inspection.views.AttentionView` and the
      target sentence it reads (``target``, or the model's translation).

    Raises:
      ValueError: an empty sentence, a source longer than the model's ``max_len``;
        :class:`attention.training.checkpoint.CheckpointError` or FileNotFoundError for a
        directory that holds no run.
    """
    if not sentence.strip():
        raise ValueError("sentence is empty; give the source sentence to translate.")
    run = run_dir if hasattr(run_dir, "model") else load_run(run_dir)  # a dir, or a Run
    if target is None:
        target = translate(run.model, run.tokenizer, [sentence], beam_size=beam_size)[0]
    pair = pair_attention(run.model, run.tokenizer, [(sentence, target)])
    title = f"{sentence} \u2192 {target}"
    result = translation_view(pair["attention_maps"], pair["source_tokens"],
                              pair["target_tokens"], title=title, view=view)
    return result, target


def check_language_model_view(run, target=None, beam_size: int = 1) -> None:
    """The checks of :func:`language_model_view` (the command line runs them first)."""
    if target is not None or beam_size != 1:
        raise ValueError("--target and --beam-size are for a translation run; a language "
                         "model reads the text as it is.")
    if run.model.config.attention == "linear":
        raise ValueError("this run's model uses attention='linear', which forms no attention "
                         "map (phi(Q) (phi(K)^T V)); view a run with softmax attention.")


def language_model_view(run, text: str, *, target=None, beam_size: int = 1,
                        view: str = "head") -> AttentionView:
    """The self-attention of a language-model run reading ``text`` (after ``<s>``).

    Raises:
      ValueError: ``target`` or ``beam_size`` given (they are for translation runs); a model
        with ``attention="linear"`` (it forms no map); a text longer than the context.
    """
    check_language_model_view(run, target, beam_size)
    maps = text_attention(run.model, run.tokenizer, text)
    return head_view(maps["attention_maps"]["decoder_self"][:, 0], maps["labels"],
                     causal=True, name="self-attention", title=text, view=view)


def check_view_arguments(args: argparse.Namespace) -> None:
    """The checks of ``attention view``'s arguments.

    Raises:
      ValueError: an ``--out`` in a folder that does not exist, a ``--beam-size`` below 1, an
        empty sentence.
    """
    out = pathlib.Path(args.out)
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: the folder {out.parent} does not exist.")
    if args.beam_size < 1:
        raise ValueError(f"--beam-size must be a positive int, got {args.beam_size}.")
    if not args.sentence.strip():
        raise ValueError("sentence is empty; give the source sentence to translate.")
    if getattr(args, "pretrained", None) and (args.target is not None or args.beam_size != 1):
        raise ValueError("--target and --beam-size are for a translation run; --pretrained "
                         "reads the text as it is.")


def view_command(args: argparse.Namespace, run=None) -> int:
    """``attention view``: write the view of ``args.sentence`` to ``args.out`` (``run``: the
    run of ``--checkpoint``, when the caller has loaded it)."""
    check_view_arguments(args)
    out = pathlib.Path(args.out)
    if getattr(args, "pretrained", None):
        model, tokenizer = load_pretrained(args.pretrained)
        view = pretrained_view(model, tokenizer, args.sentence, view=args.view)
        view.save(out)
        print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB; {model.config.num_layers} "
              f"layers x {model.config.num_heads} heads); open it in a browser")
        return 0
    run = run or load_run(args.checkpoint)
    if isinstance(run.model, LanguageModel):  # a language model reads the text as it is
        language_model_view(run, args.sentence, target=args.target, beam_size=args.beam_size,
                            view=args.view).save(out)
        print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB); open it in a browser")
        return 0
    view, translation = translation_view_of_run(run, args.sentence, target=args.target,
                                                beam_size=args.beam_size, view=args.view)
    view.save(out)
    sizes = ", ".join(f"{s.name} {list(s.sizes)}" for s in view.sections)
    print(f"translation: {translation}")
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB; [L, N, T, S]: {sizes}); open it "
          f"in a browser")
    return 0
