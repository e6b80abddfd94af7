"""The course's models: recipes trained once, then loaded (attention.application.course)."""

import math

import jax.numpy as jnp
import numpy as np

import attention.application.course as course
from attention.application.course import course_run, load_or_train_course_model
from attention.application.runs import new_run
from attention.training.train import TrainConfig

SRC = jnp.asarray([[5, 6, 7, 2, 0], [8, 9, 2, 0, 0]], jnp.int32)
TGT = jnp.asarray([[1, 5, 6, 7], [1, 8, 9, 0]], jnp.int32)


def logits(run):
    return np.asarray(run.model(SRC, TGT, deterministic=True))


def test_course_model_is_trained_once_then_loaded(tmp_path):
    run, pairs = course_run(fast=True)
    assert run.step == 0 and run.config.d_model == 32 and len(pairs) == 1000
    first, message = load_or_train_course_model(tmp_path / "course", fast=True)
    assert message.startswith("trained 20 steps") and first.step == 20
    second, message = load_or_train_course_model(tmp_path / "course", fast=True)
    assert message.startswith("loaded the model of step 20")
    np.testing.assert_array_equal(logits(first), logits(second))


def test_induction_recipe_mixes_held_out_periods_and_reloads_its_history(tmp_path, monkeypatch):
    run, corpus, texts = course.induction_course_run(fast=True)
    stories = set(corpus.train)
    repeats = [t.split() for t in texts if t not in stories]
    assert len(repeats) >= len(stories) > 0  # at least one repeat document per story
    for words in repeats:  # each repeats with a trained period, never a held-out one
        period = next(p for p in range(1, len(words) + 1)
                      if all(words[i] == words[i - p] for i in range(p, len(words))))
        assert period not in (7, 10, 13) and len(words) == run.config.max_len - 2
    tc, d = run.train_config, run.config.d_model
    assert math.isclose(tc.lr_scale * d**-0.5 * tc.warmup_steps**-0.5, 3e-3, rel_tol=1e-6)
    # Load-or-train: the second call loads the saved model and the logged metrics.
    tiny = TrainConfig(steps=3, batch_size=4, warmup_steps=1, log_every=1, checkpoint_every=0)
    small = new_run(run.config, tiny, run.tokenizer, data="svo")
    monkeypatch.setattr(course, "induction_course_run", lambda fast: (small, corpus, texts[:50]))
    trained_run, _, message = course.load_or_train_induction_course_model(tmp_path / "r")
    assert message.startswith("trained 3 steps") and len(trained_run.history) == 3
    loaded, _, message = course.load_or_train_induction_course_model(tmp_path / "r")
    assert message.startswith("loaded the model of step 3")
    assert loaded.history == trained_run.history
    tokens = jnp.asarray([[1, 5, 6, 7]])
    np.testing.assert_array_equal(loaded.model(tokens, deterministic=True),
                                  trained_run.model(tokens, deterministic=True))
