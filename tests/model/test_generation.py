"""The next-token filters and the shared decode loop (attention.model.generation)."""

import jax
import jax.numpy as jnp
import numpy as np

from attention.model.config import TransformerConfig
from attention.model.generation import FORBIDDEN, chooser, decode_loop, forbid_special

CONFIG = TransformerConfig.tiny(vocab_size=7)  # pad 0, bos 1, eos 2
V = 7


def test_forbid_special_sets_pad_and_bos_only():
    log_probs = jnp.arange(2 * 3 * V, dtype=jnp.float32).reshape(2, 3, V)
    out = np.asarray(forbid_special(log_probs, CONFIG))
    assert np.all(out[..., [0, 1]] == FORBIDDEN)
    np.testing.assert_array_equal(out[..., 2:], np.asarray(log_probs)[..., 2:])


def _toy_logits(buffer_BL, t, cache):
    """A "model" whose next token is (token at t) + 1, wrapping 6 -> 2 (eos)."""
    last_B = jax.lax.dynamic_index_in_dim(buffer_BL, t, axis=1, keepdims=False)
    next_B = jnp.where(last_B >= V - 1, 2, last_B + 1)
    return 5.0 * jax.nn.one_hot(next_B, V), cache + 1


def _reference(prompts, lengths, max_new_tokens, stop_at_eos):
    rows = []
    for prompt, length in zip(prompts, lengths, strict=True):
        tokens, new = list(prompt[:length]), []
        while len(new) < max_new_tokens:
            last = tokens[-1]
            token = 2 if last >= V - 1 else max(last + 1, 2)
            tokens.append(token)
            new.append(token)
            if stop_at_eos and token == 2:
                break
        rows.append(new + [0] * (max_new_tokens - len(new)))
    return rows


def test_decode_loop_keeps_each_prompt_then_generates_until_eos_or_the_length():
    prompts = [[1, 4, 5, 0], [1, 3, 0, 0], [1, 5, 6, 3]]
    lengths = [3, 2, 4]
    for stop_at_eos in (True, False):
        N = 5
        buffer_BL = jnp.zeros((3, 4 + N), jnp.int32).at[:, :4].set(jnp.asarray(prompts))
        out_BL, log_probs_B = decode_loop(
            _toy_logits, chooser(True, None, None, None, None), buffer_BL,
            jnp.asarray(lengths), jnp.int32(0), start=1, max_new_tokens=N, config=CONFIG,
            stop_at_eos=stop_at_eos,
        )
        got = [out_BL[b, lengths[b]: lengths[b] + N].tolist() for b in range(3)]
        assert got == _reference(prompts, lengths, N, stop_at_eos)
        for b in range(3):  # the prompt is kept as it was
            assert out_BL[b, : lengths[b]].tolist() == prompts[b][: lengths[b]]
        # log P of each new token: log_softmax of a one-hot of height 5, pad and bos excluded
        # from the choice but not from the normaliser.
        one = float(jax.nn.log_softmax(5.0 * jax.nn.one_hot(3, V))[3])
        counts = [sum(1 for _ in filter(None, row)) for row in got]
        np.testing.assert_allclose(log_probs_B, np.array(counts) * one, rtol=1e-6)


def test_sampling_chooser_draws_with_the_position_as_key():
    key = jax.random.key(3)
    log_probs = jnp.log(jnp.full((4, V), 1.0 / V))
    draw = chooser(False, 1.0, None, None, key)
    expected = jax.random.categorical(jax.random.fold_in(key, 5), log_probs, axis=-1)
    np.testing.assert_array_equal(draw(log_probs, 5), expected)


def test_forbid_special_skips_the_tokens_a_config_lacks():
    config = TransformerConfig.language_model(vocab_size=V, pad_id=None, bos_id=None)
    log_probs = jnp.zeros((2, V))
    np.testing.assert_array_equal(forbid_special(log_probs, config), log_probs)
