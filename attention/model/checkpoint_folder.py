"""Step 17d: a Hugging Face checkpoint folder: its config, its safetensors tensors, its tokenizer.

A checkpoint on the Hugging Face Hub is a folder: ``config.json`` (the sizes and switches),
the weights in ``*.safetensors`` files (one, or shards listed in
``model.safetensors.index.json``), and usually ``tokenizer.json``. This step reads them as
plain Python and NumPy: :func:`checkpoint_folder` finds the folder (or downloads it with
``huggingface_hub``), :func:`read_json` and :func:`read_tensors` read it, :class:`Tokenizer`
wraps ``tokenizer.json``. Step 17e (:mod:`attention.model.pretrained`) turns what they read
into the package's own :class:`~attention.model.language_model.LanguageModel`.

>>> folder = checkpoint_folder("gpt2")  # doctest: +SKIP
>>> read_json(folder / "config.json")["n_layer"]  # doctest: +SKIP
12
"""

from __future__ import annotations

import json
import pathlib
import struct

import numpy as np

CHECKPOINT_FILES = ["config.json", "*.safetensors", "model.safetensors.index.json",
                    "tokenizer.json", "tokenizer_config.json", "generation_config.json"]
"""What :func:`checkpoint_folder` downloads of a Hub repository (not the PyTorch weights)."""


class PretrainedError(ValueError):
    """A checkpoint that the package cannot compute exactly, named in one line."""


class Tokenizer:
    """A ``tokenizer.json`` (Hugging Face ``tokenizers``) as ``encode(text) -> ids`` and
    ``decode(ids) -> text``; ``vocab_size`` and ``inner`` (the ``tokenizers.Tokenizer``).

    Args:
      path: the ``tokenizer.json`` file.
      add_special_tokens: let ``encode`` add what the tokenizer adds (Llama's ``<s>``).
    """

    def __init__(self, path, *, add_special_tokens: bool = True):
        import tokenizers

        self.inner = tokenizers.Tokenizer.from_file(str(path))
        self.add_special_tokens = add_special_tokens

    @property
    def vocab_size(self) -> int:
        return self.inner.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.inner.encode(text, add_special_tokens=self.add_special_tokens).ids

    def decode(self, ids, *, skip_special_tokens: bool = False) -> str:
        return self.inner.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def tokens(self, text: str) -> list[str]:
        """The token strings of ``text`` (labels for the attention plots)."""
        return self.inner.encode(text, add_special_tokens=self.add_special_tokens).tokens


# ------------------------------------------------------------------------------- the folder


def checkpoint_folder(name_or_path) -> pathlib.Path:
    """A local checkpoint folder, or the Hub repository ``name_or_path`` downloaded into the
    Hugging Face cache (config, safetensors and tokenizer files only).

    Raises:
      PretrainedError: not a folder and the download fails (offline, unknown name).
    """
    path = pathlib.Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return pathlib.Path(snapshot_download(str(name_or_path), allow_patterns=CHECKPOINT_FILES))
    except Exception as error:  # offline, unknown repository, no permission...
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PretrainedError(
            f"{name_or_path!r} is not a checkpoint folder and could not be downloaded from the "
            f"Hugging Face Hub ({reason}); pass the folder that holds its config.json and "
            f"*.safetensors instead."
        ) from None


def read_json(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PretrainedError(f"cannot read {path}: {error}") from None


def read_tensors(folder: pathlib.Path) -> dict[str, np.ndarray]:
    """Every tensor of the folder's safetensors files, by name, as NumPy arrays: the files
    of ``model.safetensors.index.json`` when there is one, else every ``*.safetensors``.

    Raises:
      PretrainedError: no safetensors file (a PyTorch-only checkpoint), an index naming a
        missing file.
    """
    index = folder / "model.safetensors.index.json"
    if index.exists():
        names = sorted(set(read_json(index).get("weight_map", {}).values()))
        files = [folder / name for name in names]
        for file in files:
            if not file.exists():
                raise PretrainedError(f"{index} names {file.name}, which is not in {folder}.")
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise PretrainedError(
            f"no *.safetensors in {folder}; the package reads safetensors only (save with "
            f"save_pretrained(..., safe_serialization=True))."
        )
    tensors = {}
    for file in files:
        tensors.update(_read_safetensors(file))
    return tensors


def _read_safetensors(file: pathlib.Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(file), framework="np") as f:
        for name in f.keys():
            if f.get_slice(name).get_dtype() == "BF16":  # NumPy has no bfloat16
                tensors[name] = None
            else:
                tensors[name] = f.get_tensor(name)
    if any(v is None for v in tensors.values()):
        tensors.update(_read_bfloat16(file, [n for n, v in tensors.items() if v is None]))
    return tensors


def _read_bfloat16(file: pathlib.Path, names) -> dict[str, np.ndarray]:
    # The safetensors layout: an 8-byte little-endian header size, a JSON header with each
    # tensor's dtype, shape and byte offsets, then the bytes. bfloat16 is the upper half of
    # a float32, so widening the 16 bits into the high half of 32 is exact.
    with open(file, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = np.memmap(f, dtype=np.uint8, mode="r", offset=8 + size)
        out = {}
        for name in names:
            start, end = header[name]["data_offsets"]
            bits = np.frombuffer(data[start:end].tobytes(), dtype="<u2").astype(np.uint32)
            out[name] = (bits << 16).view(np.float32).reshape(header[name]["shape"])
    return out
