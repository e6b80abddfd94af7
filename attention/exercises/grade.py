"""Grade a folder of submitted exercise notebooks or .py files.

    attention grade FOLDER --out scores.csv [--timeout 120] [--jobs 2] [--sandbox auto]

Students are identified by file name: ``FOLDER/alice.ipynb`` and ``FOLDER/alice.py`` belong to
student ``alice``. A sub-folder is one student too: every ``.ipynb`` and ``.py`` file in
``FOLDER/bob/`` (at any depth) belongs to ``bob``. An exercise is found in a file by the names
it defines (``dot_product_scores`` for "dot-product scores", ...; see
:data:`attention.exercises.EXERCISES`), so file names inside a student's folder do not matter.
Symbolic links are not followed (a link could point at the model solutions).

The verdict is out of the student's reach. This process never runs a student's code: each
(student, exercise) gets its own confined worker (:mod:`attention.exercises.remote`,
:mod:`attention.exercises.sandbox`) that only runs the student's functions on the inputs this
process chooses and sends back raw arrays; the checker compares them here with the package's
own implementation and writes every explanation. Writing a result file, patching NumPy or the
checkers, or printing "[PASS]" in the worker earns nothing. The ``attention`` package (the
answers) cannot be imported in the worker. Every per-submission failure (an unreadable or
truncated notebook, any encoding, a syntax error, a worker that loops, dies or prints garbage)
scores 0 with the reason, and grading goes on.

Output: a table printed to stdout (1 = passed, 0 = not), ``--out`` as CSV with one row per
student (``student``, one column per exercise, ``total``), beside it
``<out stem>_feedback.csv`` with one row per student and exercise (the checker's explanation)
and ``<out stem>_feedback/<student>.md``, a report to hand back to each student. The CSV files
are written atomically, and cells a spreadsheet would read as a formula are neutralised.
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
import re
import sys
import tempfile
import threading

from attention.exercises import sandbox as sandboxes
from attention.exercises.registry import EXERCISES
from attention.exercises.remote import WorkerFailure, WorkerSession
from attention.exercises.sandbox import Reaper, Sandbox
from attention.exercises.worker import BLOCKED_MESSAGE, BLOCKED_PACKAGE, SUBMISSION_MODULE

MAX_FILE_BYTES = 2 << 20
MAX_MESSAGE = 600


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
    """``{student: [files]}``: a file per student (by stem) or a folder per student.

    Symbolic links are skipped, as are files inside linked folders: a submission could link
    to the teacher's model solutions or to any file the teacher can read.
    """
    students: dict[str, list[pathlib.Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_dir():
            files = []
            for root, dirs, names in os.walk(entry):  # os.walk does not follow links
                dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
                for name in sorted(names):
                    path = pathlib.Path(root) / name
                    if path.suffix in (".py", ".ipynb") and not path.is_symlink():
                        files.append(path)
            students.setdefault(entry.name, []).extend(files)
        elif entry.suffix in (".py", ".ipynb"):
            students.setdefault(entry.stem, []).append(entry)
    return students


def submission_code(path: pathlib.Path) -> str:
    """The Python code of a .py file, or the code cells of a notebook (IPython magics dropped)."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"the file is over {MAX_FILE_BYTES >> 20} MiB")
    # Bytes that are not UTF-8 (a Latin-1 file from an old editor) are replaced, not fatal:
    # they sit in strings and comments, and the code still runs.
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".ipynb":
        notebook = json.loads(text)
        if not isinstance(notebook, dict) or not isinstance(notebook.get("cells", []), list):
            raise ValueError("the notebook is not a JSON object with a list of cells")
        cells = []
        for cell in notebook.get("cells", []):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            source = cell.get("source", "")
            source = "".join(map(str, source)) if isinstance(source, list) else str(source)
            lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
            cells.append("\n".join(lines))
        return "\n\n".join(cells) + "\n"
    return text


