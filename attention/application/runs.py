"""Step 29: a run, trained, saved and loaded back: the one pipeline behind every trained model.

A *run* is a model with everything needed to use it again or to go on training it: the
tokenizer, the training configuration, the optimizer, the step reached and the logged
metrics. The model is a translation :class:`attention.Transformer` or, when its config says
``architecture="decoder_only"``, a :class:`attention.model.language_model.LanguageModel`
trained on sentences instead of pairs (:mod:`attention.application.language_modeling`); both
kinds go through the same functions below, the same train step and the same files. The
command line (``attention train | translate | generate | evaluate``), the course's toy
translator (notebooks 07-09, ``scripts/make_figures.py``) and the benchmarks all go through
these functions, so a run saved by one of them loads in any other. A run directory::

    run/
      config.json          {"model": TransformerConfig, "train": TrainConfig, "data": name,
                           "preset": name or null}, written once; a second run with another
                           model refuses to write into the same directory
      tokenizer.json       the word vocabulary (synthetic tasks), or
      tokenizer.model      the SentencePiece model (real text)
      checkpoints/<step>/  Orbax checkpoints (:mod:`attention.training.checkpoint`)
      metrics.jsonl        one JSON line of metrics every ``log_every`` steps, and at the
                           end of each training session one without a loss: its wall time
                           and the part of it spent compiling (:class:`CompileClock`)
      training_curves.png  loss and learning rate (:func:`attention.plot_training_curves`)

>>> from attention.data import task_vocabulary
>>> from attention.model.config import TransformerConfig
>>> tokenizer = task_vocabulary("copy")
>>> run = new_run(TransformerConfig.tiny(vocab_size=tokenizer.vocab_size, d_model=16,
...                                      d_ff=32, num_layers=1),
...               TrainConfig(steps=2, batch_size=4, warmup_steps=1), tokenizer, data="copy")
>>> run.step, run.config.d_model
(0, 16)
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import threading
from collections.abc import Iterator, Sequence

import jax
import jax.monitoring
from flax import nnx

from attention.data import (
    Batcher,
    Vocabulary,
    encode_pairs,
    load_tokenizer,
    prefetch,
)
from attention.data.packing import PackedBatcher, encode_texts
from attention.data.tokenizer import Tokenizer
from attention.inspection.plotting import plot_training_curves
from attention.model.config import TransformerConfig
from attention.model.language_model import LanguageModel
from attention.model.transformer import Transformer
from attention.training.checkpoint import Checkpointer, read_config
from attention.training.parallel import make_mesh, replicate, shard_batch
from attention.training.train import FitResult, TrainConfig, fit, make_optimizer

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


@dataclasses.dataclass
class Run:
    """A model and what it needs to be used again or trained further.

    Fields:
      model: the :class:`attention.Transformer`, or a decoder-only :class:`LanguageModel`.
      tokenizer: the tokenizer of both languages (of the one language of a language model).
      train_config: how it is (or was) trained.
      data: the data set's name (a synthetic task, ``multi30k`` or ``tatoeba``).
      preset: the size preset it was built from, if any (``tiny``, ``small``, ``base``).
      optimizer: the ``nnx.Optimizer`` (None for a run loaded only to be used).
      step: the last completed update.
      history: the metric lines logged so far.
      compile_seconds: wall time spent compiling in this process's training sessions.
    """

    model: Transformer | LanguageModel
    tokenizer: Tokenizer
    train_config: TrainConfig
    data: str
    preset: str | None = None
    optimizer: nnx.Optimizer | None = None
    step: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)
    compile_seconds: float = 0.0

    @property
    def config(self) -> TransformerConfig:
        """The model's :class:`TransformerConfig`."""
        return self.model.config

    def saved_config(self) -> dict:
        """What ``config.json`` holds for this run."""
        return {"model": self.config.to_dict(), "train": self.train_config.to_dict(),
                "data": self.data, "preset": self.preset}


def new_run(
    config: TransformerConfig,
    train_config: TrainConfig,
    tokenizer: Tokenizer,
    *,
    data: str,
    preset: str | None = None,
) -> Run:
    """A freshly initialised model and its Adam optimizer (seeded by ``train_config.seed``).

    Raises:
      ValueError: a tokenizer whose vocabulary is larger than the model's.
    """
    largest = max(config.src_vocab_size, config.tgt_vocab_size)
    if tokenizer.vocab_size > largest:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model embeds only "
            f"{largest}; build the config with vocab_size=tokenizer.vocab_size."
        )
    seed = train_config.seed
    model = build_model(config, rngs=nnx.Rngs(params=seed, dropout=seed + 1))
    optimizer = make_optimizer(model, config.d_model, train_config)
    return Run(model, tokenizer, train_config, data, preset, optimizer)


