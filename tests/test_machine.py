"""The CPU description the benchmarks print beside their figures."""

from attention._machine import CPU_FLAGS, cpu_description

EPYC = """processor : 0
model name : AMD EPYC 9B14
flags : fpu sse avx2 fma avx512f avx512_bf16 avx512_vnni
processor : 1
model name : AMD EPYC 9B14
flags : fpu sse avx2 fma avx512f avx512_bf16 avx512_vnni
"""


def test_every_flag_is_reported_yes_or_no_after_the_model():
    text = cpu_description(EPYC)
    model, _, flags = text.partition(": ")
    assert model == "AMD EPYC 9B14"
    reported = dict(item.split(" ") for item in flags.split(", "))
    assert list(reported) == list(CPU_FLAGS)
    have = {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"}
    assert reported == {f: "yes" if f in have else "no" for f in CPU_FLAGS}


def test_this_machine_is_described():
    assert all(f in cpu_description() for f in CPU_FLAGS)
