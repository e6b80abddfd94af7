"""The notebook course: every notebook runs, and every committed notebook is clean and paired.

* Each ``notebooks/NN_name.ipynb`` is executed with nbclient in the fast setting
  (``ATTENTION_FAST=1``: small sizes, few training steps), off-screen (``MPLBACKEND=Agg``), twice
  in a row, in one temporary working folder shared by the course (so that nothing, checkpoints
  or figures, lands in the repository, and notebooks 08-09 load what 07 saved, as for a
  student). Any error in any cell fails the test. Under pytest-xdist each notebook is a unit
  of work of its own, 07-09 one unit run in order on one worker (../conftest.py), so each
  worker has its own course folder.
* The comprehension checks (:mod:`attention.comprehension`): the first run is the notebook
  untouched, and every one of its questions must report ``[TODO]``; the second run has the
  answers filled in (``ATTENTION_FILL_ANSWERS=1``: each unanswered question takes its model
  answer), and every question must report ``[PASS]``. So the re-run costs nothing extra, and
  each model answer is checked against what the notebook measures.
* Each committed ``.ipynb`` has no outputs and no execution counts, and its cells agree with
  its jupytext ``py:percent`` twin ``NN_name.py`` (the text form reviews read).

``notebooks/exercises/`` is not part of this file.
"""

import os
import pathlib
import re

import pytest

from attention.comprehension import FILL_ANSWERS_ENV, questions_of
from tests._kernel import run_in_one_kernel

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT_S = 300


def _ids(paths):
    return [p.stem for p in paths]


def test_the_course_is_there_and_numbered_without_gaps():
    numbers = [int(p.name[:2]) for p in SOURCES]
    assert numbers == list(range(len(numbers))) and len(numbers) >= 10, numbers


def test_every_notebook_has_its_text_twin_and_vice_versa():
    assert {p.stem for p in SOURCES} == {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_notebook_has_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: strip them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


def _cells(notebook):
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_matches_its_py_percent_twin(path):
    twin = path.with_suffix(".py")
    from_ipynb = jupytext.read(path)
    from_py = jupytext.read(twin)
    assert _cells(from_ipynb) == _cells(from_py), (
        f"{path.name} and {twin.name} differ; re-sync with "
        f"`jupytext --sync {twin.relative_to(NOTEBOOKS_DIR.parent)}`"
    )
    formats = from_py.metadata.get("jupytext", {}).get("formats", "")
    assert "py:percent" in formats and "ipynb" in formats, f"{twin.name} is not paired"


# The code each notebook shows of the steps it teaches (`show_code(...)`, the package's own
# body without docstring and checks). Where a notebook writes a step itself, it asserts its
# version equal to the package's (notebook 06's layers by hand, 04's heads by hand...), and the
# package's is shown beside it.
SHOWN = {
    "00": ["cosine_top_k"],
    "01": ["dot_product_scores"],
    "02": ["masked_softmax", "causal_mask", "padding_mask"],
    "03": ["weighted_sum", "single_head_attention", "attention_weights",
           "dot_product_attention"],
    "04": ["split_heads", "merge_heads", "MultiHeadAttention.__call__",
           "MultiHeadAttention.attend"],
    "05": ["sinusoidal_positions"],
    "06": ["feed_forward", "layer_norm", "Residual.__call__", "EncoderLayer.__call__",
           "DecoderLayer.__call__"],
    "07": ["transformer_schedule", "label_smoothed_cross_entropy", "train_step"],
    "08": ["alignment_accuracy"],
    "09": ["decode_loop", "_beam_search_jit", "append_and_attend"],
    "10": ["_forward_tiles"],
    "11": ["repeat_kv_heads", "local_window_mask", "apply_rope", "alibi_bias"],
    "12": ["sampling_log_probs", "top_k_mask", "top_p_mask"],
    "13": ["pretrained.from_pretrained", "previous_token_score"],
    "14": ["latent_attention", "differential_weights", "linear_attention", "cache_positions"],
    "15": ["inverted_index_top_k"],
}


def test_every_notebook_shows_the_code_of_the_steps_it_teaches():
    assert sorted(SHOWN) == sorted(p.name[:2] for p in NOTEBOOKS)
    missing = {}
    for path in NOTEBOOKS:
        cells = jupytext.read(path.with_suffix(".py")).cells
        shown = [line.strip()[len("show_code("):-1] for cell in cells
                 if cell.cell_type == "code" for line in cell.source.splitlines()
                 if line.startswith("show_code(")]
        # each in a cell of its own, as the cell's last line: the cell displays it
        lonely = all(cell.source.strip().splitlines()[-1].startswith("show_code(")
                     for cell in cells if "show_code(" in cell.source
                     and "import check" not in cell.source)
        if shown != SHOWN[path.name[:2]] or not lonely:
            missing[path.name] = shown
    assert not missing, f"notebooks that do not show what SHOWN lists, in order: {missing}"


@pytest.fixture(scope="module")
def course_folder(tmp_path_factory):
    """One working folder for the whole course, as a student has: notebooks 08 and 09 load
    the model that notebook 07 saved there."""
    return tmp_path_factory.mktemp("course")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_twice_in_the_fast_setting(path, course_folder, monkeypatch):
    # The kernel is a child process: it inherits these.
    monkeypatch.setenv("ATTENTION_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(NOTEBOOKS_DIR.parent), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.chdir(course_folder)
    # Twice in a row in the same folder and kernel (tests/_kernel.py): a student re-runs a
    # notebook, and what the first run left there (a saved model, figures, names) must not
    # break the second. The first run is untouched, the second has the comprehension answers
    # filled in.
    monkeypatch.setenv(FILL_ANSWERS_ENV, "0")
    runs = [nbformat.read(path, as_version=4) for _ in range(2)]
    run_in_one_kernel(runs, course_folder, timeout=CELL_TIMEOUT_S,
                      env_between={FILL_ANSWERS_ENV: "1"})  # raises naming the cell
    for notebook, expected in zip(runs, ("TODO", "PASS"), strict=True):
        reported = _check_reports(notebook)
        questions = questions_of(path.name[:2])
        assert sorted(reported) == sorted(questions), (
            f"{path.name}: the checks reported {sorted(reported)}, the registry lists "
            f"{sorted(questions)} (each question once)")
        wrong = {q: status for q, status in reported.items() if status != expected}
        run = "untouched" if expected == "TODO" else "filled in"
        assert not wrong, f"{path.name}, {run}: {wrong}"
    leftovers = [p for p in NOTEBOOKS_DIR.iterdir() if p.name in ("runs", "figures")]
    assert not leftovers, f"{path.name} wrote into the repository: {leftovers}"


_REPORT = re.compile(r"^\[(TODO|PASS|FAIL)\] (\d\d\.\w+):", re.MULTILINE)


def _check_reports(notebook) -> dict[str, str]:
    """{question id: status} from the text outputs of the executed notebook's cells."""
    reports: dict[str, str] = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            for status, question in _REPORT.findall(text):
                assert question not in reports, f"question {question} reported twice"
                reports[question] = status
    return reports
