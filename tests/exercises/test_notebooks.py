"""The exercise notebooks: paired and stripped, clean with blanks, passing with solutions.

Each is executed twice in a row in the same folder: untouched, then again with the solution.

Behaviour with the blanks left empty (documented in docs/teachers.md): every cell runs without
an error, and each *check* cell displays a result that says "not implemented yet". Each
notebook is executed untouched; then, in the same kernel, its ``exercise`` cell is replaced by
the model solution and the ``check`` cell is run again, which must display ``[PASS]``. The
heaviest checks (their solutions are checked in-process by test_checkers.py and through the
grader by test_grade.py) are executed untouched only, to keep the suite fast.
"""

import copy
import pathlib

import jupytext
import nbformat
import pytest

from attention.exercises import EXERCISES
from teachers.solutions import solution_source

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "exercises"
BY_NOTEBOOK = {e.notebook: e for e in EXERCISES.values()}
WITH_SOLUTIONS = {
    "00_combining_embeddings", "02_stable_softmax", "03_masking", "05_split_and_merge_heads",
    "07_sinusoidal_positions", "10_label_smoothing", "13_sliding_window_mask", "14_layer_norm",
}
MAIN_NOTEBOOKS = NOTEBOOKS.parent


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.extend(str(v) for v in output.get("data", {}).values())
    return "\n".join(parts)


def test_every_exercise_has_a_notebook_pair():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.py")) == sorted(BY_NOTEBOOK)
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(BY_NOTEBOOK)


@pytest.mark.parametrize("stem", sorted(BY_NOTEBOOK))
def test_pair_in_sync_and_stripped(stem):
    text = jupytext.read(NOTEBOOKS / f"{stem}.py")
    notebook = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    assert [(c.cell_type, c.source, _tags(c)) for c in text.cells] == [
        (c.cell_type, c.source, _tags(c)) for c in notebook.cells
    ]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    tags = [_tags(c) for c in notebook.cells]
    assert tags.count(["exercise"]) == 1 and tags.count(["check"]) == 1
    exercise_cell = next(c for c in notebook.cells if _tags(c) == ["exercise"])
    assert 'raise NotImplementedError("your code here")' in exercise_cell.source


@pytest.mark.parametrize("stem", sorted(BY_NOTEBOOK))
def test_header_and_hints(stem):
    """Each exercise opens with its main notebook (which exists), a difficulty and the time of
    its registry entry, and folds at least two hints in <details> before the blank."""
    import re

    notebook = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    header = notebook.cells[0].source
    row = re.search(r"^\| \[`(\w+)`\]\(\.\./(\w+)\.ipynb\) \| (★+☆*) (easy|medium|hard) \| "
                    r"about (\d+) min \|$", header, re.M)
    assert row, header[:300]
    main, link, stars, level, minutes = row.groups()
    assert main == link and (MAIN_NOTEBOOKS / f"{main}.py").exists()
    assert len(stars) == 3 and stars.count("★") == {"easy": 1, "medium": 2, "hard": 3}[level]
    assert int(minutes) == BY_NOTEBOOK[stem].minutes
    exercise_at = next(i for i, c in enumerate(notebook.cells) if _tags(c) == ["exercise"])
    hints = [c for c in notebook.cells[:exercise_at]
             if c.cell_type == "markdown" and "<details>" in c.source]
    assert len(hints) == 1
    opened, closed = hints[0].source.count("<details>"), hints[0].source.count("</details>")
    assert opened == closed >= 2


@pytest.mark.parametrize("stem", sorted(BY_NOTEBOOK))
def test_notebook_blank_then_solution(stem, tmp_path, notebook_kernel):
    exercise = BY_NOTEBOOK[stem]
    notebook = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    blank_cells = len(notebook.cells)
    if stem in WITH_SOLUTIONS:
        for cell in list(notebook.cells):
            if _tags(cell) == ["exercise"]:
                solved = copy.deepcopy(cell)
                solved.source = solution_source(exercise.name)
                notebook.cells.append(solved)
            elif _tags(cell) == ["check"]:
                notebook.cells.append(copy.deepcopy(cell))
    # Twice in a row in one folder (tmp_path) and one kernel, as a student who presses "Run
    # All" again does (tests/_kernel.py): first untouched, then with the solution appended.
    # Raises CellExecutionError if any cell raises.
    blank = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    notebook_kernel.run([blank, notebook], tmp_path)
    first_check = next(c for c in blank.cells if _tags(c) == ["check"])
    assert "[TODO]" in _text(first_check)
    blank_check = next(c for c in notebook.cells[:blank_cells] if _tags(c) == ["check"])
    assert "not implemented yet" in _text(blank_check)
    assert "[TODO]" in _text(blank_check)
    if stem in WITH_SOLUTIONS:
        solved_check = notebook.cells[-1]
        assert f"[PASS] {exercise.name}:" in _text(solved_check)
