"""Translation end to end: corpora, padding, attention maps of pairs, scores."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.application.translation import (
    DATA_NAMES,
    exact_match,
    is_real_data,
    load_corpus,
    pad_sources,
    pad_targets,
    pair_attention,
    translate,
)
from attention.data import TASKS, task_vocabulary
from attention.model.config import TransformerConfig
from attention.model.transformer import Transformer, attention_maps

TOKENIZER = task_vocabulary("copy")
PAIRS = [("a b c d e", "a b c d e"), ("b c", "b c"), ("e d c", "e d c")]


@pytest.fixture(scope="module")
def model():
    config = TransformerConfig.tiny(vocab_size=TOKENIZER.vocab_size, d_model=16, num_heads=2,
                                    d_ff=24, num_layers=2, max_len=16)
    return Transformer(config, rngs=nnx.Rngs(3))


def test_data_names_and_real_data():
    assert set(TASKS) < set(DATA_NAMES)
    assert is_real_data("multi30k") and is_real_data("tatoeba") and not is_real_data("copy")


def test_load_corpus_synthetic_splits_and_unknown_name():
    corpus = load_corpus("reverse", num_examples=200, seed=1)
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (200, 64, 64)
    assert all(t == " ".join(reversed(s.split())) for s, t in corpus.train)
    assert not set(corpus.train) & set(corpus.test)
    with pytest.raises(ValueError, match="unknown data 'klingon'; choose one of"):
        load_corpus("klingon")


def test_pad_sources_and_targets_match_the_encodings_written_out():
    sources = [s for s, _ in PAIRS]
    src = pad_sources(sources, TOKENIZER, max_len=16, pad_to_multiple=4)
    tgt = pad_targets(sources, TOKENIZER)
    assert src.shape == (3, 8) and tgt.shape == (3, 6)
    for row, sentence in enumerate(sources):
        ids = TOKENIZER.encode(sentence) + [TOKENIZER.eos_id]
        np.testing.assert_array_equal(src[row, : len(ids)], ids)
        assert (src[row, len(ids):] == TOKENIZER.pad_id).all()
        ids = [TOKENIZER.bos_id] + TOKENIZER.encode(sentence)
        np.testing.assert_array_equal(tgt[row, : len(ids)], ids)
        assert (tgt[row, len(ids):] == TOKENIZER.pad_id).all()
    with pytest.raises(ValueError, match="has 6 tokens .* max_len=5"):
        pad_sources(sources, TOKENIZER, max_len=5)


def test_pair_attention_of_one_pair_is_attention_maps_with_its_labels(model):
    source, target = PAIRS[0]
    pair = pair_attention(model, TOKENIZER, [(source, target)])
    src = jnp.asarray([TOKENIZER.encode(source, add_eos=True)])
    tgt = jnp.asarray([TOKENIZER.encode(target, add_bos=True)])
    for kind, expected in attention_maps(model, src, tgt).items():
        np.testing.assert_array_equal(pair["attention_maps"][kind], np.asarray(expected))
    assert pair["source_tokens"] == TOKENIZER.tokens(source, add_eos=True)
    assert pair["target_tokens"] == ["<s>", *source.split()]
    assert pair["output_tokens"] == [*source.split(), "</s>"]
    L, B, N, T, S = pair["attention_maps"]["decoder_cross"].shape
    assert (L, B, N, T, S) == (2, 1, 2, len(pair["target_tokens"]), len(pair["source_tokens"]))


def test_padding_a_batch_of_pairs_leaves_each_pairs_maps_unchanged(model):
    batch = pair_attention(model, TOKENIZER, PAIRS)
    assert batch["src_tokens"].shape[0] == 3 and len(batch["source_tokens"]) == 3
    for b, pair in enumerate(PAIRS):
        alone = pair_attention(model, TOKENIZER, [pair])["attention_maps"]
        S, T = len(batch["source_tokens"][b]), len(batch["target_tokens"][b])
        sizes = {"encoder_self": (S, S), "decoder_self": (T, T), "decoder_cross": (T, S)}
        for kind, (rows, cols) in sizes.items():
            np.testing.assert_allclose(batch["attention_maps"][kind][:, b, :, :rows, :cols],
                                       alone[kind][:, 0], atol=1e-6)


@pytest.mark.outside_annotations
def test_pair_attention_errors(model):
    with pytest.raises(TypeError, match=r"wrap one pair in \[\]"):
        pair_attention(model, TOKENIZER, PAIRS[0])
    with pytest.raises(ValueError, match="pairs is empty"):
        pair_attention(model, TOKENIZER, [])


def test_translate_returns_the_input_order(model):
    # Sentences are sorted by length into batches; the same batches, given in reverse order,
    # must come back reversed.
    sentences = ["a b c d e", "b", "e d c", "c d"]
    forward = translate(model, TOKENIZER, sentences, max_len=8, batch_size=2)
    backward = translate(model, TOKENIZER, sentences[::-1], max_len=8, batch_size=2)
    assert backward == forward[::-1] and len(forward) == 4


def test_exact_match_normalises_whitespace_only():
    assert exact_match(["a  b", "c"], ["a b", "C"]) == 0.5
    with pytest.raises(ValueError):
        exact_match(["a"], ["a", "b"])
