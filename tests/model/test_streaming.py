"""Tests for attention/model/streaming.py (step 17f): a LanguageModel streamed through sink
caches, against the model's own full call on the kept tokens (one layer), a layer-by-layer
reference (two layers: each layer's full call on the kept inputs of that layer), the plain
cached decode and generate (before the window fills), and texts 3x longer than max_len.

Sizes: V=13, d_model=12, N=3 query heads, K=1 key/value head (H=4), d_ff=20, max_len=8;
B=2 streams of L=13 tokens (25 for the long text) through n=2 sinks and a window of w=5 (5
divides neither 13 nor 11: the ring wraps mid-buffer).
"""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.mechanism.masks import causal_mask
from attention.model.config import TransformerConfig
from attention.model.language_model import LanguageModel
from attention.model.sampling import generate
from attention.model.streaming import (
    init_streaming_cache,
    streaming_generate,
    streaming_log_likelihood,
    streaming_step,
)

V, MAX_LEN, B, L, SINKS, WINDOW = 13, 8, 2, 13, 2, 5


@nnx.jit
def forward(model, tokens_BT):
    return model(tokens_BT, deterministic=True)


@nnx.jit
def layer_forward(layer, x_BTD):
    return layer(x_BTD, None, None, causal_mask(x_BTD.shape[1])[None, None], deterministic=True)


def make_model(num_layers, positional="rope"):
    config = TransformerConfig.language_model(
        vocab_size=V, d_model=12, num_heads=3, num_kv_heads=1, d_ff=20, num_layers=num_layers,
        max_len=MAX_LEN, dropout_rate=0.0, positional=positional)
    return LanguageModel(config, rngs=nnx.Rngs(3))


@pytest.fixture(scope="module")
def one_layer():
    return make_model(1)


@pytest.fixture(scope="module")
def two_layers():
    return make_model(2)


def text(seed, length=L):
    """Token ids 3..V-1: no pad (0), bos (1) or eos (2), so nothing is masked as padding."""
    return jnp.asarray(np.random.default_rng(seed).integers(3, V, (B, length)), jnp.int32)


def kept_tokens(num_sinks, window, seen):
    """Text positions kept after ``seen`` tokens: the first ``num_sinks``, the last ``window``."""
    return list(range(min(seen, num_sinks))) + list(range(max(num_sinks, seen - window), seen))


def stream_logits(model, tokens_BL, num_sinks, window):
    """``[B, L, V]``: :func:`streaming_step` token after token."""
    cache, rows = init_streaming_cache(model, tokens_BL.shape[0], num_sinks, window), []
    for t in range(tokens_BL.shape[1]):
        logits_BV, cache = streaming_step(model, tokens_BL[:, t], cache)
        rows.append(logits_BV)
    return jnp.stack(rows, axis=1)


def over_kept(x_BL, num_sinks, window, full_call):
    """``[B, L, ...]``: row t is ``full_call(x[:, kept(t)])[:, -1]``. Every step's kept rows
    are right-padded to one width and batched into one causal call (what comes after the
    last kept row cannot change it)."""
    Bx, Lx = x_BL.shape[:2]
    width = min(Lx, num_sinks + window)
    rows, last = [], []
    for t in range(Lx):
        kept = kept_tokens(num_sinks, window, t + 1)
        pad = [(0, 0), (0, width - len(kept))] + [(0, 0)] * (x_BL.ndim - 2)
        rows.append(jnp.pad(x_BL[:, kept], pad, constant_values=3))  # 3: a real token id
        last.append(len(kept) - 1)
    out = full_call(jnp.concatenate(rows))
    out = out.reshape(Lx, Bx, width, *out.shape[2:])
    return jnp.stack([out[t, :, last[t]] for t in range(Lx)], axis=1)


# ------------------------------------------------------------------ the kept tokens


def test_one_layer_equals_the_model_on_the_kept_tokens(one_layer):
    tokens = text(1)
    expected = over_kept(tokens, SINKS, WINDOW, lambda kept: forward(one_layer, kept))
    np.testing.assert_allclose(stream_logits(one_layer, tokens, SINKS, WINDOW), expected,
                               atol=1e-4)


def test_two_layers_equal_each_layer_on_its_kept_inputs(two_layers):
    # A token's keys in layer 2 come from its layer-1 output when it was read, not recomputed:
    # layer by layer, row t is the layer's full causal call on the kept rows of its input.
    tokens, decoder = text(2), two_layers.decoder
    hidden_BLD = decoder.embed(tokens)
    for layer in decoder.layers:
        hidden_BLD = over_kept(hidden_BLD, SINKS, WINDOW,
                               lambda x, layer=layer: layer_forward(layer, x))
    expected = two_layers.logits(decoder.final_norm(hidden_BLD))
    np.testing.assert_allclose(stream_logits(two_layers, tokens, SINKS, WINDOW), expected,
                               atol=1e-4)


def test_before_the_window_fills_it_equals_the_cached_decode_and_the_full_call(two_layers):
    length = SINKS + WINDOW  # the slots hold every token
    tokens = text(3, length)
    streamed = stream_logits(two_layers, tokens, SINKS, WINDOW)
    np.testing.assert_allclose(streamed, forward(two_layers, tokens), atol=1e-4)
    decode, cache, plain = nnx.jit(LanguageModel.decode_step), two_layers.init_decode_cache(
        B, length), []
    for t in range(length):
        logits_BV, cache = decode(two_layers, tokens[:, t], cache, jnp.int32(t))
        plain.append(logits_BV)
    np.testing.assert_allclose(streamed, jnp.stack(plain, axis=1), atol=1e-4)


