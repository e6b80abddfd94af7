"""The grader at class scale: wall time, cost per check and workers started.

A class of ``--students`` copies of the model solutions (one .py per student with every
exercise chosen) is graded by the real grader (``grade_folder``: canary, sandbox, one worker
per student and exercise); the table gives the wall time, the seconds per check, the workers
started and the estimate for a class of 300 x 17 at that rate. ``--sleeper`` adds one student
whose every function sleeps just under ``--timeout``: the class's time with and without them
shows how much one student can slow the class.

    python benchmarks/grading.py --students 4 --exercises dot_product_scores,stable_softmax
    python benchmarks/grading.py --students 300 --jobs 2          # the whole class, hours
"""

from __future__ import annotations

import argparse
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
from attention.exercises import EXERCISES, grade, remote  # noqa: E402
from teachers.solutions import solution_source  # noqa: E402

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
    started_workers = [0]
    enter = remote.WorkerSession.__enter__

    def counting(self):
        started_workers[0] += 1
        return enter(self)

    remote.WorkerSession.__enter__ = counting
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = pathlib.Path(tmp)
            _class(folder, students, exercises, sleeper)
            start = time.monotonic()
            _, grades = grade.grade_folder(folder, exercises=exercises, jobs=jobs,
                                           timeout=timeout)
            seconds = time.monotonic() - start
    finally:
        remote.WorkerSession.__enter__ = enter
    checks = students * len(exercises)
    return {"seconds": seconds, "checks": checks, "workers": started_workers[0],
            "passed": sum(g.score for g in grades if g.student != "sleeper"),
            "per_check": seconds / max(1, started_workers[0])}


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
    print(f"CPU: {cpu_description()}; Python {platform.python_version()}; jobs {args.jobs}")
    rows = [("class", run(args.students, exercises, args.jobs, args.timeout, None))]
    if args.sleeper:
        rows.append(("class + sleeper", run(args.students, exercises, args.jobs,
                                            args.timeout, args.timeout * 0.9)))
    print("| class | checks | workers started | passed | wall s | s per worker | "
          "300 x 17 estimate |")
    print("|---|---|---|---|---|---|---|")
    for label, r in rows:
        estimate = r["per_check"] * 300 * 17 / 3600
        print(f"| {label} | {r['checks']} | {r['workers']} | {r['passed']} | "
              f"{r['seconds']:.1f} | {r['per_check']:.2f} | {estimate:.1f} h |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
