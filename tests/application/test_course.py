"""The course's models: recipes trained once, then loaded (attention.application.course)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import attention.application.course as course
from attention.application.course import course_run, load_or_train_course_model
from attention.application.runs import new_run
from attention.training.train import TrainConfig

SRC = jnp.asarray([[5, 6, 7, 2, 0], [8, 9, 2, 0, 0]], jnp.int32)
TGT = jnp.asarray([[1, 5, 6, 7], [1, 8, 9, 0]], jnp.int32)


@nnx.jit
def _logits(model):
    return model(SRC, TGT, deterministic=True)


def logits(run):
    # compiled: one program, where an eager call compiles each of its ~100 operations apart
    return np.asarray(_logits(run.model))


def test_course_model_is_trained_once_then_loaded(tmp_path, monkeypatch):
    run, pairs = course_run(fast=True)
    assert run.step == 0 and run.config.d_model == 32 and len(pairs) == 1000
    assert run.train_config.steps == 20
    # The recipe's model, trained 3 updates of 4 of its pairs of one length (one compiled
    # step) here; notebook 07 trains the whole fast recipe. The first call trains and saves,
    # the second loads.
    tiny = TrainConfig(steps=3, batch_size=4, warmup_steps=1, log_every=1, checkpoint_every=0)
    small = new_run(run.config, tiny, run.tokenizer, data=run.data)
    shape = [(len(s.split()), len(t.split())) for s, t in pairs]
    alike = [pair for pair, lengths in zip(pairs, shape, strict=True) if lengths == shape[0]]
    monkeypatch.setattr(course, "course_run", lambda fast, task: (small, alike[:4]))
    first, message = load_or_train_course_model(tmp_path / "course", fast=True)
    assert message.startswith("trained 3 steps") and first.step == 3
    second, message = load_or_train_course_model(tmp_path / "course", fast=True)
    assert message.startswith("loaded the model of step 3")
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


# ----------------------------------------------------------------- notebook 13's checkpoints

STORIES = ["the old king sees the red bird .", "a small dog runs to the big house ."] * 30


def test_the_random_gpt2_stand_in_is_a_checkpoint_transformers_reads_the_same_way(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from attention.model.pretrained import from_pretrained

    folder = course.random_gpt2_checkpoint(tmp_path / "gpt2", STORIES, d_model=32, num_heads=2,
                                           num_layers=2, max_len=24, vocab_size=300, seed=3)
    model, tokenizer = from_pretrained(folder)
    text = "the red king runs ."
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text and tokenizer.vocab_size <= 300
    reference = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = reference(torch.tensor([ids])).logits.numpy()
    np.testing.assert_allclose(np.asarray(model(jnp.asarray([ids]), deterministic=True)),
                               expected, atol=1e-5)
    assert model.config.max_len == 24 and model.config.num_layers == 2


def test_find_gpt2_reads_the_variable_then_the_hub_cache_and_never_the_network(tmp_path):
    hub = tmp_path / "hub"
    assert course.find_gpt2({}, cache_dir=hub) is None  # an empty cache: None, no download
    folder = course.random_gpt2_checkpoint(tmp_path / "mine", STORIES, num_layers=1,
                                           max_len=16, vocab_size=280)
    assert course.find_gpt2({course.PRETRAINED_ENV: str(folder)}) == folder
    with pytest.raises(ValueError, match=r"ATTENTION_PRETRAINED=.*empty.*config.json"):
        course.find_gpt2({course.PRETRAINED_ENV: str(tmp_path / "empty")})
    # The Hub cache's layout: refs/main names the snapshot that holds the files.
    repository = hub / "models--openai-community--gpt2"
    snapshot = repository / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text("0123abcd")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (snapshot / name).write_bytes((folder / name).read_bytes())
    assert course.find_gpt2({}, cache_dir=hub) == snapshot
