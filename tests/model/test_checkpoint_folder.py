"""Tests for attention/model/checkpoint_folder.py (step 17d): a checkpoint folder read into
plain dictionaries, every tensor exact (bfloat16 and shards included), bad folders named."""

import json

import numpy as np
import pytest

from attention.model.checkpoint_folder import (
    PretrainedError,
    checkpoint_folder,
    read_json,
    read_tensors,
)

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_name_offline_asks_for_a_folder(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("no network\nmore detail")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(PretrainedError, match="pass the folder") as error:
        checkpoint_folder("someone/not-here")
    assert "someone/not-here" in one_line(error) and "no network" in str(error.value)


def test_a_local_folder_is_used_as_it_is(tmp_path):
    assert checkpoint_folder(tmp_path) == tmp_path


def test_a_folder_without_safetensors_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(PretrainedError, match=r"no \*.safetensors"):
        read_tensors(tmp_path)


def test_an_unreadable_config_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(PretrainedError, match="cannot read .*config.json"):
        read_json(tmp_path / "config.json")


def test_shards_are_read_through_their_index_and_a_missing_shard_is_named(tmp_path):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3, 5)).astype(np.float32), rng.normal(size=(7,)).astype(np.float32)
    safetensors_numpy.save_file({"a": a}, str(tmp_path / "part-1.safetensors"))
    safetensors_numpy.save_file({"b": b}, str(tmp_path / "part-2.safetensors"))
    (tmp_path / "stray.safetensors").write_bytes(b"")  # not in the index: never opened
    index = {"weight_map": {"a": "part-1.safetensors", "b": "part-2.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    tensors = read_tensors(tmp_path)
    assert sorted(tensors) == ["a", "b"]
    np.testing.assert_array_equal(tensors["a"], a)
    np.testing.assert_array_equal(tensors["b"], b)
    (tmp_path / "part-2.safetensors").unlink()
    with pytest.raises(PretrainedError, match="names part-2.safetensors, which is not in"):
        read_tensors(tmp_path)


def test_bfloat16_tensors_read_exactly(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    values = torch.tensor([[1.0, -2.5, 3.140625], [0.0, 1e-3, -65280.0]])
    save_file({"a": values.to(torch.bfloat16), "b": values}, str(tmp_path / "m.safetensors"))
    tensors = read_tensors(tmp_path)
    np.testing.assert_array_equal(tensors["a"], values.to(torch.bfloat16).float().numpy())
    np.testing.assert_array_equal(tensors["b"], values.numpy())
