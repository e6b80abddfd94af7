"""Hugging Face checkpoints in the package's LanguageModel: logits, attention and greedy tokens
equal those of ``transformers`` on random-weight checkpoints written here; bad ones refused."""

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from attention.model import pretrained  # noqa: E402
from attention.model.language_model import language_model_attention_maps  # noqa: E402
from attention.model.pretrained import PretrainedError, from_pretrained  # noqa: E402
from attention.model.sampling import generate  # noqa: E402

V = 97  # an odd vocabulary size
# Weights far from the default 0.02 so that attention is far from uniform and the logits
# spread: an equality of near-constants would prove little.
SPREAD = 0.3


def gpt2_reference():
    config = transformers.GPT2Config(
        vocab_size=V, n_embd=36, n_head=3, n_layer=2, n_positions=29, n_inner=52,
        bos_token_id=V - 1, eos_token_id=V - 1, initializer_range=SPREAD,
        layer_norm_epsilon=1e-5,
    )
    return transformers.GPT2LMHeadModel(config)


def llama_reference():
    config = transformers.LlamaConfig(
        vocab_size=V, hidden_size=48, intermediate_size=68, num_attention_heads=6,
        num_key_value_heads=2, num_hidden_layers=2, max_position_embeddings=31,
        rope_theta=517.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        initializer_range=SPREAD, rms_norm_eps=1e-5,
    )
    return transformers.LlamaForCausalLM(config)


def llama3_reference():
    """Llama 3.2-shaped: tied embeddings, Llama 3's rope scaling (an original context of 16
    positions makes the 4 frequency pairs of H = 8 short, mixed and long wavelengths)."""
    config = transformers.LlamaConfig(
        vocab_size=V, hidden_size=32, intermediate_size=44, num_attention_heads=4,
        num_key_value_heads=1, num_hidden_layers=2, max_position_embeddings=64,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, initializer_range=SPREAD,
        rope_parameters={"rope_type": "llama3", "rope_theta": 300.0, "factor": 4.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 16},
    )
    return transformers.LlamaForCausalLM(config)


def qwen2_reference():
    """Llama's blocks with biases in W^Q, W^K and W^V (none in W^O nor the FFN)."""
    config = transformers.Qwen2Config(
        vocab_size=V, hidden_size=24, intermediate_size=40, num_attention_heads=6,
        num_key_value_heads=3, num_hidden_layers=2, max_position_embeddings=32,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, initializer_range=SPREAD,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
    )
    model = transformers.Qwen2ForCausalLM(config)
    with torch.no_grad():  # initialised to zero: give them values that matter
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0.0, SPREAD)
    return model


@pytest.fixture(scope="module", params=["gpt2", "llama", "llama3", "qwen2"])
def checkpoint(request, tmp_path_factory):
    """``(folder, reference model, loaded model)``; Llama saved in shards."""
    torch.manual_seed(0)
    reference = {"gpt2": gpt2_reference, "llama": llama_reference, "llama3": llama3_reference,
                 "qwen2": qwen2_reference}[request.param]()
    reference = reference.eval()
    folder = tmp_path_factory.mktemp(request.param)
    shards = {"max_shard_size": "20KB"} if request.param == "llama" else {}
    reference.save_pretrained(folder, safe_serialization=True, **shards)
    reference = type(reference).from_pretrained(
        folder, attn_implementation="eager", use_kernels=False).eval()
    model, tokenizer = from_pretrained(folder)
    assert tokenizer is None  # no tokenizer.json written
    return folder, reference, model


def batch(seed, B, T, lengths):
    """Random tokens ``[B, T]`` and the attention mask of right-padded rows of ``lengths``."""
    tokens = np.random.default_rng(seed).integers(0, V, (B, T))
    mask = (np.arange(T)[None] < np.asarray(lengths)[:, None]).astype(np.int64)
    return tokens, mask


def reference_outputs(reference, tokens, mask):
    with torch.no_grad():
        return reference(torch.tensor(tokens), attention_mask=torch.tensor(mask),
                         output_attentions=True)


@nnx.jit
def logits_and_maps(model, tokens):
    maps = language_model_attention_maps(model, tokens)["decoder_self"]
    return model(tokens, deterministic=True), maps


@pytest.mark.parametrize("seed, lengths", [(1, [9, 5, 9]), (2, [4, 7, 2])])
def test_logits_and_attention_equal_transformers(checkpoint, seed, lengths):
    folder, reference, model = checkpoint
    tokens, mask = batch(seed, len(lengths), 9, lengths)
    expected = reference_outputs(reference, tokens, mask)
    logits, maps = (np.asarray(x) for x in logits_and_maps(model, jnp.asarray(tokens)))
    assert np.std(logits) > 0.1  # far from a constant
    for b, length in enumerate(lengths):  # the real positions; padding is read by no one
        np.testing.assert_allclose(logits[b, :length], expected.logits[b, :length].numpy(),
                                   atol=1e-4, rtol=0)
        for layer, weights in enumerate(expected.attentions):
            np.testing.assert_allclose(maps[layer, b, :, :length, :length],
                                       weights[b, :, :length, :length].numpy(), atol=1e-5)
            assert np.all(maps[layer, b, :, :length, length:] == 0)


