"""A language model end to end: train through the one pipeline, perplexity, text, save/load."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from attention.application.language_modeling import (
    encode_prompts,
    generate_text,
    load_text_corpus,
    perplexity,
    text_attention,
    unigram_perplexity,
)
from attention.application.runs import load_run, new_run, save_run, train_run
from attention.data.vocab import Vocabulary
from attention.model.config import TransformerConfig
from attention.model.language_model import LanguageModel
from attention.training.train import TrainConfig


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    corpus = load_text_corpus("svo", num_examples=2000, seed=0)
    config = TransformerConfig.language_model(
        vocab_size=corpus.tokenizer.vocab_size, d_model=32, num_heads=4, d_ff=64,
        num_layers=2, dropout_rate=0.0, max_len=32)
    run = new_run(config, TrainConfig(steps=150, batch_size=16, warmup_steps=30,
                                      label_smoothing=0.0, log_every=50, checkpoint_every=0),
                  corpus.tokenizer, data="svo")
    result = train_run(run, corpus.train, directory=tmp_path_factory.mktemp("lm") / "run",
                       progress=False)
    return run, corpus, result


def test_training_on_the_stories_beats_the_unigram_model_by_far(trained):
    """The stated target: held-out perplexity below half of the best context-free model's
    (add-one unigram counts of the same training text, scored on the same tokens)."""
    run, corpus, result = trained
    assert isinstance(run.model, LanguageModel) and result.step == 150
    scores = perplexity(run.model, run.tokenizer, corpus.valid)
    reference = unigram_perplexity(run.tokenizer, corpus.train, corpus.valid)
    assert scores["perplexity"] < 0.5 * reference, (scores, reference)
    assert math.isclose(scores["perplexity"], math.exp(scores["nll"]), rel_tol=1e-9)
    # the logged metrics come from the same train step as translation
    assert {"loss", "nll", "accuracy", "tokens_per_second"} <= set(result.history[-1])


def test_unigram_perplexity_matches_counts_written_out():
    words = Vocabulary(["a", "b"], level="word")  # ids: a = 4, b = 5
    train, held_out = ["a a b", "a"], ["b a"]
    # counts with add-one: unk 1, a 3+1, b 1+1, eos 2+1 (pad and bos are never targets)
    p = {"a": 4 / 10, "b": 2 / 10, "eos": 3 / 10}
    expected = math.exp(-(math.log(p["b"]) + math.log(p["a"]) + math.log(p["eos"])) / 3)
    assert math.isclose(unigram_perplexity(words, train, held_out), expected, rel_tol=1e-12)


def test_generated_text_and_attention(trained):
    run, corpus, _ = trained
    texts = generate_text(run.model, run.tokenizer, ["the red", "the old king sees"],
                          top_k=5, seed=0, max_new_tokens=8)
    assert texts[0].startswith("the red") and texts[1].startswith("the old king sees")
    assert texts == generate_text(run.model, run.tokenizer, ["the red", "the old king sees"],
                                  top_k=5, seed=0, max_new_tokens=8, use_cache=False)
    maps = text_attention(run.model, run.tokenizer, corpus.test[0])
    T = len(maps["labels"])
    assert maps["labels"][0] == "<s>"
    assert maps["attention_maps"]["decoder_self"].shape == (2, 1, 4, T, T)


def test_save_and_load_give_the_same_model(trained, tmp_path):
    run, corpus, _ = trained
    save_run(run, tmp_path / "saved")
    loaded = load_run(tmp_path / "saved")
    assert isinstance(loaded.model, LanguageModel) and loaded.config == run.config
    tokens, _ = encode_prompts(["the red dog sees", "the"], run.tokenizer)
    np.testing.assert_array_equal(loaded.model(jnp.asarray(tokens), deterministic=True),
                                  run.model(jnp.asarray(tokens), deterministic=True))


@pytest.mark.outside_annotations
def test_bad_input(trained):
    run, corpus, _ = trained
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        generate_text(run.model, run.tokenizer, ["the", ""])
    with pytest.raises(ValueError, match="no room to generate"):
        generate_text(run.model, run.tokenizer, [" ".join(["the"] * 40)])
    with pytest.raises(TypeError, match="wrap one prompt"):
        encode_prompts("the dog", run.tokenizer)
    with pytest.raises(TypeError, match="texts"):
        train_run(run, [("a", "b")], progress=False)
    with pytest.raises(ValueError, match="unknown text data"):
        load_text_corpus("multi30k")
