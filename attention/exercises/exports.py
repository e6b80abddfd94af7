"""Grades in the formats a course's tools import: Gradescope, Canvas, Moodle.

* Gradescope's autograder reads ``/autograder/results/results.json``: a top-level ``score``
  and a list of ``tests``, each with ``name``, ``score``, ``max_score``, ``status``
  (``"passed"`` or ``"failed"``) and ``output`` (Gradescope's "Autograder Specifications").
* Canvas imports a gradebook CSV whose first columns are ``Student``, ``ID``, ``SIS User ID``,
  ``SIS Login ID`` and ``Section`` (those of its own gradebook export), then one column per
  assignment; Canvas matches rows by ``ID``, ``SIS User ID`` or ``SIS Login ID``.
* Moodle's "Import grades from CSV" maps one column to a user field (ID number, email address,
  username) and the others to grade items, chosen on its import page.

Canvas and Moodle rows come from a roster, a CSV of the course's students (the LMS's own
export): the column the teacher names (``--id-column``) holds each student's submission name.
"""

from __future__ import annotations

import csv
import json
import pathlib

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


def gradescope_results(exercises: list[str], grades: list, titles: dict[str, str]) -> dict:
    """Gradescope's ``results.json`` for one student's grades: one test per exercise."""
    by = {g.exercise: g for g in grades}
    tests = []
    for name in exercises:
        g = by.get(name)
        tests.append({
            "name": titles.get(name, name),
            "score": float(g.score) if g else 0.0,
            "max_score": 1.0,
            "status": "passed" if g and g.score else "failed",
            "output": g.message if g else "not submitted.",
        })
    return {"score": sum(t["score"] for t in tests), "tests": tests,
            "output": f"{int(sum(t['score'] for t in tests))} of {len(tests)} exercises passed."}


def write_gradescope(path: pathlib.Path, exercises: list[str], grades: list,
                     titles: dict[str, str]) -> None:
    """Write :func:`gradescope_results` to ``path`` (``/autograder/results/results.json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(gradescope_results(exercises, grades, titles), indent=1),
                    encoding="utf-8", errors="backslashreplace")


def read_roster(path: pathlib.Path, id_column: str) -> tuple[list[str], list[dict]]:
    """(columns, rows) of a roster CSV; raises ValueError unless ``id_column`` is a column."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    if id_column not in columns:
        raise ValueError(f"--id-column must name a column of the roster {path}, got "
                         f"{id_column!r}; its columns are {columns}.")
    return columns, rows


def totals(grades: list) -> dict[str, int]:
    """``{student: number of exercises passed}``."""
    found: dict[str, int] = {}
    for g in grades:
        found[g.student] = found.get(g.student, 0) + g.score
    return found


def write_canvas(path: pathlib.Path, roster: tuple[list[str], list[dict]], id_column: str,
                 grades: list, assignment: str, cell=str) -> list[str]:
    """A Canvas gradebook import: the roster's Canvas columns, then ``assignment`` (the number
    of exercises passed; blank for a student with no submission, which Canvas leaves as it
    is). Returns the roster's students who handed in nothing."""
    columns, rows = roster
    scores, missing = totals(grades), []
    with open(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        writer = csv.writer(f)
        writer.writerow([*CANVAS_COLUMNS, assignment])
        for row in rows:
            student = row.get(id_column, "")
            if student not in scores:
                missing.append(student)
            writer.writerow([cell(row.get(c, "") or "") for c in CANVAS_COLUMNS]
                            + [scores.get(student, "")])
    return missing


def write_moodle(path: pathlib.Path, roster: tuple[list[str], list[dict]], id_column: str,
                 grades: list, assignment: str, cell=str) -> list[str]:
    """A Moodle grade import: the roster's ``id_column`` and ``assignment``, one row per
    student who handed something in. Returns the roster's students who handed in nothing."""
    _, rows = roster
    scores = totals(grades)
    with open(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        writer = csv.writer(f)
        writer.writerow([id_column, assignment])
        for row in rows:
            student = row.get(id_column, "")
            if student in scores:
                writer.writerow([cell(student), scores[student]])
    return [row.get(id_column, "") for row in rows if row.get(id_column, "") not in scores]


SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, when the autograder image is built.
set -euo pipefail
apt-get update
apt-get install -y python3 python3-venv bubblewrap util-linux
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install /autograder/source/package
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission: grade it, write results.json.
set -uo pipefail
cd /autograder/source
/autograder/venv/bin/python -m attention.exercises.grade /autograder/submission \\
    --gradescope /autograder/results/results.json --out /autograder/results/scores.csv \\
    --canary /autograder/source/canary.py --exercises {exercises} --timeout {timeout:g}
"""


def make_gradescope_zip(path: pathlib.Path, exercises: list[str], checkout: pathlib.Path,
                        canary: str, timeout: float = 120.0) -> pathlib.Path:
    """Gradescope's autograder bundle: ``setup.sh``, ``run_autograder``, the package's source
    (``package/``, installed by setup.sh) and ``canary.py`` (the model solutions, graded first
    in the container, hidden from the students' code). Returns ``path``."""
    import zipfile

    if not (checkout / "pyproject.toml").is_file():
        raise ValueError(f"checkout must be the package's source checkout (with pyproject.toml)"
                         f", got {str(checkout)!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER.format(
                exercises=",".join(exercises), timeout=timeout))):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16  # executable, as Gradescope runs them
            bundle.writestr(info, text)
        bundle.writestr("canary.py", canary)
        for file in ("pyproject.toml", "README.md"):
            if (checkout / file).is_file():
                bundle.write(checkout / file, f"package/{file}")
        for file in sorted((checkout / "attention").rglob("*.py")):
            bundle.write(file, f"package/{file.relative_to(checkout)}")
    return path
