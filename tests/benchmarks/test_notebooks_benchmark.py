"""benchmarks/notebooks.py: a notebook run for real, its row in the table, the budgets judged.

The script's ``main`` runs the quickest notebook (05) in the fast setting into a temporary
``--out`` (its kernel a child process, as from the command line).
"""

import importlib.util
import os
import pathlib
import re

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("psutil")

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "notebooks.py"


def _module():
    spec = importlib.util.spec_from_file_location("notebooks_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench_script(monkeypatch):
    """The script's module; what its ``main`` sets in the environment is undone afterwards."""
    for name in ("ATTENTION_FAST", "MPLBACKEND", "ATTENTION_DATA", "ATTENTION_FILL_ANSWERS",
                 "PYTHONPATH", "ATTENTION_COMPILATION_CACHE"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    return _module()


def _rows(text):
    """{notebook stem: [cells]} of the table's rows."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and line[2:4].isdigit():
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_the_quickest_notebook_runs_and_gets_its_row(bench_script, tmp_path, capsys):
    out = tmp_path / "notebooks.txt"
    # 05 takes seconds, more than --stop-after's 0.6 s: 02 is not started
    assert bench_script.main(["--fast", "--only", "05,02", "--stop-after", "0.01",
                           "--out", str(out)]) == 0
    text = out.read_text()
    assert text in capsys.readouterr().out  # printed as written
    assert "fast setting (ATTENTION_FAST=1)" in text
    assert re.search(r"^CPU: .+: avx2 (yes|no)", text, re.MULTILINE)
    assert re.search(r"^load average 1 min: \d+\.\d at the start, \d+\.\d at the end", text,
                     re.MULTILINE)
    rows = _rows(text)
    assert list(rows) == ["05_positional_encodings", "02_softmax_and_masks"]
    assert rows["02_softmax_and_masks"][0] == "not run: --stop-after 0.01 min reached"
    wall, slowest, kernel_peak, tree_peak, load, budget, met = rows["05_positional_encodings"]
    index, seconds, first_line = (s.strip() for s in slowest.split(",", 2))
    assert 0 < float(seconds) <= float(wall)
    assert first_line.startswith("`") and first_line.endswith("`")
    cells = nbformat.read(REPO / "notebooks" / "05_positional_encodings.ipynb",
                          as_version=4).cells
    assert cells[int(index)].cell_type == "code"
    assert cells[int(index)].source.strip().startswith(first_line.strip("`"))
    # a Python kernel with JAX holds more than 100 MB, the fast setting less than a few GB
    assert 0.1 < float(kernel_peak) < 4 and 0.1 < float(tree_peak) < 4
    assert budget == "every cell <= 300 s" and met == "met"


def test_an_unknown_notebook_number_is_named(bench_script, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_script.main(["--only", "05,99"])
    assert exit_.value.code == 2
    assert "--only: no notebook numbered ['99']" in capsys.readouterr().err


def test_budgets_are_judged_on_the_measurements(bench_script):
    module = bench_script
    quick = {"seconds": 100.0, "slowest": (3, 40.0), "kernel_peak": 1e9, "error": None}
    slow = {**quick, "seconds": module.FULL_SECONDS + 1.0, "slowest": (3, 301.0)}
    assert module.verdict("05", quick, fast=False) == (f"<= {module.FULL_SECONDS} s", "met")
    assert module.verdict("05", slow, fast=False)[1] == "missed"
    # notebook 15 also claims its memory (5.5 GB): 6 GB is over it, 5 GB within
    over = {**quick, "kernel_peak": module.FULL_BYTES["15"] + 0.5e9}
    assert module.verdict("15", over, fast=False) == (
        f"<= {module.FULL_SECONDS} s, <= {module.FULL_BYTES['15'] / 1e9:g} GB", "missed")
    within = {**quick, "kernel_peak": module.FULL_BYTES["15"] - 0.5e9}
    assert module.verdict("15", within, fast=False)[1] == "met"
    assert module.verdict("05", slow, fast=True) == ("every cell <= 300 s", "missed")
    assert module.verdict("05", {**quick, "error": "CellExecutionError in cell 7"},
                          fast=True)[1] == "missed (CellExecutionError in cell 7)"


def test_the_cell_timeout_is_the_tests_own(bench_script):
    source = (REPO / "tests" / "conftest.py").read_text()  # the notebook kernel's
    assert f"CELL_TIMEOUT_S = {bench_script.CELL_TIMEOUT_S}\n" in source
