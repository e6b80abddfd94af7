"""Grades in the formats Gradescope, Canvas and Moodle import, checked against their
documented columns (no worker is started: the grades are made up)."""

import csv
import json

import pytest

from attention.exercises import exports, grade
from attention.exercises.grade import Grade

EXERCISES = ["dot_product_scores", "stable_softmax"]
GRADES = [
    Grade("alice", "dot_product_scores", 1, "passed", "your scores match", "a.py"),
    Grade("alice", "stable_softmax", 0, "failed", "Subtract each row's maximum", "a.py"),
    Grade("bob", "dot_product_scores", 1, "passed", "ok", "b.py"),
    Grade("bob", "stable_softmax", 1, "passed", "ok", "b.py"),
]
TITLES = {"dot_product_scores": "Dot-product scores", "stable_softmax": "Stable softmax"}


def test_gradescope_results_have_the_autograder_fields():
    results = exports.gradescope_results(EXERCISES, GRADES[:2], TITLES)
    assert results["score"] == 1.0
    assert [t["name"] for t in results["tests"]] == ["Dot-product scores", "Stable softmax"]
    for test in results["tests"]:
        assert set(test) == {"name", "score", "max_score", "status", "output"}
        assert test["status"] in ("passed", "failed") and test["max_score"] == 1.0
    assert results["tests"][1]["output"] == "Subtract each row's maximum"
    json.dumps(results)


def _roster(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Email\n"
                    "Alice A,101,s101,alice,L1,a@x\nBob B,102,s102,bob,L1,b@x\n"
                    "Carol C,103,s103,carol,L2,c@x\n")
    return path


def test_canvas_and_moodle_imports_follow_their_formats(tmp_path):
    roster = exports.read_roster(_roster(tmp_path), "SIS Login ID")
    missing = exports.write_canvas(tmp_path / "canvas.csv", roster, "SIS Login ID", GRADES,
                                   "Attention exercises")
    assert missing == ["carol"]
    with open(tmp_path / "canvas.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                       "Attention exercises"]
    assert rows[1] == ["Alice A", "101", "s101", "alice", "L1", "1"]
    assert rows[3][-1] == ""  # no submission: left blank, Canvas keeps the grade as it is
    exports.write_moodle(tmp_path / "moodle.csv", roster, "SIS Login ID", GRADES,
                         "Attention exercises")
    with open(tmp_path / "moodle.csv", newline="") as f:
        assert list(csv.reader(f)) == [["SIS Login ID", "Attention exercises"],
                                       ["alice", "1"], ["bob", "2"]]


def test_the_roster_column_is_checked_and_named(tmp_path):
    with pytest.raises(ValueError, match="--id-column must name a column of the roster"):
        exports.read_roster(_roster(tmp_path), "login")


def test_gradescope_mode_takes_every_file_as_one_students(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.ipynb").write_text("{}")
    students = grade.find_submissions(tmp_path, single="submission")
    assert list(students) == ["submission"] and len(students["submission"]) == 2


def test_the_gradescope_bundle_holds_what_the_autograder_runs(tmp_path):
    import zipfile

    path = tmp_path / "autograder.zip"
    assert grade.main(["-", "--make-gradescope-zip", str(path), "--exercises",
                       "stable_softmax", "--timeout", "60"]) == 0
    with zipfile.ZipFile(path) as bundle:
        names = set(bundle.namelist())
        assert {"setup.sh", "run_autograder", "canary.py", "package/pyproject.toml",
                "package/attention/exercises/grade.py"} <= names
        assert bundle.getinfo("run_autograder").external_attr >> 16 & 0o111
        run = bundle.read("run_autograder").decode()
        assert "--gradescope /autograder/results/results.json" in run
        assert "--exercises stable_softmax --timeout 60" in run
        assert "def stable_softmax" in bundle.read("canary.py").decode()
        assert "bubblewrap" in bundle.read("setup.sh").decode()
