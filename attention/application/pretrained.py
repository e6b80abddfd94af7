"""Step 28b: a real checkpoint from the command line: its continuations and its attention view.

    attention generate --pretrained gpt2 "The capital of France is" --greedy
    attention view --pretrained gpt2 "When Mary and John went to the store, John gave"

``--pretrained`` takes what :func:`attention.model.pretrained.from_pretrained` takes: a
checkpoint folder, or a Hugging Face Hub name fetched when the machine is online. The text is
encoded with the checkpoint's own ``tokenizer.json`` (with the special tokens it adds, such as
Llama's ``<s>``), generation is :func:`attention.model.sampling.generate` with the key/value
cache, and the view is the browser page of :func:`attention.inspection.views.head_view` over
every layer and head of the causal self-attention.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from attention.inspection.views import AttentionView, head_view
from attention.model.language_model import LanguageModel, language_model_attention_maps
from attention.model.pretrained import PretrainedError, Tokenizer, from_pretrained
from attention.model.sampling import generate

# Byte-level BPE (GPT-2) writes a space as "Ġ" and a newline as "Ċ"; SentencePiece (Llama 2)
# writes a space as "▁". The labels of the view show them as the characters they stand for.
_LABEL_CHARACTERS = str.maketrans({"\u0120": " ", "\u010a": "\\n", "\u2581": " "})


def load_pretrained(name_or_path) -> tuple[LanguageModel, Tokenizer]:
    """:func:`from_pretrained`, insisting on a tokenizer (the command line reads text).

    Raises:
      PretrainedError: as :func:`from_pretrained`; a checkpoint without ``tokenizer.json``.
    """
    model, tokenizer = from_pretrained(name_or_path)
    if tokenizer is None:
        raise PretrainedError(
            f"{name_or_path} has no tokenizer.json; the command line needs one to read text "
            f"(from Python, pass token ids to the model instead)."
        )
    return model, tokenizer


def encode_texts(model: LanguageModel, tokenizer: Tokenizer, texts: Sequence[str],
                 room: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ids ``[B, T]`` (padded with the first id: a loaded model has no pad, the
    lengths say what is real) and their lengths ``[B]``.

    Raises:
      ValueError: an empty text, or one whose tokens and ``room`` new ones exceed the context.
    """
    ids = [tokenizer.encode(text) for text in texts]
    for text, row in zip(texts, ids, strict=True):
        if not row:
            raise ValueError(f"the text {text!r} has no tokens; give some text.")
        if len(row) + room > model.config.max_len:
            raise ValueError(
                f"the text {text[:30]!r}... has {len(row)} tokens; with {room} new ones that "
                f"is more than the model's context of {model.config.max_len} tokens."
            )
    lengths = np.array([len(row) for row in ids], np.int32)
    tokens = np.zeros((len(ids), int(lengths.max())), np.int32)
    for b, row in enumerate(ids):
        tokens[b, : len(row)] = row
    return tokens, lengths


def generate_pretrained_text(
    model: LanguageModel, tokenizer: Tokenizer, prompts: Sequence[str], *,
    max_new_tokens: int = 40, temperature: float = 1.0, top_k: int | None = None,
    top_p: float | None = None, greedy: bool = False, seed: int = 0, use_cache: bool = True,
) -> list[str]:
    """Each prompt followed by its continuation, up to the checkpoint's end-of-text token or
    ``max_new_tokens`` new tokens (sampling knobs as :func:`generate`).

    Raises:
      ValueError: an empty prompt, a prompt too long for the context; bad sampling knobs.
    """
    tokens, lengths = encode_texts(model, tokenizer, prompts, room=max_new_tokens)
    new, _ = generate(model, jnp.asarray(tokens), jnp.asarray(lengths),
                      max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                      top_p=top_p, greedy=greedy, seed=seed, use_cache=use_cache)
    texts = []
    for b, row in enumerate(np.asarray(new).tolist()):
        eos = model.config.eos_id
        row = row[: row.index(eos)] if eos in row else row
        texts.append(tokenizer.decode([*tokens[b, : lengths[b]].tolist(), *row],
                                      skip_special_tokens=True))
    return texts


def pretrained_view(model: LanguageModel, tokenizer: Tokenizer, text: str, *,
                    view: str = "head") -> AttentionView:
    """The browser view of every layer and head of the model's attention on ``text``.

    Raises:
      ValueError: an empty text, a text longer than the context.
    """
    tokens, _ = encode_texts(model, tokenizer, [text])
    maps = language_model_attention_maps(model, jnp.asarray(tokens))["decoder_self"]
    labels = [label.translate(_LABEL_CHARACTERS) for label in tokenizer.tokens(text)]
    return head_view(np.asarray(maps[:, 0]), labels, causal=True, name="self-attention",
                     title=text, view=view)