def build_model(config: TransformerConfig, *, rngs: nnx.Rngs) -> Transformer | LanguageModel:
    """The model ``config`` describes: a :class:`LanguageModel` for
    ``architecture="decoder_only"``, else the encoder-decoder :class:`Transformer`."""
    return (LanguageModel if config.is_language_model else Transformer)(config, rngs=rngs)


COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",          # Python traced into a jaxpr
    "/jax/core/compile/jaxpr_to_mlir_module_duration",  # the jaxpr lowered to StableHLO
    "/jax/core/compile/backend_compile_duration",       # XLA compiles it (or loads it from
)                                                       # the persistent cache)
"""The JAX events whose time spans :class:`CompileClock` adds up."""


class CompileClock:
    """Wall time spent compiling while the clock is open: every ``jit`` program traced,
    lowered and compiled by XLA (or loaded from the persistent compilation cache).

    It listens to JAX's own time spans (:data:`COMPILE_EVENTS`, ``jax.monitoring``) and
    counts overlapping spans once (tracing an outer function traces the inner ones inside
    it). A second run with a warm cache shows what the cache saved.

    >>> import jax, jax.numpy as jnp
    >>> with CompileClock() as clock:
    ...     _ = jax.jit(lambda x: x * 2 + 1)(jnp.ones(3))
    >>> 0.0 < clock.seconds < 60.0
    True
    """

    def __init__(self):
        self._spans: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def _listen(self, event: str, start: float, end: float, **_) -> None:
        if event in COMPILE_EVENTS:
            with self._lock:
                self._spans.append((start, end))

    def __enter__(self) -> CompileClock:
        jax.monitoring.register_event_time_span_listener(self._listen)
        return self

    def __exit__(self, *exc_info) -> None:
        jax.monitoring.unregister_event_time_span_listener(self._listen)

    @property
    def seconds(self) -> float:
        """The length of the union of the compile spans seen so far."""
        total, end = 0.0, float("-inf")
        with self._lock:
            spans = sorted(self._spans)
        for start, stop in spans:
            if stop > end:
                total += stop - max(start, end)
                end = stop
        return total


def has_checkpoints(directory: str | pathlib.Path) -> bool:
    """True when ``directory`` holds at least one saved step of a run."""
    checkpoints = pathlib.Path(directory) / "checkpoints"
    return checkpoints.is_dir() and any(checkpoints.iterdir())


def _open(run: Run, directory: str | pathlib.Path, *, resuming: bool = False) -> Checkpointer:
    """The run's checkpointer, after writing ``config.json`` and the tokenizer (once).

    A directory already holding a later step than ``run.step`` belongs to another run (or to
    this one, not resumed): it is refused, so that nothing saved is overwritten.
    """
    checkpointer = Checkpointer(directory, max_to_keep=run.train_config.keep_checkpoints)
    latest = checkpointer.latest_step()
    if latest is not None and not resuming and latest > run.step:
        checkpointer.close()
        raise ValueError(
            f"{directory} already holds a run at step {latest}; resume it (attention train "
            f"--resume, or resume_run) or choose another directory (nothing was overwritten)."
        )
    checkpointer.write_config(run.saved_config())
    if not any((checkpointer.run_dir / name).is_file() for name in TOKENIZER_FILES):
        # Each tokenizer saves in its own format: a JSON word list or a SentencePiece model.
        suffix = "json" if isinstance(run.tokenizer, Vocabulary) else "model"
        run.tokenizer.save(checkpointer.run_dir / f"tokenizer.{suffix}")
    return checkpointer


def resume_run(run: Run, directory: str | pathlib.Path) -> int:
    """Restore the latest checkpoint of ``directory`` into ``run`` (model and optimizer).

    Returns:
      The step restored; training goes on from there with the batches an unbroken run would
      have seen next.

    Raises:
      CheckpointError: no checkpoint, or one of another model configuration.
    """
    checkpointer = _open(run, directory, resuming=True)
    run.step = checkpointer.restore(run.model, run.optimizer)["step"]
    checkpointer.close()
    return run.step


