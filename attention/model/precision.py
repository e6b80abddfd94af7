"""Step 10a: mixed precision, matrix products in bfloat16 and everything else in float32.

Mixed precision as the JAX ecosystem does it (Flax's ``dtype`` / ``param_dtype``, jmp's
policies; Micikevicius et al. 2018 for float16)::

    parameters, optimizer state          float32   (a 1e-4 update vanishes in bfloat16)
    each matrix product                  bfloat16 inputs, float32 sums
                                         (``preferred_element_type=jnp.float32``)
    softmax, layer norm, loss, residual  float32   (cheap, and where rounding would hurt)

bfloat16 keeps float32's exponent (no overflow, no loss scaling) with 8 bits of mantissa:
enough for one input of a product, too little for a running sum.

:func:`resolve_precision` turns ``"float32"``, ``"bfloat16"`` or ``"auto"`` into one of the
first two: ``"auto"`` picks bfloat16 on a GPU, a TPU or a CPU with AMX, else float32 (on a
CPU with only AVX-512 BF16 the whole training step measured 0.92x float32's speed,
``benchmarks/results/train_throughput.txt``). :func:`describe_precision` says which was taken
and why; :func:`matmul_dtypes` is what a layer receives
(``nnx.Linear(..., **matmul_dtypes("bfloat16"))``), and :func:`mixed_einsum` is the same rule
for a product written by hand (the output layer, the loss).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array

from attention._machine import read_cpu

PRECISIONS = ("float32", "bfloat16", "auto")
"""The choices of ``TransformerConfig.precision`` and of ``--precision``."""

# CPU flags (as /proc/cpuinfo spells them) with which a bfloat16 training step is faster.
_BF16_CPU_FLAGS = {"amx_bf16": "AMX"}


def check_precision(precision) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    return precision


def fast_bfloat16(*, backend: str | None = None, cpuinfo: str | None = None) -> tuple[bool, str]:
    """Whether mixed precision makes training faster on this machine, and why, in words
    (a GPU, a TPU, or a CPU with AMX; see the module docstring for AVX-512 BF16).

    Args:
      backend: ``"cpu"``, ``"gpu"``, ``"tpu"`` (default: ``jax.default_backend()``).
      cpuinfo: the text of ``/proc/cpuinfo`` to read instead of this machine's (for tests,
        and to ask about another machine).

    >>> fast_bfloat16(backend="cpu", cpuinfo="model name : X\\nflags : avx2 fma\\n")[0]
    False
    >>> fast_bfloat16(backend="cpu", cpuinfo="model name : X\\nflags : amx_bf16\\n")
    (True, 'X has AMX')
    """
    backend = jax.default_backend() if backend is None else backend
    if backend in ("gpu", "cuda", "rocm", "tpu"):
        return True, f"the {backend.upper()} multiplies bfloat16 in its matrix units"
    if backend != "cpu":
        return False, f"backend {backend!r} is not known to have fast bfloat16 products"
    model, flags = read_cpu(cpuinfo)
    if flags is None:
        return False, f"{model}: its instruction set could not be read (no /proc/cpuinfo)"
    for flag, name in _BF16_CPU_FLAGS.items():
        if flag in flags:
            return True, f"{model} has {name}"
    if "avx512_bf16" in flags:
        return False, (f"{model} has AVX-512 BF16 but no AMX: a bfloat16 training step is "
                       f"slower than float32 there with XLA")
    return False, (f"{model} has no AMX or AVX-512 BF16: bfloat16 products would be "
                   f"emulated, slower than float32")


@functools.cache
def _this_machine() -> tuple[bool, str]:
    # The answer cannot change while the process runs; reading /proc once is enough.
    return fast_bfloat16()


def resolve_precision(precision: str, *, backend: str | None = None,
                      cpuinfo: str | None = None) -> str:
    """``"float32"`` or ``"bfloat16"``: ``precision`` itself, or what ``"auto"`` picks here.

    >>> resolve_precision("bfloat16")
    'bfloat16'
    >>> resolve_precision("auto", backend="cpu", cpuinfo="model name : X\\nflags : avx2\\n")
    'float32'
    """
    check_precision(precision)
    if precision != "auto":
        return precision
    if backend is None and cpuinfo is None:
        fast, _ = _this_machine()
    else:
        fast, _ = fast_bfloat16(backend=backend, cpuinfo=cpuinfo)
    return "bfloat16" if fast else "float32"


def describe_precision(precision: str, **machine) -> str:
    """One line for the start of a run: what ``precision`` means here, and why for ``auto``.

    >>> describe_precision("float32")
    'precision float32: every product and sum in float32'
    """
    resolved = resolve_precision(precision, **machine)
    if resolved == "float32":
        text = "precision float32: every product and sum in float32"
    else:
        text = ("precision bfloat16 (mixed): products with bfloat16 inputs and float32 sums; "
                "parameters, softmax, layer norm, loss and optimizer in float32")
    if precision == "auto":
        _, reason = (_this_machine() if not machine else fast_bfloat16(**machine))
        text += f" (auto: {reason})"
    return text


def matmul_dtypes(precision: str) -> dict:
    """Keyword arguments for ``nnx.Linear`` / ``nnx.Einsum``: the inputs' dtype of a product
    and its accumulation dtype. float32: ``{"dtype": None, "preferred_element_type": None}``
    (follow the parameters); bfloat16: bfloat16 inputs, float32 accumulation and output.
    """
    if resolve_precision(precision) == "bfloat16":
        return {"dtype": jnp.bfloat16, "preferred_element_type": jnp.float32}
    return {"dtype": None, "preferred_element_type": None}


def mixed_einsum(subscripts: str, *operands: Array, dtype=None) -> Array:
    """``jnp.einsum`` with its operands cast to ``dtype`` (None: as they are) and a float32
    (or wider) result: the rule of :func:`matmul_dtypes` for a product written by hand.

    >>> a = jnp.ones((2, 3)); b = jnp.ones((4, 3))
    >>> mixed_einsum("ij,kj->ik", a, b, dtype=jnp.bfloat16).dtype
    dtype('float32')
    """
    if dtype is None:
        return jnp.einsum(subscripts, *operands)
    result = jnp.promote_types(jnp.result_type(*operands), jnp.float32)
    cast = [jnp.asarray(x).astype(dtype) for x in operands]
    return jnp.einsum(subscripts, *cast, preferred_element_type=result)
