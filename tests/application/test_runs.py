"""Runs: train, save, load back, resume (attention.application.runs)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.application.runs import (
    CompileClock,
    Run,
    batch_stream,
    has_checkpoints,
    load_run,
    load_run_tokenizer,
    make_batcher,
    new_run,
    resume_run,
    save_run,
    train_run,
)
from attention.data import make_task, task_vocabulary
from attention.model.config import TransformerConfig
from attention.training.checkpoint import CheckpointError
from attention.training.train import TrainConfig

TASK = "copy"


def tiny_run(steps=6, seed=0, **train_changes) -> Run:
    tokenizer = task_vocabulary(TASK)
    config = TransformerConfig.tiny(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2,
                                    d_ff=24, num_layers=1, dropout_rate=0.1, max_len=32)
    train = TrainConfig(steps=steps, batch_size=8, warmup_steps=2, log_every=2,
                        checkpoint_every=3, seed=seed, **train_changes)
    return new_run(config, train, tokenizer, data=TASK)


PAIRS = make_task(TASK, num_examples=120, seed=0)
SRC = jnp.asarray([[5, 6, 7, 2, 0], [8, 9, 2, 0, 0]], jnp.int32)
TGT = jnp.asarray([[1, 5, 6, 7], [1, 8, 9, 0]], jnp.int32)


def logits(run):
    return np.asarray(run.model(SRC, TGT, deterministic=True))


def params(run):
    return jax.tree.leaves(nnx.to_pure_dict(nnx.state(run.model, nnx.Param)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("runs") / "copy"
    run = tiny_run()
    result = train_run(run, PAIRS, directory=directory, progress=False)
    return run, result, directory


def test_train_run_writes_every_file_of_a_run(trained):
    run, result, directory = trained
    assert result.step == run.step == 6 and not result.interrupted
    for name in ("config.json", "tokenizer.json", "metrics.jsonl", "training_curves.png"):
        assert (directory / name).is_file(), name
    assert (directory / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(int(p.name) for p in (directory / "checkpoints").iterdir()) == [3, 6]
    saved = json.loads((directory / "config.json").read_text())
    assert saved == run.saved_config()
    assert saved["model"] == run.config.to_dict() and saved["data"] == TASK
    *lines, summary = [json.loads(line)
                       for line in (directory / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 6] == [h["step"] for h in run.history]
    # The session's summary: its time, and the part of it spent compiling the train step.
    assert set(summary) == {"step", "training_seconds", "compile_seconds"}
    assert summary["step"] == 6
    assert 0.0 < summary["compile_seconds"] < summary["training_seconds"]
    assert summary["compile_seconds"] == pytest.approx(run.compile_seconds, abs=1e-3)


def test_load_run_gives_back_the_same_model_tokenizer_and_settings(trained):
    run, _, directory = trained
    loaded = load_run(directory)
    assert loaded.step == 6 and loaded.data == TASK and loaded.optimizer is None
    assert loaded.config == run.config and loaded.train_config == run.train_config
    assert loaded.tokenizer.vocab_size == run.tokenizer.vocab_size
    assert loaded.tokenizer.encode("a b c") == run.tokenizer.encode("a b c")
    np.testing.assert_array_equal(logits(loaded), logits(run))


def test_load_run_averages_the_last_checkpoints(trained):
    _, _, directory = trained
    at_3, at_6 = load_run(directory), load_run(directory)
    from attention.training.checkpoint import Checkpointer

    checkpointer = Checkpointer(directory)
    checkpointer.restore(at_3.model, step=3)
    checkpointer.close()
    averaged = load_run(directory, average_last=2)
    for a, b, mean in zip(params(at_3), params(at_6), params(averaged), strict=True):
        np.testing.assert_allclose(mean, (np.asarray(a) + np.asarray(b)) / 2, rtol=1e-6)
    assert averaged.step == 6
    with pytest.raises(ValueError, match="average_last and with_optimizer exclude each other"):
        load_run(directory, average_last=2, with_optimizer=True)


def test_resumed_run_makes_the_same_updates_as_an_unbroken_one(tmp_path):
    unbroken = tiny_run(steps=6)
    train_run(unbroken, PAIRS, directory=tmp_path / "unbroken", progress=False)

    first = tiny_run(steps=3)
    train_run(first, PAIRS, directory=tmp_path / "broken", progress=False)
    second = tiny_run(steps=6)
    assert resume_run(second, tmp_path / "broken") == 3
    train_run(second, PAIRS, directory=tmp_path / "broken", progress=False)
    for a, b in zip(params(unbroken), params(second), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_a_directory_holding_a_later_step_is_never_overwritten(trained):
    _, _, directory = trained
    before = sorted(p.name for p in (directory / "checkpoints").iterdir())
    with pytest.raises(ValueError, match=r"already holds a run at step 6; resume it"):
        train_run(tiny_run(), PAIRS, directory=directory, progress=False)
    assert sorted(p.name for p in (directory / "checkpoints").iterdir()) == before


def test_another_model_config_is_refused(trained):
    _, _, directory = trained
    tokenizer = task_vocabulary(TASK)
    other = new_run(TransformerConfig.tiny(vocab_size=tokenizer.vocab_size, d_model=32,
                                           num_layers=1, max_len=32),
                    TrainConfig(steps=6, batch_size=8), tokenizer, data=TASK)
    with pytest.raises(CheckpointError, match="holds a run with another model config"):
        resume_run(other, directory)


def test_save_run_then_load_with_the_optimizer(tmp_path):
    run = tiny_run(steps=2)
    train_run(run, PAIRS, progress=False)  # no directory: nothing written
    assert not any(tmp_path.iterdir())
    save_run(run, tmp_path / "saved")
    assert has_checkpoints(tmp_path / "saved")
    loaded = load_run(tmp_path / "saved", with_optimizer=True)
    assert int(loaded.optimizer.step[...]) == int(run.optimizer.step[...]) == 2
    np.testing.assert_array_equal(logits(loaded), logits(run))
    # Saving the same step again replaces it only when asked to.
    with pytest.raises(ValueError, match="already holds step 2; pass overwrite=True"):
        save_run(run, tmp_path / "saved")
    retrained = tiny_run(steps=2, seed=5)
    train_run(retrained, PAIRS, progress=False)
    save_run(retrained, tmp_path / "saved", overwrite=True)
    np.testing.assert_array_equal(logits(load_run(tmp_path / "saved")), logits(retrained))
    # A run loaded to be used cannot be trained further by mistake.
    with pytest.raises(ValueError, match="has no optimizer"):
        train_run(load_run(tmp_path / "saved"), PAIRS, progress=False)


def test_errors_name_what_is_missing(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="no tokenizer.json or tokenizer.model"):
        load_run_tokenizer(tmp_path)
    small = TransformerConfig.tiny(vocab_size=5, d_model=16, num_layers=1)
    with pytest.raises(ValueError, match=r"tokenizer has \d+ tokens but the model embeds only 5"):
        new_run(small, TrainConfig(), task_vocabulary(TASK), data=TASK)
    with pytest.raises(ValueError, match="gives no batch"):
        batch_stream(make_batcher(tiny_run(), PAIRS[:2]))


def test_batch_stream_resumed_at_step_k_continues_the_unbroken_stream():
    batcher = make_batcher(tiny_run(), PAIRS)
    per_epoch = len(batcher)
    k = per_epoch + 2  # into the second epoch
    unbroken = batch_stream(batcher)
    expected = [next(unbroken) for _ in range(k + 3)][k:]
    unbroken.close()
    resumed = batch_stream(batcher, k)
    got = [next(resumed) for _ in range(3)]
    resumed.close()
    for a, b in zip(expected, got, strict=True):
        for name in ("src", "tgt_in", "tgt_out"):
            np.testing.assert_array_equal(a[name], b[name])


def test_compile_clock_counts_compiling_once_and_not_running():
    import time

    @jax.jit
    def inner(x):
        return jnp.sin(x) * 2

    @jax.jit
    def outer(x):
        return inner(x) + jnp.cos(x)  # traces inner inside its own trace

    x = jnp.arange(7.0)
    start = time.perf_counter()
    with CompileClock() as clock:
        outer(x).block_until_ready()
        compiled = clock.seconds
        for _ in range(3):  # cached: no new compile span
            outer(x).block_until_ready()
    wall = time.perf_counter() - start
    assert 0.0 < compiled == clock.seconds <= wall
    outer(x + 1)  # after the clock is closed: not counted
    jax.jit(lambda y: y - 1)(x).block_until_ready()
    assert clock.seconds == compiled


def test_compile_clock_joins_overlapping_spans():
    clock = CompileClock()
    for start, end in ((0.0, 2.0), (1.0, 3.0), (5.0, 6.0), (5.5, 5.7)):
        clock._listen("/jax/core/compile/backend_compile_duration", start, end)
    clock._listen("/jax/some/other/event", 10.0, 20.0)  # not a compile event
    assert clock.seconds == pytest.approx((3.0 - 0.0) + (6.0 - 5.0))
