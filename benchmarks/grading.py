"""The grader at class scale: wall time, cost per check, workers started, the 300 x 17 estimate.

A class of ``--students`` copies of the model solutions (one .py per student with every
exercise chosen) is graded by the real grader (``grade_folder``: canary, sandbox, one worker
per student, each exercise loaded in a fresh namespace); the table gives the wall time, the
seconds per check (the canary's checks counted with the class's), the workers started (one
per student unless a check crashed, timed out or changed the worker's state), the time spent
fingerprinting the workers' state between exercises, the CPU, its load, and the estimate for
a class of 300 x 17 at that rate (the canary's time, paid once, plus 300 students at the
students' rate: with the shared compilation cache a model solution's programs are compiled by
the canary only). ``--variant changed`` grades honest solutions that are not the model's
programs (every floating-point array argument of every function multiplied by 1.0 first:
the same values, another XLA program, so no program of theirs is in the canary's cache: the worst
case for the cache); ``--no-cache`` grades without the shared cache.
``--sleeper`` adds one student whose every function sleeps just under ``--timeout``: the
class's time with and without them shows how much one student can slow the class. The table
is written to ``benchmarks/results/grading.txt``.

    python benchmarks/grading.py --students 4 --exercises dot_product_scores,stable_softmax
    python benchmarks/grading.py --students 300 --jobs 2          # the whole class
    python benchmarks/grading.py --students 4 --variant changed --no-cache   # compare
"""

from __future__ import annotations

import argparse
import ast
import datetime
import os
import pathlib
import platform
import sys
import tempfile
import time

# benchmarks/attention.py would shadow the `attention` package when this runs as a script.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))  # teachers/, for the model solutions

from attention._machine import cpu_description  # noqa: E402
from attention.exercises import EXERCISES, grade  # noqa: E402
from teachers.solutions import solution_source  # noqa: E402

RESULTS = _HERE / "results" / "grading.txt"
SLEEPER = '''
import time

def {name}(*args, **kwargs):
    time.sleep({seconds})
'''


BARRIER = ("{names}, = [a * 1.0 if isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, "
           "jnp.floating) else a for a in ({names},)]")


def changed(code: str) -> str:
    """``code`` with every floating-point array argument of every top-level function
    multiplied by 1.0 first: the same values, another XLA program."""
    tree = ast.parse(code)
    for node in tree.body:
        names = [a.arg for a in node.args.args] if isinstance(node, ast.FunctionDef) else []
        if names:
            line = ast.parse(BARRIER.format(names=", ".join(names))).body
            docstring = ast.get_docstring(node) is not None
            node.body[docstring:docstring] = line
    return "import jax\nimport jax.numpy as jnp\n\n" + ast.unparse(tree) + "\n"


def _class(folder: pathlib.Path, students: int, exercises: list[str], sleeper: float | None,
           variant: str = "model"):
    code = "\n\n".join(solution_source(name) for name in exercises)
    if variant == "changed":
        code = changed(code)
    for i in range(students):
        (folder / f"student_{i:03d}.py").write_text(code)
    if sleeper:
        (folder / "sleeper.py").write_text("".join(
            SLEEPER.format(name=n, seconds=sleeper) for name in exercises
            for n in EXERCISES[name].names))


def run(students: int, exercises: list[str], jobs: int, timeout: float,
        sleeper: float | None, variant: str = "model", cache: bool = True) -> dict:
    """Grade one class; returns the measurements."""
    stats: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        _class(folder, students, exercises, sleeper, variant)
        load_before = os.getloadavg()[0]
        start = time.monotonic()
        _, grades = grade.grade_folder(folder, exercises=exercises, jobs=jobs, timeout=timeout,
                                       stats=stats, compilation_cache=cache)
        seconds = time.monotonic() - start
    checks = students * len(exercises)
    graded = checks + bool(sleeper) * len(exercises)  # the sleeper's too
    class_seconds = seconds - stats["canary_seconds"]
    return {"seconds": seconds, "checks": checks, "workers": stats["workers"],
            "replaced": len(stats["replaced"]), "state": stats["state_seconds"],
            "passed": sum(g.score for g in grades if g.student != "sleeper"),
            "canary": stats["canary_seconds"], "cached": stats["cached"],
            "per_check": class_seconds / graded, "load": (load_before, os.getloadavg()[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--exercises", default=",".join(EXERCISES),
                        help="comma-separated exercise names (default: all 17)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--variant", choices=("model", "changed"), default="model",
                        help="model: copies of the model solutions; changed: honest "
                        "solutions that compile to other programs")
    parser.add_argument("--no-cache", action="store_true",
                        help="without the compilation cache the canary fills for the class")
    parser.add_argument("--sleeper", action="store_true",
                        help="also grade the class with one student sleeping just under "
                        "--timeout in every function")
    parser.add_argument("--append", action="store_true",
                        help="add the rows to the table already in the results file")
    args = parser.parse_args(argv)
    exercises = [e for e in args.exercises.split(",") if e]
    unknown = [e for e in exercises if e not in EXERCISES]
    if unknown or args.students < 1 or args.jobs < 1:
        parser.error(f"--exercises must name exercises of {list(EXERCISES)} (unknown: "
                     f"{unknown}), --students and --jobs at least 1.")
    label = f"{args.variant}, {'no cache' if args.no_cache else 'shared cache'}"
    rows = [(label, run(args.students, exercises, args.jobs, args.timeout, None,
                        args.variant, not args.no_cache))]
    if args.sleeper:
        rows.append((label + " + sleeper", run(args.students, exercises, args.jobs,
                                               args.timeout, args.timeout * 0.9,
                                               args.variant, not args.no_cache)))
    lines = [
        "The exercise grader at class scale: copies of the model solutions, one worker per "
        "student (canary included)",
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"CPU: {cpu_description()}; {os.cpu_count()} cores; Python "
        f"{platform.python_version()}; jobs {args.jobs}; {len(exercises)} exercises",
        "",
        "| class | checks | workers started | replaced | passed | wall s | canary s | "
        "programs cached | s per student check | fingerprints s | load 1 min (start, end) | "
        "300 x 17 estimate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        # the canary once (17 exercises at its measured rate), then 300 students
        estimate = (r["canary"] * 17 / len(exercises) + r["per_check"] * 300 * 17) / 60
        lines.append(
            f"| {label} | {r['checks']} | {r['workers']} | {r['replaced']} | {r['passed']} | "
            f"{r['seconds']:.1f} | {r['canary']:.1f} | {r['cached']} | {r['per_check']:.2f} | "
            f"{r['state']:.1f} | {r['load'][0]:.1f}, {r['load'][1]:.1f} | {estimate:.0f} min |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    RESULTS.parent.mkdir(exist_ok=True)
    if args.append and RESULTS.exists():  # another row under the same header
        text = RESULTS.read_text() + "\n".join(lines[6:]) + "\n"
    RESULTS.write_text(text)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
