"""Step 17e: real checkpoints: GPT-2 and Llama-family weights in the package's own LanguageModel.

A Hugging Face checkpoint folder (step 17d, :mod:`attention.model.checkpoint_folder`) holds
``config.json`` and the weights. :func:`from_pretrained` reads the config into a
:class:`TransformerConfig`, each tensor into the parameter of :class:`LanguageModel` that
computes the same thing, and returns ``(model, tokenizer)``. Nothing of ``torch`` or
``transformers`` runs: ``safetensors`` reads the tensors as NumPy arrays.

What each family needs from the blocks (the config switches, steps 8-13):

=================  ==========================  ====================================
                   GPT-2 (Radford et al. 2019)  Llama (Touvron et al. 2023)
=================  ==========================  ====================================
positions          learned, added (step 8)      rotary, ``rope_theta`` (step 8),
                                                Llama 3's rope scaling
norm               LayerNorm, pre-LN + final    RMSNorm, pre-LN + final
feed-forward       GELU (tanh form), biases     SwiGLU, no biases
heads              K = N                        grouped-query, K <= N (step 1)
output             tied to the embedding        its own matrix (or tied)
=================  ==========================  ====================================

Qwen2 (``model_type="qwen2"``) is Llama with biases in ``W^Q, W^K, W^V`` (``qkv_bias``).

Neither scales the embeddings by ``sqrt(d_model)``. Two layouts differ from ours and are
converted on reading: GPT-2 stores its linear maps ``[in, out]`` in one ``c_attn`` for
``W^Q | W^K | W^V``; Llama stores ``[out, in]`` and rotates the pairs of head dims
``(i, i + H/2)`` where :func:`attention.model.positional.apply_rope` rotates ``(2i, 2i+1)``:
the rows of ``W^Q`` and ``W^K`` are permuted inside each head so that the same pairs meet the
same angles (a permutation of both query and key dims leaves every score unchanged).

A loaded model has no padding token (``pad_id=None``): every token is real, so right-pad a
batch with any id and read the real positions only (the causal mask keeps them exact), and
give ``prompt_lengths`` to :func:`attention.model.sampling.generate`.

Anything the package does not compute (another architecture, a rope scaling it lacks, a
missing tensor or a tensor of another shape, a tensor it would not use) raises
:class:`PretrainedError`, one line naming the field or tensor: never an approximation.

>>> model, tokenizer = from_pretrained("gpt2")  # doctest: +SKIP
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attention.model.checkpoint_folder import (  # noqa: F401 (re-exported)
    CHECKPOINT_FILES,
    PretrainedError,
    Tokenizer,
    checkpoint_folder,
    read_json,
    read_tensors,
)
from attention.model.config import TransformerConfig
from attention.model.language_model import LanguageModel

FAMILIES = {"gpt2": "GPT-2", "llama": "Llama", "qwen2": "Qwen2"}
"""The ``model_type`` values of ``config.json`` that load, with their family's name."""
# Buffers some checkpoints carry that are not parameters (masks and RoPE tables we recompute).
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")


# ---------------------------------------------------------------------------- the config


def _field(hf: dict, name: str, default=None):
    value = hf.get(name, default)
    if value is None:
        raise PretrainedError(f"config.json has no {name!r}, which loading needs.")
    return value


def _refuse(hf: dict, name: str, allowed) -> None:
    if name in hf and hf[name] not in allowed:
        raise PretrainedError(
            f"config.json has {name}={hf[name]!r}, which the package does not implement "
            f"(it computes {' or '.join(repr(a) for a in allowed)})."
        )


def _eos_id(hf: dict, vocab_size: int) -> int | None:
    eos = hf.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) and eos else eos
    return eos if isinstance(eos, int) and 0 <= eos < vocab_size else None


def _rope(hf: dict) -> tuple[float, tuple | None]:
    """``(rope_theta, rope_scaling)``: Llama 3's scaling as the config's four numbers, or
    None; another scaling is refused (``rope_scaling`` before transformers 5,
    ``rope_parameters`` from it on)."""
    theta, scaling = hf.get("rope_theta"), None
    for name in ("rope_scaling", "rope_parameters"):
        fields = hf.get(name)
        if not fields:
            continue
        kind = fields.get("rope_type", fields.get("type", "default"))
        if kind == "llama3":
            scaling = tuple(float(_field(fields, key)) for key in (
                "factor", "low_freq_factor", "high_freq_factor",
                "original_max_position_embeddings"))
        elif kind != "default":
            raise PretrainedError(
                f"config.json has {name}.rope_type={kind!r}, a rope scaling the package does "
                f"not implement (it computes 'default' and 'llama3')."
            )
        theta = fields.get("rope_theta", theta)
    return float(10000.0 if theta is None else theta), scaling


