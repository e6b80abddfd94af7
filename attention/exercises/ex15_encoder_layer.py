"""Exercise 15, an encoder layer: the checker, its known mistakes and its entry.

The notebook is ``notebooks/exercises/15_encoder_layer``; the model solution is in
``teachers/solutions.py``. The student assembles one layer from its parts, lent by the grader
(:class:`EncoderParts`): two residual blocks, attention then feed-forward, each with layer
norm and residual dropout, post-LN (the paper, 3.1 and 5.4) or pre-LN
(tensor2tensor, Wang et al. 2019, GPT-2; analysed by Xiong et al. 2020).
In eval mode the result is compared with the package's
:class:`attention.model.encoder.EncoderLayer`; in training mode with the same composition
and the same dropout masks.
"""

# The lambdas given to match_variant close over loop variables on purpose: they are called
# within the same iteration, only when the student's result needs explaining.
# ruff: noqa: B023

from __future__ import annotations

import jax
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
    close,
    compare,
    match_variant,
    reject_package_function,
)
from attention.exercises._shared import host_normal
from attention.model.encoder import EncoderLayer

DROPOUT = 0.25
METHODS = ("self_attention", "feed_forward", "norm1", "norm2", "dropout")


class EncoderParts:
    """The parts of one :class:`EncoderLayer` that the student's code may call.

    ``self_attention(h, mask)``, ``feed_forward(h)``, ``norm1(h)`` (the attention block's
    LayerNorm), ``norm2(h)`` (the feed-forward block's) and ``dropout(h, deterministic)``:
    residual dropout with rate ``DROPOUT``, whose k-th call since :meth:`reset` uses key k, so
    that a composition can be replayed with the same masks.
    """

    def __init__(self, layer: EncoderLayer):
        self.layer, self.calls = layer, 0

    def reset(self) -> None:
        self.calls = 0

    def self_attention(self, h, mask):
        return self.layer.self_attention(h, mask=mask, deterministic=True)

    def feed_forward(self, h):
        return self.layer.feed_forward(h)

    def norm1(self, h):
        return self.layer.self_attention_residual.norm(h)

    def norm2(self, h):
        return self.layer.feed_forward_residual.norm(h)

    def dropout(self, h, deterministic):
        if deterministic:
            return h
        keep = jax.random.bernoulli(jax.random.key(100 + self.calls), 1 - DROPOUT, h.shape)
        self.calls += 1
        return jnp.where(keep, h / (1 - DROPOUT), 0.0)


def _compose(p: EncoderParts, x, mask, *, norm_first, deterministic=True, residual=(1, 1),
             ffn_first=False, same_norm=False, final_norm=False, add_normalised=False,
             drop_after_add=False):
    """The layer, or one deliberate mistake in it (to recognise the student's)."""
    p.reset()
    norms = (p.norm1, p.norm1 if same_norm else p.norm2)
    blocks = [lambda h: p.self_attention(h, mask), p.feed_forward]
    if ffn_first:
        blocks = blocks[::-1]
    for block, norm, keep in zip(blocks, norms, residual, strict=True):
        inputs = norm(x) if norm_first else x
        y = block(inputs)
        base = (inputs if add_normalised else x) if keep else 0.0
        if drop_after_add:
            x = p.dropout(base + y, deterministic)
        else:
            x = base + p.dropout(y, deterministic)
        x = x if norm_first else norm(x)
    return norms[1](x) if final_norm else x


def _case():
    layers = {}
    for norm_first in (False, True):
        config = ref.TransformerConfig.tiny(
            vocab_size=11, d_model=16, num_heads=2, d_ff=24, num_layers=1,
            dropout_rate=DROPOUT, norm_first=norm_first,
        )
        layer = EncoderLayer(config, rngs=nnx.Rngs(3))  # same seed: the same weights
        layer.eval()
        layers[norm_first] = layer
    B, S, D = 3, 5, 16
    x = host_normal(40, (B, S, D))
    lengths = jnp.array([5, 3, 1])
    mask = (jnp.arange(S)[None, :] < lengths[:, None])[:, None, None, :]
    return layers, x, mask


_CACHE: dict = {}


