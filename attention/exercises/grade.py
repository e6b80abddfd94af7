"""Grade a folder of submitted exercise notebooks or .py files.

    python -m attention.exercises.grade FOLDER --out scores.csv [--timeout 120] [--jobs 2]

Students are identified by file name: ``FOLDER/alice.ipynb`` and ``FOLDER/alice.py`` belong to
student ``alice``. A sub-folder is one student too: every ``.ipynb`` and ``.py`` file in
``FOLDER/bob/`` (at any depth) belongs to ``bob``. An exercise is found in a file by the names
it defines (``dot_product_scores`` for "dot-product scores", ...; see
:data:`attention.exercises.EXERCISES`), so file names inside a student's folder do not matter.

Each (student, exercise) is checked in its own subprocess, in a fresh temporary folder holding
a copy of the submission's code (the teacher's files are never opened for writing), with a time
limit per exercise that starts once JAX is imported. A submission that loops forever, raises,
or does not define the exercise scores 0 for that exercise, with the reason; grading goes on.
This isolates submissions from the teacher's files and from each other, but it is not a
security sandbox: run untrusted code in a container.

Output: a table printed to stdout (1 = passed, 0 = not), ``--out`` as CSV with one row per
student (``student``, one column per exercise, ``total``), and beside it
``<out stem>_feedback.csv`` with one row per student and exercise: the checker's explanation.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import csv
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

from attention.exercises.registry import EXERCISES

_PACKAGE_PARENT = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Grade:
    student: str
    exercise: str
    score: int
    status: str  # passed, failed, not implemented, not submitted, timed out, crashed
    message: str
    file: str


# ----------------------------------------------------------------------------- finding work


def find_submissions(folder: pathlib.Path) -> dict[str, list[pathlib.Path]]:
    """``{student: [files]}``: a file per student (by stem) or a folder per student."""
    students: dict[str, list[pathlib.Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = sorted(
                p for p in entry.rglob("*")
                if p.suffix in (".py", ".ipynb") and ".ipynb_checkpoints" not in p.parts
            )
            students.setdefault(entry.name, []).extend(files)
        elif entry.suffix in (".py", ".ipynb"):
            students.setdefault(entry.stem, []).append(entry)
    return students


def submission_code(path: pathlib.Path) -> str:
    """The Python code of a .py file, or the code cells of a notebook (IPython magics dropped)."""
    # Bytes that are not UTF-8 (a Latin-1 file from an old editor) are replaced, not fatal:
    # they sit in strings and comments, and the code still runs.
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".ipynb":
        notebook = json.loads(text)
        if not isinstance(notebook, dict):
            raise ValueError("the notebook is not a JSON object")
        cells = []
        for cell in notebook.get("cells", []):
            if cell.get("cell_type") != "code":
                continue
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
            cells.append("\n".join(lines))
        return "\n\n".join(cells) + "\n"
    return text


def defined_names(code: str) -> set[str]:
    """Top-level names a piece of code defines (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):  # imported, still "defined"
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _attempts(code: str, exercise) -> bool:
    required = [n for n in exercise.names if n not in exercise.optional]
    return all(n in defined_names(code) for n in required)


