"""The grader at class scale: wall time, cost per check, workers started, the 300 x 17 estimate.

A class of ``--students`` copies of the model solutions (one .py per student with every
exercise chosen) is graded by the real grader (``grade_folder``: canary, sandbox, one worker
per student, each exercise loaded in a fresh namespace); the table gives the wall time, the
seconds per check (the canary's checks counted with the class's), the workers started (one
per student unless a check crashed, timed out or changed the worker's state), the time spent
fingerprinting the workers' state between exercises, the CPU, its load, and the estimate for
a class of 300 x 17 at that rate.
``--sleeper`` adds one student whose every function sleeps just under ``--timeout``: the
class's time with and without them shows how much one student can slow the class. The table
is written to ``benchmarks/results/grading.txt``.

    python benchmarks/grading.py --students 4 --exercises dot_product_scores,stable_softmax
    python benchmarks/grading.py --students 300 --jobs 2          # the whole class
"""

from __future__ import annotations

import argparse
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


def _class(folder: pathlib.Path, students: int, exercises: list[str], sleeper: float | None):
    code = "\n\n".join(solution_source(name) for name in exercises)
    for i in range(students):
        (folder / f"student_{i:03d}.py").write_text(code)
    if sleeper:
        (folder / "sleeper.py").write_text("".join(
            SLEEPER.format(name=n, seconds=sleeper) for name in exercises
            for n in EXERCISES[name].names))


def run(students: int, exercises: list[str], jobs: int, timeout: float,
        sleeper: float | None) -> dict:
    """Grade one class; returns the measurements."""
    stats: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        _class(folder, students, exercises, sleeper)
        load_before = os.getloadavg()[0]
        start = time.monotonic()
        _, grades = grade.grade_folder(folder, exercises=exercises, jobs=jobs, timeout=timeout,
                                       stats=stats)
        seconds = time.monotonic() - start
    checks = students * len(exercises)
    graded = checks + len(exercises) + bool(sleeper) * len(exercises)  # canary, sleeper
    return {"seconds": seconds, "checks": checks, "workers": stats["workers"],
            "replaced": len(stats["replaced"]), "state": stats["state_seconds"],
            "passed": sum(g.score for g in grades if g.student != "sleeper"),
            "per_check": seconds / graded, "load": (load_before, os.getloadavg()[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--exercises", default=",".join(EXERCISES),
                        help="comma-separated exercise names (default: all 17)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--sleeper", action="store_true",
                        help="also grade the class with one student sleeping just under "
                        "--timeout in every function")
    args = parser.parse_args(argv)
    exercises = [e for e in args.exercises.split(",") if e]
    unknown = [e for e in exercises if e not in EXERCISES]
    if unknown or args.students < 1 or args.jobs < 1:
        parser.error(f"--exercises must name exercises of {list(EXERCISES)} (unknown: "
                     f"{unknown}), --students and --jobs at least 1.")
    rows = [("class", run(args.students, exercises, args.jobs, args.timeout, None))]
    if args.sleeper:
        rows.append(("class + sleeper", run(args.students, exercises, args.jobs,
                                            args.timeout, args.timeout * 0.9)))
    lines = [
        "The exercise grader at class scale: copies of the model solutions, one worker per "
        "student (canary included)",
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"CPU: {cpu_description()}; {os.cpu_count()} cores; Python "
        f"{platform.python_version()}; jobs {args.jobs}; {len(exercises)} exercises",
        "",
        "| class | checks | workers started | replaced | passed | wall s | "
        "s per check (canary's too) | "
        "fingerprints s | load 1 min (start, end) | 300 x 17 estimate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        estimate = r["per_check"] * (300 + 1) * 17 / 60  # (+1: the canary)
        lines.append(
            f"| {label} | {r['checks']} | {r['workers']} | {r['replaced']} | {r['passed']} | "
            f"{r['seconds']:.1f} | {r['per_check']:.2f} | {r['state']:.1f} | "
            f"{r['load'][0]:.1f}, {r['load'][1]:.1f} | {estimate:.0f} min |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