def test_greedy_generation_with_the_cache_equals_transformers(checkpoint):
    folder, reference, model = checkpoint
    prompts, _ = batch(3, 2, 5, [5, 5])
    lengths = [5, 3]
    new, _ = generate(model, jnp.asarray(prompts), jnp.asarray(lengths), max_new_tokens=6,
                      greedy=True, stop_at_eos=False)
    for b, length in enumerate(lengths):
        with torch.no_grad():
            expected = reference.generate(
                torch.tensor(prompts[b : b + 1, :length]), do_sample=False, max_new_tokens=6,
                min_new_tokens=6, pad_token_id=0, eos_token_id=None,
            )[0, length:].numpy()
        assert np.asarray(new[b]).tolist() == expected.tolist()


def test_config_carries_each_family_switches(checkpoint):
    folder, reference, model = checkpoint
    config = model.config
    assert config.pad_id is None and config.bos_id is None and not config.scale_embeddings
    if config.positional == "learned":  # GPT-2
        assert (config.norm, config.feed_forward, config.share_embeddings) == (
            "layer_norm", "gelu_tanh", True)
        assert config.max_len == 29 and config.use_bias
    elif config.rope_scaling is None and not config.qkv_bias:
        assert (config.norm, config.feed_forward, config.share_embeddings) == (
            "rms_norm", "swiglu", False)
        assert config.kv_heads == 2 < config.num_heads and config.rope_base == 517.0
        assert len(list(folder.glob("*.safetensors"))) > 1  # sharded
    elif config.rope_scaling is not None:
        assert config.rope_scaling == (4.0, 1.0, 4.0, 16.0) and config.share_embeddings
    else:
        assert config.qkv_bias and not config.use_bias


# ------------------------------------------------------------------------- bad checkpoints


def copy_with(folder, tmp_path, *, tensors=None, config=None):
    """A copy of ``folder`` whose tensors pass through ``tensors(dict) -> dict`` (one file)
    and whose config.json through ``config(dict) -> dict``."""
    from safetensors.numpy import save_file

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    if tensors is not None:
        changed = tensors(pretrained.read_tensors(copy))
        for file in copy.glob("model*.safetensors*"):
            file.unlink()
        save_file(changed, str(copy / "model.safetensors"))
    if config is not None:
        hf = json.loads((copy / "config.json").read_text())
        (copy / "config.json").write_text(json.dumps(config(hf)))
    return copy


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_missing_tensor_is_named(checkpoint, tmp_path):
    folder = checkpoint[0]

    def drop(t):
        return {k: v for k, v in t.items() if not k.endswith("layers.1.mlp.up_proj.weight")
                and not k.endswith("h.1.mlp.c_fc.bias")}

    with pytest.raises(PretrainedError) as error:
        from_pretrained(copy_with(folder, tmp_path, tensors=drop))
    assert "no tensor" in one_line(error)
    assert "layers.1.mlp.up_proj.weight" in str(error.value) or "h.1.mlp.c_fc.bias" in str(
        error.value)


def test_a_wrong_shape_is_named(checkpoint, tmp_path):
    folder = checkpoint[0]

    def truncate(t):
        name = next(k for k in t if k.endswith(("embed_tokens.weight", "wte.weight")))
        return t | {name: t[name][:-1]}

    with pytest.raises(PretrainedError, match=r"has shape \[96, .*needs \[97, ") as error:
        from_pretrained(copy_with(folder, tmp_path, tensors=truncate))
    one_line(error)


def test_an_unused_tensor_is_refused(checkpoint, tmp_path):
    folder = checkpoint[0]
    extra = {"model.layers.0.self_attn.q_norm.weight": np.zeros(8, np.float32),  # Qwen3's
             "transformer.h.0.attn.q_norm.weight": np.zeros(12, np.float32)}
    with pytest.raises(PretrainedError, match="would not use") as error:
        from_pretrained(copy_with(folder, tmp_path, tensors=lambda t: t | extra))
    one_line(error)


@pytest.mark.parametrize("change, named", [
    (lambda hf: hf | {"model_type": "bert"}, "model_type='bert'"),
    (lambda hf: hf | {"rope_parameters": {"rope_type": "yarn", "factor": 4.0}},
     "rope_parameters.rope_type='yarn'"),
    (lambda hf: hf | {"hidden_act": "gelu"}, "hidden_act='gelu'"),
    (lambda hf: hf | {"activation_function": "relu"}, "activation_function='relu'"),
])
def test_an_unimplemented_setting_is_named(checkpoint, tmp_path, change, named):
    folder, reference, model = checkpoint
    if "rope" in named or "hidden_act" in named:  # Llama's fields
        if model.config.positional != "rope":
            pytest.skip("a Llama setting")
    elif "activation_function" in named and model.config.positional == "rope":
        pytest.skip("a GPT-2 setting")
    with pytest.raises(PretrainedError) as error:
        from_pretrained(copy_with(folder, tmp_path, config=change))
    assert named in one_line(error)


def test_tokenizer_round_trips(checkpoint, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    folder = checkpoint[0]
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=V, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["the cat sat on the mat", "the hat"] * 5, trainer)
    copy = tmp_path / "with_tokenizer"
    shutil.copytree(folder, copy)
    bpe.save(str(copy / "tokenizer.json"))
    _, tokenizer = from_pretrained(copy)
    text = "the cat sat, 42 times!"
    ids = tokenizer.encode(text)
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == text
    assert "".join(tokenizer.tokens("the mat")).replace("\u0120", " ") == "the mat"