def defined_names(code: str) -> set[str]:
    """Top-level names a piece of code defines (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
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


_AST_LOCK = threading.Lock()  # CPython's parser is not safe in threads (gh-106905)


def _imports_the_package(code: str) -> bool:
    try:
        with _AST_LOCK:
            tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(n.split(".")[0] == BLOCKED_PACKAGE for n in names):
            return True
    return False


def run_check(code: str, exercise: str, *, timeout: float, sandbox: Sandbox,
              reaper: Reaper | None = None, startup_timeout: float = 300.0
              ) -> tuple[bool, str, str]:
    """(passed, status, message) for one exercise of one submission.

    The submission runs in a confined worker (:class:`~attention.exercises.remote.
    WorkerSession`); the exercise's checker runs here, on the inputs it chooses, and compares
    what the worker sends back with the package's own implementation.
    """
    ex = EXERCISES[exercise]
    note = f" Note: {BLOCKED_MESSAGE}." if _imports_the_package(code) else ""
    try:
        with WorkerSession(code, sandbox=sandbox, timeout=timeout, reaper=reaper,
                           startup_timeout=startup_timeout) as worker:
            if worker.syntax_error:
                return False, "failed", (
                    f"the submission has a syntax error at {worker.syntax_error}.")
            loading = f" (while loading: {worker.problems[0]})" if worker.problems else ""
            if BLOCKED_MESSAGE in " ".join(worker.problems):
                note = f" Note: {BLOCKED_MESSAGE}."
                loading = "" if loading.find(BLOCKED_MESSAGE) >= 0 else loading
            missing = [n for n in ex.names if n not in worker.defined and n not in ex.optional]
            if missing:
                return False, "not implemented", (
                    f"not submitted: {', '.join(missing)} not defined.{loading}{note}")
            for name in ex.names:
                module = worker.module_of(name)
                if name in worker.defined and module not in ("", SUBMISSION_MODULE):
                    return False, "failed", (
                        f"`{name}` is imported from {module}, not written in the submission.")
            result = ex.check(*(worker.value(n) for n in ex.names))
    except WorkerFailure as failure:
        return False, failure.status, failure.message
    message = result.message
    if not result.passed and result.status == "not implemented":
        message += loading
    return result.passed, result.status, message + ("" if result.passed else note)


# ----------------------------------------------------------------------------- grading a folder


def grade_folder(folder: pathlib.Path, *, exercises: list[str] | None = None,
                 timeout: float = 120.0, jobs: int = 1, sandbox: Sandbox | str = "auto",
                 hide: tuple[os.PathLike | str, ...] = ()) -> tuple[list[str], list[Grade]]:
    """Check every student on every exercise; returns (the exercises graded, the grades).

    ``sandbox``: a :class:`~attention.exercises.sandbox.Sandbox`, or ``"auto"``, ``"strict"``,
    ``"none"`` (see :func:`attention.exercises.sandbox.choose`); ``hide``: more folders the
    workers must not see (the output folder). Raises
    :class:`~attention.exercises.sandbox.SandboxUnavailable` for ``"strict"`` without one.
    """
    if isinstance(sandbox, str):
        sandbox = sandboxes.choose(sandbox, hidden=sandboxes.hidden_paths(folder, *hide))
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
            except (OSError, ValueError, AttributeError, TypeError, RecursionError) as e:
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

    # Under bubblewrap the PID namespace takes every process down with the worker; without
    # it the grader adopts and kills orphans.
    reaper = Reaper(adopt_orphans=sandbox.level != sandboxes.BUBBLEWRAP)

    def run(item):
        student, name, (path, code) = item
        try:
            passed, status, message = run_check(code, name, timeout=timeout, sandbox=sandbox,
                                                reaper=reaper)
        except Exception as e:  # never lose the class for one submission
            passed, status, message = False, "crashed", (
                f"the grader could not check this submission ({type(e).__name__}: "
                f"{str(e)[:200]}).")
        return Grade(student, name, int(passed), status, clean_text(message), path.name)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        grades.extend(pool.map(run, work))
    reaper.sweep()
    order = {name: i for i, name in enumerate(exercises)}
    grades.sort(key=lambda g: (g.student, order[g.exercise]))
    return exercises, grades


# ----------------------------------------------------------------------------- writing the results


_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f"
                      r"\u2028-\u202e\u2066-\u2069]")


def clean_text(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` without terminal escape codes or control characters, on one line, capped."""
    text = _CONTROL.sub("", str(text)).replace("\t", " ").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def safe_name(student: str) -> str:
    """A student's name for the terminal and file names: printable, short."""
    name = clean_text(student, 60).strip()
    return name or "(unnamed)"


def spreadsheet_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ or tab starts no formula."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def score_table(exercises: list[str], grades: list[Grade]) -> list[dict[str, str]]:
    """One row per student: ``student``, a 0/1 column per exercise, ``total``."""
    rows: dict[str, dict[str, str]] = {}
    for g in grades:
        row = rows.setdefault(g.student, {"student": g.student})
        row[g.exercise] = str(g.score)
    for row in rows.values():
        row["total"] = str(sum(int(row.get(name, "0")) for name in exercises))
    return [rows[s] for s in sorted(rows)]