# ----------------------------------------------------------------------------- running one check


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def run_check(code: str, exercise: str, *, timeout: float, startup_timeout: float = 300.0,
              python: str = sys.executable, cache_dir: str | None = None
              ) -> tuple[bool, str, str]:
    """(passed, status, message) for one exercise of one submission, in a subprocess.

    ``cache_dir``: a JAX compilation cache shared by the checks of one grading run, so that
    the package's reference programs (and identical student programs) compile once per class.
    """
    with tempfile.TemporaryDirectory(prefix="attention-grade-") as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "submission.py").write_text(code, encoding="utf-8")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(_PACKAGE_PARENT)] + [p for p in [env.get("PYTHONPATH")] if p]
        )
        env.setdefault("JAX_PLATFORMS", "cpu")
        if cache_dir is not None:
            env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
            env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
        with open(tmp / "output.txt", "wb") as output:
            process = subprocess.Popen(
                [python, "-m", "attention.exercises._run_submission", "submission.py", exercise,
                 "result.json", "ready"],
                cwd=tmp, env=env, stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
            started = time.monotonic()
            while not (tmp / "ready").exists() and process.poll() is None:
                if time.monotonic() - started > startup_timeout:
                    _kill(process)
                    message = f"the checker did not start within {startup_timeout:g} s."
                    return False, "crashed", message
                time.sleep(0.05)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(process)
                return False, "timed out", (
                    f"timed out: the check did not finish within {timeout:g} s (an endless "
                    f"loop, or a very slow function?)."
                )
        result_file = tmp / "result.json"
        if not result_file.exists():
            tail = (tmp / "output.txt").read_text(errors="replace").strip().splitlines()[-1:]
            return False, "crashed", (
                f"the check stopped without a result (exit code {process.returncode})"
                + (f": {tail[0]}" if tail else ".")
            )
        try:
            result = json.loads(result_file.read_text(errors="replace"))
            return bool(result["passed"]), str(result["status"]), str(result["message"])
        except (ValueError, KeyError, TypeError):
            return False, "crashed", "the check left a result file that could not be read."


# ----------------------------------------------------------------------------- grading a folder


def grade_folder(folder: pathlib.Path, *, exercises: list[str] | None = None,
                 timeout: float = 120.0, jobs: int = 1) -> tuple[list[str], list[Grade]]:
    """Check every student on every exercise; returns (the exercises graded, the grades)."""
    students = find_submissions(folder)
    # A file that cannot be read (a truncated notebook) scores 0 with the reason; the others,
    # and every other student, are graded as usual.
    codes: dict[str, list] = {}
    unreadable: dict[str, list[str]] = {}
    for student, files in students.items():
        codes[student] = []
        for path in files:
            try:
                codes[student].append((path, submission_code(path)))
            except (OSError, ValueError, AttributeError, TypeError) as e:
                unreadable.setdefault(student, []).append(
                    f"{path.name} could not be read ({type(e).__name__}: {str(e)[:120]})")
    if exercises is None:  # every exercise that someone attempted, in teaching order
        exercises = [
            name for name, ex in EXERCISES.items()
            if any(_attempts(code, ex) for files in codes.values() for _, code in files)
        ]
    work, grades = [], []
    for student, files in codes.items():
        for name in exercises:
            found = [(path, code) for path, code in files if _attempts(code, EXERCISES[name])]
            if not found:
                reasons = "".join(f" {r}." for r in unreadable.get(student, []))
                grades.append(Grade(student, name, 0, "not submitted",
                                    "not submitted: no file defines "
                                    + ", ".join(EXERCISES[name].names) + "." + reasons, ""))
            else:
                work.append((student, name, found[0]))

    with tempfile.TemporaryDirectory(prefix="attention-grade-cache-") as cache_dir:

        def run(item):
            student, name, (path, code) = item
            passed, status, message = run_check(code, name, timeout=timeout, cache_dir=cache_dir)
            return Grade(student, name, int(passed), status, message, path.name)

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            grades.extend(pool.map(run, work))
    order = {name: i for i, name in enumerate(exercises)}
    grades.sort(key=lambda g: (g.student, order[g.exercise]))
    return exercises, grades


def score_table(exercises: list[str], grades: list[Grade]) -> list[dict[str, str]]:
    """One row per student: ``student``, a 0/1 column per exercise, ``total``."""
    rows: dict[str, dict[str, str]] = {}
    for g in grades:
        row = rows.setdefault(g.student, {"student": g.student})
        row[g.exercise] = str(g.score)
    for row in rows.values():
        row["total"] = str(sum(int(row.get(name, "0")) for name in exercises))
    return [rows[s] for s in sorted(rows)]


def write_csv(out: pathlib.Path, exercises: list[str], grades: list[Grade]) -> pathlib.Path:
    """Write the score table to ``out`` and the explanations beside it; returns the latter."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["student", *exercises, "total"])
        writer.writeheader()
        writer.writerows(score_table(exercises, grades))
    feedback = out.with_name(out.stem + "_feedback.csv")
    with open(feedback, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "exercise", "score", "status", "file", "message"])
        for g in grades:
            writer.writerow([g.student, g.exercise, g.score, g.status, g.file, g.message])
    return feedback


def format_table(exercises: list[str], grades: list[Grade]) -> str:
    rows = score_table(exercises, grades)
    header = ["student", *exercises, "total"]
    widths = [max(len(h), *(len(r.get(h, "")) for r in rows)) if rows else len(h) for h in header]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    for r in rows:
        lines.append("  ".join(r.get(h, "").ljust(w) for h, w in zip(header, widths, strict=True)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``attention grade FOLDER --out scores.csv``: the command line. Returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="attention grade",
        description="Grade a folder of exercise submissions (.ipynb or .py; one file or one "
        "sub-folder per student) and write a score table as CSV.",
    )
    parser.add_argument("folder", type=pathlib.Path, help="folder of submissions")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("scores.csv"),
                        help="CSV of scores (default scores.csv); explanations go to "
                        "<stem>_feedback.csv beside it")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds allowed per exercise and student (default 120)")
    parser.add_argument("--exercises", default=None,
                        help="comma-separated exercise names (default: every exercise someone "
                        f"attempted); names: {', '.join(EXERCISES)}")
    parser.add_argument("--jobs", type=int, default=1, help="checks run at once (default 1)")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"FOLDER must be a folder of submissions, got {str(args.folder)!r}.")
    exercises = None
    if args.exercises:
        exercises = [e.strip() for e in args.exercises.split(",") if e.strip()]
        unknown = [e for e in exercises if e not in EXERCISES]
        if unknown:
            parser.error(f"unknown exercise(s) {unknown}; choose among {list(EXERCISES)}.")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}.")
    exercises, grades = grade_folder(
        args.folder, exercises=exercises, timeout=args.timeout, jobs=args.jobs
    )
    if not grades:
        print(f"no submissions (.py or .ipynb) found in {args.folder}")
    feedback = write_csv(args.out, exercises, grades)
    print(format_table(exercises, grades))
    for g in grades:
        if not g.score:
            print(f"- {g.student} / {g.exercise}: {g.message}")
    print(f"scores written to {args.out}, explanations to {feedback}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
