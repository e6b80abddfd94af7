"""TransformerConfig: validation, presets, JSON round trip."""

import dataclasses
import json

import pytest

from attention.model.config import PRESETS, TransformerConfig


def test_defaults_are_the_papers_base_sizes():
    cfg = TransformerConfig(src_vocab_size=100, tgt_vocab_size=200)
    assert (cfg.d_model, cfg.num_heads, cfg.d_ff, cfg.num_layers) == (512, 8, 2048, 6)
    assert cfg.dropout_rate == 0.1 and cfg.head_dim == 64
    assert not cfg.norm_first and not cfg.share_embeddings
    assert cfg.positional == "sinusoidal" and cfg.attention_impl == "reference"
    assert cfg.num_kv_heads is None and cfg.kv_heads == 8 and cfg.rope_base == 10000.0


def test_frozen_and_keyword_only():
    cfg = TransformerConfig(src_vocab_size=10, tgt_vocab_size=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_model = 8
    with pytest.raises(TypeError):
        TransformerConfig(10, 10)  # positional arguments are refused


def test_base_preset():
    cfg = TransformerConfig.base()
    assert cfg.src_vocab_size == cfg.tgt_vocab_size == 37000
    assert cfg.share_embeddings
    assert (cfg.d_model, cfg.num_heads, cfg.d_ff, cfg.num_layers, cfg.dropout_rate) == (
        512, 8, 2048, 6, 0.1,
    )
    assert TransformerConfig.base(1000, norm_first=True).norm_first


def test_tiny_preset_and_overrides():
    cfg = TransformerConfig.tiny(vocab_size=300, num_layers=3)
    assert cfg.src_vocab_size == cfg.tgt_vocab_size == 300
    assert cfg.num_layers == 3 and cfg.d_model == 128 and cfg.num_heads == 4
    # overriding a preset field re-validates
    with pytest.raises(ValueError, match="num_heads=5 must divide d_model=128"):
        TransformerConfig.tiny(vocab_size=300, num_heads=5)


def test_json_round_trip():
    cfg = TransformerConfig.tiny(vocab_size=50, positional="learned", dtype="bfloat16")
    text = json.dumps(cfg.to_dict())
    assert TransformerConfig.from_dict(json.loads(text)) == cfg


@pytest.mark.parametrize("positional", ["rope", "alibi"])
def test_positions_inside_attention_and_grouped_heads_round_trip(positional):
    cfg = TransformerConfig.tiny(vocab_size=50, positional=positional, num_kv_heads=2,
                                 rope_base=500.0)
    assert (cfg.num_kv_heads, cfg.kv_heads, cfg.num_heads) == (2, 2, 4)
    assert TransformerConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # ALiBi runs with the two kernels that take a bias.
    assert TransformerConfig.tiny(vocab_size=50, positional="alibi",
                                  attention_impl="fused").attention_impl == "fused"


def test_a_config_saved_before_the_new_fields_still_loads():
    old = TransformerConfig.tiny(vocab_size=50).to_dict()
    for name in ("num_kv_heads", "rope_base"):
        del old[name]
    cfg = TransformerConfig.from_dict(old)
    assert cfg.num_kv_heads is None and cfg.kv_heads == cfg.num_heads == 4
    assert cfg.rope_base == 10000.0 and cfg.positional == "sinusoidal"


def test_from_dict_rejects_unknown_fields():
    values = TransformerConfig.tiny(vocab_size=50).to_dict() | {"d_modle": 3}
    with pytest.raises(ValueError, match=r"unknown TransformerConfig field\(s\) \['d_modle'\]"):
        TransformerConfig.from_dict(values)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"d_model": 0}, "d_model must be a positive int, got 0"),
        ({"num_layers": -1}, "num_layers must be a positive int, got -1"),
        ({"d_model": 30, "num_heads": 4}, r"num_heads=4 must divide d_model=30 .*\[1, 2, 3, 5"),
        ({"dropout_rate": 1.0}, r"dropout_rate must be in \[0, 1\), got 1.0"),
        ({"attention_dropout_rate": -0.1}, r"attention_dropout_rate must be in \[0, 1\)"),
        ({"layer_norm_epsilon": 0.0}, r"layer_norm_epsilon must be in \(0, inf\)"),
        ({"eos_id": 11}, r"eos_id=11 must be a token id of the target vocab.*tgt_vocab_size=11"),
        ({"pad_id": 1}, "pad_id, bos_id and eos_id must be three different tokens"),
        ({"share_embeddings": True, "src_vocab_size": 12},
         r"src_vocab_size \(12\) must equal tgt_vocab_size \(11\)"),
        ({"positional": "rotary"}, "positional must be one of"),
        ({"num_kv_heads": 0}, "num_kv_heads must be a positive int, got 0"),
        ({"num_heads": 4, "num_kv_heads": 3},
         r"num_kv_heads=3 must divide num_heads=4.*among \[1, 2, 4\]"),
        ({"rope_base": 0.0}, r"rope_base must be in \(0, inf\), got 0.0"),
        ({"positional": "rope", "num_heads": 16, "d_model": 48},
         r"positional='rope' .* d_model / num_heads = 48 / 16 = 3 must be even"),
        ({"positional": "alibi", "attention_impl": "flash"},
         r"positional='alibi' .* attention_impl='flash' does not take; use attention_impl in "
         r"\('reference', 'fused'\)"),
        ({"attention_impl": "flash", "attention_dropout_rate": 0.1},
         "attention_dropout_rate=0.1 needs the attention weights"),
        ({"dtype": "int32"}, "dtype must name a floating dtype"),
        ({"param_dtype": "float33"}, "param_dtype must name a floating dtype"),
        ({"norm": "batch_norm"}, "norm must be one of"),
        ({"feed_forward": "geglu"}, "feed_forward must be one of"),
        ({"pad_id": None}, "pad_id=None is for a language model only"),
        ({"rope_scaling": (0.5, 1.0, 4.0, 16)}, r"rope_scaling=\(0.5, .* needs factor >= 1"),
    ],
)
def test_validation_errors(changes, message):
    fields = dict(src_vocab_size=11, tgt_vocab_size=11, d_model=16, num_heads=2) | changes
    with pytest.raises(ValueError, match=message):
        TransformerConfig(**fields)


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"src_vocab_size": 2.5}, r"src_vocab_size must be a positive int, got 2.5 \(float\)"),
        ({"num_heads": True}, r"num_heads must be a positive int, got True \(bool\)"),
        ({"dropout_rate": "0.1"}, "dropout_rate must be a number, got '0.1'"),
        ({"pad_id": 0.0}, r"pad_id must be an int, got 0.0"),
        ({"num_kv_heads": 2.0}, r"num_kv_heads must be a positive int, got 2.0 \(float\)"),
        ({"rope_base": "1e4"}, "rope_base must be a number, got '1e4'"),
    ],
)
def test_wrong_types_are_type_errors(changes, message):
    fields = dict(src_vocab_size=11, tgt_vocab_size=11, d_model=16, num_heads=2) | changes
    with pytest.raises(TypeError, match=message):
        TransformerConfig(**fields)