def _write_atomically(path: pathlib.Path, write) -> None:
    """Write through a temporary file beside ``path``, then rename: never half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(out: pathlib.Path, exercises: list[str], grades: list[Grade]) -> pathlib.Path:
    """Write the score table to ``out`` and the explanations beside it; returns the latter."""
    out.parent.mkdir(parents=True, exist_ok=True)

    def scores(f):
        writer = csv.DictWriter(f, fieldnames=["student", *exercises, "total"])
        writer.writeheader()
        for row in score_table(exercises, grades):
            writer.writerow({k: spreadsheet_cell(v) for k, v in row.items()})

    def explanations(f):
        writer = csv.writer(f)
        writer.writerow(["student", "exercise", "score", "status", "file", "message"])
        for g in grades:
            writer.writerow([spreadsheet_cell(v) for v in
                             (g.student, g.exercise, g.score, g.status, g.file, g.message)])

    _write_atomically(out, scores)
    feedback = out.with_name(out.stem + "_feedback.csv")
    _write_atomically(feedback, explanations)
    return feedback


def write_reports(folder: pathlib.Path, exercises: list[str], grades: list[Grade]) -> list:
    """One Markdown report per student in ``folder``: each exercise's result and explanation,
    to hand back. Returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    by_student: dict[str, list[Grade]] = {}
    for g in grades:
        by_student.setdefault(g.student, []).append(g)
    written, used = [], set()
    for student, own in sorted(by_student.items()):
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", safe_name(student)).lstrip(".") or "student"
        while stem.lower() in used:
            stem += "_"
        used.add(stem.lower())
        total = sum(g.score for g in own)
        lines = [f"# Feedback for {_markdown(safe_name(student))}", "",
                 f"Score: **{total} / {len(own)}**", "",
                 "| exercise | result | file |", "|---|---|---|"]
        for g in own:
            mark = "passed" if g.score else g.status
            lines.append(f"| {EXERCISES[g.exercise].title} | {mark} | {_markdown(g.file)} |")
        lines.append("")
        for g in own:
            lines += [f"## {EXERCISES[g.exercise].title} (`{g.exercise}`): "
                      f"{'passed' if g.score else g.status}", "", _markdown(g.message), ""]
        path = folder / f"{stem}.md"
        _write_atomically(path, lambda f, text="\n".join(lines): f.write(text))
        written.append(path)
    return written


def _markdown(text: str) -> str:
    """Text shown literally in Markdown: no HTML, links or tables from a student's output."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|])", r"\\\1", str(text))


def format_table(exercises: list[str], grades: list[Grade]) -> str:
    rows = [dict(r, student=safe_name(r["student"])) for r in score_table(exercises, grades)]
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
                        "<stem>_feedback.csv and <stem>_feedback/<student>.md beside it")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds allowed per exercise and student (default 120)")
    parser.add_argument("--exercises", default=None,
                        help="comma-separated exercise names (default: every exercise someone "
                        f"attempted); names: {', '.join(EXERCISES)}")
    parser.add_argument("--jobs", type=int, default=1, help="checks run at once (default 1)")
    parser.add_argument("--sandbox", choices=sandboxes.CHOICES, default="auto",
                        help="auto: the best confinement available (default); strict: refuse "
                        "to grade without a namespace sandbox (bubblewrap); none: process "
                        "limits only (docs/teachers.md)")
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
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}.")
    out = args.out.resolve()
    try:
        sandbox = sandboxes.choose(
            args.sandbox, hidden=sandboxes.hidden_paths(args.folder, out.parent))
    except sandboxes.SandboxUnavailable as e:
        print(f"attention grade: {e}", file=sys.stderr)
        return 2
    print(sandbox.describe())
    exercises, grades = grade_folder(
        args.folder, exercises=exercises, timeout=args.timeout, jobs=args.jobs, sandbox=sandbox
    )
    if not grades:
        print(f"no submissions (.py or .ipynb) found in {args.folder}")
    feedback = write_csv(out, exercises, grades)
    reports = out.with_name(out.stem + "_feedback")
    write_reports(reports, exercises, grades)
    print(format_table(exercises, grades))
    for g in grades:
        if not g.score:
            print(f"- {safe_name(g.student)} / {g.exercise}: {g.message}")
    print(f"scores written to {args.out}, explanations to {feedback} and {reports}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
