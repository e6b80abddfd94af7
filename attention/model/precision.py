"""Step 10a: mixed precision, matrix products in bfloat16 and everything else in float32.

A transformer spends nearly all its arithmetic in matrix products (the projections, the
feed-forward network, the output layer), and most CPUs and every recent accelerator multiply
bfloat16 numbers several times faster than float32 ones: AMX tiles and AVX-512 BF16 on x86
CPUs, tensor cores on GPUs, the MXU on TPUs. bfloat16 keeps float32's exponent (the same
range: no overflow, no loss scaling) but only 8 bits of mantissa, about 3 significant digits.
That is plenty for one *input* of a product and far too little for a running *sum*, for a
softmax's exponentials, a layer norm's variance, or an optimizer's small updates to a large
weight. So mixed precision, as the JAX ecosystem does it (Flax's ``dtype`` /
``param_dtype``, jmp's policies; Micikevicius et al. 2018 for float16), splits the work:

* **parameters and optimizer state stay float32**: an update of 1e-4 to a weight of 1 would
  vanish in bfloat16, whose spacing near 1 is 2^-7;
* **each matrix product gets bfloat16 inputs and accumulates in float32**
  (``preferred_element_type=jnp.float32``): the hardware's fast path. A product that is
  bfloat16 in *and out* also rounds every partial sum, and on CPUs it is often slower, not
  faster (XLA converts back and forth around it);
* **softmax, layer norm, the loss and the residual stream stay float32**: they are cheap
  next to the products and they are where rounding would hurt.

:func:`resolve_precision` turns the setting ``"float32"``, ``"bfloat16"`` or ``"auto"`` into
one of the first two. ``"auto"`` picks bfloat16 where mixed precision makes training faster:
a GPU or TPU, or a CPU with AMX (Intel's matrix tiles, several times float32's matmul rate).
Elsewhere it picks float32, and that includes CPUs with AVX-512 BF16 alone (AMD Zen 4, Intel
Cooper Lake). On those, a bfloat16 product with float32 accumulation runs at about twice
float32's rate. But XLA's CPU backend widens bfloat16 operands back to float32 for the
transposed products of the backward pass, and the conversions are extra passes over memory.
So the whole training step came out *slower*: measured on an AMD EPYC, 0.92x float32's
speed (``benchmarks/results/train_throughput.txt``). Without any bfloat16 instructions it
would be emulated, slower still. :func:`describe_precision` says which was
taken and why; every training run prints it. :func:`matmul_dtypes` is what a layer receives
(``nnx.Linear(..., **matmul_dtypes("bfloat16"))``), and :func:`mixed_einsum` is the same
rule for a product written by hand (the output layer, the loss).

``benchmarks/train_throughput.py`` measures both precisions against each other and against
the matmul peak of each.
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
