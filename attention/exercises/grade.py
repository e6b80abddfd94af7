"""Grade a folder of submitted exercise notebooks or .py files.

    attention grade FOLDER --out scores.csv [--timeout 120] [--jobs 2] [--sandbox auto]
                    [--canary PATH] [--seed N] [--gradescope RESULTS_JSON]
                    [--roster CSV --id-column NAME]

Students are identified by file name: ``FOLDER/alice.ipynb`` and ``FOLDER/alice.py`` belong to
student ``alice``. A sub-folder is one student too: every ``.ipynb`` and ``.py`` file in
``FOLDER/bob/`` (at any depth) belongs to ``bob``. An exercise is found in a file by the names
it defines (``dot_product_scores`` for "dot-product scores", ...; see
:data:`attention.exercises.EXERCISES`), so file names inside a student's folder do not matter.
Only regular files with one name are read: symbolic and hard links (they could be the model
solutions), FIFOs and devices are refused with the reason, never opened.

Before anyone is graded, the model solution of each exercise goes through the same sandbox
and worker (the canary); if one fails, :class:`SetupError` says why and nothing is scored
(exit status 2). The checkers' inputs come from a secret seed drawn for each run.

The verdict is out of the student's reach. This process never runs a student's code: each
student gets a confined worker of their own (:mod:`attention.exercises.remote`,
:mod:`attention.exercises.sandbox`), started once and replaced after a crash, a timeout or any
change an exercise made to its interpreter, which loads each exercise's code in a fresh
namespace, only runs the student's functions on the inputs this process chooses and sends
back raw arrays; the checker compares them here with the package's
own implementation and writes every explanation. Writing a result file, patching NumPy or the
checkers, or printing "[PASS]" in the worker earns nothing. A library function that does the
exercise (``jax.nn.softmax`` in the stable softmax) scores 0 whether the source names it
(:func:`shortcut`) or the worker's tripwires meet it at run time, reached by a name built
there (:func:`run_time_shortcut`). The ``attention`` package (the
answers) cannot be imported in the worker. Every per-submission failure (an unreadable or
truncated notebook, any encoding, a syntax error, a worker that loops, dies or prints garbage)
scores 0 with the reason, and grading goes on.

Output: a table printed to stdout (1 = passed, 0 = not), ``--out`` as CSV with one row per
student (``student``, one column per exercise, ``total``), beside it
``<out stem>_feedback.csv`` with one row per student and exercise (the checker's explanation)
and ``<out stem>_feedback/<student>.md``, a report to hand back to each student. The CSV files
are written atomically, and cells a spreadsheet would read as a formula are neutralised.
Every text from a student is made safe for UTF-8 first. :mod:`attention.exercises.exports`
writes Gradescope's ``results.json`` and Canvas and Moodle grade imports.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import csv
import dataclasses
import json
import os
import pathlib
import re
import secrets
import select
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata

from attention.exercises import _shared, exports, source
from attention.exercises import sandbox as sandboxes
from attention.exercises.registry import EXERCISES
from attention.exercises.remote import StudentWorker, WorkerFailure, WorkerSession
from attention.exercises.sandbox import Reaper, Sandbox
from attention.exercises.worker import BLOCKED_MESSAGE, SUBMISSION_MODULE

MAX_FILE_BYTES = 2 << 20
DEFAULT_JOBS = min(2, os.cpu_count() or 1)  # a check waits on its worker: two keep 2 cores busy
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


# Folders of tools, not of students: skipped without a word.
TOOL_FOLDERS = frozenset({".ipynb_checkpoints", ".git", ".hg", ".svn", "__MACOSX", "__pycache__"})
PARSE_SECONDS = 20.0
STUDENT_BUDGET = 6  # a student's checks together, wall time: this many --timeout
CANARY = "(canary)"


class SetupError(RuntimeError):
    """The grader cannot grade here (the model solution does not pass): nothing is scored."""


def display_name(raw: str) -> str:
    """A file system name as text that prints and encodes everywhere, look-alikes told apart:
    bytes that are not UTF-8 as ``\\xfc``, invisible and control characters as ``<U+200B>``."""
    text = os.fsencode(raw).decode("utf-8", errors="backslashreplace")
    return "".join(f"<U+{ord(c):04X}>" if unicodedata.category(c) in _INVISIBLE
                   or _CONTROL.fullmatch(c) else c for c in text)


_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def find_submissions(folder: pathlib.Path, single: str | None = None
                     ) -> dict[str, list[pathlib.Path]]:
    """``{student: [files]}``: a file per student (by stem) or a folder per student; with
    ``single``, every file in ``folder`` is that one student's (Gradescope's submission).

    Symbolic links are skipped, as are files inside linked folders: a submission could link
    to the teacher's model solutions or to any file the teacher can read. Hidden names are
    students too (only the tool folders of :data:`TOOL_FOLDERS` are skipped); a name is shown
    through :func:`display_name`, and two names that would show alike are numbered. Files
    that are not regular files are listed here and refused, with the reason, when read.
    """
    students: dict[str, list[pathlib.Path]] = {}
    owners: dict[str, str] = {}  # shown name -> raw name
    if single is not None:
        return {single: _files_in(folder)}
    for entry in sorted(folder.iterdir()):
        if entry.name in TOOL_FOLDERS or entry.is_symlink():
            continue
        is_dir = stat.S_ISDIR(entry.lstat().st_mode)
        if not is_dir and entry.suffix not in (".py", ".ipynb"):
            continue
        raw = entry.name if is_dir else entry.stem
        name = display_name(raw)
        while owners.setdefault(name, raw) != raw:
            name += " (2)"
        if is_dir:
            students.setdefault(name, []).extend(_files_in(entry))
        else:
            students.setdefault(name, []).append(entry)
    return _told_apart(students)


# Letters of other scripts that print like Latin ones (Unicode's confusables, the usual few).
_LOOK_ALIKES = str.maketrans("аеорсхуіјѕԁһӏԛԝαεορτυνκιχ", "aeopcxyijsdhlqwaeoptuvkix")


def _told_apart(students: dict[str, list]) -> dict[str, list]:
    """Names that would print alike (``alice`` in Latin and with a Cyrillic ``а``): their
    characters outside ASCII written as ``<U+0430>``, so that a reader sees two students."""
    def skeleton(name: str) -> str:
        return unicodedata.normalize("NFKC", name).casefold().translate(_LOOK_ALIKES)

    groups: dict[str, list[str]] = {}
    for name in students:
        groups.setdefault(skeleton(name), []).append(name)
    renamed = {}
    for name, files in students.items():
        if len(groups[skeleton(name)]) > 1 and not name.isascii():
            name = "".join(c if c.isascii() else f"<U+{ord(c):04X}>" for c in name)
        while name in renamed:
            name += " (2)"
        renamed[name] = files
    return renamed


def _files_in(folder: pathlib.Path) -> list[pathlib.Path]:
    files = []
    for root, dirs, names in os.walk(folder):  # os.walk does not follow links
        dirs[:] = sorted(d for d in dirs if d not in TOOL_FOLDERS)
        for file in sorted(names):
            path = pathlib.Path(root) / file
            if path.suffix in (".py", ".ipynb") and not path.is_symlink():
                files.append(path)
    return files


def read_bounded(path: pathlib.Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, that is its only name.

    FIFOs, sockets and devices are refused without being opened (opening a FIFO waits for a
    writer, a device can be endless); a hard link is refused as a symbolic link is (it could
    be the teacher's solutions). The file is opened without following links and without
    blocking, and checked again through the open descriptor.
    """
    kind = _kind(os.lstat(path))
    if kind:
        raise ValueError(f"it is {kind}, not a regular file, and was not opened")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        kind = _kind(info)
        if kind:
            raise ValueError(f"it is {kind}, not a regular file")
        if info.st_nlink != 1:
            raise ValueError(f"it is a hard link ({info.st_nlink} names for one file): links "
                             f"are not read, hand in a copy")
        if info.st_size > limit:
            raise ValueError(f"the file is over {limit >> 20} MiB")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ValueError(f"the file is over {limit >> 20} MiB")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(info: os.stat_result) -> str:
    mode = info.st_mode
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "" if stat.S_ISREG(mode) else "not a regular file"


