"""Step 29a: the course's models: the recipes notebooks 07-09 and 12 train, or load if saved.

Each recipe is a :class:`attention.application.runs.Run`, untrained, with its data, built from
the same :func:`attention.application.runs.new_run` as every other run; ``load_or_train_*``
loads the run a notebook saved before, or trains the recipe now and saves it, so that a
notebook runs on its own:

* :func:`course_run`: the toy translator of notebooks 07-09 (``svo_to_sov``), about two minutes
  on a laptop CPU; ``scripts/make_figures.py`` and the site use it too;
* :func:`lm_course_run`: a small language model of the synthetic stories;
* :func:`induction_course_run`: notebook 12's model, the same size, trained on the stories
  mixed with repeated random words, so that it grows induction heads within minutes.
"""

from __future__ import annotations

import json
import math
import os
import pathlib

import numpy as np

from attention.application.language_modeling import TextCorpus, load_text_corpus
from attention.application.runs import (
    Run,
    has_checkpoints,
    load_run,
    new_run,
    save_run,
    train_run,
)
from attention.data import make_task, task_vocabulary
from attention.data.lm_corpus import make_repeats, make_stories
from attention.model.config import TransformerConfig
from attention.training.train import TrainConfig

COURSE_TASK = "svo_to_sov"
"""The synthetic language pair of notebooks 07-09."""


def course_run(*, fast: bool = False, task: str = COURSE_TASK) -> tuple[Run, list]:
    """The course's toy translator, untrained, and its training pairs (notebook 07's recipe).

    d_model 64 (32 when ``fast``), 4 heads, 2+2 layers, no dropout or label smoothing, 1200
    updates of 64 pairs from 10,000 generated ones (20 of 32 from 1,000 when ``fast``): about
    two minutes on a laptop CPU.
    """
    tokenizer = task_vocabulary(task)
    d_model = 32 if fast else 64
    config = TransformerConfig.tiny(vocab_size=tokenizer.vocab_size, d_model=d_model,
                                    num_heads=4, d_ff=2 * d_model, num_layers=2,
                                    dropout_rate=0.0, max_len=32)
    train_config = TrainConfig(steps=20 if fast else 1200, batch_size=32 if fast else 64,
                               warmup_steps=100, lr_scale=1.0, label_smoothing=0.0,
                               log_every=10, checkpoint_every=0, seed=0)
    pairs = make_task(task, num_examples=1_000 if fast else 10_000, seed=0)
    return new_run(config, train_config, tokenizer, data=task), pairs


def train_course_model(*, fast: bool = False, task: str = COURSE_TASK) -> Run:
    """:func:`course_run`, trained (not saved)."""
    run, pairs = course_run(fast=fast, task=task)
    train_run(run, pairs, progress=False)
    return run


def load_or_train_course_model(
    directory: str | pathlib.Path, *, fast: bool = False, task: str = COURSE_TASK
) -> tuple[Run, str]:
    """The run notebook 07 saved in ``directory``, or, if there is none, the same recipe
    trained now and saved there, so that a notebook runs on its own.

    Returns:
      ``(run, message)``; the message says which of the two happened.
    """
    if has_checkpoints(directory):
        run = load_run(directory)
        return run, f"loaded the model of step {run.step} from {directory}"
    run, pairs = course_run(fast=fast, task=task)
    result = train_run(run, pairs, progress=False)
    save_run(run, directory)
    return run, f"trained {result.step} steps in {result.seconds:.0f} s, saved to {directory}"


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


# ------------------------------------------------------------- notebook 13: a real model

PRETRAINED_ENV = "ATTENTION_PRETRAINED"
"""A folder holding a GPT-2 checkpoint (``config.json``, ``*.safetensors``) for notebook 13."""
GPT2_REPOSITORY = "openai-community/gpt2"
"""GPT-2 small on the Hugging Face Hub (also known as ``gpt2``)."""


def find_gpt2(environ=None, *, cache_dir=None) -> pathlib.Path | None:
    """A GPT-2 checkpoint already on this machine, without touching the network: the folder
    in ``$ATTENTION_PRETRAINED``, else GPT-2 small in the Hugging Face cache (``cache_dir``,
    default the hub client's own, as ``huggingface-cli download openai-community/gpt2`` or an
    earlier ``from_pretrained("openai-community/gpt2")`` left it); None where there is neither.

    Raises:
      ValueError: ``$ATTENTION_PRETRAINED`` is set but is not a folder with a safetensors file.
    """
    environ = os.environ if environ is None else environ
    if environ.get(PRETRAINED_ENV):
        folder = pathlib.Path(environ[PRETRAINED_ENV]).expanduser()
        if not any(folder.glob("*.safetensors")):
            raise ValueError(f"{PRETRAINED_ENV}={str(folder)!r} is not a folder holding a "
                             f"config.json and *.safetensors.")
        return folder
    try:
        from huggingface_hub import snapshot_download

        from attention.model.pretrained import CHECKPOINT_FILES

        for name in (GPT2_REPOSITORY, "gpt2"):
            try:
                folder = pathlib.Path(snapshot_download(
                    name, allow_patterns=CHECKPOINT_FILES, local_files_only=True,
                    cache_dir=cache_dir))
            except Exception:  # not in the cache (the hub client raises several kinds)
                continue
            if any(folder.glob("*.safetensors")):
                return folder
    except ImportError:
        pass
    return None


def random_gpt2_checkpoint(
    directory: str | pathlib.Path, texts: list[str], *, d_model: int = 64, num_heads: int = 4,
    num_layers: int = 4, max_len: int = 128, vocab_size: int = 400, seed: int = 0,
) -> pathlib.Path:
    """Write a GPT-2 checkpoint with random weights into ``directory``, in the Hub's layout:
    ``config.json``, ``model.safetensors`` (GPT-2's tensor names, ``[in, out]`` Conv1D
    weights, GPT-2's initialisation N(0, 0.02)) and a byte-level BPE ``tokenizer.json``
    trained on ``texts`` with the ``tokenizers`` library. A stand-in where GPT-2's weights
    are absent: it loads and runs like the real thing, and means nothing.

    Returns:
      ``directory``, for :func:`attention.model.pretrained.from_pretrained`.
    """
    import safetensors.numpy
    import tokenizers

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer.save(str(directory / "tokenizer.json"))
    V, D, F = tokenizer.get_vocab_size(), d_model, 4 * d_model
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)

    tensors = {"wte.weight": normal(V, D), "wpe.weight": normal(max_len, D),
               "ln_f.weight": np.ones(D, np.float32), "ln_f.bias": np.zeros(D, np.float32)}
    for i in range(num_layers):
        for name, shape in (("attn.c_attn", (D, 3 * D)), ("attn.c_proj", (D, D)),
                            ("mlp.c_fc", (D, F)), ("mlp.c_proj", (F, D))):
            tensors[f"h.{i}.{name}.weight"] = normal(*shape)
            tensors[f"h.{i}.{name}.bias"] = np.zeros(shape[1], np.float32)
        for norm in ("ln_1", "ln_2"):
            tensors[f"h.{i}.{norm}.weight"] = np.ones(D, np.float32)
            tensors[f"h.{i}.{norm}.bias"] = np.zeros(D, np.float32)
    safetensors.numpy.save_file(tensors, str(directory / "model.safetensors"),
                                metadata={"format": "pt"})
    eos = tokenizer.token_to_id("<|endoftext|>")
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": V,
              "n_embd": D, "n_head": num_heads, "n_layer": num_layers, "n_positions": max_len,
              "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "bos_token_id": eos, "eos_token_id": eos, "tie_word_embeddings": True}
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory
