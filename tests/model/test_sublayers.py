"""The sub-layers built from the config: attention (and its kernel), feed-forward, positions."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attention.kernels import flash_attention
from attention.model.config import TransformerConfig
from attention.model.feed_forward import FeedForward
from attention.model.positional import LearnedPositions, SinusoidalPositions
from attention.model.sublayers import (
    attention_fn_for,
    make_attention,
    make_feed_forward,
    make_positions,
)

CFG = TransformerConfig(
    src_vocab_size=13, tgt_vocab_size=13, d_model=12, num_heads=3, d_ff=20, num_layers=2,
    max_len=16,
)


def test_attention_is_sized_by_the_config_and_uses_its_kernel():
    reference = make_attention(CFG, rngs=nnx.Rngs(0))
    assert (reference.num_heads, reference.in_features, reference.head_dim) == (3, 12, 4)
    assert attention_fn_for(CFG) is None and reference.attention_fn is None
    flash = make_attention(CFG.replace(attention_impl="flash"), rngs=nnx.Rngs(0))
    assert flash.attention_fn is not None
    x = jax.random.normal(jax.random.key(1), (2, 7, 12))
    # Same seed, same weights: the kernel computes the same attention as the teaching steps.
    np.testing.assert_allclose(flash(x, is_causal=True), reference(x, is_causal=True),
                               rtol=2e-5, atol=2e-5)
    q, k, v = (jax.random.normal(jax.random.key(i), (2, 7, 3, 4)) for i in (2, 3, 4))
    np.testing.assert_allclose(flash.attention_fn(q, k, v), flash_attention(q, k, v),
                               rtol=1e-6, atol=1e-6)


def test_feed_forward_and_positions_follow_the_config():
    ffn = make_feed_forward(CFG, rngs=nnx.Rngs(0))
    assert isinstance(ffn, FeedForward)
    assert ffn(jnp.ones((2, 5, 12))).shape == (2, 5, 12)
    hidden = [leaf.shape for leaf in jax.tree.leaves(nnx.state(ffn, nnx.Param))]
    assert (12, 20) in hidden and (20, 12) in hidden
    assert isinstance(make_positions(CFG, rngs=nnx.Rngs(0)), SinusoidalPositions)
    learned = make_positions(CFG.replace(positional="learned"), rngs=nnx.Rngs(0))
    assert isinstance(learned, LearnedPositions) and learned(5).shape == (5, 12)


def test_positions_inside_self_attention_and_grouped_heads():
    from attention.model.positional import ALiBi, RotaryEmbedding

    cfg = CFG.replace(d_model=24, num_heads=4, num_kv_heads=2, positional="rope", rope_base=99.0)
    self_attention = make_attention(cfg, rngs=nnx.Rngs(0))
    cross_attention = make_attention(cfg, rngs=nnx.Rngs(0), self_attention=False)
    for attention in (self_attention, cross_attention):
        assert (attention.num_heads, attention.num_kv_heads, attention.head_dim) == (4, 2, 6)
        assert attention.key.kernel.shape == (24, 12)  # K * H = 2 * 6 wide
    assert isinstance(self_attention.process_heads, RotaryEmbedding)
    assert (self_attention.process_heads.head_dim, self_attention.process_heads.base) == (6, 99.0)
    assert self_attention.position_bias is None
    assert cross_attention.process_heads is None and cross_attention.position_bias is None
    assert make_positions(cfg, rngs=nnx.Rngs(0)) is None  # nothing added to the embeddings

    alibi = cfg.replace(positional="alibi")
    self_attention = make_attention(alibi, rngs=nnx.Rngs(0))
    assert isinstance(self_attention.position_bias, ALiBi) and self_attention.process_heads is None
    assert self_attention.position_bias.num_heads == 4
    assert make_attention(alibi, rngs=nnx.Rngs(0), self_attention=False).position_bias is None
    assert make_positions(alibi, rngs=nnx.Rngs(0)) is None
    # Without num_kv_heads every query head has its own key/value head.
    assert make_attention(CFG, rngs=nnx.Rngs(0)).num_kv_heads == 3


# ------------------------- today's switches (steps 1a, 3a, 6a) reach every attention


SWITCHES = dict(qk_norm="layer", attn_soft_cap=20.0, attention_sinks=True, output_gate=True)


def test_self_and_cross_attention_get_todays_switches():
    cfg = CFG.replace(**SWITCHES, positional="rope")
    for self_attention in (True, False):
        mha = make_attention(cfg, rngs=nnx.Rngs(0), self_attention=self_attention)
        assert mha.qk_norm.kind == "layer" and mha.soft_cap == 20.0
        assert mha.sink_logits[...].shape == (3,) and mha.gate.kernel.shape == (12, 12)
        # QK-norm acts before RoPE in self-attention; cross-attention has no RoPE.
        assert (mha.process_heads is not None) == self_attention
    plain = make_attention(CFG, rngs=nnx.Rngs(0))
    assert (plain.qk_norm, plain.soft_cap, plain.sink_logits, plain.gate) == (None,) * 4


def test_a_language_model_with_every_switch_trains_and_decodes_like_its_full_call():
    """A tiny LanguageModel with QK-norm, soft-capping, sink logits and the output gate: a few
    Adam steps without NaN that lower the loss; prefill + decode steps equal the full call."""
    import optax

    from attention.model.language_model import LanguageModel

    V = 17
    cfg = TransformerConfig.language_model(
        vocab_size=V, d_model=12, num_heads=3, num_kv_heads=1, d_ff=20, num_layers=1,
        max_len=11, dropout_rate=0.0, **SWITCHES)
    model = LanguageModel(cfg, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(1), (3, 7), 3, V)
    optimizer = nnx.Optimizer(model, optax.adam(3e-2), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, tokens):
        def loss_fn(model):
            logits = model(tokens[:, :-1], deterministic=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer, tokens)) for _ in range(4)]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    sinks = model.decoder.layers[0].self_attention.sink_logits[...]
    assert float(jnp.abs(sinks).max()) > 0  # the sinks learned something
    # Jitted (one compilation each, for every position), as generation runs them.
    full_BTV = nnx.jit(lambda m, x: m(x, deterministic=True))(model, tokens)
    cache = model.init_decode_cache(3, 7)
    first, cache = nnx.jit(lambda m, x, c: m.prefill(x, c, 0))(model, tokens[:, :4], cache)
    decode_step = nnx.jit(lambda m, x, c, t: m.decode_step(x, c, t))
    rows = [first]
    for t in range(4, 7):
        logits_BV, cache = decode_step(model, tokens[:, t], cache, jnp.int32(t))
        rows.append(logits_BV[:, None])
    np.testing.assert_allclose(jnp.concatenate(rows, axis=1), full_BTV, atol=1e-4)