def submission_code(path: pathlib.Path) -> str:
    """The Python code of a .py file, or the code cells of a notebook (IPython magics dropped)."""
    # Bytes that are not UTF-8 (a Latin-1 file from an old editor) are replaced, not fatal:
    # they sit in strings and comments, and the code still runs.
    text = read_bounded(path).decode("utf-8", errors="replace")
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
    return set(source.analyse(code).get("defined", []))


FORBIDDEN = tuple(sorted({f for ex in EXERCISES.values() for f in ex.forbidden}))


class SourceReader:
    """Reads submissions' source in a helper process (:mod:`attention.exercises.source`), with
    a time and a memory limit: a file that takes too long to parse is refused, not waited for.
    Use as a context manager; :meth:`analyse` is safe from several threads."""

    def __init__(self, seconds: float = PARSE_SECONDS, memory_bytes: int = 2 << 30):
        self.seconds, self.memory_bytes = seconds, memory_bytes
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> SourceReader:
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout):
                stream.close()
            self._process = None

    def analyse(self, code: str) -> dict:
        """:func:`attention.exercises.source.analyse` of ``code`` with :data:`FORBIDDEN`;
        raises ValueError when it takes more than ``seconds``."""
        request = json.dumps({"code": code, "forbidden": FORBIDDEN}).encode(
            "utf-8", errors="backslashreplace")
        with self._lock:
            if self._process is None:
                limit = [f"--as={self.memory_bytes}", "--"]
                prlimit = shutil.which("prlimit")
                self._process = subprocess.Popen(
                    [*([prlimit, *limit] if prlimit else []), sys.executable, "-I", "-S",
                     source.__file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
            try:
                self._process.stdin.write(struct.pack(">I", len(request)) + request)
                self._process.stdin.flush()
                size = struct.unpack(">I", self._read(4))[0]
                return json.loads(self._read(size))
            except (OSError, ValueError, struct.error) as e:
                self._stop()
                if isinstance(e, TimeoutError):
                    raise ValueError(f"reading its code took more than {self.seconds:g} s "
                                     f"(the file is built to be slow to parse?)") from None
                raise ValueError("its code could not be read (too large or too deep)") from None

    def _read(self, n: int) -> bytes:
        deadline, data = time.monotonic() + self.seconds, b""
        fd = self._process.stdout.fileno()
        while len(data) < n:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, n - len(data))
            if not chunk:
                raise OSError("the reader stopped")
            data += chunk
        return data


def _attempts(analysis: dict, exercise) -> bool:
    required = [n for n in exercise.names if n not in exercise.optional]
    defined = set(analysis.get("defined", []))
    return all(n in defined for n in required)


def shortcut(analysis: dict, exercise) -> str | None:
    """The message for a required function that calls a library function doing the exercise
    (``jax.nn.softmax`` in the stable softmax), or None."""
    for name in exercise.names:
        for used, line in analysis.get("uses", {}).get(name, []):
            if used in exercise.forbidden:
                return (f"`{name}` uses {used} (line {line}), which does this exercise for "
                        f"you; it asks you to {exercise.instead}.")
    return None


def run_time_shortcut(used: list[str], exercise) -> str:
    """The message for a forbidden library object the worker saw the submission use while it
    ran (a name built at run time, ``getattr(jax.nn, "soft" + "max")``, that no reading of the
    source finds)."""
    return (f"the submission uses {used[0]} (found at run time), which does this exercise for "
            f"you; it asks you to {exercise.instead}.")


# ----------------------------------------------------------------------------- running one check


def run_check(code: str, exercise: str, *, timeout: float, sandbox: Sandbox,
              reaper: Reaper | None = None, startup_timeout: float = 300.0,
              analysis: dict | None = None, python: str | None = None,
              raise_starved: bool = False, student_worker: StudentWorker | None = None
              ) -> tuple[bool, str, str]:
    """(passed, status, message) for one exercise of one submission.

    The submission runs in a confined worker (:class:`~attention.exercises.remote.
    WorkerSession`); the exercise's checker runs here, on the inputs it chooses, and compares
    what the worker sends back with the package's own implementation. ``analysis``: what
    :class:`SourceReader` found in ``code`` (read here when not given). ``raise_starved``:
    a timeout the machine's load caused raises its :class:`WorkerFailure`, to run it again.
    ``student_worker``: the student's :class:`~attention.exercises.remote.StudentWorker`
    (default: a worker started for this check alone).
    """
    ex = EXERCISES[exercise]
    analysis = source.analyse(code, FORBIDDEN) if analysis is None else analysis
    refused = shortcut(analysis, ex)
    if refused:
        return False, "failed", refused
    note = f" Note: {BLOCKED_MESSAGE}." if analysis.get("imports_package") else ""
    try:
        if student_worker is not None:
            session = student_worker.check(code, ex.names, ex.forbidden)
        else:
            session = WorkerSession(code, sandbox=sandbox, timeout=timeout, reaper=reaper,
                                    startup_timeout=startup_timeout, python=python,
                                    names=ex.names, forbidden=ex.forbidden)
        with session as worker:
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
            if worker.shortcuts:
                return False, "failed", run_time_shortcut(worker.shortcuts, ex)
    except WorkerFailure as failure:
        if raise_starved and failure.starved:
            raise
        return False, failure.status, failure.message
    message = result.message
    if not result.passed and result.status == "not implemented":
        message += loading
    return result.passed, result.status, message + ("" if result.passed else note)


# ----------------------------------------------------------------------------- grading a folder


def grade_folder(folder: pathlib.Path, *, exercises: list[str] | None = None,
                 timeout: float = 120.0, jobs: int = 1, sandbox: Sandbox | str = "auto",
                 hide: tuple[os.PathLike | str, ...] = (), canary: bool | os.PathLike = True,
                 seed: int | None = None, python: str | None = None,
                 single: str | None = None, student_budget: float | None = None,
                 stats: dict | None = None, compilation_cache: bool = True
                 ) -> tuple[list[str], list[Grade]]:
    """Check every student on every exercise; returns (the exercises graded, the grades).

    ``sandbox``: a :class:`~attention.exercises.sandbox.Sandbox`, or ``"auto"``, ``"strict"``,
    ``"none"`` (see :func:`attention.exercises.sandbox.choose`); ``hide``: more folders the
    workers must not see (the output folder). ``canary``: before anyone is graded, the model
    solution of each exercise (``teachers/``, or the known-good submission at this path) is
    graded the same way, and :class:`SetupError` is raised unless it passes; False skips it.
    ``seed``: the secret mixed into the checkers' inputs (default: drawn from ``os.urandom``;
    give the same one to reproduce a verdict). ``python``: the workers' interpreter.
    ``single``: grade every file in ``folder`` as this one student's. ``student_budget``:
    seconds all of one student's checks may take together (default ``STUDENT_BUDGET``
    timeouts); the checks left when it is spent score "timed out" without running. ``stats``:
    a dict that receives ``workers`` (workers started), ``replaced`` (why each worker that was
    replaced mid-student was), ``state_seconds`` (spent checking the workers' state between
    exercises), ``cached`` (the compiled programs the canary left for the class) and
    ``canary_seconds`` (the canary's wall time).
    ``compilation_cache``: at the bubblewrap level with a canary, the programs the canary's
    workers compile are kept and every student's worker loads them, read-only, instead of
    compiling the same program again
    (:class:`~attention.exercises.sandbox.CompilationCache`). Raises
    :class:`~attention.exercises.sandbox.SandboxUnavailable` for ``"strict"`` without one.

    Students, not checks, are shared among ``jobs`` threads: each student's exercises run one
    after the other in one worker (:class:`~attention.exercises.remote.StudentWorker`).
    """
    if isinstance(sandbox, str):
        sandbox = sandboxes.choose(sandbox, hidden=sandboxes.hidden_paths(folder, *hide))
    seed = draw_seed() if seed is None else seed
    students = find_submissions(folder, single)
    # A file that cannot be read (a truncated notebook, a FIFO) scores 0 with the reason; the
    # others, and every other student, are graded as usual.
    codes: dict[str, list] = {}
    unreadable: dict[str, list[str]] = {}
    with SourceReader() as reader:
        for student, files in students.items():
            codes[student] = []
            for path in files:
                try:
                    code = submission_code(path)
                    analysis = reader.analyse(code)
                    codes[student].append((path, code, analysis))
                except (OSError, ValueError, AttributeError, TypeError, RecursionError) as e:
                    unreadable.setdefault(student, []).append(
                        f"{display_name(path.name)} could not be read ({type(e).__name__}: "
                        f"{str(e)[:160]})")
    if exercises is None:  # every exercise that someone attempted, in teaching order
        exercises = [
            name for name, ex in EXERCISES.items()
            if any(_attempts(a, ex) for files in codes.values() for _, _, a in files)
        ]
    work, grades = [], []
    for student, files in codes.items():
        for name in exercises:
            found = [item for item in files if _attempts(item[2], EXERCISES[name])]
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

    # One student's checks together may take ``budget`` seconds: a student who sleeps just
    # under the limit in every function cannot hold the class for 17 limits.
    budget = STUDENT_BUDGET * timeout if student_budget is None else student_budget
    spent: dict[str, float] = {}
    lock = threading.Lock()
    stats = {} if stats is None else stats
    stats.update(workers=0, replaced=[], state_seconds=0.0, cached=0, canary_seconds=0.0)
    # Filled by the canary (teacher's code), then read-only for every student.
    cache = (sandboxes.CompilationCache() if compilation_cache and canary is not False
             and work and sandbox.level == sandboxes.BUBBLEWRAP else None)

    def run_student(items: list, alone: bool = False) -> list:
        """Grade one student's checks in order, in one worker (replaced when needed)."""
        mount = cache.mount() if cache is not None else None
        with StudentWorker(sandbox=sandbox, timeout=timeout, reaper=reaper,
                           python=python, cache=mount) as worker:
            worker.preload = tuple(sorted({f for _, name, _ in items
                                           for f in EXERCISES[name].forbidden}))
            try:
                grades = []
                for i, item in enumerate(items):
                    worker.last = i == len(items) - 1
                    grades.append(run(item, worker, alone))
                return grades
            finally:
                with lock:
                    stats["workers"] += worker.started
                    stats["state_seconds"] += worker.state_seconds
                    stats["replaced"] += [f"{items[0][0]}: {r}" for r in worker.replaced]

    def run(item, worker, alone=False):
        student, name, (path, code, analysis) = item
        with lock:
            over = student != CANARY and spent.get(student, 0.0) >= budget
        started = time.monotonic()
        try:
            if over:
                passed, status, message = False, "timed out", (
                    f"timed out: this student's checks used their whole time budget "
                    f"({budget:g} s for all exercises), so this one was not run.")
            else:
                passed, status, message = run_check(
                    code, name, timeout=timeout, sandbox=sandbox, reaper=reaper,
                    analysis=analysis, python=python, raise_starved=not alone and jobs > 1,
                    student_worker=worker)
        except WorkerFailure:  # starved by the load: run again alone at the end
            return None
        except Exception as e:  # never lose the class for one submission
            passed, status, message = False, "crashed", (
                f"the grader could not check this submission ({type(e).__name__}: "
                f"{str(e)[:200]}).")
        finally:
            with lock:
                spent[student] = spent.get(student, 0.0) + time.monotonic() - started
        return Grade(student, name, int(passed), status, clean_text(message),
                     display_name(path.name))

    with _shared.secret_seed(seed), contextlib.ExitStack() as stack, \
            concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        if cache is not None:
            stack.enter_context(cache)
        started = time.monotonic()
        if canary is not False and work:
            needed = sorted({name for _, name, _ in work}, key=list(EXERCISES).index)
            checks = [(CANARY, name, model) for name, model in
                      zip(needed, canary_solutions(needed, canary), strict=True)]
            shares = [checks[i::jobs] for i in range(min(jobs, len(checks)))]  # one per job
            for share, done in zip(shares, list(pool.map(run_student, shares)), strict=True):
                for grade, check in zip(done, share, strict=True):
                    grade = grade or run_student([check], alone=True)[0]
                    if not grade.score:
                        reaper.sweep()
                        raise SetupError(_canary_failure(grade, check[2][0], sandbox, python))
        if cache is not None:  # before any student's worker starts
            stats["cached"] = cache.seal()
        stats["canary_seconds"] = time.monotonic() - started
        by_student: dict[str, list] = {}
        for item in work:
            by_student.setdefault(item[0], []).append(item)
        done_by_student = list(pool.map(run_student, by_student.values()))
        # A check that timed out while the machine kept it waiting is run again, alone.
        for items, done in zip(by_student.values(), done_by_student, strict=True):
            grades.extend(g if g is not None else run_student([item], alone=True)[0]
                          for g, item in zip(done, items, strict=True))
    reaper.sweep()
    order = {name: i for i, name in enumerate(exercises)}
    grades.sort(key=lambda g: (g.student, order[g.exercise]))
    return exercises, grades


def draw_seed() -> int:
    """A secret for one grading run, from ``os.urandom``: no student can know it."""
    return secrets.randbits(62) | 1


def canary_solutions(exercises: list[str], canary: bool | os.PathLike = True) -> list:
    """``(path, code, analysis)`` of a known-good answer to each exercise: the model solution
    from ``teachers/solutions.py`` (a source checkout), or from the file or folder ``canary``
    names. Raises :class:`SetupError` when one is missing."""
    found = {}
    if canary is True:
        solutions = pathlib.Path(__file__).resolve().parents[2] / "teachers" / "solutions.py"
        try:
            solution_source = _load(solutions).solution_source
        except (ImportError, OSError, AttributeError):
            raise SetupError(
                "no model solution to test the setup with (teachers/ is not importable here): "
                "pass --canary PATH, a submission that passes every exercise graded.") from None
        for name in exercises:
            code = solution_source(name)
            found[name] = (solutions, code, source.analyse(code, FORBIDDEN))
    else:
        path = pathlib.Path(canary)
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in (f for f in files if f.suffix in (".py", ".ipynb")):
            code = submission_code(file)
            analysis = source.analyse(code, FORBIDDEN)
            for name in exercises:
                if name not in found and _attempts(analysis, EXERCISES[name]):
                    found[name] = (file, code, analysis)
    missing = [name for name in exercises if name not in found]
    if missing:
        raise SetupError(f"--canary {canary}: no file there answers {', '.join(missing)}; "
                         f"expected a submission that passes every exercise graded.")
    return [found[name] for name in exercises]


def _load(path: pathlib.Path):
    """``teachers.solutions`` as imported, else loaded from the checkout beside the package."""
    try:
        import teachers.solutions

        return teachers.solutions
    except ImportError:
        import importlib.util

        spec = importlib.util.spec_from_file_location("teachers.solutions", path)
        if spec is None or not path.is_file():
            raise
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def _canary_failure(grade: Grade, path: pathlib.Path, sandbox: Sandbox,
                    python: str | None) -> str:
    """One line: which model solution failed, how, and where Python lives for the sandbox."""
    return (f"the setup check failed, nobody was graded: the model solution of "
            f"{grade.exercise} ({path}) scored {grade.status}: {grade.message} "
            f"{sandboxes.explain(sandbox, python)}")


# ----------------------------------------------------------------------------- writing the results


_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f"
                      r"\u2028-\u202e\u2066-\u2069]")


