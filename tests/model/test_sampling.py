"""Sampling: the reshaped distribution, its draws, and generation with and without the cache."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.config import TransformerConfig
from attention.model.decoding import greedy_decode, sample_decode
from attention.model.language_model import LanguageModel
from attention.model.sampling import (
    generate,
    sample_tokens,
    sampling_log_probs,
    top_k_mask,
    top_p_mask,
)
from attention.model.transformer import Transformer

V = 13


@pytest.fixture(scope="module")
def model():
    config = TransformerConfig.language_model(vocab_size=V, d_model=16, num_heads=2, d_ff=24,
                                              num_layers=1, max_len=24, num_kv_heads=1)
    return LanguageModel(config, rngs=nnx.Rngs(7))


PROMPTS = jnp.array([[1, 5, 6, 7, 8], [1, 9, 0, 0, 0], [1, 4, 10, 11, 0]])
N = 8  # new tokens in every generate call on PROMPTS: one shape, so the jit cache hits


def random_logits(seed, shape=(5, V)):
    return 2.0 * jax.random.normal(jax.random.key(seed), shape)


def test_top_k_never_samples_outside_the_k_best():
    logits = random_logits(0)
    best = np.argsort(-np.asarray(logits), axis=-1)
    for k in (1, 3, 7):
        draws = jax.vmap(lambda key, k=k: sample_tokens(key, logits, top_k=k))(
            jax.random.split(jax.random.key(k), 500))  # [500, B]
        for b in range(logits.shape[0]):
            assert set(np.asarray(draws[:, b]).tolist()) <= set(best[b, :k].tolist())
        assert np.asarray(top_k_mask(logits, k)).sum(-1).tolist() == [k] * 5


@pytest.mark.parametrize("p", [0.05, 0.3, 0.75, 0.9, 0.999, 1.0])
def test_top_p_keeps_the_smallest_most_probable_set_reaching_p(p):
    logits = random_logits(1, (7, V))
    probs = np.asarray(jax.nn.softmax(logits, -1), np.float64)
    kept = np.asarray(top_p_mask(logits, p))
    for row, keep in zip(probs, kept, strict=True):
        assert row[keep].sum() >= p - 1e-6  # reaches p
        assert row[keep].min() >= row[~keep].max(initial=0.0)  # the most probable ones
        # smallest: without its least probable token the set falls short of p
        assert row[keep].sum() - row[keep].min() < p
    if p == 1.0:
        assert kept.all()


def test_sampling_log_probs_is_the_renormalised_tempered_softmax():
    logits = random_logits(2)
    lp = sampling_log_probs(logits, temperature=0.5, top_k=4)
    reference = np.array(jax.nn.softmax(logits / 0.5, -1))
    reference *= np.asarray(top_k_mask(logits, 4))
    reference /= reference.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.exp(np.asarray(lp)), reference, atol=1e-6)


KNOBS = (dict(), dict(temperature=0.7, top_k=5), dict(top_p=0.8), dict(temperature=2.0))


@pytest.fixture(scope="module")
def many_draws(model):
    """4000 continuations of the first prompt for each knob setting, shared by the frequency
    and the eos tests: top_k and top_p are traced, so the settings share one program."""
    prompt = jnp.tile(PROMPTS[:1], (4000, 1))
    return [np.asarray(generate(model, prompt, max_new_tokens=N, seed=11, **knobs)[0])
            for knobs in KNOBS]


def test_empirical_frequencies_match_the_models_softmax(model, many_draws):
    """4000 first tokens of one prompt against softmax: total variation well inside the
    sampling error (E[TV] ~ sum_v sqrt(p_v / (2 pi n)) ~ 0.02 here; bound 0.05)."""
    logits_V = model(PROMPTS[:1], deterministic=True)[0, -1]
    logits_V = logits_V.at[jnp.array([0, 1])].set(-1e9)  # pad and bos are never drawn
    for knobs, tokens in zip(KNOBS, many_draws, strict=True):
        counts = np.bincount(tokens[:, 0], minlength=V) / len(tokens)
        expected = np.exp(np.asarray(sampling_log_probs(logits_V, **knobs)))
        assert 0.5 * np.abs(counts - expected).sum() < 0.05, knobs


@pytest.mark.parametrize("knobs", [dict(), dict(temperature=1.7, top_p=0.9),
                                   dict(top_k=4, temperature=0.8)])
def test_cache_and_no_cache_give_the_same_samples(model, knobs):
    cached = generate(model, PROMPTS, max_new_tokens=N, seed=3, **knobs)
    recomputed = generate(model, PROMPTS, max_new_tokens=N, seed=3, use_cache=False, **knobs)
    np.testing.assert_array_equal(cached[0], recomputed[0])
    np.testing.assert_allclose(cached[1], recomputed[1], atol=1e-4)


def test_seed_reproduces_and_changes(model):
    a, _ = generate(model, PROMPTS, max_new_tokens=N, seed=5, stop_at_eos=False)
    b, _ = generate(model, PROMPTS, max_new_tokens=N, seed=5, stop_at_eos=False)
    c, _ = generate(model, PROMPTS, max_new_tokens=N, seed=6, stop_at_eos=False)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_temperature_to_zero_and_top_k_one_equal_greedy(model):
    # The same shapes and static knobs as the other tests (stop_at_eos=False): jit cache hits.
    greedy, greedy_lp = generate(model, PROMPTS, max_new_tokens=N, greedy=True,
                                 stop_at_eos=False)
    cold, _ = generate(model, PROMPTS, max_new_tokens=N, temperature=1e-4, seed=9,
                       stop_at_eos=False)
    top1, top1_lp = generate(model, PROMPTS, max_new_tokens=N, top_k=1, seed=2,
                             stop_at_eos=False)
    np.testing.assert_array_equal(greedy, cold)
    np.testing.assert_array_equal(greedy, top1)
    np.testing.assert_allclose(greedy_lp, top1_lp, atol=1e-5)


def test_generate_continues_each_prompt_from_its_own_end(model):
    """Row b's tokens follow its own prompt: the same as generating for that row alone, and
    each greedy token is the argmax of one full forward pass over the prompt and the tokens
    before it (teacher forcing)."""
    together, _ = generate(model, PROMPTS, max_new_tokens=N, greedy=True, stop_at_eos=False)
    lengths = (5, 2, 4)
    for b, length in enumerate(lengths):
        alone, _ = generate(model, PROMPTS[b:b + 1, :length], max_new_tokens=N, greedy=True,
                            stop_at_eos=False)
        np.testing.assert_array_equal(together[b], alone[0])
    # Teacher forcing in one forward pass: each row is its prompt then its tokens, right-padded
    # (padding at the end changes no real position: tests/model/test_language_model.py).
    P = PROMPTS.shape[1]
    sequences_BT = np.zeros((len(lengths), P + N), np.int32)
    for b, length in enumerate(lengths):
        sequences_BT[b, :length + N] = np.concatenate([PROMPTS[b, :length], together[b]])
    logits_BTV = np.array(model(jnp.asarray(sequences_BT), deterministic=True))
    logits_BTV[..., [0, 1]] = -np.inf  # pad and bos are never generated
    for b, length in enumerate(lengths):
        np.testing.assert_array_equal(logits_BTV[b, length - 1:length - 1 + N].argmax(-1),
                                      together[b])


def test_stops_after_eos_and_pads(many_draws):
    for knobs, tokens in zip(KNOBS, many_draws, strict=True):
        for row in tokens:
            eos = np.flatnonzero(row == 2)
            if eos.size:
                assert np.all(row[eos[0] + 1:] == 0), knobs
            assert 1 not in row, knobs  # bos is never generated
    hot = many_draws[KNOBS.index(dict(temperature=2.0))]
    assert (hot == 2).any()  # at temperature 2 some of the 4000 rows ends within N


@pytest.mark.outside_annotations
def test_bad_input_is_named_in_one_line(model):
    cases = [
        (dict(temperature=0.0), ValueError, "use greedy decoding"),
        (dict(temperature=-1.0), ValueError, "temperature must be > 0"),
        (dict(top_k=0), ValueError, "top_k must be an int in 1..13"),
        (dict(top_k=14), ValueError, "top_k must be an int in 1..13"),
        (dict(top_k=2.5), TypeError, "top_k must be"),
        (dict(top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
        (dict(top_p=1.2), ValueError, r"top_p must be in \(0, 1\]"),
        (dict(max_new_tokens=20), ValueError, "config.max_len=24; use max_new_tokens <= 19"),
    ]
    for knobs, error, message in cases:
        with pytest.raises(error, match=message):
            generate(model, PROMPTS, **({"max_new_tokens": 3} | knobs))
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        generate(model, PROMPTS, jnp.array([3, 0, 2]), max_new_tokens=3)
    with pytest.raises(ValueError, match="no room|shorten the prompt"):
        generate(model, jnp.ones((1, 24), jnp.int32), max_new_tokens=1)
    with pytest.raises(ValueError, match="right-padded"):
        generate(model, jnp.array([[1, 0, 5]]), max_new_tokens=2)
    translator = Transformer(TransformerConfig.tiny(vocab_size=V), rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="LanguageModel"):
        generate(translator, PROMPTS, max_new_tokens=2)
    with pytest.raises(TypeError, match="attention.model.sampling.generate"):
        greedy_decode(model, PROMPTS, max_len=3)


def test_translation_sampling_cache_seed_and_greedy():
    translator = Transformer(TransformerConfig.tiny(vocab_size=V, d_model=16, num_heads=2,
                                                    d_ff=24, num_layers=1), rngs=nnx.Rngs(1))
    src = jnp.array([[5, 6, 7, 2], [8, 2, 0, 0]])
    a = sample_decode(translator, src, max_len=9, seed=4, temperature=1.5)
    b = sample_decode(translator, src, max_len=9, seed=4, temperature=1.5, use_cache=False)
    np.testing.assert_array_equal(a[0], b[0])
    top1, _ = sample_decode(translator, src, max_len=9, top_k=1)
    np.testing.assert_array_equal(top1, greedy_decode(translator, src, max_len=9)[0])
    with pytest.raises(ValueError, match="use greedy"):
        sample_decode(translator, src, max_len=4, temperature=0.0)