def test_presets_grow_in_size_and_are_named():
    sizes = [PRESETS[name](vocab_size=100) for name in ("tiny", "small", "base")]
    assert [c.d_model for c in sizes] == [128, 256, 512]
    assert [c.num_layers for c in sizes] == [2, 3, 6]
    small = TransformerConfig.small(vocab_size=100, dropout_rate=0.0)
    assert (small.d_ff, small.num_heads, small.max_len, small.dropout_rate) == (1024, 8, 128, 0.0)


def test_pad_id_must_fit_the_source_vocabulary():
    with pytest.raises(ValueError, match="pad_id=5 must also be a source token id"):
        TransformerConfig(src_vocab_size=5, tgt_vocab_size=10, pad_id=5, bos_id=1, eos_id=2)


def test_a_language_model_may_lack_special_tokens():
    config = TransformerConfig.language_model(vocab_size=11, pad_id=None, bos_id=None,
                                              eos_id=None, norm="rms_norm",
                                              feed_forward="swiglu", use_bias=False,
                                              scale_embeddings=False)
    assert TransformerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="three different tokens"):
        TransformerConfig.language_model(vocab_size=11, pad_id=None, bos_id=2, eos_id=2)


@pytest.mark.outside_annotations  # a list, as JSON gives it back
def test_rope_scaling_is_a_tuple_also_from_json():
    config = TransformerConfig.language_model(vocab_size=11, rope_scaling=[8, 1, 4, 8192])
    assert config.rope_scaling == (8.0, 1.0, 4.0, 8192.0)
    saved = json.loads(json.dumps(config.to_dict()))
    assert TransformerConfig.from_dict(saved) == config and hash(config)


# ------------------------- today's switches (steps 1a, 3a, 6a): qk_norm, soft-cap, sinks, gate


def test_todays_switches_default_off_and_round_trip():
    cfg = TransformerConfig.tiny(vocab_size=11)
    assert (cfg.qk_norm, cfg.attn_soft_cap, cfg.attention_sinks, cfg.output_gate) == (
        None, None, False, False)
    on = cfg.replace(qk_norm="rms", attn_soft_cap=50, attention_sinks=True, output_gate=True,
                     attention_impl="flash")
    assert on.attn_soft_cap == 50.0 and isinstance(on.attn_soft_cap, float)
    assert TransformerConfig.from_dict(json.loads(json.dumps(on.to_dict()))) == on


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"qk_norm": "l2"}, r"qk_norm must be None, 'rms' or 'layer', got 'l2'"),
        ({"attn_soft_cap": 0.0}, r"attn_soft_cap must be a positive finite number.*got 0.0"),
        ({"attn_soft_cap": float("inf")}, r"attn_soft_cap must be a positive finite number"),
        ({"attention_sinks": True, "attention_impl": "fused"},
         r"attention_sinks acts on the scores inside the kernel, and attention_impl='fused' "
         r"does not take them; use attention_impl in \('reference', 'flash', 'auto'\)"),
        ({"attn_soft_cap": 30.0, "attention_sinks": True, "attention_impl": "blockwise"},
         r"attn_soft_cap and attention_sinks act on the scores .* attention_impl='blockwise'"),
    ],
)
def test_todays_switches_validation_errors(changes, message):
    fields = dict(src_vocab_size=11, tgt_vocab_size=11, d_model=16, num_heads=2) | changes
    with pytest.raises(ValueError, match=message):
        TransformerConfig(**fields)


@pytest.mark.outside_annotations
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"attn_soft_cap": "50"}, r"attn_soft_cap must be a positive number.*'50' \(str\)"),
        ({"attention_sinks": 1}, r"attention_sinks must be True or False, got 1 \(int\)"),
        ({"output_gate": None}, r"output_gate must be True or False, got None"),
    ],
)
def test_todays_switches_wrong_types(changes, message):
    fields = dict(src_vocab_size=11, tgt_vocab_size=11, d_model=16, num_heads=2) | changes
    with pytest.raises(TypeError, match=message):
        TransformerConfig(**fields)
