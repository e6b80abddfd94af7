"""The grading command on a folder of sample submissions."""

import csv
import hashlib
import json
import pathlib

import nbformat

from attention.exercises import grade
from attention.exercises.solutions import solution_source

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "exercises"

RIGHT_SCORES = '''
import jax.numpy as jnp

def dot_product_scores(query, key):
    return jnp.einsum("btnh,bsnh->bnts", query, key) / jnp.sqrt(query.shape[-1])
'''
UNSCALED_SCORES = '''
import jax.numpy as jnp

def dot_product_scores(query, key):
    return jnp.einsum("btnh,bsnh->bnts", query, key)
'''
RIGHT_SOFTMAX = '''
import jax.numpy as jnp

def stable_softmax(scores):
    e = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
    return e / jnp.sum(e, axis=-1, keepdims=True)
'''
LOOPING_SOFTMAX = '''
def stable_softmax(scores):
    while True:
        pass
'''
RAISING_SCORES = '''
def dot_product_scores(query, key):
    raise ValueError("I give up")

print("top-level statements other than definitions are not run")
while True:  # a stray top-level loop: never executed by the grader
    pass
'''


def _solved_notebook(stem: str, exercise: str, path: pathlib.Path) -> None:
    notebook = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.metadata.get("tags") == ["exercise"]:
            cell.source = solution_source(exercise)
    nbformat.write(notebook, path)


def _digest(folder: pathlib.Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_grade_folder_writes_the_score_table(tmp_path, capsys):
    submissions = tmp_path / "submissions"
    (submissions / "alice").mkdir(parents=True)  # a folder per student, real notebooks
    _solved_notebook("01_dot_product_scores", "dot_product_scores",
                     submissions / "alice" / "scores.ipynb")
    _solved_notebook("02_stable_softmax", "stable_softmax", submissions / "alice" / "soft.ipynb")
    (submissions / "bob.py").write_text(UNSCALED_SCORES + RIGHT_SOFTMAX)
    (submissions / "carol.py").write_text(RIGHT_SCORES + LOOPING_SOFTMAX)
    (submissions / "dave.py").write_text(RAISING_SCORES)
    # An untouched notebook: the blank still raises NotImplementedError.
    blank = nbformat.read(NOTEBOOKS / "02_stable_softmax.ipynb", as_version=4)
    nbformat.write(blank, submissions / "erin.ipynb")
    before = _digest(submissions)

    out = tmp_path / "results" / "scores.csv"
    status = grade.main([str(submissions), "--out", str(out), "--timeout", "30", "--jobs", "2"])
    assert status == 0
    assert _digest(submissions) == before  # the teacher's files are untouched

    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {"student": "alice", "dot_product_scores": "1", "stable_softmax": "1", "total": "2"},
        {"student": "bob", "dot_product_scores": "0", "stable_softmax": "1", "total": "1"},
        {"student": "carol", "dot_product_scores": "1", "stable_softmax": "0", "total": "1"},
        {"student": "dave", "dot_product_scores": "0", "stable_softmax": "0", "total": "0"},
        {"student": "erin", "dot_product_scores": "0", "stable_softmax": "0", "total": "0"},
    ]
    with open(out.with_name("scores_feedback.csv"), newline="") as f:
        feedback = {(r["student"], r["exercise"]): r for r in csv.DictReader(f)}
    assert feedback["alice", "stable_softmax"]["file"] == "soft.ipynb"
    assert "sqrt(d_k)=4.00 times too large" in feedback["bob", "dot_product_scores"]["message"]
    assert feedback["carol", "stable_softmax"]["status"] == "timed out"
    assert "did not finish within 30 s" in feedback["carol", "stable_softmax"]["message"]
    assert "raised ValueError: I give up" in feedback["dave", "dot_product_scores"]["message"]
    assert feedback["dave", "stable_softmax"]["status"] == "not submitted"
    assert feedback["erin", "stable_softmax"]["status"] == "not implemented"
    assert "not implemented yet" in feedback["erin", "stable_softmax"]["message"]
    printed = capsys.readouterr().out
    assert "student" in printed and "carol" in printed and "timed out" in printed


def test_imported_package_function_scores_zero(tmp_path):
    submissions = tmp_path / "subs"
    submissions.mkdir()
    (submissions / "mallory.py").write_text(
        "from attention.exercises.solutions import sinusoidal_positions\n"
    )
    exercises, grades = grade.grade_folder(submissions, timeout=60)
    assert exercises == ["sinusoidal_positions"]
    (only,) = grades
    assert only.score == 0 and "imported from attention.exercises.solutions" in only.message


def test_submission_code_reads_notebook_cells(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("%matplotlib inline\nx = 1"),
        nbformat.v4.new_code_cell("def f():\n    return 2"),
    ]
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(notebook))
    code = grade.submission_code(path)
    assert "%matplotlib" not in code and "x = 1" in code and "def f():" in code
    assert grade.defined_names(code) == {"x", "f"}
    assert grade.defined_names("import jax.numpy as jnp\nfrom a import b") == {"jnp", "b"}


def test_an_unreadable_notebook_scores_zero_with_the_reason_and_grading_goes_on(tmp_path):
    (tmp_path / "broken.ipynb").write_text('{"cells": [{"cell_type": "code", "source": "def f(')
    (tmp_path / "empty.ipynb").write_text("[]")
    exercises, grades = grade.grade_folder(tmp_path, exercises=["dot_product_scores"])
    by_student = {g.student: g for g in grades}
    assert sorted(by_student) == ["broken", "empty"]
    assert by_student["broken"].score == 0
    assert "broken.ipynb could not be read (JSONDecodeError" in by_student["broken"].message
    assert "empty.ipynb could not be read" in by_student["empty"].message


def test_a_latin1_file_is_read_with_its_code_intact(tmp_path):
    path = tmp_path / "latin1.py"
    path.write_bytes(b"def dot_product_scores(q, k):  # caf\xe9\n    return q\n")
    code = grade.submission_code(path)
    assert "def dot_product_scores(q, k):" in code and "\ufffd" in code
