"""Exercise 09's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex09_greedy_decoding.py)."""


import jax.numpy as jnp

from attention import exercises
from teachers import solutions

from ._helpers import fails


def test_greedy_decoding_mistakes():
    check = exercises.check_greedy_decoding

    def with_bos(model, src, max_len):
        tokens = solutions.greedy_decode(model, src, max_len)
        bos = jnp.full((src.shape[0], 1), model.config.bos_id, tokens.dtype)
        return jnp.concatenate([bos, tokens], axis=1)

    fails(check(with_bos), "start with bos")

    def no_stop(model, src, max_len):
        config = model.config
        memory = model.encode(src, deterministic=True)
        inputs = jnp.full((src.shape[0], max_len), config.pad_id).at[:, 0].set(config.bos_id)
        out = []
        for t in range(max_len):
            logits = model.decode(inputs, memory, src, deterministic=True)[:, t]
            logits = logits.at[:, config.pad_id].set(-1e9).at[:, config.bos_id].set(-1e9)
            token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
            out.append(token)
            if t + 1 < max_len:
                inputs = inputs.at[:, t + 1].set(token)
        return jnp.stack(out, axis=1)

    fails(check(no_stop), "kept generating", "must be pad_id")
    fails(check(lambda model, src, max_len: jnp.zeros((src.shape[0], max_len), jnp.int32)),
           "pad or bos")


def _decode(model, src, max_len, *, grow=False, last_slot=False):
    """A student's greedy decoding: over a fixed buffer (the exercise's) or a growing prefix,
    reading position t or the last position."""
    config = model.config
    memory = model.encode(src, deterministic=True)
    B = src.shape[0]
    inputs = (jnp.full((B, 1), config.bos_id, jnp.int32) if grow else
              jnp.full((B, max_len), config.pad_id, jnp.int32).at[:, 0].set(config.bos_id))
    finished = jnp.zeros(B, bool)
    out = []
    for t in range(max_len):
        logits = model.decode(inputs, memory, src, deterministic=True)
        logits = logits[:, -1] if last_slot else logits[:, t]
        logits = logits.at[:, config.pad_id].set(-1e9).at[:, config.bos_id].set(-1e9)
        token = jnp.where(finished, config.pad_id, jnp.argmax(logits, axis=-1)).astype(jnp.int32)
        finished = finished | (token == config.eos_id)
        out.append(token)
        if grow:
            inputs = jnp.concatenate([inputs, token[:, None]], axis=1)
        elif t + 1 < max_len:
            inputs = inputs.at[:, t + 1].set(token)
    return jnp.stack(out, axis=1)


def test_the_buffers_last_slot_gets_its_own_diagnosis_and_a_growing_prefix_passes():
    check = exercises.check_greedy_decoding
    fails(check(lambda m, s, n: _decode(m, s, n, last_slot=True)),
          "buffer's last slot", "position t of the decoder's output")
    assert check(lambda m, s, n: _decode(m, s, n, grow=True, last_slot=True)).passed
