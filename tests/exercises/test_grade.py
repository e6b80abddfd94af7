"""The grading command on a folder of sample submissions."""

import contextlib
import csv
import hashlib
import io
import json
import os
import pathlib
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import venv

import nbformat
import pytest

from attention.exercises import grade, sandbox, source
from teachers.solutions import solution_source

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
# Loops forever, asleep: the time limit is wall time (a busy loop would burn a CPU for it).
LOOPING_SOFTMAX = '''
import time

def stable_softmax(scores):
    while True:
        time.sleep(0.5)
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


# One class, graded once through the command line, serves the tests below: four students of
# the first two exercises (notebooks, a folder, mistakes, a blank notebook), one who
# imports the answer from the package, and two who make one typical mistake in each of the
# twenty exercises (MISTAKES).
# No one reaches the limit (the looping student has a test of her own, with a short one): 20 s
# leaves every check time to pass on a loaded 2-core machine.
CLASS_TIMEOUT = 20


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    from attention.exercises import EXERCISES

    tmp_path = tmp_path_factory.mktemp("class")
    submissions = tmp_path / "submissions"
    (submissions / "alice").mkdir(parents=True)  # a folder per student, real notebooks
    _solved_notebook("01_dot_product_scores", "dot_product_scores",
                     submissions / "alice" / "scores.ipynb")
    _solved_notebook("02_stable_softmax", "stable_softmax", submissions / "alice" / "soft.ipynb")
    (submissions / "bob.py").write_text(UNSCALED_SCORES + RIGHT_SOFTMAX)
    (submissions / "dave.py").write_text(RAISING_SCORES)
    # An untouched notebook: the blank still raises NotImplementedError.
    blank = nbformat.read(NOTEBOOKS / "02_stable_softmax.ipynb", as_version=4)
    nbformat.write(blank, submissions / "erin.ipynb")
    (submissions / "mallory.py").write_text("from attention import sinusoidal_positions\n")
    # Each typical mistake written into its model solution, half of them by each of two
    # students (a worker each, kept for all their exercises).
    assert set(MISTAKES) == set(EXERCISES)
    for i, (name, (right, wrong, _)) in enumerate(MISTAKES.items()):
        source = solution_source(name)
        assert right in source, (name, right)
        folder = submissions / f"wrong_{'ab'[i % 2]}"
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.py").write_text(source.replace(right, wrong, 1))
    before = _digest(submissions)

    out = tmp_path / "results" / "scores.csv"
    stats: dict = {}
    real = grade.grade_folder
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(printed):
        monkeypatch.setattr(grade, "grade_folder",
                            lambda *args, **kwargs: real(*args, stats=stats, **kwargs))
        status = grade.main([str(submissions), "--out", str(out), "--timeout",
                             str(CLASS_TIMEOUT), "--jobs", "2"])
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(out.with_name("scores_feedback.csv"), newline="") as f:
        feedback = {(r["student"], r["exercise"]): r for r in csv.DictReader(f)}
    return dict(status=status, rows=rows, feedback=feedback, stats=stats,
                printed=printed.getvalue(), untouched=_digest(submissions) == before)


def test_grade_folder_writes_the_score_table(graded_class):
    assert graded_class["status"] == 0
    assert graded_class["untouched"]  # the teacher's files are untouched
    first_two = ("dot_product_scores", "stable_softmax")
    rows = [{k: r[k] for k in ("student", *first_two)} for r in graded_class["rows"]
            if r["student"] in ("alice", "bob", "dave", "erin")]
    assert rows == [
        {"student": "alice", "dot_product_scores": "1", "stable_softmax": "1"},
        {"student": "bob", "dot_product_scores": "0", "stable_softmax": "1"},
        {"student": "dave", "dot_product_scores": "0", "stable_softmax": "0"},
        {"student": "erin", "dot_product_scores": "0", "stable_softmax": "0"},
    ]
    totals = {r["student"]: r["total"] for r in graded_class["rows"]}
    assert (totals["alice"], totals["bob"], totals["dave"]) == ("2", "1", "0")
    feedback = graded_class["feedback"]
    assert feedback["alice", "stable_softmax"]["file"] == "soft.ipynb"
    assert "sqrt(d_k)=4.00 times too large" in feedback["bob", "dot_product_scores"]["message"]
    assert "raised ValueError: I give up" in feedback["dave", "dot_product_scores"]["message"]
    assert feedback["dave", "stable_softmax"]["status"] == "not submitted"
    assert feedback["erin", "stable_softmax"]["status"] == "not implemented"
    assert "not implemented yet" in feedback["erin", "stable_softmax"]["message"]
    assert feedback["alice", "masking"]["status"] == "not submitted"
    printed = graded_class["printed"]
    assert "student" in printed and "dave" in printed and "not implemented" in printed


def test_a_check_that_never_ends_is_timed_out_with_the_limit_named(tmp_path):
    (tmp_path / "carol.py").write_text(RIGHT_SCORES + LOOPING_SOFTMAX)
    _, grades = grade.grade_folder(tmp_path, exercises=["stable_softmax"], timeout=5,
                                   canary=False)
    [carol] = grades
    assert (carol.score, carol.status) == (0, "timed out"), carol
    assert "did not finish within 5 s" in carol.message, carol


def test_imported_package_function_scores_zero(graded_class):
    only = graded_class["feedback"]["mallory", "sinusoidal_positions"]
    assert only["score"] == "0"
    assert "the `attention` package cannot be imported while grading" in only["message"]
    assert {r["student"]: r["total"] for r in graded_class["rows"]}["mallory"] == "0"


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


# One typical mistake per exercise, written into its model solution: through the real grader
# the diagnosis is made in the grader's process, from the arrays the worker sends back.
MISTAKES = {
    "combine_embeddings": ("return u + v, u - v, u * v", "return u * v, u - v, u + v",
                           "your sum is u * v"),
    "dot_product_scores": ("return scores_BNTS / jnp.sqrt(H)", "return scores_BNTS",
                           "sqrt(d_k)=4.00 times too large"),
    "stable_softmax": ("shifted = scores - jnp.max(scores, axis=-1, keepdims=True)",
                       "shifted = scores", "Subtract each row's maximum"),
    "masking": ("return jnp.arange(S)[None, :] <= jnp.arange(T)[:, None]",
                "return jnp.arange(S)[None, :] < jnp.arange(T)[:, None]", "hides the diagonal"),
    "scaled_dot_product_attention": ("if mask is None:\n        mask =", "if True:\n        mask =",
                                     "you ignored the mask"),
    "split_merge_heads": ("return x.reshape(*batch, num_heads, D // num_heads)",
                          "return x.reshape(*batch, D // num_heads, num_heads).swapaxes(-1, -2)",
                          "split along the wrong axis"),
    "multi_head_attention": ("return heads_BTNH.reshape(B, T, D) @ w_o",
                             "return heads_BTNH.reshape(B, T, D)", "forgot the output projection"),
    "sinusoidal_positions": ("jnp.sin(angle), jnp.cos(angle)", "jnp.cos(angle), jnp.sin(angle)",
                             "sine and cosine are swapped"),
    "causal_self_attention": ("allowed_TS = jnp.arange(T)[None, :] <= jnp.arange(T)[:, None]",
                              "allowed_TS = jnp.arange(T)[None, :] <= jnp.arange(T)[:, None] + 1",
                              "future tokens leak"),
    "greedy_decoding": ("next_token = jnp.where(finished, config.pad_id, next_token)",
                        "next_token = next_token", "kept generating"),
    "label_smoothing": ("real_BT = targets != pad_id", "real_BT = targets >= 0",
                        "includes the padding positions"),
    "grouped_query_attention": ('"btkgh,bskh->bkgts", q_BTKGH, key) / jnp.sqrt(H)',
                                '"btkgh,bskh->bkgts", q_BTKGH, key)',
                                "without the 1/sqrt(d_k) scaling"),
    "rotary_positions": ("apply_rope(key, positions), value", "apply_rope(key, positions), "
                         "apply_rope(value, positions)", "you rotated the values too"),
    "sliding_window_mask": ("(t - s <= window)", "(t - s < window)", "one token short"),
    "layer_norm": ("var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)",
                   "var = jnp.var(x, axis=-1, keepdims=True, ddof=1)", "unbiased variance"),
    # The lent parts stay in the grader; the student's code calls them through the worker.
    "encoder_layer": ("x = norm(x + layer.dropout(sublayer(x), deterministic))",
                      "x = norm(layer.dropout(sublayer(x), deterministic))",
                      "missing around both sub-layers"),
    # An experiment: the checker re-runs the measurement and recomputes the reported numbers.
    "scaling_experiment": ("scores = scores / jnp.sqrt(d_k)", "scores = scores / d_k",
                           "divided the scores by d_k"),
    "qk_norm_scores": ("return cap * jnp.tanh(scores / cap)", "return jnp.tanh(scores) * cap",
                       "tanh(scores) * cap"),
    "streaming_cache": ("num_sinks + jnp.mod(position - num_sinks, window)",
                        "jnp.mod(position, num_sinks + window)", "overwrites the sinks"),
    "linear_attention_recurrent": ("out = phi_q @ S / (phi_q @ z)", "out = phi_q @ S",
                                   "misses the normaliser"),
}


def test_every_solution_passes_and_every_typical_mistake_is_named_through_the_grader(
        graded_class):
    from attention.exercises import EXERCISES

    # The canary grades every model solution first, in the same sandbox and workers, and
    # makes the command exit with status 2 unless each passes: the model's own test.
    assert graded_class["status"] == 0
    assert [k for k in graded_class["rows"][0] if k not in ("student", "total")] == list(
        EXERCISES)
    # A worker per student, started once: the canary's share of the exercises in each of its
    # two workers (one per job), none replaced between exercises (one more worker for a check
    # run again alone if the load starved it).
    stats = graded_class["stats"]
    assert stats["workers"] >= 2 + 7, stats
    assert stats["replaced"] == [], stats
    assert stats["workers"] <= 2 + 7 + 1, stats
    by = graded_class["feedback"]
    for i, (name, (_, _, words)) in enumerate(MISTAKES.items()):
        mistake = by[f"wrong_{'ab'[i % 2]}", name]
        assert mistake["score"] == "0" and mistake["status"] == "failed", mistake
        assert words in mistake["message"], (name, mistake["message"])

# ----------------------------------------------------------------------------- files of any kind


def test_only_regular_files_with_one_name_are_read(tmp_path):
    (tmp_path / "ok.py").write_text("x = 1\n")
    os.mkfifo(tmp_path / "fifo.py")
    os.link(tmp_path / "ok.py", tmp_path / "linked.py")
    (tmp_path / "big.py").write_bytes(b"#" * (grade.MAX_FILE_BYTES + 1))
    with pytest.raises(ValueError, match="it is a FIFO, not a regular file"):
        grade.read_bounded(tmp_path / "fifo.py")  # refused without blocking in open()
    with pytest.raises(ValueError, match="hard link"):
        grade.read_bounded(tmp_path / "linked.py")
    with pytest.raises(ValueError, match="over 2 MiB"):
        grade.read_bounded(tmp_path / "big.py")
    if os.geteuid() == 0:  # a device node among the submissions
        os.mknod(tmp_path / "zero.py", stat.S_IFCHR | 0o600, os.makedev(1, 5))
        with pytest.raises(ValueError, match="character device"):
            grade.read_bounded(tmp_path / "zero.py")


def test_names_in_any_encoding_are_shown_safely_and_told_apart(tmp_path):
    latin1 = os.fsdecode(b"M\xfcller")
    for name in (f"{latin1}.py", "alice.py", "alice\u200b.py", ".hidden_student.py",
                 "\u0430lice.py", "Zo\u00eb.py"):  # a Cyrillic a; a name of its own
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    students = grade.find_submissions(tmp_path)
    assert sorted(students) == [".hidden_student", "<U+0430>lice", "M\\xfcller", "Zo\u00eb",
                                "alice", "alice<U+200B>"]
    assert grade.clean_text("bad \ud800 text") == "bad \\ud800 text"
    "".join(students).encode("utf-8")  # every shown name encodes


def test_parsing_is_bounded_in_time_and_finds_library_shortcuts():
    with grade.SourceReader(seconds=0.5) as reader, pytest.raises(ValueError, match="took more"):
        reader.analyse("f(a)(a)(a)\n" * 400_000)
    with grade.SourceReader() as reader:  # started again after the kill
        assert reader.analyse("x = 1")["defined"] == ["x"]


SHORTCUTS = {
    "stable_softmax": "import jax\n\ndef stable_softmax(s):\n    return jax.nn.softmax(s)\n",
    "scaled_dot_product_attention": (
        "from jax import nn\n\ndef _attend(q, k, v):\n"
        "    return nn.dot_product_attention(q, k, v)\n"
        "\ndef scaled_dot_product_attention(q, k, v, mask=None):\n    return _attend(q, k, v)\n"),
    "grouped_query_attention": (
        "from jax.nn import dot_product_attention as dpa\n\n"
        "def grouped_query_attention(q, k, v, is_causal=False):\n    return dpa(q, k, v)\n"),
    "multi_head_attention": (
        "from flax import nnx\n\ndef multi_head_attention(x, w_q, w_k, w_v, w_o, num_heads, "
        "mask=None):\n    return nnx.MultiHeadAttention(num_heads, x.shape[-1])(x)\n"),
    "layer_norm": ("import jax.nn as jnn\n\ndef layer_norm(x, scale, bias, epsilon=1e-6):\n"
                   "    return jnn.standardize(x, epsilon=epsilon) * scale + bias\n"),
}


@pytest.mark.parametrize("exercise", sorted(SHORTCUTS))
def test_a_library_shortcut_scores_zero_with_what_the_exercise_asks(exercise):
    from attention.exercises import EXERCISES

    box = sandbox.Sandbox(sandbox.PROCESS)  # never started: refused before any worker
    passed, status, message = grade.run_check(SHORTCUTS[exercise], exercise, timeout=1,
                                              sandbox=box)
    assert not passed and status == "failed"
    assert "does this exercise for you; it asks you to" in message
    assert EXERCISES[exercise].instead in message
    # the model solutions use none of them (the canary would stop the grader)
    assert grade.shortcut(source.analyse(solution_source(exercise), grade.FORBIDDEN),
                          EXERCISES[exercise]) is None


def test_a_shortcut_built_at_run_time_scores_zero_in_a_check_of_its_own():
    """The single-check path (a worker for this check alone, no fingerprint): the name that no
    reading of the source finds trips in the worker, and the check fails although the
    function catches the error and answers right."""
    from attention.exercises import EXERCISES

    code = ("import jax\nimport jax.numpy as jnp\n\ndef stable_softmax(s):\n    try:\n"
            "        return getattr(jax.nn, 'soft' + 'max')(s)\n    except Exception:\n"
            "        e = jnp.exp(s - s.max(-1, keepdims=True))\n"
            "        return e / e.sum(-1, keepdims=True)\n")
    assert grade.shortcut(source.analyse(code, grade.FORBIDDEN),
                          EXERCISES["stable_softmax"]) is None  # the source shows nothing
    passed, status, message = grade.run_check(code, "stable_softmax", timeout=60,
                                              sandbox=sandbox.Sandbox(sandbox.PROCESS))
    assert (passed, status) == (False, "failed"), message
    assert message == grade.run_time_shortcut(["jax.nn.softmax"], EXERCISES["stable_softmax"])
    assert "found at run time" in message and EXERCISES["stable_softmax"].instead in message


def test_a_lookup_table_of_the_notebook_inputs_fails_under_the_secret_seed():
    """A function that answers only the inputs a student recorded from the notebook's fixed
    seeds (the stand-in of a table: right there, zeros elsewhere) passes only without the
    secret."""
    import jax.numpy as jnp

    from attention.exercises import EXERCISES, _shared

    table: dict = {}
    for seed, shape in ((0, (2, 3, 7, 16)), (1, (3, 6, 5, 9)), (7, (3, 6, 5, 9))):
        table.setdefault(shape, []).append(_shared.normal(seed, shape))

    def dot_product_scores(query, key):
        known = jnp.any(jnp.stack([jnp.allclose(query, r) for r in table.get(query.shape, [])]))
        scores = jnp.einsum("btnh,bsnh->bnts", query, key) / jnp.sqrt(query.shape[-1])
        return jnp.where(known, scores, 0.0)

    check = EXERCISES["dot_product_scores"].check
    assert check(dot_product_scores).passed  # the fixed seeds of the notebook
    with _shared.secret_seed(grade.draw_seed()):
        assert not check(dot_product_scores).passed


def test_a_broken_sandbox_stops_the_grader_before_any_score(tmp_path, monkeypatch, capsys):
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "alice.py").write_text(RIGHT_SCORES)
    # bwrap that cannot start: every worker exits at once
    monkeypatch.setattr(sandbox.Sandbox, "command", lambda self, workdir, argv: ["false"])
    out = tmp_path / "out" / "scores.csv"
    assert grade.main([str(tmp_path / "class"), "--out", str(out)]) == 2
    assert not out.exists()
    error = capsys.readouterr().err
    assert "the setup check failed, nobody was graded" in error
    assert "model solution of dot_product_scores" in error and "Python:" in error


def test_a_python_that_does_not_exist_is_named_by_the_canary(tmp_path):
    (tmp_path / "alice.py").write_text(RIGHT_SCORES)
    with pytest.raises(grade.SetupError, match="is not an executable file"):
        grade.grade_folder(tmp_path, python=str(tmp_path / "no-python"), timeout=30)


BUBBLEWRAP_HERE = sandbox.choose("auto").level == sandbox.BUBBLEWRAP
REPO_ROOT = NOTEBOOKS.parents[1]


@pytest.mark.slow
@pytest.mark.skipif(not BUBBLEWRAP_HERE,
                    reason="bubblewrap is not installed or cannot create namespaces here")
@pytest.mark.parametrize("place", ["tmp", "home", "checkout"])
def test_a_venv_wherever_it_lives_grades_honest_students(tmp_path, monkeypatch, place):
    """bubblewrap empties /tmp and hides the teacher's home and the project checkout: a venv's
    Python in any of them is re-bound read-only (the canary passes), the package hidden again."""
    with contextlib.ExitStack() as cleanup:
        if place == "tmp":
            assert str(tmp_path).startswith(("/tmp/", "/var/tmp/"))
            folder = tmp_path
        elif place == "home":
            folder = tmp_path / "home"
            monkeypatch.setenv("HOME", str(folder))
        else:  # a folder inside the checkout, gone afterwards
            folder = pathlib.Path(tempfile.mkdtemp(prefix=".test-venv-", dir=REPO_ROOT))
            cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
        venv.create(folder / "venv", symlinks=True, with_pip=False)
        # the venv sits where the sandbox empties or hides
        assert any(str(folder).startswith(h + os.sep)
                   for h in (*sandbox.EMPTIED, *sandbox.hidden_paths())), folder
        (tmp_path / "class").mkdir()
        (tmp_path / "class" / "alice.py").write_text(RIGHT_SCORES)
        _, grades = grade.grade_folder(tmp_path / "class", exercises=["dot_product_scores"],
                                       python=str(folder / "venv" / "bin" / "python"),
                                       timeout=60)
        assert [g.score for g in grades] == [1], grades


def _as_nobody(command: list[str], reach: list[str], stage: pathlib.Path) -> list[str]:
    """``command`` run as user nobody (as root), in a mount namespace of its own where the
    folders in ``reach`` can be reached: a folder above them that only root may enter (such as
    /root, where pyenv and CI's checkouts often live) is covered by an empty tmpfs into which
    they alone are bound back. Nothing changes outside that namespace."""
    wanted = sorted({os.path.realpath(p) for p in reach})
    wanted = [p for p in wanted if not any(p.startswith(q + os.sep) for q in wanted)]
    closed = set()  # the highest folder above each wanted one that others cannot enter
    for path in wanted:
        above = [a for a in pathlib.Path(path).parents if a != pathlib.Path("/")]
        shut = [a for a in above if not os.stat(a).st_mode & stat.S_IXOTH]
        if shut:
            closed.add(str(shut[-1]))
    script = ["set -e"]
    moved = [(p, stage / str(i)) for i, p in enumerate(wanted)
             if any(p.startswith(c + os.sep) for c in closed)]
    for path, staged in moved:
        staged.mkdir(parents=True)
        script.append(f"mount --bind {shlex.quote(path)} {shlex.quote(str(staged))}")
    for folder in sorted(closed):
        script.append(f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(folder)}")
    for path, staged in moved:
        script += [f"mkdir -p {shlex.quote(path)}",
                   f"mount --move {shlex.quote(str(staged))} {shlex.quote(path)}"]
    script.append("exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "
                  + shlex.join(command))
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            "\n".join(script)]


@pytest.mark.slow
@pytest.mark.skipif(not BUBBLEWRAP_HERE,
                    reason="bubblewrap is not installed or cannot create namespaces here")
@pytest.mark.skipif(os.geteuid() == 0 and not (shutil.which("unshare") and shutil.which("setpriv")),
                    reason="needs util-linux's unshare and setpriv to become another user")
def test_a_teacher_who_is_not_root_grades_honest_students(tmp_path):
    """As root, the grader is run as user nobody (every other test grades as root); as
    another user, as that user. The canary and an honest student pass, confined by
    bubblewrap in a user namespace (not a dropped user id) where the kernel lets that user
    make one, else at the process level, as the grader's first line says."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="grade-as-user-"))  # not in tmp_path: root's
    try:
        os.chmod(work, 0o755)
        for name in ("home", "class", "stage"):
            (work / name).mkdir()
        (work / "class" / "alice.py").write_text(RIGHT_SCORES)
        (work / "class" / "bob.py").write_text(UNSCALED_SCORES)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work / "home"), "LANG": "C.UTF-8",
               "ATTENTION_COMPILATION_CACHE": "off",
               "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}
        command = [sys.executable, "-m", "attention", "grade", str(work / "class"), "--out",
                   str(work / "home" / "out" / "scores.csv"), "--exercises",
                   "dot_product_scores", "--jobs", "1", "--timeout", "60"]
        command = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *command]
        # Can this user make the namespaces? (Some kernels refuse unprivileged users.)
        probe = [shutil.which("bwrap"), "--unshare-user", "--ro-bind", "/", "/", "--dev", "/dev",
                 "--proc", "/proc", "--unshare-pid", "--unshare-net", "--", "true"]
        if os.geteuid() == 0:
            os.chown(work / "home", 65534, 65534)
            reach = [REPO_ROOT, *sandbox.python_paths()]
            (work / "stage2").mkdir()
            probe = _as_nobody(probe, reach, work / "stage2")
            command = _as_nobody(command, reach, work / "stage")
        namespaces = subprocess.run(probe, capture_output=True, timeout=60).returncode == 0
        done = subprocess.run(command, cwd=work / "home", capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        level = "sandbox: bubblewrap" if namespaces else "sandbox: process only"
        assert done.stdout.startswith(level), (level, done.stdout)
        assert "an unprivileged user id per check" not in done.stdout  # root's way only
        with open(work / "home" / "out" / "scores.csv", newline="") as f:
            scores = {r["student"]: r["dot_product_scores"] for r in csv.DictReader(f)}
        assert scores == {"alice": "1", "bob": "0"}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_check_the_load_starved_is_run_again_alone(tmp_path, monkeypatch):
    from attention.exercises.remote import WorkerFailure

    for name in ("alice", "bob"):
        (tmp_path / f"{name}.py").write_text(RIGHT_SCORES)
    calls = []

    def run_check(code, exercise, *, raise_starved=False, **kwargs):
        calls.append(raise_starved)
        if raise_starved:  # beside a classmate: the machine kept it waiting
            raise WorkerFailure("timed out", "timed out", starved=True)
        return True, "passed", "ok"

    monkeypatch.setattr(grade, "run_check", run_check)
    _, grades = grade.grade_folder(tmp_path, jobs=2, canary=False,
                                   sandbox=sandbox.Sandbox(sandbox.PROCESS))
    assert [g.score for g in grades] == [1, 1]
    assert calls == [True, True, False, False]  # each run again, alone
    assert sandbox.longest_wait([os.getpid()]) >= 0.0


def test_one_student_cannot_hold_the_class_for_more_than_their_budget(tmp_path, monkeypatch):
    import time

    (tmp_path / "sleeper.py").write_text(RIGHT_SCORES + RIGHT_SOFTMAX)
    calls = []

    def run_check(code, exercise, **kwargs):  # just under the limit, every time
        calls.append(exercise)
        time.sleep(0.3)
        return True, "passed", "ok"

    monkeypatch.setattr(grade, "run_check", run_check)
    _, grades = grade.grade_folder(tmp_path, canary=False, student_budget=0.2,
                                   sandbox=sandbox.Sandbox(sandbox.PROCESS))
    assert calls == ["dot_product_scores"]  # the second check was not run
    assert grades[1].status == "timed out" and "whole time budget" in grades[1].message


# ----------------------------------------------------------------------------- a worker per student

BY_POW = RIGHT_SCORES.replace("jnp.sqrt(query.shape[-1])", "pow(query.shape[-1], 0.5)")
BY_MATH = "import math\n" + RIGHT_SCORES.replace("jnp.sqrt(", "math.sqrt(")
BRANCHY = RIGHT_SCORES.replace("    return jnp.einsum", "    if query.sum() > 1e30:\n"
                               "        query = query * 0\n    return jnp.einsum")
# What the first exercise's file leaves behind, the second exercise's file (graded after it,
# by the same student), and what the second exercise's verdict would be if it leaked through.
PATCHES = {
    "module_attribute": ("jnp.einsum = lambda *args, **kwargs: 0.0\n", RIGHT_SCORES,
                         "module jax.numpy"),
    "builtins": ("import builtins\nbuiltins.pow = lambda base, exponent: 1.0\n", BY_POW,
                 "module builtins"),
    "sys_modules": ("import sys, types\n"
                    "sys.modules['math'] = types.SimpleNamespace(sqrt=lambda x: 1.0)\n",
                    BY_MATH, "sys.modules"),
    "jax_config": ("_ = jax.config.update('jax_disable_jit', True)\n", BRANCHY, "jax.config"),
    "thread": ("import threading, time\n\ndef _later():\n    time.sleep(1.0)\n"
               "    jnp.einsum = lambda *args, **kwargs: 0.0\n    while True:\n"
               "        time.sleep(1.0)\n\n"
               "_ = threading.Thread(target=_later, daemon=True).start()\n", RIGHT_SCORES,
               "threads"),
    "crash": ("import os\n_ = os._exit(3)\n", RIGHT_SCORES, "WorkerFailure"),
}


def test_what_one_exercise_changes_in_the_worker_never_reaches_the_next_ones_verdict(tmp_path):
    for kind, (patch, second, _) in PATCHES.items():
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "a.py").write_text(solution_source("combine_embeddings") + patch)
        (tmp_path / kind / "b.py").write_text(second)
    stats: dict = {}
    _, grades = grade.grade_folder(tmp_path, timeout=60, jobs=2, canary=False, stats=stats)
    by = {(g.student, g.exercise): g for g in grades}
    for kind, (_, second, reason) in PATCHES.items():
        verdict = by[kind, "dot_product_scores"]
        if second is BRANCHY:  # as graded alone: jit is on, and names the `if`
            assert verdict.status == "failed" and "breaks under jax.jit" in verdict.message
        else:
            assert verdict.score == 1, (kind, verdict)
        replaced = [r for r in stats["replaced"] if r.startswith(f"{kind}: ")]
        assert len(replaced) == 1 and reason in replaced[0], (kind, stats["replaced"])
    assert by["crash", "combine_embeddings"].status == "crashed"
    assert by["module_attribute", "combine_embeddings"].score == 1  # its own check unchanged
    assert stats["workers"] == 2 * len(PATCHES)  # each replaced once, after its first exercise


def test_two_students_are_graded_at_once_by_default(tmp_path, monkeypatch):
    seen: dict = {}
    monkeypatch.setattr(grade, "grade_folder", lambda folder, **kw: seen.update(kw) or ([], []))
    (tmp_path / "class").mkdir()
    assert grade.main([str(tmp_path / "class"), "--out", str(tmp_path / "s.csv"),
                       "--sandbox", "none"]) == 0
    assert seen["jobs"] == min(2, os.cpu_count())
    assert grade.main([str(tmp_path / "class"), "--out", str(tmp_path / "s.csv"),
                       "--sandbox", "none", "--jobs", "1"]) == 0
    assert seen["jobs"] == 1
