"""``attention generate --pretrained`` and ``attention view --pretrained`` on a tiny GPT-2
checkpoint written here with NumPy and ``tokenizers`` (no ``transformers`` needed)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from attention.application.cli import main
from attention.application.pretrained import (
    encode_texts,
    generate_pretrained_text,
    load_pretrained,
    pretrained_view,
)
from attention.model.pretrained import PretrainedError

tokenizers = pytest.importorskip("tokenizers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

D, N, L, F, P = 16, 2, 2, 24, 32  # width, heads, layers, FFN, positions
TEXTS = ["the cat sat on the mat", "a hat, a cat and a bat"]


def write_tokenizer(path):
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=270, special_tokens=["<|endoftext|>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(TEXTS * 3, trainer)
    bpe.save(str(path))
    return bpe.get_vocab_size()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A GPT-2 checkpoint of random weights, as ``save_pretrained`` lays one out."""
    folder = tmp_path_factory.mktemp("gpt2")
    V = write_tokenizer(folder / "tokenizer.json")
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": V,
              "n_embd": D, "n_head": N, "n_layer": L, "n_positions": P, "n_inner": F,
              "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "bos_token_id": 0, "eos_token_id": 0}
    (folder / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)

    def normal(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)

    tensors = {"transformer.wte.weight": normal(V, D), "transformer.wpe.weight": normal(P, D),
               "transformer.ln_f.weight": 1 + normal(D), "transformer.ln_f.bias": normal(D)}
    for i in range(L):
        h = f"transformer.h.{i}."
        tensors |= {h + "ln_1.weight": 1 + normal(D), h + "ln_1.bias": normal(D),
                    h + "ln_2.weight": 1 + normal(D), h + "ln_2.bias": normal(D),
                    h + "attn.c_attn.weight": normal(D, 3 * D),
                    h + "attn.c_attn.bias": normal(3 * D),
                    h + "attn.c_proj.weight": normal(D, D), h + "attn.c_proj.bias": normal(D),
                    h + "attn.bias": np.tril(np.ones((1, 1, P, P), np.float32)),  # a buffer
                    h + "mlp.c_fc.weight": normal(D, F), h + "mlp.c_fc.bias": normal(F),
                    h + "mlp.c_proj.weight": normal(F, D), h + "mlp.c_proj.bias": normal(D)}
    safetensors_numpy.save_file(tensors, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def loaded(folder):
    return load_pretrained(folder)


def test_generated_text_continues_each_prompt(loaded):
    model, tokenizer = loaded
    texts = generate_pretrained_text(model, tokenizer, TEXTS, max_new_tokens=5, greedy=True)
    assert [t[: len(p)] for t, p in zip(texts, TEXTS, strict=True)] == TEXTS
    tokens, lengths = encode_texts(model, tokenizer, TEXTS)
    assert tokens.shape == (2, max(lengths)) and lengths.tolist() == [
        len(tokenizer.encode(t)) for t in TEXTS]


def test_the_view_holds_every_layer_and_head(loaded):
    model, tokenizer = loaded
    view = pretrained_view(model, tokenizer, TEXTS[0])
    (section,) = view.sections
    T = len(tokenizer.encode(TEXTS[0]))
    assert list(section.sizes) == [L, N, T, T]
    assert "\u0120" not in "".join(section.query_tokens)  # byte-level spaces shown as spaces


def test_command_line_generate_and_view(folder, tmp_path, capsys):
    assert main(["generate", "--pretrained", str(folder), TEXTS[0], "--greedy",
                 "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith(TEXTS[0])
    out = tmp_path / "view.html"
    assert main(["view", "--pretrained", str(folder), TEXTS[1], "--out", str(out)]) == 0
    assert out.exists() and "2 layers x 2 heads" in capsys.readouterr().out


def test_command_line_errors_are_one_line(folder, tmp_path, capsys, monkeypatch):
    no_tokenizer = tmp_path / "no_tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((folder / name).read_bytes())
    assert main(["generate", "--pretrained", str(no_tokenizer), "hello"]) == 2
    assert "has no tokenizer.json" in capsys.readouterr().err
    assert main(["generate", "--pretrained", str(folder), "the cat " * 20,
                 "--max-new-tokens", "30"]) == 2
    err = capsys.readouterr().err
    assert "context of 32 tokens" in err and len(err.strip().splitlines()) == 1
    assert main(["view", "--pretrained", str(folder), "hi", "--target", "x"]) == 2
    assert "--target and --beam-size" in capsys.readouterr().err

    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    assert main(["generate", "--pretrained", "nobody/no-model", "hello"]) == 2
    err = capsys.readouterr().err
    assert "pass the folder" in err and len(err.strip().splitlines()) == 1


def test_loading_needs_a_tokenizer(folder, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((folder / name).read_bytes())
    with pytest.raises(PretrainedError, match="no tokenizer.json"):
        load_pretrained(bare)


def test_loading_imports_neither_torch_nor_transformers(folder):
    code = ("import sys; from attention import from_pretrained; "
            f"model, tokenizer = from_pretrained({str(folder)!r}); "
            "print(sorted({'torch', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.stdout.strip().splitlines()[-1] == "[]"
