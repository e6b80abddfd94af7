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
