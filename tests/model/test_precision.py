"""Mixed precision: the setting, what auto picks, and bfloat16 against float32 on one model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model import precision as P
from attention.model.config import TransformerConfig
from attention.model.transformer import Transformer
from attention.training.train import _loss_fn

AMX = "model name : Xeon\nflags : fpu avx2 fma avx512f avx512_bf16 amx_tile amx_bf16\n"
ZEN4 = "model name : EPYC\nflags : fpu avx2 fma avx512f avx512_bf16 avx512_vnni\n"
OLD = "model name : Core\nflags : fpu sse avx2 fma\n"


@pytest.mark.parametrize("cpuinfo, expected", [(AMX, "bfloat16"), (ZEN4, "float32"),
                                               (OLD, "float32")])
def test_auto_picks_bfloat16_only_where_the_cpu_makes_the_step_faster(cpuinfo, expected):
    # AVX-512 BF16 without AMX: the products are 2x faster, the XLA training step is not
    # (measured 0.92x float32 on an AMD EPYC), so auto keeps float32 there.
    assert P.resolve_precision("auto", backend="cpu", cpuinfo=cpuinfo) == expected
    line = P.describe_precision("auto", backend="cpu", cpuinfo=cpuinfo)
    assert line.startswith(f"precision {expected}") and "(auto: " in line
    assert ("has AMX" in line) == (cpuinfo is AMX)


def test_auto_on_accelerators_and_unknown_machines():
    assert P.resolve_precision("auto", backend="gpu") == "bfloat16"
    assert P.resolve_precision("auto", backend="tpu") == "bfloat16"
    assert P.resolve_precision("auto", backend="cpu", cpuinfo="") == "float32"
    # Explicit settings are never second-guessed.
    assert P.resolve_precision("bfloat16", backend="cpu", cpuinfo=OLD) == "bfloat16"
    assert P.resolve_precision("float32", backend="gpu") == "float32"


def test_auto_follows_a_forced_detection_through_the_config(monkeypatch):
    for flags, expected in ((OLD, "float32"), (AMX, "bfloat16")):
        monkeypatch.setattr(P, "_this_machine",
                            lambda flags=flags: P.fast_bfloat16(backend="cpu", cpuinfo=flags))
        config = TransformerConfig.tiny(vocab_size=20, precision="auto")
        assert config.resolved_precision == expected
        assert (config.matmul_dtype == jnp.bfloat16) == (expected == "bfloat16")


def test_bad_settings_name_the_argument():
    with pytest.raises(ValueError, match=r"precision must be one of .*got 'fp16'"):
        TransformerConfig.tiny(vocab_size=20, precision="fp16")
    with pytest.raises(ValueError, match="set one of them, not both"):
        TransformerConfig.tiny(vocab_size=20, precision="bfloat16", dtype="bfloat16")
    with pytest.raises(ValueError, match="precision must be one of"):
        P.resolve_precision("half")


def test_saved_configs_keep_the_setting_and_old_ones_load_as_float32():
    config = TransformerConfig.tiny(vocab_size=20, precision="auto")
    assert TransformerConfig.from_dict(config.to_dict()) == config
    old = config.to_dict()
    del old["precision"]
    assert TransformerConfig.from_dict(old).precision == "float32"


def test_mixed_einsum_rounds_the_inputs_and_sums_in_float32():
    a = jax.random.normal(jax.random.key(0), (8, 300))
    b = jax.random.normal(jax.random.key(1), (5, 300))
    got = P.mixed_einsum("ij,kj->ik", a, b, dtype=jnp.bfloat16)
    a16 = np.asarray(a.astype(jnp.bfloat16).astype(jnp.float32), np.float64)
    b16 = np.asarray(b.astype(jnp.bfloat16).astype(jnp.float32), np.float64)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, a16 @ b16.T, rtol=1e-5, atol=1e-4)
    # A bfloat16 *sum* of 300 terms would be off by about a percent; this one is not.
    assert np.max(np.abs(got - a16 @ b16.T)) < 1e-3 * np.max(np.abs(a16 @ b16.T))


def _model_and_batch(precision, **overrides):
    config = TransformerConfig.tiny(vocab_size=40, d_model=64, num_heads=4, d_ff=128,
                                    num_layers=2, dropout_rate=0.0, precision=precision,
                                    **overrides)
    model = Transformer(config, rngs=nnx.Rngs(params=0, dropout=1))
    rng = np.random.default_rng(0)
    tgt = rng.integers(3, 40, size=(4, 9)).astype(np.int32)
    batch = {"src": jnp.asarray(rng.integers(3, 40, size=(4, 7)), jnp.int32),
             "tgt_in": jnp.asarray(tgt[:, :-1]), "tgt_out": jnp.asarray(tgt[:, 1:])}
    return model, batch


def _loss_and_grads(model, batch):
    grad_fn = nnx.jit(nnx.value_and_grad(lambda m: _loss_fn(m, batch, 0.1, 0)[0]))
    loss, grads = grad_fn(model)
    return float(loss), jax.tree.leaves(nnx.to_pure_dict(grads))


@pytest.mark.parametrize("overrides", [{}, {"attention_impl": "flash", "norm_first": True}])
def test_bfloat16_loss_and_gradients_agree_with_float32(overrides):
    # Stated tolerance: bfloat16 keeps 8 mantissa bits (relative rounding 2^-9 = 0.2%) in
    # each product's inputs; sums are float32. On a 2-layer model the loss agrees to 1% and
    # every parameter's gradient to 8% of its norm (measured: loss 0.01-0.03%, gradients 2%
    # median and 4% at worst, in both settings), plus 0.1% of the whole gradient's norm
    # for the parameters whose gradient is zero in exact arithmetic (the key bias: softmax
    # ignores a constant added to every score), where rounding leaves noise.
    loss32, grads32 = _loss_and_grads(*_model_and_batch("float32", **overrides))
    loss16, grads16 = _loss_and_grads(*_model_and_batch("bfloat16", **overrides))
    assert np.isfinite(loss16) and abs(loss16 - loss32) <= 0.01 * abs(loss32)
    assert loss16 != loss32  # the bfloat16 path really ran
    whole = float(np.sqrt(sum(float(jnp.sum(g**2)) for g in grads32)))
    for g32, g16 in zip(grads32, grads16, strict=True):
        assert g16.dtype == jnp.float32  # parameters and their gradients stay float32
        assert np.all(np.isfinite(g16))
        norm = float(jnp.linalg.norm(g32))
        assert float(jnp.linalg.norm(g16 - g32)) <= 0.08 * norm + 1e-3 * whole


def test_the_step_reaches_the_fast_path_bfloat16_in_float32_out():
    # The fast CPU path is dot(bf16, bf16) -> f32; bf16-in/bf16-out products are slower than
    # float32 on CPUs. Every big product of the bfloat16 step must be the former.
    model, batch = _model_and_batch("bfloat16")
    def hlo_of(model):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def loss(params):
            return _loss_fn(nnx.merge(graphdef, params, rest), batch, 0.1, 0)[0]

        return jax.jit(jax.grad(loss)).lower(params).as_text()

    hlo = hlo_of(model)
    dots = [line for line in hlo.splitlines() if "dot_general" in line]
    mixed = [d for d in dots if "bf16" in d.split("dot_general")[1] and "-> tensor<" in d
             and "xf32>" in d.split("->")[-1]]
    narrow_out = [d for d in dots if "xbf16>" in d.split("->")[-1]]
    assert len(mixed) >= 20 and not narrow_out
    assert "bf16" not in hlo_of(_model_and_batch("float32")[0])