def _eval_variants(p, x, mask, norm_first):
    same = dict(norm_first=norm_first)
    variants = [
        (
            "you normalised before each sub-layer (pre-LN) although norm_first=False: the "
            "paper's post-LN normalises after the residual add, x = norm(x + dropout("
            "sublayer(x))).",
            lambda: _compose(p, x, mask, norm_first=True),
        ) if not norm_first else (
            "you normalised after the residual add (post-LN) although norm_first=True: pre-LN "
            "normalises the sub-layer's input, x = x + dropout(sublayer(norm(x))).",
            lambda: _compose(p, x, mask, norm_first=False),
        ),
        (
            "the residual connection is missing around both sub-layers: add each sub-layer's "
            "input back, x + dropout(sublayer(...)).",
            lambda: _compose(p, x, mask, residual=(0, 0), **same),
        ),
        (
            "the residual connection around self-attention is missing: add x back to the "
            "attention output before (post-LN) or instead of (pre-LN) normalising.",
            lambda: _compose(p, x, mask, residual=(0, 1), **same),
        ),
        (
            "the residual connection around the feed-forward network is missing: its block "
            "is x + dropout(feed_forward(...)) too.",
            lambda: _compose(p, x, mask, residual=(1, 0), **same),
        ),
        (
            "you ignored src_mask: pass it to layer.self_attention(h, src_mask), or padding "
            "keys receive attention.",
            lambda: _compose(p, x, None, **same),
        ),
        (
            "your sub-layers are in the wrong order: an encoder layer is self-attention first, "
            "then the feed-forward network.",
            lambda: _compose(p, x, mask, ffn_first=True, **same),
        ),
        (
            "you used norm1 for both blocks: each residual block has its own LayerNorm; the "
            "feed-forward block uses norm2.",
            lambda: _compose(p, x, mask, same_norm=True, **same),
        ),
    ]
    if norm_first:
        variants += [
            (
                "you normalised the layer's output: in pre-LN the layer returns the residual "
                "stream as it is (x + ...), and the encoder normalises once after its last "
                "layer.",
                lambda: _compose(p, x, mask, final_norm=True, **same),
            ),
            (
                "you added the normalised input back, norm(x) + sublayer(norm(x)); the "
                "residual path must carry x itself, x + dropout(sublayer(norm(x))), so that it "
                "stays an identity.",
                lambda: _compose(p, x, mask, add_normalised=True, **same),
            ),
        ]
    return variants


@checker("encoder_layer")
def check_encoder_layer(encoder_layer) -> str:
    """``encoder_layer(x [B, S, D], src_mask [B, 1, 1, S], layer, norm_first, deterministic)``."""
    fn = encoder_layer
    name = "encoder_layer"
    reject_package_function(fn, name)
    if "case" not in _CACHE:
        _CACHE["case"] = _case()
    layers, x, mask = _CACHE["case"]
    for norm_first in (False, True):
        parts = EncoderParts(layers[norm_first])
        # In the grader the parts stay in the grader's process; the student's code calls them
        # through the worker (attention.exercises.remote.Lent).
        lent = Lent(parts, methods=METHODS)
        inputs = {"x": x, "src_mask": mask, "layer": lent}
        static = {"norm_first": norm_first, "deterministic": True}
        expected = np.asarray(layers[norm_first](x, mask, deterministic=True))
        parts.reset()
        got = as_array(call(fn, name, inputs, **static), name)
        check_shape(got, expected.shape, "BSD", name, "output")
        if parts.calls and not close(got, expected):
            raise Mistake(
                f"with deterministic=True (evaluation) your code applied dropout "
                f"({parts.calls} call(s) of layer.dropout with deterministic=False): dropout "
                f"is still on, and evaluation outputs are random. Pass `deterministic` on to "
                f"layer.dropout(y, deterministic), which is the identity when it is True."
            )
        compare(got, expected, axes="BSD", name=name, what="output",
                inputs={"x": x, "src_mask": mask} | static,
                variants=_eval_variants(parts, x, mask, norm_first))

        # Training mode: dropout on each sub-layer's output, before the add (section 5.4).
        static = {"norm_first": norm_first, "deterministic": False}
        parts.reset()
        got = as_array(call(fn, name, inputs, **static), name)
        calls = parts.calls
        check_shape(got, expected.shape, "BSD", name, "output")
        if close(got, expected):
            raise Mistake(
                "with deterministic=False (training) your output equals the evaluation output: "
                "residual dropout is never applied. Call layer.dropout(y, deterministic) on "
                "each sub-layer's output y before adding it to x."
            )
        want = np.asarray(_compose(parts, x, mask, norm_first=norm_first, deterministic=False))
        if close(got, want):
            continue
        if calls != 2:
            raise Mistake(
                f"in training you called layer.dropout {calls} times; residual dropout is "
                f"applied once per sub-layer (2 calls in an encoder layer), to the sub-layer's "
                f"output before the add."
            )
        match_variant(got, [
            (
                "you applied dropout after the residual add, dropout(x + y); it goes on the "
                "sub-layer output only, x + dropout(y), so that the residual path is never "
                "dropped (section 5.4).",
                lambda: _compose(parts, x, mask, norm_first=norm_first, deterministic=False,
                                 drop_after_add=True),
            ),
        ])
        raise Mistake(
            f"your output in training mode (deterministic=False, norm_first={norm_first}) "
            f"differs from x + dropout(sublayer(...)) with the parts' dropout: call "
            f"layer.dropout(y, deterministic) once per sub-layer, attention's first, on the "
            f"sub-layer's output y."
        )
    return (
        "your encoder layer matches attention.model.encoder.EncoderLayer in post-LN and pre-LN "
        "(evaluation), and in training applies residual dropout to each sub-layer's output "
        "before the add."
    )


EXERCISE = Exercise(
    name="encoder_layer",
    title="An encoder layer: residual blocks, layer norm, dropout",
    notebook="15_encoder_layer",
    names=("encoder_layer",),
    check=check_encoder_layer,
    minutes=30,
)
