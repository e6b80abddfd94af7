"""What the CPU can do fast: its model and the vector extensions that set the matmul peaks.

The benchmarks print this beside every figure (machines differ from run to run: an AMD EPYC
with AVX-512 BF16 one time, an Intel Xeon with AMX the next), so that a ratio is read with the
hardware that produced it.
"""

from __future__ import annotations

import pathlib
import platform

# The /proc/cpuinfo flags that decide the fast paths: float32 FMA, bfloat16 and int8 products.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile",
             "amx_bf16", "amx_int8")


def read_cpu(cpuinfo: str | None = None) -> tuple[str, set[str] | None]:
    """``(model name, set of flags)`` of this CPU, or of ``cpuinfo`` (the text of
    ``/proc/cpuinfo``); the flags are None where there is no such file (macOS, Windows)."""
    if cpuinfo is None:
        try:
            cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
        except OSError:
            return platform.processor() or platform.machine(), None
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name":
            model = value.strip()
        elif name.strip() == "flags":
            flags = set(value.split())
    return model, flags


def cpu_description(cpuinfo: str | None = None) -> str:
    """``"<model name>: avx2 yes, fma yes, ..., amx_int8 no"`` for the flags in ``CPU_FLAGS``.

    Args:
      cpuinfo: the text of ``/proc/cpuinfo`` (default: read it; where there is none, as on
        macOS or Windows, the model comes from ``platform`` and the flags are "unknown").

    >>> cpu_description("model name : Toy CPU\\nflags : fpu avx2 fma\\n")[:38]
    'Toy CPU: avx2 yes, fma yes, avx512f no'
    """
    model, flags = read_cpu(cpuinfo)
    if flags is None:
        return f"{model}: flags unknown (no /proc/cpuinfo)"
    return f"{model}: " + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in CPU_FLAGS)