# ------------------------------------------------------------------ long texts


def test_log_likelihood_of_a_text_3x_max_len_is_the_scan_of_the_steps(two_layers):
    tokens = text(4, 3 * MAX_LEN + 1)
    nll = streaming_log_likelihood(two_layers, tokens, SINKS, WINDOW)
    assert nll.shape == (B, 3 * MAX_LEN) and nll.dtype == jnp.float32
    assert np.isfinite(np.asarray(nll)).all() and (np.asarray(nll) > 0).all()
    logits = np.asarray(stream_logits(two_layers, tokens[:, :L], SINKS, WINDOW), np.float64)
    log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    chosen = np.take_along_axis(logits[:, :-1], np.asarray(tokens)[:, 1:L, None], -1)[..., 0]
    np.testing.assert_allclose(nll[:, :L - 1], log_z[:, :-1] - chosen, atol=1e-4)


def test_no_sinks_differs_from_sinks_only_once_token_0_leaves(two_layers):
    tokens = text(5)
    plain = np.asarray(streaming_log_likelihood(two_layers, tokens, 0, WINDOW + SINKS))
    sinks = np.asarray(streaming_log_likelihood(two_layers, tokens, SINKS, WINDOW))
    full = SINKS + WINDOW  # nll[:, t] scores token t + 1 after reading tokens 0..t
    np.testing.assert_allclose(plain[:, :full], sinks[:, :full], atol=1e-5)
    assert np.abs(plain[:, full:] - sinks[:, full:]).min(axis=0).max() > 1e-4


# ------------------------------------------------------------------ generation


def test_sampling_equals_generate_while_everything_fits(one_layer):
    prompt = text(6, 3)
    knobs = dict(temperature=0.8, top_k=7, seed=11)
    streamed = streaming_generate(one_layer, prompt, 5, 2, 6, **knobs)
    reference, _ = generate(one_layer, prompt, max_new_tokens=5, stop_at_eos=False, **knobs)
    np.testing.assert_array_equal(streamed, reference)


def test_greedy_generation_past_max_len_follows_the_streamed_argmax(one_layer):
    prompt, steps = text(7, 3), 3 * MAX_LEN
    tokens = np.asarray(streaming_generate(one_layer, prompt, steps, SINKS, WINDOW,
                                           greedy=True))
    assert tokens.shape == (B, steps) and tokens.min() >= 2 and tokens.max() < V  # no pad, bos
    whole = jnp.concatenate([prompt, jnp.asarray(tokens)], axis=1)
    logits = np.array(stream_logits(one_layer, whole, SINKS, WINDOW))
    logits[..., :2] = -np.inf  # pad and bos are never chosen
    np.testing.assert_array_equal(logits[:, 2:-1].argmax(-1), tokens)


# ------------------------------------------------------------------ errors


@pytest.mark.outside_annotations
def test_models_that_cannot_stream_are_named(one_layer):
    with pytest.raises(ValueError, match="positional='learned'.*max_len=8"):
        init_streaming_cache(make_model(1, "learned"), B, SINKS, WINDOW)
    with pytest.raises(ValueError, match="positional='sinusoidal'"):
        streaming_log_likelihood(make_model(1, "sinusoidal"), text(8), SINKS, WINDOW)
    with pytest.raises(TypeError, match="model must be a LanguageModel, got Linear"):
        init_streaming_cache(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), B, SINKS, WINDOW)


@pytest.mark.outside_annotations
def test_bad_arguments_are_named(one_layer, two_layers):
    cache = init_streaming_cache(one_layer, B, SINKS, WINDOW)
    with pytest.raises(ValueError, match="num_sinks must be an int >= 0"):
        init_streaming_cache(one_layer, B, -1, WINDOW)
    with pytest.raises(ValueError, match="window must be a positive int, got 0"):
        streaming_log_likelihood(one_layer, text(8), SINKS, 0)
    with pytest.raises(ValueError, match=r"token_B must .*\[B\]"):
        streaming_step(one_layer, text(8, 1), cache)
    with pytest.raises(TypeError, match="token_B must have an integer dtype"):
        streaming_step(one_layer, jnp.ones(B), cache)
    with pytest.raises(ValueError, match="token_B holds token ids 3..13"):
        streaming_step(one_layer, jnp.array([3, V]), cache)
    with pytest.raises(TypeError, match=r"tuple of 2 SinkCache.*got a tuple of 1"):
        streaming_step(two_layers, jnp.array([3, 4]), cache)
    with pytest.raises(ValueError, match="batch_size=2 streams but token_B has 3"):
        streaming_step(one_layer, jnp.array([3, 4, 5]), cache)
    with pytest.raises(ValueError, match=r"at least 2 tokens per row.*\[2, 1\]"):
        streaming_log_likelihood(one_layer, text(8, 1), SINKS, WINDOW)
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        streaming_generate(one_layer, text(8, 3), 0, SINKS, WINDOW)
    with pytest.raises(ValueError, match="top_k"):
        streaming_generate(one_layer, text(8, 3), 4, SINKS, WINDOW, top_k=V + 1)