def clean_text(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` without terminal escape codes or control characters, on one line, capped, and
    safe to encode as UTF-8 (a lone surrogate is written as ``\\ud800``)."""
    text = str(text).encode("utf-8", errors="backslashreplace").decode("utf-8")
    text = _CONTROL.sub("", text).replace("\t", " ").replace("\n", " ")
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
        with os.fdopen(fd, "w", newline="", encoding="utf-8",
                       errors="backslashreplace") as f:
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


def _make_gradescope_zip(path: pathlib.Path, exercises: list[str], timeout: float) -> int:
    checkout = pathlib.Path(__file__).resolve().parents[2]
    try:
        solutions = _load(checkout / "teachers" / "solutions.py")
        canary = "\n\n".join(solutions.solution_source(name) for name in exercises)
        exports.make_gradescope_zip(path, exercises, checkout, canary, timeout)
    except (ImportError, OSError, ValueError) as e:
        print(f"attention grade: --make-gradescope-zip needs a source checkout with teachers/ "
              f"({type(e).__name__}: {e})", file=sys.stderr)
        return 2
    print(f"Gradescope autograder bundle written to {path}: upload it as the assignment's "
          f"autograder (Ubuntu base image).")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``attention grade FOLDER --out scores.csv``: the command line. Returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="attention grade",
        description="Grade a folder of exercise submissions (.ipynb or .py; one file or one "
        "sub-folder per student) and write a score table as CSV.",
    )
    parser.add_argument("folder", type=pathlib.Path,
                        help="folder of submissions (unused with --make-gradescope-zip)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("scores.csv"),
                        help="CSV of scores (default scores.csv); explanations go to "
                        "<stem>_feedback.csv and <stem>_feedback/<student>.md beside it")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds allowed per exercise and student (default 120)")
    parser.add_argument("--exercises", default=None,
                        help="comma-separated exercise names (default: every exercise someone "
                        f"attempted); names: {', '.join(EXERCISES)}")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                        help="students graded at once, a worker each (default: 2, or 1 on a "
                        "one-core machine; docs/teachers.md)")
    parser.add_argument("--sandbox", choices=sandboxes.CHOICES, default="auto",
                        help="auto: the best confinement available (default); strict: refuse "
                        "to grade without a namespace sandbox (bubblewrap); none: process "
                        "limits only (docs/teachers.md)")
    parser.add_argument("--no-compilation-cache", action="store_true",
                        help="every worker compiles every program itself (slower): no "
                        "read-only cache of the programs the canary compiled "
                        "(docs/teachers.md)")
    parser.add_argument("--canary", type=pathlib.Path, default=None,
                        help="a known-good submission (file or folder) graded first, to test "
                        "the setup (default: the model solutions in teachers/)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the secret behind the checkers' inputs (default: a new one each "
                        "run, printed; give it again to reproduce a verdict)")
    parser.add_argument("--gradescope", type=pathlib.Path, default=None, metavar="RESULTS_JSON",
                        help="FOLDER is one student's submission (Gradescope's "
                        "/autograder/submission): write Gradescope's results.json here")
    parser.add_argument("--make-gradescope-zip", type=pathlib.Path, default=None,
                        metavar="ZIP", help="write Gradescope's autograder bundle (setup.sh, "
                        "run_autograder, the package, the model solutions) for --exercises, "
                        "and grade nothing")
    parser.add_argument("--roster", type=pathlib.Path, default=None,
                        help="the course's roster CSV (Canvas or Moodle export): write "
                        "<stem>_canvas.csv and <stem>_moodle.csv for import")
    parser.add_argument("--id-column", default=None,
                        help="the roster's column that holds each student's submission name")
    parser.add_argument("--assignment", default="Attention exercises",
                        help="the grade column's name in the Canvas and Moodle files")
    args = parser.parse_args(argv)
    exercises = None
    if args.exercises:
        exercises = [e.strip() for e in args.exercises.split(",") if e.strip()]
        unknown = [e for e in exercises if e not in EXERCISES]
        if unknown:
            parser.error(f"unknown exercise(s) {unknown}; choose among {list(EXERCISES)}.")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}.")
    if args.make_gradescope_zip is not None:
        return _make_gradescope_zip(args.make_gradescope_zip, exercises or list(EXERCISES),
                                    args.timeout)
    if not args.folder.is_dir():
        parser.error(f"FOLDER must be a folder of submissions, got {str(args.folder)!r}.")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}.")
    out = args.out.resolve()
    try:
        sandbox = sandboxes.choose(
            args.sandbox, hidden=sandboxes.hidden_paths(args.folder, out.parent))
    except sandboxes.SandboxUnavailable as e:
        print(f"attention grade: {e}", file=sys.stderr)
        return 2
    if args.canary is not None and not args.canary.exists():
        parser.error(f"--canary must be a submission file or folder, got {str(args.canary)!r}.")
    roster = None
    if args.roster is not None:
        if args.id_column is None:
            parser.error("--roster needs --id-column, the roster's column of submission names.")
        try:
            roster = exports.read_roster(args.roster, args.id_column)
        except (OSError, ValueError, csv.Error) as e:
            parser.error(str(e))
    if args.seed is not None and args.seed < 0:
        parser.error(f"--seed must be a non-negative integer, got {args.seed}.")
    print(sandbox.describe())
    seed = draw_seed() if args.seed is None else args.seed
    print(f"checker inputs: secret seed {seed} (--seed {seed} reproduces this run's verdicts)")
    try:
        exercises, grades = grade_folder(
            args.folder, exercises=exercises, timeout=args.timeout, jobs=args.jobs,
            sandbox=sandbox, canary=True if args.canary is None else args.canary, seed=seed,
            single="submission" if args.gradescope else None,
            compilation_cache=not args.no_compilation_cache)
    except SetupError as e:
        print(f"attention grade: {e}", file=sys.stderr)
        return 2
    if not grades:
        print(f"no submissions (.py or .ipynb) found in {args.folder}")
    feedback = write_csv(out, exercises, grades)
    reports = out.with_name(out.stem + "_feedback")
    write_reports(reports, exercises, grades)
    titles = {name: ex.title for name, ex in EXERCISES.items()}
    if args.gradescope:
        exports.write_gradescope(args.gradescope, exercises, grades, titles)
        print(f"Gradescope results written to {args.gradescope}")
    if roster is not None:
        for kind, write in (("canvas", exports.write_canvas), ("moodle", exports.write_moodle)):
            path = out.with_name(f"{out.stem}_{kind}.csv")
            missing = write(path, roster, args.id_column, grades, args.assignment,
                            spreadsheet_cell)
            print(f"{kind.capitalize()} import written to {path}")
        if missing:
            print(f"on the roster, no submission: {', '.join(map(safe_name, missing))}")
    print(format_table(exercises, grades))
    for g in grades:
        if not g.score:
            print(f"- {safe_name(g.student)} / {g.exercise}: {g.message}")
    print(f"scores written to {args.out}, explanations to {feedback} and {reports}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