def config_from_hf(hf: dict) -> TransformerConfig:
    """The :class:`TransformerConfig` of a Hugging Face ``config.json`` (as a dict).

    Raises:
      PretrainedError: a ``model_type`` not in :data:`FAMILIES`, a setting the package does
        not compute (named with its value), a missing size.

    >>> config_from_hf({"model_type": "gpt2", "n_embd": 8, "n_head": 2, "n_layer": 1,
    ...                 "n_positions": 16, "vocab_size": 11}).feed_forward
    'gelu_tanh'
    """
    model_type = hf.get("model_type")
    if model_type not in FAMILIES:
        raise PretrainedError(
            f"config.json has model_type={model_type!r} (architectures="
            f"{hf.get('architectures')}); the package loads {sorted(FAMILIES)}."
        )
    common = dict(architecture="decoder_only", dropout_rate=0.0, attention_dropout_rate=0.0,
                  norm_first=True, scale_embeddings=False, pad_id=None, bos_id=None)
    if model_type == "gpt2":
        _refuse(hf, "activation_function", ("gelu_new", "gelu_pytorch_tanh", "gelu"))
        _refuse(hf, "scale_attn_weights", (True,))
        _refuse(hf, "scale_attn_by_inverse_layer_idx", (False,))
        _refuse(hf, "add_cross_attention", (False,))
        vocab, d_model = _field(hf, "vocab_size"), _field(hf, "n_embd")
        activation = hf.get("activation_function", "gelu_new")
        return TransformerConfig(
            **common, src_vocab_size=vocab, tgt_vocab_size=vocab, d_model=d_model,
            num_heads=_field(hf, "n_head"), num_layers=_field(hf, "n_layer"),
            d_ff=hf.get("n_inner") or 4 * d_model, max_len=_field(hf, "n_positions"),
            positional="learned", norm="layer_norm",
            feed_forward="gelu" if activation == "gelu" else "gelu_tanh",
            layer_norm_epsilon=float(hf.get("layer_norm_epsilon", 1e-5)),
            share_embeddings=hf.get("tie_word_embeddings", True), eos_id=_eos_id(hf, vocab),
        )
    _refuse(hf, "hidden_act", ("silu",))
    _refuse(hf, "attention_bias", (False,))
    _refuse(hf, "use_sliding_window", (False,))  # Qwen2's
    for kind in hf.get("layer_types") or ():
        if kind != "full_attention":
            raise PretrainedError(f"config.json has layer_types with {kind!r}; the package "
                                  f"loads 'full_attention' layers only.")
    _refuse(hf, "mlp_bias", (False,))
    vocab, d_model = _field(hf, "vocab_size"), _field(hf, "hidden_size")
    num_heads = _field(hf, "num_attention_heads")
    if hf.get("head_dim") not in (None, d_model // num_heads):
        raise PretrainedError(
            f"config.json has head_dim={hf['head_dim']}, but the package's heads are "
            f"hidden_size / num_attention_heads = {d_model // num_heads} wide."
        )
    rope_base, rope_scaling = _rope(hf)
    return TransformerConfig(
        **common, src_vocab_size=vocab, tgt_vocab_size=vocab, d_model=d_model,
        num_heads=num_heads, num_kv_heads=hf.get("num_key_value_heads") or num_heads,
        num_layers=_field(hf, "num_hidden_layers"), d_ff=_field(hf, "intermediate_size"),
        max_len=hf.get("max_position_embeddings", 2048), positional="rope",
        rope_base=rope_base, rope_scaling=rope_scaling, norm="rms_norm",
        feed_forward="swiglu", use_bias=False, qkv_bias=model_type == "qwen2",
        layer_norm_epsilon=float(hf.get("rms_norm_eps", 1e-6)),
        share_embeddings=hf.get("tie_word_embeddings", False), eos_id=_eos_id(hf, vocab),
    )


# ---------------------------------------------------------------------------- the weights


class _Tensors:
    """The checkpoint's tensors by their name without the model prefix; ``take`` marks one
    used, ``unused`` lists the rest (a tensor the package would ignore is an error too)."""

    def __init__(self, tensors: dict[str, np.ndarray], prefix: str):
        self.tensors = {name.removeprefix(prefix): t for name, t in tensors.items()
                        if not name.endswith(_IGNORED_SUFFIXES)}
        self.used: set[str] = set()

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in self.tensors:
            raise PretrainedError(f"the checkpoint has no tensor {name!r} (expected shape "
                                  f"{list(shape)}).")
        tensor = self.tensors[name]
        if tuple(tensor.shape) != tuple(shape):
            raise PretrainedError(f"tensor {name!r} has shape {list(tensor.shape)}, but the "
                                  f"config needs {list(shape)}.")
        self.used.add(name)
        return np.asarray(tensor, np.float32)

    def unused(self) -> list[str]:
        return sorted(set(self.tensors) - self.used)


def _head_pairs(head_dim: int) -> np.ndarray:
    """Dims ``0, H/2, 1, H/2+1, ...``: Llama's rotated pair ``(i, i + H/2)`` moved to our
    ``(2i, 2i+1)``."""
    half = np.arange(head_dim // 2)
    return np.stack([half, half + head_dim // 2], axis=-1).reshape(-1)


def _rope_rows(weight_OD: np.ndarray, heads: int, head_dim: int) -> np.ndarray:
    """``[heads * H, D]`` with the rows of every head in the order of :func:`_head_pairs`."""
    return weight_OD.reshape(heads, head_dim, -1)[:, _head_pairs(head_dim)].reshape(
        heads * head_dim, -1)


def gpt2_params(tensors: _Tensors, config: TransformerConfig) -> dict[tuple, np.ndarray]:
    """GPT-2's tensors at the package's parameter paths (``[in, out]``, as ``nnx.Linear``)."""
    D, F, V, L = config.d_model, config.d_ff, config.vocab_size, config.max_len
    params = {("embed", "embedding"): tensors.take("wte.weight", (V, D)),
              ("decoder", "positions", "embedding"): tensors.take("wpe.weight", (L, D)),
              ("decoder", "final_norm", "scale"): tensors.take("ln_f.weight", (D,)),
              ("decoder", "final_norm", "bias"): tensors.take("ln_f.bias", (D,))}
    for i in range(config.num_layers):
        hf, ours = f"h.{i}.", ("decoder", "layers", i)
        qkv_kernel = tensors.take(hf + "attn.c_attn.weight", (D, 3 * D))
        qkv_bias = tensors.take(hf + "attn.c_attn.bias", (3 * D,))
        for part, kernel, bias in zip(("query", "key", "value"), np.split(qkv_kernel, 3, -1),
                                      np.split(qkv_bias, 3), strict=True):
            params[ours + ("self_attention", part, "kernel")] = kernel
            params[ours + ("self_attention", part, "bias")] = bias
        pairs = {("self_attention", "out"): ("attn.c_proj", (D, D)),
                 ("feed_forward", "linear1"): ("mlp.c_fc", (D, F)),
                 ("feed_forward", "linear2"): ("mlp.c_proj", (F, D))}
        for (block, linear), (name, shape) in pairs.items():
            params[ours + (block, linear, "kernel")] = tensors.take(hf + name + ".weight", shape)
            params[ours + (block, linear, "bias")] = tensors.take(hf + name + ".bias", shape[1:])
        for residual, name in (("self_attention_residual", "ln_1"),
                               ("feed_forward_residual", "ln_2")):
            params[ours + (residual, "norm", "scale")] = tensors.take(hf + name + ".weight", (D,))
            params[ours + (residual, "norm", "bias")] = tensors.take(hf + name + ".bias", (D,))
    if not config.share_embeddings:
        params[("output", "kernel")] = tensors.take("lm_head.weight", (V, D)).T
    else:
        tensors.used.add("lm_head.weight")  # a tied copy, when saved
    return params


def llama_params(tensors: _Tensors, config: TransformerConfig) -> dict[tuple, np.ndarray]:
    """Llama's tensors at the package's parameter paths: ``[out, in]`` transposed, the rows
    of ``W^Q`` and ``W^K`` in our rotary pair order."""
    D, F, V = config.d_model, config.d_ff, config.vocab_size
    N, K, H = config.num_heads, config.kv_heads, config.head_dim
    params = {("embed", "embedding"): tensors.take("embed_tokens.weight", (V, D)),
              ("decoder", "final_norm", "scale"): tensors.take("norm.weight", (D,))}
    for i in range(config.num_layers):
        hf, ours = f"layers.{i}.", ("decoder", "layers", i)
        attention = ours + ("self_attention",)
        query = tensors.take(hf + "self_attn.q_proj.weight", (N * H, D))
        key = tensors.take(hf + "self_attn.k_proj.weight", (K * H, D))
        params[attention + ("query", "kernel")] = _rope_rows(query, N, H).T
        params[attention + ("key", "kernel")] = _rope_rows(key, K, H).T
        params[attention + ("value", "kernel")] = tensors.take(
            hf + "self_attn.v_proj.weight", (K * H, D)).T
        if config.qkv_bias:  # Qwen2: the biases of W^Q and W^K in the same pair order
            for part, heads, rope in (("query", N, True), ("key", K, True), ("value", K, False)):
                bias = tensors.take(hf + f"self_attn.{part[0]}_proj.bias", (heads * H,))
                params[attention + (part, "bias")] = (
                    _rope_rows(bias[:, None], heads, H)[:, 0] if rope else bias)
        params[attention + ("out", "kernel")] = tensors.take(
            hf + "self_attn.o_proj.weight", (D, N * H)).T
        for linear, name, shape in (("gate", "gate_proj", (F, D)), ("linear1", "up_proj", (F, D)),
                                    ("linear2", "down_proj", (D, F))):
            params[ours + ("feed_forward", linear, "kernel")] = tensors.take(
                hf + "mlp." + name + ".weight", shape).T
        for residual, name in (("self_attention_residual", "input_layernorm"),
                               ("feed_forward_residual", "post_attention_layernorm")):
            params[ours + (residual, "norm", "scale")] = tensors.take(hf + name + ".weight", (D,))
    if not config.share_embeddings:
        params[("output", "kernel")] = tensors.take("lm_head.weight", (V, D)).T
    else:
        tensors.used.add("lm_head.weight")
    return params


# The embedding is one module in two places (the model's and its decoder's); NNX lists it
# once, under whichever path it meets first.
_SHARED = {("decoder", "embed", "embedding"): ("embed", "embedding")}


def load_model(config: TransformerConfig, params: dict[tuple, np.ndarray]) -> LanguageModel:
    """A :class:`LanguageModel` of ``config`` whose parameters are ``params`` (by path), built
    without drawing random weights first.

    Raises:
      PretrainedError: a parameter of the model that ``params`` lacks, or of another shape.
    """
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: LanguageModel(config, rngs=nnx.Rngs(0))),
                                   nnx.Param, ...)[0:2]

    @jax.jit
    def others():  # the dropout generators' state; the parameters' draws are dead code here
        return nnx.state(LanguageModel(config, rngs=nnx.Rngs(0)), nnx.Not(nnx.Param))

    flat = nnx.to_flat_state(abstract)
    for path, variable in flat:
        path = _SHARED.get(tuple(path), tuple(path))
        name = ".".join(map(str, path))
        if path not in params:
            raise PretrainedError(f"no weight for the model's parameter {name}.")
        expected = tuple(variable.get_value().shape)
        if params[path].shape != expected:
            raise PretrainedError(f"the weight for {name} has shape "
                                  f"{list(params[path].shape)}, expected {list(expected)}.")
        variable.set_value(jnp.asarray(params[path], config.jnp_param_dtype))
    return nnx.merge(graphdef, nnx.from_flat_state(flat), others())


def from_pretrained(name_or_path) -> tuple[LanguageModel, Tokenizer | None]:
    """A GPT-2 or Llama-family checkpoint as ``(LanguageModel, Tokenizer or None)``.

    Args:
      name_or_path: a folder with ``config.json`` and ``*.safetensors`` (sharded or not), or
        a Hugging Face Hub name such as ``"gpt2"`` (downloaded into its cache when online).

    Returns:
      the model in float32 with ``pad_id=None`` (every token real), and the folder's
      ``tokenizer.json`` as a :class:`Tokenizer` (None without one).

    Raises:
      PretrainedError (a ValueError): a name that is neither a folder nor downloadable; an
        architecture or setting the package does not compute; a tensor missing, of another
        shape, or left unused. Each names the field or tensor in one line.

    >>> model, tokenizer = from_pretrained("gpt2")  # doctest: +SKIP
    >>> model.config.num_layers, tokenizer.decode(tokenizer.encode("Hello"))  # doctest: +SKIP
    (12, 'Hello')
    """
    folder = checkpoint_folder(name_or_path)
    hf = read_json(folder / "config.json")
    config = config_from_hf(hf)
    if hf["model_type"] == "gpt2":
        tensors = _Tensors(read_tensors(folder), "transformer.")
        params = gpt2_params(tensors, config)
    else:
        tensors = _Tensors(read_tensors(folder), "model.")
        params = llama_params(tensors, config)
    unused = tensors.unused()
    if unused:
        raise PretrainedError(
            f"the checkpoint has {len(unused)} tensor(s) the package would not use, such as "
            f"{unused[0]!r}: a setting it does not compute."
        )
    model = load_model(config, params)
    tokenizer_file = folder / "tokenizer.json"
    return model, Tokenizer(tokenizer_file) if tokenizer_file.exists() else None