def batch_stream(
    batcher: Batcher | PackedBatcher, start_step: int = 0, *, prefetch_size: int = 2
) -> Iterator[dict]:
    """Endless batches, epoch after epoch, beginning at global update ``start_step``.

    Step k of the stream is batch ``k % len(batcher)`` of epoch ``k // len(batcher)``, so a run
    resumed at step k sees exactly the batches an unbroken run would have seen.

    Raises:
      ValueError: the batcher gives no batch at all.
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


def make_batcher(
    run: Run, pairs: Sequence[tuple[str, str]] | Sequence[str]
) -> Batcher | PackedBatcher:
    """Seeded batches as ``run`` trains on them: length-bucketed sentence ``pairs`` for a
    translation model; for a language model, texts packed into windows of
    ``config.max_len`` tokens (:class:`attention.data.packing.PackedBatcher`)."""
    if run.config.is_language_model:
        if pairs and not isinstance(pairs[0], str):
            raise TypeError(
                f"a language model trains on texts (a list of str), got a list of "
                f"{type(pairs[0]).__name__}; for sentence pairs train a translation model."
            )
        return PackedBatcher(encode_texts(pairs, run.tokenizer), seq_len=run.config.max_len,
                             batch_size=run.train_config.batch_size,
                             seed=run.train_config.seed)
    if pairs and isinstance(pairs[0], str):
        raise TypeError(
            "a translation model trains on (source, target) pairs, got a list of str; for "
            "texts train a language model (TransformerConfig.language_model)."
        )
    return Batcher(encode_pairs(pairs, run.tokenizer), batch_size=run.train_config.batch_size,
                   max_len=run.config.max_len, seed=run.train_config.seed, drop_remainder=True)


def check_trainable(
    run: Run, pairs: Sequence[tuple[str, str]] | Sequence[str]
) -> Batcher | PackedBatcher:
    """What :func:`train_run` needs of ``run`` and its data, checked before any work; returns
    the batcher.

    Raises:
      ValueError: a batch size that is not a multiple of the devices, or data that gives no
        batch.
    """
    num_devices = jax.device_count()
    if run.train_config.batch_size % num_devices:
        raise ValueError(f"batch_size={run.train_config.batch_size} must be a multiple of the "
                         f"{num_devices} devices.")
    batcher = make_batcher(run, pairs)
    if len(batcher) == 0:
        raise ValueError("the training data gives no batch: lower batch_size or add data.")
    return batcher


def train_run(
    run: Run,
    pairs: Sequence[tuple[str, str]] | Sequence[str],
    *,
    directory: str | pathlib.Path | None = None,
    progress: bool = True,
    max_seconds: float | None = None,
    batcher: Batcher | PackedBatcher | None = None,
) -> FitResult:
    """Train ``run`` on sentence ``pairs`` (a language model: on texts, a list of str) from
    ``run.step`` to ``run.train_config.steps``.

    The batch is split over every visible device (:mod:`attention.training.parallel`). With a
    ``directory``, the run's files are written there first, checkpoints every
    ``checkpoint_every`` steps and at the end (Ctrl-C saves too), metrics to
    ``metrics.jsonl`` and the curves to ``training_curves.png``; the last line of
    ``metrics.jsonl`` is then ``{"step", "training_seconds", "compile_seconds"}`` for this
    session (no loss). ``run.step``, ``run.history`` and ``run.compile_seconds`` are brought
    up to date. ``batcher``: the one :func:`check_trainable`
    returned for these ``pairs``, if the caller checked them already.

    Raises:
      ValueError: a batch size that is not a multiple of the devices, or data that gives no
        batch.
      NonFiniteLossError: the loss became NaN or inf (the last good state was saved).
    """
    if run.optimizer is None:
        raise ValueError("this run has no optimizer (it was loaded to be used): load it with "
                         "load_run(..., with_optimizer=True) to train it further.")
    batcher = check_trainable(run, pairs) if batcher is None else batcher
    mesh = make_mesh()
    num_devices = mesh.devices.size
    if num_devices > 1:
        state = nnx.state((run.model, run.optimizer))
        nnx.update((run.model, run.optimizer), replicate(state, mesh))
    checkpointer = _open(run, directory) if directory is not None else None
    metrics_path = None if checkpointer is None else checkpointer.run_dir / "metrics.jsonl"
    try:
        with CompileClock() as clock:
            result = fit(
                run.model, run.optimizer, lambda step: batch_stream(batcher, step),
                run.train_config, pad_id=run.config.pad_id, checkpointer=checkpointer,
                start_step=run.step, metrics_path=metrics_path,
                shard=(lambda batch: shard_batch(batch, mesh)) if num_devices > 1 else None,
                progress=progress, max_seconds=max_seconds,
            )
    finally:
        if checkpointer is not None:
            checkpointer.close()
    run.step = result.step
    run.history.extend(result.history)
    run.compile_seconds += clock.seconds
    if metrics_path is not None:
        with open(metrics_path, "a") as metrics_file:
            metrics_file.write(json.dumps({
                "step": result.step, "training_seconds": round(result.seconds, 3),
                "compile_seconds": round(clock.seconds, 3)}) + "\n")
    if checkpointer is not None and run.history:
        plot_training_curves(run.history, save=checkpointer.run_dir / "training_curves.png")
    return result


def save_run(
    run: Run, directory: str | pathlib.Path, *, overwrite: bool = False
) -> pathlib.Path:
    """Write ``run`` to ``directory`` (config, tokenizer, a checkpoint of ``run.step``).

    For a run trained without a directory (as notebook 07 does); :func:`train_run` with a
    ``directory`` saves as it goes. Returns the directory.

    Args:
      overwrite: replace a checkpoint of the same step already there (a notebook run again
        retrains the same recipe and saves it again); without it that is an error.

    Raises:
      ValueError: the directory already holds this step (and not ``overwrite``), or a later
        step.
      CheckpointError: the directory holds a run of another model configuration.
    """
    checkpointer = _open(run, directory)
    if run.step in checkpointer.steps:
        if not overwrite:
            checkpointer.close()
            raise ValueError(
                f"{directory} already holds step {run.step}; pass overwrite=True to replace it "
                f"or choose another directory (nothing was overwritten)."
            )
        checkpointer.delete(run.step)
    checkpointer.save(run.step, run.model, run.optimizer, meta={"reason": "saved"})
    checkpointer.close()
    return checkpointer.run_dir


def load_run_tokenizer(directory: str | pathlib.Path) -> Tokenizer:
    """The tokenizer saved beside a run's checkpoints.

    Raises:
      FileNotFoundError: neither ``tokenizer.json`` nor ``tokenizer.model`` is there.
    """
    directory = pathlib.Path(directory)
    for name in TOKENIZER_FILES:
        if (directory / name).is_file():
            return load_tokenizer(directory / name)
    raise FileNotFoundError(f"no {' or '.join(TOKENIZER_FILES)} in {directory}.")


def load_run(
    directory: str | pathlib.Path, *, average_last: int = 0, with_optimizer: bool = False,
    precision: str | None = None,
) -> Run:
    """The run saved in ``directory``, at its latest step.

    Args:
      directory: a run directory written by :func:`train_run` or :func:`save_run`.
      average_last: average the parameters of the last K checkpoints (K > 1), as the paper
        does for its base models (section 6.1).
      with_optimizer: restore the optimizer too, to train further.
      precision: compute in this precision (:data:`attention.model.precision.PRECISIONS`)
        instead of the run's own; the parameters are float32 either way.

    Raises:
      CheckpointError: no ``config.json`` or no checkpoint there.
      FileNotFoundError: no tokenizer there.
      ValueError: ``average_last`` together with ``with_optimizer``.
    """
    if average_last > 1 and with_optimizer:
        raise ValueError(
            "average_last and with_optimizer exclude each other: averaged parameters have no "
            "optimizer state to go on training from; load the latest step to resume."
        )
    saved = read_config(directory)
    config = TransformerConfig.from_dict(saved["model"])
    if precision is not None:
        config = config.replace(precision=precision)
    train_config = TrainConfig.from_dict(saved["train"])
    tokenizer = load_run_tokenizer(directory)
    if with_optimizer:
        run = new_run(config, train_config, tokenizer, data=saved["data"],
                      preset=saved.get("preset"))
    else:
        run = Run(build_model(config, rngs=nnx.Rngs(0)), tokenizer, train_config,
                  saved["data"], saved.get("preset"))
    checkpointer = Checkpointer(directory)
    try:
        if average_last > 1:
            run.step = checkpointer.average(run.model, average_last)[-1]
        else:
            run.step = checkpointer.restore(run.model, run.optimizer)["step"]
    finally:
        checkpointer.close()
    return run
