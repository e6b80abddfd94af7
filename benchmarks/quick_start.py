"""The quick start, timed as a student meets it: ``attention train`` with no arguments.

The README's first command after the install is ``attention train``: it trains the default
model on the synthetic ``svo_to_sov`` pair, translates the test sentences and writes
``runs/svo_to_sov/``. This script runs exactly that (``python -m attention train``, the same
program) in a subprocess, in a fresh empty folder, with a fresh empty compilation cache
(``ATTENTION_COMPILATION_CACHE``), and times the whole process: interpreter start, imports,
data, compilation, training, the final translations, the figures and the checkpoints. Then it
runs it again in another fresh folder with the cache the first run filled: what a student who
re-runs the command waits.

Both at the machine's own instruction set and at AVX2 (``XLA_FLAGS=--xla_cpu_max_isa=AVX2``,
the path of most laptops: Intel consumer chips since Alder Lake, AMD before Zen 4); where the
CPU has nothing past AVX2 the native rows are skipped (they would be the same program). Goal
(issue 33): at most 60 s of wall time on 2 cores, compilation included, and at least 95% test
exact match on every machine.

Each row: wall seconds (what the user waits), the CPU seconds of the process (user + system:
what a busy machine inflates less than the wall time), the training loop's seconds and the
part of them spent compiling (the summary line of ``metrics.jsonl``), the whole command's
compile seconds (its last line), the test exact match, and the load average before the run
(other work on the machine slows every figure; the CPU's features are in the header).

    python benchmarks/quick_start.py [--isa native avx2] [--no-warm] [--out FILE]

Prints the table and writes it to benchmarks/results/quick_start.txt.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import resource
import subprocess
import sys
import tempfile
import time

# benchmarks/attention.py would shadow the package: take this folder off the import path.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

from attention._machine import cpu_description, read_cpu  # noqa: E402

RESULTS = _HERE / "results" / "quick_start.txt"
COMMAND = ("attention", "train")
GOAL_SECONDS, GOAL_EXACT_MATCH = 60.0, 0.95
AVX2_FLAG = "--xla_cpu_max_isa=AVX2"


def xla_flags(isa: str) -> str:
    """``XLA_FLAGS`` for ``isa``: the caller's flags without any ISA limit, plus AVX2's."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_cpu_max_isa")]
    return " ".join([*flags, AVX2_FLAG] if isa == "avx2" else flags)


def run_quick_start(isa: str, cache: pathlib.Path, folder: pathlib.Path) -> dict:
    """``python -m attention train`` in ``folder`` with the compilation cache ``cache``."""
    folder.mkdir(parents=True)
    env = dict(os.environ, ATTENTION_COMPILATION_CACHE=str(cache), XLA_FLAGS=xla_flags(isa))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # it would win over ours
    # The package, wherever this checkout is, also when it is not installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_HERE.parent),
                                                      env.get("PYTHONPATH")]))
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *COMMAND], cwd=folder, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(COMMAND)} failed ({done.returncode}):\n{done.stderr}")
    out = done.stdout
    metrics = (folder / "runs" / "svo_to_sov" / "metrics.jsonl").read_text().splitlines()
    summary = json.loads(metrics[-1])
    return {
        "wall": wall, "cpu": cpu, "training": summary["training_seconds"],
        "training_compile": summary["compile_seconds"],
        "compile": float(re.search(r"of which ([\d.]+) s compiling", out).group(1)),
        "exact_match": float(re.search(r"exact match on \d+ sentences: ([\d.]+)%", out)
                             .group(1)) / 100,
        "steps": summary["step"], "load": load,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", nargs="+", choices=("native", "avx2"),
                        default=["avx2", "native"])
    parser.add_argument("--no-warm", action="store_true",
                        help="only the cold-cache runs, not the second run of each")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)

    _, flags = read_cpu()
    beyond_avx2 = flags is None or bool(flags & {"avx512f", "amx_tile"})
    notes = []
    isas = list(args.isa)
    if "native" in isas and not beyond_avx2:
        isas.remove("native")
        notes.append("native rows skipped: this CPU has no AVX-512 or AMX, so its own "
                     "instruction set is AVX2 (the avx2 rows)")
    import jax

    header = [
        f"# benchmarks/quick_start.py, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"# command: {' '.join(COMMAND)} (python -m attention train), a fresh folder each run",
        f"# cpu: {cpu_description()}; {os.cpu_count()} cores; jax {jax.__version__}",
        f"# XLA_FLAGS of the caller: {os.environ.get('XLA_FLAGS', '') or '(none)'}",
        f"# goal: wall <= {GOAL_SECONDS:.0f} s on 2 cores, exact match >= "
        f"{GOAL_EXACT_MATCH:.0%}",
    ] + [f"# {note}" for note in notes]
    for line in header:
        print(line, flush=True)
    columns = ("isa", "cache", "wall s", "cpu s", "training s", "training compile s",
               "compile s", "exact match", "load avg", "goal")
    rows = []
    with tempfile.TemporaryDirectory(prefix="quick_start_") as tmp:
        for isa in isas:
            cache = pathlib.Path(tmp) / f"cache_{isa}"
            cache.mkdir()
            for kind in ("cold", "warm")[: 1 if args.no_warm else 2]:
                r = run_quick_start(isa, cache, pathlib.Path(tmp) / f"{isa}_{kind}")
                met = r["wall"] <= GOAL_SECONDS and r["exact_match"] >= GOAL_EXACT_MATCH
                rows.append((isa, kind, f"{r['wall']:.1f}", f"{r['cpu']:.1f}",
                             f"{r['training']:.1f}", f"{r['training_compile']:.1f}",
                             f"{r['compile']:.1f}", f"{r['exact_match']:.1%}",
                             f"{r['load']:.2f}", "met" if met else "missed"))
                print(" | ".join(rows[-1]), flush=True)
                _write(args.out, header, columns, rows)  # after each row: a long run keeps them
    print(f"wrote {args.out}")
    return 0


def _write(path: pathlib.Path, header: list[str], columns, rows) -> None:
    table = [" | ".join(columns), " | ".join("---" for _ in columns)]
    table += [" | ".join(row) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*header, "", *table]) + "\n")


if __name__ == "__main__":
    sys.exit(main())
