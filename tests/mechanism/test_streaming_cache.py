"""Tests for attention/mechanism/streaming_cache.py (step 7e): the ring buffer's slots and
positions against a plain Python list of the kept tokens, and stream_and_attend against the
module's full causal call on the kept tokens alone (Xiao et al. 2023, 3.2).

Sizes: B=2, N=6 query heads, K=3 key/value heads, H=4, D=10; a text of L=13 tokens streamed
through n=2 sinks and a window of w=5 (5 divides neither 13 nor 13 - 2: the ring wraps
mid-buffer).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.mechanism import kv_cache
from attention.mechanism.masks import causal_mask, local_window_mask
from attention.mechanism.multi_head import MultiHeadAttention
from attention.mechanism.streaming_cache import (
    SinkCache,
    cache_positions,
    init_sink_cache,
    stream_and_attend,
    write_slots,
)
from attention.model.positional import ALiBi, RotaryEmbedding

B, N, K, H, D = 2, 6, 3, 4, 10
L, SINKS, WINDOW = 13, 2, 5


def normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def kept_tokens(num_sinks, window, seen):
    """The text positions a stream keeps after ``seen`` tokens: the first ``num_sinks``, then
    the last ``window`` of the rest, in text order (the paper's Figure 4)."""
    return list(range(min(seen, num_sinks))) + list(range(max(num_sinks, seen - window), seen))


@nnx.jit
def full_call(mha, x_BTD, mask_TS):
    return mha(x_BTD, mask=mask_TS)


def full_attention_over_kept(mha, x_BLD, num_sinks, window):
    """``[B, L, D]``: row t is ``mha(x[:, kept(t)], is_causal=True)[:, -1]``, the full causal
    call on the tokens kept after t + 1, at positions ``0..kept-1``. Every step's kept tokens
    are right-padded to one length and batched into a single call (causal: the padding after
    the last kept token changes nothing)."""
    Bx, Lx, Dx = x_BLD.shape
    width = min(Lx, num_sinks + window)
    rows, last = [], []
    for t in range(Lx):
        kept = kept_tokens(num_sinks, window, t + 1)
        rows.append(jnp.pad(x_BLD[:, kept], ((0, 0), (0, width - len(kept)), (0, 0))))
        last.append(len(kept) - 1)
    out_LBWD = full_call(mha, jnp.concatenate(rows), causal_mask(width))
    out_LBWD = out_LBWD.reshape(Lx, Bx, width, -1)
    return jnp.stack([out_LBWD[t, :, last[t]] for t in range(Lx)], axis=1)


def rope_attention(**kwargs):
    return MultiHeadAttention(N, D, N * H, num_kv_heads=K, process_heads=RotaryEmbedding(H),
                              rngs=nnx.Rngs(0), **kwargs)


STREAM_JIT = nnx.jit(stream_and_attend)


def stream(mha, x_BLD, num_sinks, window, *, jit=True):
    """Outputs ``[B, L, D]`` of streaming ``x`` one token at a time, and the last cache."""
    step = STREAM_JIT if jit else stream_and_attend
    cache = init_sink_cache(mha, x_BLD.shape[0], num_sinks, window)
    outputs = []
    for t in range(x_BLD.shape[1]):
        out, cache = step(mha, x_BLD[:, t:t + 1], cache)
        outputs.append(out)
    return jnp.concatenate(outputs, axis=1), cache


# ------------------------------------------------------------------ slots and positions


@pytest.mark.parametrize("num_sinks, window", [(0, 3), (2, 5), (4, 1), (3, 7)])
@pytest.mark.parametrize("jit", [False, True])
def test_slots_hold_the_kept_tokens_at_their_rank(num_sinks, window, jit):
    slots, positions = (jax.jit(write_slots, static_argnums=(0, 1)),
                        jax.jit(cache_positions, static_argnums=(0, 1))) if jit else (
        write_slots, cache_positions)
    token_in_slot = np.full(num_sinks + window, -1)  # which text position each slot holds
    for seen in range(1, 17):
        sink_slot, window_slot = (int(s) for s in slots(num_sinks, window, seen - 1))
        assert (sink_slot < num_sinks) != (window_slot < window), "exactly one slot in range"
        slot = sink_slot if sink_slot < num_sinks else num_sinks + window_slot
        token_in_slot[slot] = seen - 1
        position_S, valid_S = (np.asarray(a) for a in positions(num_sinks, window, seen))
        kept = kept_tokens(num_sinks, window, seen)
        assert sorted(token_in_slot[valid_S].tolist()) == kept
        assert (token_in_slot[~valid_S] == -1).all()
        for slot in np.flatnonzero(valid_S):
            assert position_S[slot] == kept.index(token_in_slot[slot])
        np.testing.assert_array_equal(position_S[~valid_S], 0)


def test_init_sink_cache_is_empty():
    cache = init_sink_cache(rope_attention(), B, SINKS, WINDOW, dtype=jnp.bfloat16)
    assert isinstance(cache, SinkCache) and int(cache.seen) == 0
    assert cache.sink_key.shape == cache.sink_value.shape == (B, SINKS, K, H)
    assert cache.window_key.shape == cache.window_value.shape == (B, WINDOW, K, H)
    for array in cache[:4]:
        assert array.dtype == jnp.bfloat16
        np.testing.assert_array_equal(array, 0)


# ------------------------------------------------------------------ attention


@pytest.mark.parametrize("num_sinks, jit, length", [(0, True, L), (SINKS, True, L),
                                                    (SINKS, False, SINKS + WINDOW + 2)])
def test_stream_equals_full_attention_over_the_kept_tokens(num_sinks, jit, length):
    mha, x = rope_attention(), normal(1, (B, length, D))
    outputs, cache = stream(mha, x, num_sinks, WINDOW, jit=jit)
    assert int(cache.seen) == length
    expected = full_attention_over_kept(mha, x, num_sinks, WINDOW)
    for t in range(length):
        np.testing.assert_allclose(outputs[:, t], expected[:, t], atol=2e-5, err_msg=f"token {t}")
    if num_sinks == 0:
        # RoPE scores depend on m - n only, so shifting the window's positions changes
        # nothing: no sinks is causal attention over the last w tokens (Mistral's window).
        window_mask = causal_mask(length) & local_window_mask(length, length, (WINDOW - 1, 0))
        np.testing.assert_allclose(outputs, full_call(mha, x, window_mask), atol=3e-5)


def test_qk_norm_soft_cap_learned_sinks_and_the_gate_stream_as_the_full_call():
    # Every option of step 7 acts on the cached keys and the new output as in the full call.
    mha, x = rope_attention(qk_norm="rms", soft_cap=2.0, sink_logits=True,
                            output_gate=True), normal(5, (B, L, D))
    mha.sink_logits[...] = jnp.linspace(-1.0, 1.0, N)  # learned values, not the zeros of init
    outputs, _ = stream(mha, x, SINKS, WINDOW)
    np.testing.assert_allclose(outputs, full_attention_over_kept(mha, x, SINKS, WINDOW),
                               atol=3e-5)


def test_the_cache_holds_unrotated_keys_of_the_kept_tokens():
    mha, x = rope_attention(), normal(2, (B, L, D))
    _, cache = stream(mha, x, SINKS, WINDOW)
    keys_BLKH = mha.key(x).reshape(B, L, K, H)  # bare projections, no rotation
    np.testing.assert_allclose(cache.sink_key, keys_BLKH[:, :SINKS], atol=1e-6)
    for token in range(L - WINDOW, L):
        slot = (token - SINKS) % WINDOW
        np.testing.assert_allclose(cache.window_key[:, slot], keys_BLKH[:, token], atol=1e-6)
        np.testing.assert_allclose(cache.window_value[:, slot],
                                   mha.value(x[:, token]).reshape(B, K, H), atol=1e-6)


def test_alibi_bias_sees_cache_positions():
    mha = MultiHeadAttention(N, D, N * H, num_kv_heads=K, position_bias=ALiBi(N),
                             rngs=nnx.Rngs(0))
    x = normal(3, (B, L, D))
    outputs, _ = stream(mha, x, SINKS, WINDOW)
    np.testing.assert_allclose(outputs, full_attention_over_kept(mha, x, SINKS, WINDOW),
                               atol=2e-5)


def test_before_the_window_fills_it_equals_the_plain_cache_and_the_full_call():
    length = SINKS + WINDOW  # the slots hold every token
    mha, x = rope_attention(), normal(4, (B, length, D))
    outputs, _ = stream(mha, x, SINKS, WINDOW)
    cache, plain = kv_cache.init_cache(mha, B, length), []
    append = nnx.jit(kv_cache.append_and_attend)
    for t in range(length):
        out, cache = append(mha, x[:, t:t + 1], cache, jnp.int32(t))
        plain.append(out)
    np.testing.assert_allclose(outputs, jnp.concatenate(plain, axis=1), atol=2e-5)
    np.testing.assert_allclose(outputs, full_call(mha, x, causal_mask(length)), atol=2e-5)


def test_each_output_depends_on_the_kept_tokens_only():
    mha, x = rope_attention(), normal(6, (B, L, D))

    def last_output(x_BLD):
        def step(cache, x_B1D):
            return stream_and_attend(mha, x_B1D[:, None], cache)[::-1]

        cache = init_sink_cache(mha, B, SINKS, WINDOW)
        outputs_LB1D = jax.lax.scan(step, cache, jnp.swapaxes(x_BLD, 0, 1))[1]
        return outputs_LB1D[-1].sum()

    gradient_L = np.abs(np.asarray(jax.jit(jax.grad(last_output))(x))).sum(axis=(0, 2))
    kept = kept_tokens(SINKS, WINDOW, L)
    assert (gradient_L[kept] > 0).all()
    np.testing.assert_array_equal(np.delete(gradient_L, kept), 0)


# ------------------------------------------------------------------ errors


@pytest.mark.outside_annotations
@pytest.mark.parametrize("num_sinks, window, error, message", [
    (-1, 3, ValueError, "num_sinks must be an int >= 0"),
    (1.5, 3, TypeError, "num_sinks must be an int >= 0"),
    (2, 0, ValueError, "window must be a positive int, got 0"),
    (2, True, TypeError, "window must be a positive int, got True"),
])
def test_bad_sinks_or_window_are_named(num_sinks, window, error, message):
    with pytest.raises(error, match=message):
        init_sink_cache(rope_attention(), B, num_sinks, window)


@pytest.mark.outside_annotations
def test_bad_modules_are_named():
    with pytest.raises(TypeError, match="attention must be a MultiHeadAttention, got Linear"):
        init_sink_cache(nnx.Linear(D, D, rngs=nnx.Rngs(0)), B, SINKS, WINDOW)
    cross = MultiHeadAttention(N, D, N * H, in_kv_features=7, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_kv_features=7"):
        init_sink_cache(cross, B, SINKS, WINDOW)
    windowed = rope_attention(local_window_size=(3, 0))
    with pytest.raises(ValueError, match=r"local_window_size=\(3, 0\)"):
        init_sink_cache(windowed, B, SINKS, WINDOW)


@pytest.mark.outside_annotations
def test_bad_inputs_and_caches_are_named():
    mha = rope_attention()
    cache = init_sink_cache(mha, B, SINKS, WINDOW)
    with pytest.raises(ValueError, match=r"one new token \[B, 1, D\], got \[2, 3, 10\]"):
        stream_and_attend(mha, normal(7, (B, 3, D)), cache)
    with pytest.raises(TypeError, match="cache must be a SinkCache .* got KVCache"):
        stream_and_attend(mha, normal(7, (B, 1, D)), kv_cache.init_cache(mha, B, 7))
    other = MultiHeadAttention(N, D, N * H, num_kv_heads=2 * K, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"cache.sink_key must be \[B, ., K, H\] = "
                                         r"\[2, ., 3, 4\].*got \[2, 2, 6, 4\]"):
        stream_and_attend(mha, normal(7, (B, 1, D)), init_sink_cache(other, B, SINKS, WINDOW))
    with pytest.raises(ValueError, match=r"\[3, ., 3, 4\] for inputs_q \[3, 1, 10\]"):
        stream_and_attend(mha, normal(7, (3, 1, D)), cache)
    with pytest.raises(TypeError, match="inputs_q must have a floating dtype"):
        stream_and_attend(mha, jnp.ones((B, 1, D), jnp.int32), cache)
