"""Step 21: training, Adam with the paper's schedule, label smoothing, one jit-compiled step.

The pieces (Vaswani et al. 2017, section 5):

* optimizer: Adam with beta1 = 0.9, beta2 = 0.98, epsilon = 1e-9 (5.3), the warm-up /
  inverse-square-root schedule (:mod:`attention.training.schedule`), optional gradient clipping;
* regularisation: dropout inside the model (P_drop) and label smoothing in the loss (5.4);
* one ``nnx.jit``-compiled ``train_step`` that computes the loss, its gradient and the update
  in a single XLA program; with a batch sharded over a device mesh
  (:mod:`attention.training.parallel`) the same step is data parallel.

:func:`fit` runs the loop: progress bar, JSON-lines metrics, checkpoints every N steps and at
the end, a save on Ctrl-C, and a clean stop (after saving the last good state) when the loss
becomes NaN or infinite. It reports the seconds spent compiling: each new batch shape compiles
the step again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import statistics
import time
from collections.abc import Callable, Iterator

import jax.numpy as jnp
import optax
from flax import nnx

from attention._checks import check_non_negative_int, check_positive_int, check_real
from attention.model.config import SavedConfig
from attention.training.loss import projected_cross_entropy
from attention.training.schedule import transformer_schedule


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(SavedConfig):
    """How to train; the model's shape lives in ``TransformerConfig``.

    Raises:
      TypeError: a count that is not an int (``True`` is not a count), a rate that is not a
        number.
      ValueError: a count below 1 (``checkpoint_every`` and ``seed`` below 0), a rate outside
        its range (``label_smoothing`` and the Adam betas in [0, 1), ``lr_scale`` and
        ``clip_norm`` above 0, ``adam_eps`` at least 0).
    """

    steps: int = 2000                 # number of optimizer updates
    batch_size: int = 64              # sentence pairs per update (global, all devices)
    warmup_steps: int = 400           # warmup_steps of the schedule (paper: 4000)
    lr_scale: float = 1.0             # multiplies the paper's schedule
    label_smoothing: float = 0.1      # epsilon_ls (paper: 0.1)
    adam_b1: float = 0.9              # beta_1 (paper: 0.9)
    adam_b2: float = 0.98             # beta_2 (paper: 0.98)
    adam_eps: float = 1e-9            # epsilon (paper: 1e-9)
    clip_norm: float | None = None    # global gradient-norm clipping; None = off (as the paper)
    seed: int = 0                     # parameter init, dropout and data order
    log_every: int = 20               # steps between metric lines
    checkpoint_every: int = 500       # steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 5         # checkpoints kept on disk

    def __post_init__(self):
        # The checked values are stored back (np.int64 -> int), so that to_dict() stays JSON.
        def store(name, value):
            object.__setattr__(self, name, value)

        for name in ("steps", "batch_size", "warmup_steps", "log_every", "keep_checkpoints"):
            store(name, check_positive_int(f"TrainConfig.{name}", getattr(self, name)))
        for name in ("checkpoint_every", "seed"):
            store(name, check_non_negative_int(f"TrainConfig.{name}", getattr(self, name)))
        unit = dict(low=0.0, high=1.0, high_inclusive=False)  # [0, 1)
        positive = dict(low=0.0, low_inclusive=False)  # (0, inf)
        for name, interval in (
            ("lr_scale", positive), ("label_smoothing", unit), ("adam_b1", unit),
            ("adam_b2", unit), ("adam_eps", dict(low=0.0)),
        ):
            store(name, check_real(f"TrainConfig.{name}", getattr(self, name), **interval))
        if self.clip_norm is not None:
            store("clip_norm", check_real("TrainConfig.clip_norm", self.clip_norm, **positive))



def make_optimizer(
    model: nnx.Module, d_model: int, config: TrainConfig
) -> nnx.Optimizer:
    """Adam with the paper's hyper-parameters and schedule, wrapped for the model's Params.

    Updates whose loss or gradient is not finite are skipped (``optax.apply_if_finite``), so
    that :func:`fit` can stop with the last good parameters intact.
    """
    schedule = transformer_schedule(d_model, config.warmup_steps, scale=config.lr_scale)
    adam = optax.adam(schedule, b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps)
    tx = adam if config.clip_norm is None else optax.chain(
        optax.clip_by_global_norm(config.clip_norm), adam
    )
    tx = optax.apply_if_finite(tx, max_consecutive_errors=1_000_000)
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


def _loss_sums(model, batch, label_smoothing, pad_id, deterministic):
    """Summed losses, hits and token count of ``model`` on ``batch``; the output projection
    and the loss run chunk by chunk (:func:`attention.training.loss.projected_cross_entropy`).

    The model's kind is its config's ``architecture``: a language model reads ``tgt_in``
    alone, the encoder-decoder ``src`` too. Everything after the hidden states is the same
    for both: one pipeline, not two."""
    if model.config.is_language_model:
        hidden_BTD = model.features(batch["tgt_in"], deterministic=deterministic)
    else:
        hidden_BTD = model.features(batch["src"], batch["tgt_in"], deterministic=deterministic)
    return projected_cross_entropy(
        hidden_BTD, model.output_weight(), batch["tgt_out"], label_smoothing=label_smoothing,
        pad_id=pad_id, matmul_dtype=model.config.matmul_dtype,
    )


def _loss_fn(model, batch, label_smoothing, pad_id):
    sums = _loss_sums(model, batch, label_smoothing, pad_id, deterministic=False)
    return sums["loss_sum"] / jnp.maximum(sums["tokens"], 1.0), sums


@nnx.jit(static_argnames=("label_smoothing", "pad_id"))
def train_step(model, optimizer, batch, *, label_smoothing: float, pad_id: int):
    """One update on ``batch`` (``src [B, S]``, ``tgt_in [B, T]``, ``tgt_out [B, T]``; a
    language model's batch has no ``src``).

    Returns a dict of scalars: ``loss`` (label-smoothed, per token), ``nll`` (plain
    cross-entropy per token), ``accuracy``, ``tokens`` and ``grad_norm``.
    """
    grad_fn = nnx.value_and_grad(_loss_fn, has_aux=True)
    (loss, sums), grads = grad_fn(model, batch, label_smoothing, pad_id)
    optimizer.update(model, grads)
    denominator = jnp.maximum(sums["tokens"], 1.0)
    return {
        "loss": loss,
        "nll": sums["nll_sum"] / denominator,
        "accuracy": sums["correct"] / denominator,
        "tokens": sums["tokens"],
        "grad_norm": optax.tree.norm(grads),
    }


@nnx.jit(static_argnames=("pad_id",))
def eval_step(model, batch, *, pad_id: int):
    """Summed cross-entropy, correct tokens and token count on ``batch`` (no dropout)."""
    sums = _loss_sums(model, batch, 0.0, pad_id, deterministic=True)
    return {"nll_sum": sums["nll_sum"], "correct": sums["correct"], "tokens": sums["tokens"]}


def evaluate_loss(model, batches, *, pad_id: int) -> dict[str, float]:
    """Per-token cross-entropy, perplexity and token accuracy over an iterable of batches."""
    totals = {"nll_sum": 0.0, "correct": 0.0, "tokens": 0.0}
    for batch in batches:
        out = eval_step(model, _model_inputs(batch), pad_id=pad_id)
        for name in totals:
            totals[name] += float(out[name])
    tokens = max(totals["tokens"], 1.0)
    nll = totals["nll_sum"] / tokens
    return {"nll": nll, "perplexity": math.exp(min(nll, 50.0)),
            "accuracy": totals["correct"] / tokens}


def _model_inputs(batch: dict) -> dict:
    return {name: batch[name] for name in ("src", "tgt_in", "tgt_out") if name in batch}


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass
class FitResult:
    step: int                         # the last completed update
    history: list[dict[str, float]]   # the logged metric lines
    interrupted: bool = False         # stopped by Ctrl-C (a checkpoint was saved)
    seconds: float = 0.0
    compile_seconds: float = 0.0      # spent compiling train steps (estimate_compile_seconds)
    num_shapes: int = 0               # distinct batch shapes: one compiled train step each


def estimate_compile_seconds(first_seconds: list[float], steady_seconds: list[float]) -> float:
    """Seconds spent compiling: the steps whose batch shape was new, less what a compiled step
    takes (the median of the other steps; nothing where there are none), at least 0 each.

    >>> estimate_compile_seconds([9.0, 7.5], [1.0, 1.5, 0.9])
    14.5
    """
    median = statistics.median(steady_seconds) if steady_seconds else 0.0
    return sum(max(seconds - median, 0.0) for seconds in first_seconds)


def fit(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    batches_from: Callable[[int], Iterator[dict]],
    config: TrainConfig,
    *,
    pad_id: int,
    checkpointer=None,
    start_step: int = 0,
    metrics_path: str | pathlib.Path | None = None,
    shard: Callable[[dict], dict] | None = None,
    on_log: Callable[[dict], None] | None = None,
    progress: bool = True,
    max_seconds: float | None = None,
) -> FitResult:
    """Train from ``start_step`` to ``config.steps``.

    Args:
      model, optimizer: from ``Transformer(...)`` (or ``LanguageModel(...)``) and
        :func:`make_optimizer`.
      batches_from: ``batches_from(step)`` returns the batch stream starting at update
        ``step``; resuming at step k must give the same batches as an unbroken run.
      config: the :class:`TrainConfig`.
      pad_id: the padding id of the targets.
      checkpointer: an :class:`attention.training.checkpoint.Checkpointer`, or None for no saving.
      metrics_path: a JSON-lines file to append a line of metrics to every ``log_every``.
      shard: places a batch on devices (for example
        :func:`attention.training.parallel.shard_batch`).
      on_log: called with each metrics line.
      progress: show a progress bar.
      max_seconds: stop (and save) once this much wall time has passed: a time budget.

    Returns:
      a :class:`FitResult`: the last step, the logged lines, the seconds, and the seconds spent
      compiling with the number of batch shapes (:func:`estimate_compile_seconds`).

    Raises:
      NonFiniteLossError: the loss became NaN or inf; the message names the step, and the last
        good state was saved first (when a checkpointer is given).
    """
    history: list[dict[str, float]] = []
    step = start_step
    metrics_file = open(metrics_path, "a") if metrics_path else None  # noqa: SIM115
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start_step, unit="step", dynamic_ncols=True)
    started = time.perf_counter()
    window_tokens, window_start = 0.0, time.perf_counter()
    shapes, first_seconds, steady_seconds = set(), [], []  # a new shape compiles a new step

    def result(**kwargs) -> FitResult:
        return FitResult(step, history, seconds=time.perf_counter() - started,
                         compile_seconds=estimate_compile_seconds(first_seconds, steady_seconds),
                         num_shapes=len(shapes), **kwargs)

    def save(reason: str):
        if checkpointer is not None:
            checkpointer.save(step, model, optimizer, meta={"reason": reason})

    # The same model and optimizer at every step: cached_partial walks their graph of modules
    # once, not at every call (nnx.jit's Python overhead per call, ~20 ms for a small model).
    step_fn = nnx.cached_partial(train_step, model, optimizer)
    stream = batches_from(step)
    try:
        for batch in stream:
            if step >= config.steps:
                break
            inputs = _model_inputs(batch)
            shape = tuple((name, value.shape) for name, value in inputs.items())
            if shard is not None:
                inputs = shard(inputs)
            step_start = time.perf_counter()
            metrics = step_fn(inputs, label_smoothing=config.label_smoothing, pad_id=pad_id)
            loss = float(metrics["loss"])  # waits for the step: its time is all of it
            timed = steady_seconds if shape in shapes else first_seconds
            timed.append(time.perf_counter() - step_start)
            shapes.add(shape)
            if not math.isfinite(loss):
                save("non-finite loss")
                raise NonFiniteLossError(
                    f"the training loss became {loss} at step {step + 1}; the last good state "
                    f"(step {step}) was saved. Try a lower lr_scale or clip_norm."
                )
            step += 1
            window_tokens += float(metrics["tokens"])
            if bar is not None:
                bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                now = time.perf_counter()
                line = {name: float(value) for name, value in metrics.items()}
                line |= {
                    "step": step,
                    "learning_rate": float(optimizer_learning_rate(optimizer, config, model)),
                    "tokens_per_second": window_tokens / max(now - window_start, 1e-9),
                    "elapsed": now - started,
                }
                window_tokens, window_start = 0.0, now
                history.append(line)
                if metrics_file:
                    metrics_file.write(json.dumps(line) + "\n")
                    metrics_file.flush()
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{line['tokens_per_second']:.0f}")
                if on_log is not None:
                    on_log(line)
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                save("periodic")
            if max_seconds is not None and time.perf_counter() - started > max_seconds:
                break
    except KeyboardInterrupt:
        save("interrupted")
        return result(interrupted=True)
    finally:
        if hasattr(stream, "close"):
            stream.close()  # stops a prefetching thread now, not at interpreter exit
        if bar is not None:
            bar.close()
        if metrics_file:
            metrics_file.close()
    if checkpointer is not None and step not in checkpointer.steps:
        save("final")
    return result()


def optimizer_learning_rate(optimizer: nnx.Optimizer, config: TrainConfig, model) -> float:
    """The schedule's rate at the optimizer's current step (for logging and plots)."""
    d_model = model.config.d_model
    schedule = transformer_schedule(d_model, config.warmup_steps, scale=config.lr_scale)
    return float(schedule(int(optimizer.step[...]) - 1))
