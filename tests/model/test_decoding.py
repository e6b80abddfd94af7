"""Greedy decoding and beam search: cache == no cache, beam 1 == greedy, scores, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.config import TransformerConfig
from attention.model.decoding import beam_search, greedy_decode, length_penalty_factor
from attention.model.transformer import Transformer

PAD, BOS, EOS = 0, 1, 2
MAX_LEN = 12
SRC = jax.random.randint(jax.random.key(1), (8, 7), 3, 17).at[2, 4:].set(PAD).at[5, 2:].set(PAD)


@pytest.fixture(scope="module")
def model():
    return make_model()


def make_model(seed=3, noise=0.5, scale=1.0, **changes):
    """A small random model whose greedy outputs vary and sometimes end with eos.

    A freshly initialised transformer tends to repeat one token forever; perturbing the layer
    norms and biases (by ``noise``), sharpening the matrices (by ``scale``) and nudging the
    eos logit gives decoding something to decide.
    """
    cfg = TransformerConfig(
        src_vocab_size=17, tgt_vocab_size=17, d_model=32, num_heads=4, d_ff=64, num_layers=2,
        norm_first=True, max_len=16,
    ).replace(**changes)
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [scale * x if x.ndim == 2 else x + noise * jax.random.normal(k, x.shape)
              for k, x in zip(keys, leaves, strict=True)]
    nnx.update(model, jax.tree.unflatten(treedef, leaves))
    bias = model.decoder.final_norm.bias[...]
    eos_boost = 0.55 * bias / jnp.linalg.norm(bias)  # some rows end early, some run to MAX_LEN
    model.output.kernel[...] = model.output.kernel[...].at[:, EOS].add(eos_boost)
    model.eval()
    return model


def teacher_forced_log_prob(model, src, tokens):
    """log P(tokens | src) by one forward pass over [bos, tokens[:-1]], up to and incl. eos."""
    tgt_in = jnp.concatenate([jnp.full((tokens.shape[0], 1), BOS), tokens[:, :-1]], axis=1)
    log_probs = jax.nn.log_softmax(model(src, tgt_in, deterministic=True), axis=-1)
    per_token = np.asarray(jnp.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0])
    tokens = np.asarray(tokens)
    before_or_at_eos = np.cumsum(tokens == EOS, axis=1) - (tokens == EOS) == 0
    return (per_token * before_or_at_eos).sum(1), np.asarray(log_probs)


@pytest.fixture(scope="module")
def greedy(model):
    return greedy_decode(model, SRC, max_len=MAX_LEN)


@pytest.fixture(scope="module")
def beam(model):
    return beam_search(model, SRC, beam_size=4, max_len=MAX_LEN, length_penalty=0.0)


def check_well_formed(tokens):
    tokens = np.asarray(tokens)
    assert tokens.shape == (8, MAX_LEN) and tokens.dtype == np.int32
    for row in tokens:
        ended = np.flatnonzero(row == EOS)
        real = row if ended.size == 0 else row[: ended[0]]
        assert np.all((real != PAD) & (real != BOS))  # pad and bos are never generated
        if ended.size:
            assert np.all(row[ended[0] + 1:] == PAD)  # padding after eos


def test_greedy_outputs_are_well_formed_and_varied(greedy):
    tokens, log_probs = greedy
    check_well_formed(tokens)
    assert log_probs.shape == (8,) and log_probs.dtype == jnp.float32
    finished = (np.asarray(tokens) == EOS).any(1)
    assert 0 < finished.sum() < 8  # some rows stop early, some run to max_len
    assert len({tuple(r) for r in np.asarray(tokens).tolist()}) > 3  # not one repeated answer


def test_greedy_is_the_argmax_of_teacher_forced_logits(model, greedy):
    tokens, log_probs = greedy
    expected, step_log_probs = teacher_forced_log_prob(model, SRC, tokens)
    np.testing.assert_allclose(log_probs, expected, rtol=1e-5, atol=1e-5)
    allowed = step_log_probs.copy()
    allowed[..., [PAD, BOS]] = -np.inf
    for b, row in enumerate(np.asarray(tokens)):
        for t, token in enumerate(row):
            if token == PAD:
                break
            assert token == allowed[b, t].argmax()


def test_greedy_cache_equals_no_cache(model, greedy):
    tokens, log_probs = greedy_decode(model, SRC, max_len=MAX_LEN, use_cache=False)
    np.testing.assert_array_equal(tokens, greedy[0])
    np.testing.assert_allclose(log_probs, greedy[1], rtol=1e-5, atol=1e-5)


def test_beam_cache_equals_no_cache(model, beam):
    tokens, scores = beam_search(
        model, SRC, beam_size=4, max_len=MAX_LEN, length_penalty=0.0, use_cache=False
    )
    np.testing.assert_array_equal(tokens, beam[0])
    np.testing.assert_allclose(scores, beam[1], rtol=1e-5, atol=1e-5)


# RoPE and ALiBi inside self-attention, with grouped-query (K=2) and multi-query (K=1) heads:
# D=24, N=4, H=6, so B=8, K, H, L=12 and V=17 are distinct sizes.
INSIDE = {
    "rope_gqa": dict(d_model=24, positional="rope", num_kv_heads=2),
    "alibi_mqa": dict(d_model=24, positional="alibi", num_kv_heads=1),
}


@pytest.fixture(scope="module", params=list(INSIDE))
def inside_model(request):
    # Without positions on the embeddings a random decoder repeats itself more; sharper
    # matrices and milder noise make its outputs differ from row to row again.
    return make_model(seed=5, noise=0.1, scale=2.5, **INSIDE[request.param])


def test_cache_equals_no_cache_with_positions_in_attention_and_fewer_kv_heads(inside_model):
    model = inside_model
    cfg = model.config
    # The self- and cross-attention caches hold K key/value heads, not N (shapes only: no
    # compiling, no computing).
    cache = nnx.eval_shape(
        lambda m: m.init_decode_cache(m.encode(SRC, deterministic=True), MAX_LEN), model
    )
    K, H = cfg.kv_heads, cfg.head_dim
    assert [kv.key.shape for kv in cache.self_attention] == [(8, MAX_LEN, K, H)] * 2
    assert [kv.value.shape for kv in cache.cross_attention] == [(8, 7, K, H)] * 2

    tokens, log_probs = greedy_decode(model, SRC, max_len=MAX_LEN)
    check_well_formed(tokens)
    assert len({tuple(r) for r in np.asarray(tokens).tolist()}) > 3  # something to get wrong
    uncached_tokens, uncached_log_probs = greedy_decode(model, SRC, max_len=MAX_LEN,
                                                        use_cache=False)
    np.testing.assert_array_equal(tokens, uncached_tokens)
    np.testing.assert_allclose(log_probs, uncached_log_probs, rtol=1e-5, atol=1e-5)


def test_beam_scores_are_teacher_forced_log_probs(model, beam):
    tokens, scores = beam
    check_well_formed(tokens)
    np.testing.assert_allclose(scores, teacher_forced_log_prob(model, SRC, tokens)[0],
                               rtol=1e-5, atol=1e-5)


def test_beam_is_at_least_as_probable_as_greedy(beam, greedy):
    # Not a theorem (a beam can lose the greedy path), but it holds on these inputs and a
    # broken beam (wrong parent gather, frozen scores) would fail it.
    assert np.all(np.asarray(beam[1]) >= np.asarray(greedy[1]) - 1e-5)
    assert np.any(np.asarray(beam[1]) > np.asarray(greedy[1]) + 1e-3)  # and it does find better


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_of_one_is_greedy(model, greedy, alpha):
    tokens, scores = beam_search(model, SRC, beam_size=1, max_len=MAX_LEN, length_penalty=alpha)
    np.testing.assert_array_equal(tokens, greedy[0])
    toks = np.asarray(tokens)
    length = np.where((toks == EOS).any(1), (toks == EOS).argmax(1) + 1, MAX_LEN)
    lp = ((5 + length) / 6) ** alpha
    np.testing.assert_allclose(scores, np.asarray(greedy[1]) / lp, rtol=1e-5, atol=1e-5)


def test_length_penalty_with_a_long_beam(model):
    tokens, scores = beam_search(model, SRC, beam_size=3, max_len=MAX_LEN, length_penalty=1.0)
    check_well_formed(tokens)
    toks = np.asarray(tokens)
    length = np.where((toks == EOS).any(1), (toks == EOS).argmax(1) + 1, MAX_LEN)
    log_p = teacher_forced_log_prob(model, SRC, tokens)[0]
    np.testing.assert_allclose(scores, log_p / ((5 + length) / 6), rtol=1e-5, atol=1e-5)


def test_length_penalty_factor():
    lengths = jnp.array([1, 4, 10])
    np.testing.assert_allclose(length_penalty_factor(lengths, 0.6),
                               [((5 + n) / 6) ** 0.6 for n in (1, 4, 10)], rtol=1e-6)
    np.testing.assert_array_equal(length_penalty_factor(lengths, 0.0), 1.0)


def test_decoding_ignores_train_mode_and_source_padding(model, greedy):
    model.train()
    try:
        tokens, log_probs = greedy_decode(model, jnp.pad(SRC, ((0, 0), (0, 3))), max_len=MAX_LEN)
    finally:
        model.eval()
    np.testing.assert_array_equal(tokens, greedy[0])
    np.testing.assert_allclose(log_probs, greedy[1], rtol=1e-5, atol=1e-5)


@pytest.mark.outside_annotations
def test_decoding_errors(model):
    with pytest.raises(ValueError, match=r"max_len must be an int in 1\.\..*max_len=16"):
        greedy_decode(model, SRC, max_len=17)
    with pytest.raises(ValueError, match=r"max_len must be an int in 1\.\..*got 0"):
        beam_search(model, SRC, max_len=0)
    with pytest.raises(ValueError, match="beam_size must be a positive int, got 0"):
        beam_search(model, SRC, beam_size=0, max_len=4)
    with pytest.raises(ValueError, match=r"beam_size=16 exceeds the 15 tokens"):
        beam_search(model, SRC, beam_size=16, max_len=4)
    with pytest.raises(ValueError, match=r"length_penalty \(alpha\) must be in \[0, inf\)"):
        beam_search(model, SRC, max_len=4, length_penalty=-0.5)
    with pytest.raises(ValueError, match=r"src_tokens holds token ids 0\.\.17 but"):
        greedy_decode(model, SRC.at[0, 0].set(17), max_len=4)
    with pytest.raises(TypeError, match="src_tokens must hold integer token ids"):
        greedy_decode(model, SRC.astype(jnp.float32), max_len=4)
    with pytest.raises(TypeError, match="model must be an attention.Transformer"):
        greedy_decode(lambda s, t: s, SRC, max_len=4)
