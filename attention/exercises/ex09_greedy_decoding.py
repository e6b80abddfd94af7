"""Exercise 09, greedy decoding: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/09_greedy_decoding``; the model solution is in
``teachers/solutions.py``.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

import attention as ref
from attention.exercises._checking import (
    Exercise,
    Lent,
    Mistake,
    as_array,
    call,
    check_shape,
    checker,
    reject_package_function,
    shape_str,
)

_DECODE_LEN = 6


def _decode_model():
    """A small random Transformer whose greedy output ends some rows with eos and not others."""
    from attention.model.transformer import Transformer

    config = ref.TransformerConfig.tiny(
        vocab_size=7, d_model=16, num_heads=2, d_ff=32, num_layers=1, max_len=16,
        dropout_rate=0.0,
    )
    src = jnp.array([[3, 4, 5, 2, 0], [6, 5, 2, 0, 0], [4, 4, 3, 6, 2]], jnp.int32)
    chosen = None
    for seed in range(20):
        model = Transformer(config, rngs=nnx.Rngs(seed))
        model.eval()
        tokens, _ = ref.greedy_decode(model, src, max_len=_DECODE_LEN)
        ended = np.asarray(tokens[:, :-1] == config.eos_id).any(axis=1)
        chosen = (model, src, np.asarray(tokens))
        if ended.any() and not ended.all():
            break
    return chosen


_DECODE_CACHE: dict = {}


def _greedy_variant(model, src, max_len, *, last_position=False):
    """Greedy decoding over the fixed-size buffer the exercise prescribes (bos, the tokens so
    far, then pad); ``last_position`` reads the buffer's last slot at every step, the usual
    mistake (with a growing prefix the last position is right, with the buffer it is not)."""
    config = model.config
    B = src.shape[0]
    memory = model.encode(src, deterministic=True)
    inputs = jnp.full((B, max_len), config.pad_id, jnp.int32).at[:, 0].set(config.bos_id)
    finished = np.zeros(B, bool)
    out = []
    for t in range(max_len):
        logits = model.decode(inputs, memory, src, deterministic=True)
        logits = logits[:, -1] if last_position else logits[:, t]
        logits = logits.at[:, config.pad_id].set(-1e9).at[:, config.bos_id].set(-1e9)
        token = np.where(finished, config.pad_id, np.asarray(jnp.argmax(logits, axis=-1)))
        finished |= token == config.eos_id
        out.append(token)
        if t + 1 < max_len:
            inputs = inputs.at[:, t + 1].set(jnp.asarray(token, jnp.int32))
    return np.stack(out, axis=1)


@checker("greedy_decoding")
def check_greedy_decoding(greedy_decode) -> str:
    """``greedy_decode(model, src_tokens [B, S], max_len) -> tokens [B, max_len]``."""
    fn = greedy_decode
    name = "greedy_decode"
    reject_package_function(fn, name)
    if "case" not in _DECODE_CACHE:
        _DECODE_CACHE["case"] = _decode_model()
    model, src, expected = _DECODE_CACHE["case"]
    config = model.config
    # In the grader the model stays in the grader's process: the student's code gets its
    # config and calls encode / decode through the worker (attention.exercises.remote.Lent).
    lent = Lent(model, methods=("encode", "decode"), attributes=("config",))
    inputs = {"model": lent, "src_tokens": src, "max_len": _DECODE_LEN}
    got = as_array(call(fn, name, inputs), name, "tokens")
    B, L = expected.shape
    if got.shape == (B, L + 1) and (got[:, 0] == config.bos_id).all():
        raise Mistake(
            f"your tokens start with bos (id {config.bos_id}); return only the generated "
            f"tokens, [B, max_len] = {shape_str((B, L))}, without the leading bos."
        )
    check_shape(got, (B, L), "BL", name, "tokens")
    if not np.issubdtype(got.dtype, np.integer):
        raise Mistake(f"your tokens have dtype {got.dtype}; token ids are integers.")
    if np.array_equal(got, expected):
        return (
            "your greedy decoding gives the same tokens as attention.greedy_decode: argmax at "
            "each step, pad and bos never chosen, pad after eos, no bos in the output."
        )
    for b in range(B):
        row = got[b]
        ends = np.flatnonzero(row == config.eos_id)
        stop = ends[0] if ends.size else L
        if (row[stop + 1:] != config.pad_id).any():
            raise Mistake(
                f"row {b} produced eos (id {config.eos_id}) at step {stop} but you kept "
                f"generating: {row.tolist()}. Once a row has produced eos, every later token "
                f"must be pad_id ({config.pad_id}) (keep a `finished` flag per row)."
            )
        special = np.flatnonzero(np.isin(row[:stop], [config.pad_id, config.bos_id]))
        if special.size:
            t = int(special[0])
            raise Mistake(
                f"row {b} chose token {int(row[t])} (pad or bos) at step {t}; those are never "
                f"generated: set their logits to a large negative number before the argmax."
            )
    if np.array_equal(got, _greedy_variant(model, src, L, last_position=True)):
        raise Mistake(
            "you read the logits of the buffer's last slot at every step: at step t take "
            "position t of the decoder's output (the prediction after input t, the last real "
            "input); the slots after t hold pad, and the prediction after them means nothing."
        )
    b = int(np.flatnonzero((got != expected).any(axis=1))[0])
    t = int(np.flatnonzero(got[b] != expected[b])[0])
    raise Mistake(
        f"row {b} differs from greedy decoding at step {t}: you produced "
        f"{got[b].tolist()}, expected {expected[b].tolist()}. At each step feed the buffer "
        f"(bos, the tokens so far, then pad) to the decoder and take the argmax of the logits "
        f"at position t, the last real input."
    )


EXERCISE = Exercise(
    name="greedy_decoding",
    title="Greedy decoding",
    notebook="09_greedy_decoding",
    names=("greedy_decode",),
    check=check_greedy_decoding,
    minutes=30,
)
