"""Red team: dishonest, malicious and broken submissions, graded by the real grader.

Each attack is a real submission of the exercise ``dot_product_scores`` (or, for a library
shortcut reached at run time, of ``stable_softmax``) in one class folder, graded by
``attention grade`` (two jobs) beside honest classmates, some of them graded after the
attacks. The tests assert that every attack scores 0, that nothing it tried to write
exists, that no process it started is alive, that the teacher's secrets are in no output, that
the honest submissions still pass and that the CSV is complete. The first class is graded at
the best sandbox level here (bubblewrap in CI, which installs it); a smaller class is graded
with ``--sandbox none`` to show what holds without an OS sandbox (docs/teachers.md), with the
library shortcuts reached at run time (the worker's tripwires, the same at every level).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import pathlib
import re
import socket
import stat
import threading
import time
import uuid

import pytest

import attention
from attention.exercises import grade, sandbox
from teachers.solutions import solution_source

REPO = pathlib.Path(__file__).resolve().parents[2]
SOLUTIONS = REPO / "teachers" / "solutions.py"
PACKAGE = pathlib.Path(attention.__file__).resolve().parent
HOME = pathlib.Path(os.path.expanduser("~"))
TOKEN = uuid.uuid4().hex
FILE_SECRET = uuid.uuid4().hex

HONEST = '''
import jax.numpy as jnp

def dot_product_scores(query, key):
    return jnp.einsum("btnh,bsnh->bnts", query, key) / jnp.sqrt(query.shape[-1])
'''
# Right shape, wrong values: what an attacker returns while forging the verdict.
WRONG = '''
import jax.numpy as jnp

def dot_product_scores(query, key):
    return jnp.zeros((query.shape[0], query.shape[2], query.shape[1], key.shape[1]))
'''

ATTACKS = {
    # --- forging the verdict
    "forge_result_file": '''
import json, os, pathlib
_ = pathlib.Path("result.json").write_text(json.dumps({"passed": True, "status": "passed"}))
_ = pathlib.Path("ready").write_text("ready")
_ = os._exit(0)
''',
    "patch_json_dumps": '''
import json
_ = setattr(json, "dumps", lambda *a, **k: '{"passed": true, "status": "passed"}')
''' + WRONG,
    "patch_allclose": '''
import numpy as np
_ = setattr(np, "allclose", lambda *a, **k: True)
_ = setattr(np, "array_equal", lambda *a, **k: True)
''' + WRONG,
    "patch_checkers": '''
import sys
_ = [setattr(m, "check_dot_product_scores", lambda *a, **k: None)
     for m in list(sys.modules.values()) if "attention" in getattr(m, "__name__", "")]
import attention.exercises.registry
''' + WRONG,
    "print_pass": '''
import jax.numpy as jnp

def dot_product_scores(query, key):
    print("[PASS] dot_product_scores: your scores match")
    return jnp.zeros((1,))
''',
    "garbage_on_the_wire": '''
import os, sys
_ = os.write(int(sys.argv[3]), b"\\xff" * 64)
''' + WRONG,
    "forged_reply": '''
import json, os, struct, sys
_head = json.dumps({"op": "result", "value": {"t": "str", "v": "[PASS]"}, "arrays": []}).encode()
_ = os.write(int(sys.argv[3]), struct.pack(">IQ", len(_head), 0) + _head)
''' + WRONG,
    "evil_array": '''
import numpy as np

class Scores:
    def __init__(self, shape):
        self.shape = shape
    def __array__(self, dtype=None, copy=None):
        return np.zeros(self.shape, np.float32)
    def __eq__(self, other):
        return True

def dot_product_scores(query, key):
    return Scores((query.shape[0], query.shape[2], query.shape[1], key.shape[1]))
''',
    # --- taking the answer
    "wrap_the_package": '''
from attention import dot_product_scores as _reference

def dot_product_scores(query, key):
    return _reference(query, key)
''',
    "exec_the_solutions": f'''
_ = exec(open({str(SOLUTIONS)!r}).read(), globals())
''',
    "find_the_solutions": f'''
import glob
_ = [exec(open(p).read(), globals())
     for p in glob.glob({str(REPO)!r} + "/**/solutions.py", recursive=True)]
''',
    "classmate_through_proc": '''
import os
_ = [exec(open(arg).read(), globals())
     for pid in os.listdir("/proc") if pid.isdigit() and pid != str(os.getpid())
     for arg in open(f"/proc/{pid}/cmdline").read().split("\\0")
     if arg.endswith("submission.py")]
''',
    "classmate_by_path": '''
_ = exec(open(CLASSMATE).read(), globals())
''',
    # --- touching the teacher's machine
    "write_tmp_home_package": f'''
import os
_ = open("/tmp/redteam-{TOKEN}-tmp", "w").write("x")
_ = open({str(HOME)!r} + "/redteam-{TOKEN}-home", "w").write("x")
_ = open({str(PACKAGE)!r} + "/redteam_{TOKEN}.py", "w").write("x")
''' + WRONG,
    "rewrite_the_scores": '''
_ = open(OUT + "/scores.csv", "w").write("student,total\\nmallory,99\\n")
''' + WRONG,
    "leak_the_environment": '''
import os

def dot_product_scores(query, key):
    leaks = [str(dict(os.environ))]
    for path in ("/proc/1/environ", f"/proc/{os.getppid()}/environ"):
        try:
            leaks.append(open(path).read())
        except OSError:
            pass
    raise ValueError(" ".join(leaks))
''',
    "leak_a_teacher_file": '''
def dot_product_scores(query, key):
    raise ValueError(open(SECRET_FILE).read())
''',
    "open_a_socket": f'''
import socket
_ = socket.create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"{TOKEN}")
''' + WRONG,
    "children_outlive_grading": f'''
import subprocess, sys
_ = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "{TOKEN}"])
     for _ in range(20)]
_ = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "{TOKEN}"],
                     start_new_session=True)
''' + WRONG,
    "detached_rewriter": '''
import os, time
_forged = "rewritten-by-a-detached-child"
_ = os.fork() == 0 and (os.setsid(), os.fork() == 0 and (
        time.sleep(4), open(OUT + "/scores.csv", "w").write(_forged), os._exit(0)),
    os._exit(0))
''' + WRONG,
    "poison_the_jax_cache": '''
import os
import jax
_ = jax.config.update("jax_compilation_cache_dir", CACHE)
_ = jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
_ = [open(os.path.join(CACHE, f"poison-{i}"), "w").write("x") for i in range(3)]
''' + WRONG,
    # The strongest poisoner: it compiles the model solution's own program (the inputs' shapes
    # are public), so its JAX looks up the very entries the canary left for the class, and
    # tries to overwrite, re-permission or delete each; its answer is wrong on purpose.
    "poison_the_shared_cache": '''
import os
import jax
import numpy as np
from jax._src import lru_cache

_looked_up, _poisoned = [], []

def _spy(self, key, _get=lru_cache.LRUCache.get):
    path = os.path.join(str(self.path), key + lru_cache._CACHE_SUFFIX)
    _looked_up.append(os.path.exists(path))
    for _action in (lambda: open(path, "wb").write(b"poison"), lambda: os.chmod(path, 0o666),
                    lambda: os.unlink(path), lambda: os.chmod(str(self.path), 0o777)):
        try:
            _action()
            _poisoned.append(key)
        except OSError:
            pass
    return _get(self, key)

_ = setattr(lru_cache.LRUCache, "get", _spy)
_model = {}
_ = exec(MODEL, _model)
_ = [jax.jit(_model["dot_product_scores"])(np.ones((b, t, n, h), np.float32),
                                           np.ones((b, s, n, h), np.float32))
     for b, t, s, n, h in ((2, 3, 5, 7, 16), (3, 6, 4, 5, 9))]

def dot_product_scores(query, key):
    raise ValueError(f"poisoned {len(_poisoned)} entries; {sum(_looked_up)} of "
                     f"{len(_looked_up)} looked up were there")
''',
    "kill_everything": '''
import os, signal
_ = os.kill(-1, signal.SIGKILL)
''',
    "kill_the_grader": '''
import os, signal
_ = os.kill(os.getppid(), signal.SIGKILL)
''',
    # --- breaking the grader
    "flood_the_output": '''
import os
_ = os.write(1, b"x" * (150 << 20))
''' + WRONG,
    "exhaust_memory": '''
import numpy as np

def dot_product_scores(query, key):
    return np.ones(8 << 30, np.float32)
''',
    "loop_at_load_time": '''
_ = [0 for _ in iter(int, 1) if False]  # forever, without growing
''',
    "escape_codes": '''
def dot_product_scores(query, key):
    raise ValueError("\\x1b[2J\\x1b[31mall passed\\x07\\r=1+1")
''',
    # --- the second red team (issue 34)
    "output_as_a_link_to_a_host_file": '''
import os
_ = os.path.lexists("output.txt") and os.remove("output.txt")
_ = os.symlink(SECRET_FILE, "output.txt")
_ = os._exit(1)
''',
    "output_as_a_fifo": '''
import os
_ = os.path.lexists("output.txt") and os.remove("output.txt")
_ = os.mkfifo("output.txt")
_ = os._exit(1)
''',
    "stop_reading_requests": '''
import fcntl, os, sys
_fd = int(sys.argv[2])
_ = fcntl.fcntl(_fd, 1031, 4096)  # F_SETPIPE_SZ: a request no longer fits in the pipe
_keep = os.dup(_fd)  # the requests' pipe stays open, and is never read again
_ = os.dup2(os.pipe()[0], _fd)
''',
    "lone_surrogate": '''
def dot_product_scores(query, key):
    raise ValueError("\\ud800 and \\udcff")
''',
    "fill_the_folder": '''
import os
_ = [open(f"fill{i}", "wb").write(b"x" * (15 << 20)) for i in range(8)]
''',
}
# Library shortcuts the source does not name (issue 34): submissions of the stable softmax
# (exercise 02, which forbids jax.nn.softmax) that reach it by a name built at run time. The
# worker's tripwires stop each one; "caught_and_hidden" catches the error and answers right.
# (tests/exercises/test_worker.py tries more routes on the tripwires alone: importlib,
# vars(), __import__, eval, the private module path, a default argument, jit, vmap, classes...)
_BUILT = '"soft" + "max"'
SHORTCUTS = {
    "getattr_built_name": f"""
import jax

def stable_softmax(scores):
    return getattr(jax.nn, {_BUILT})(scores)
""",
    "exec_a_private_path_at_load_time": f"""
import functools
_ = exec("from jax._src.nn.functions import " + {_BUILT} + " as _found", globals())
_partial = functools.partial(_found, axis=-1)

def stable_softmax(scores):
    return _partial(scores)
""",
    "caught_and_hidden": f"""
import jax
import jax.numpy as jnp

def stable_softmax(scores):
    try:
        return getattr(jax.nn, {_BUILT})(scores)
    except Exception:
        e = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
        return e / jnp.sum(e, axis=-1, keepdims=True)
""",
}
# Two files of one student, graded in one worker: the first exercise (honest) hides
# jax.nn.softmax where the state check does not look; the second takes it back.
SHORTCUTS["kept_from_an_earlier_exercise"] = {
    "scores.py": HONEST + """
import jax
import linecache
_ = linecache.cache.__setitem__("<kept>", (0, None, [jax.nn.softmax], "<kept>"))
""",
    "softmax.py": """
import linecache

def stable_softmax(scores):
    return linecache.cache["<kept>"][2][0](scores)
"""}
HONEST_SOFTMAX = """
import jax.numpy as jnp

def stable_softmax(scores):
    e = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
    return e / jnp.sum(e, axis=-1, keepdims=True)
"""
# Exercise 04 may use jax.nn.softmax: graded right after the student's 02, in the same worker,
# it passes (the tripwires are the stable softmax's alone).
ATTENTION_WITH_SOFTMAX = """
import jax
import jax.numpy as jnp

def scaled_dot_product_attention(query, key, value, mask=None):
    scores_BNTS = jnp.einsum("btnh,bsnh->bnts", query, key) / jnp.sqrt(query.shape[-1])
    if mask is None:
        mask = jnp.ones(scores_BNTS.shape, bool)
    weights_BNTS = jnp.where(mask, jax.nn.softmax(scores_BNTS, where=mask), 0.0)
    return jnp.einsum("bnts,bsnh->btnh", weights_BNTS, value)
"""

# A fork bomb is only safe to try where the worker has a user id and a process limit of its own.
FORK_BOMB = '''
import os, time

def dot_product_scores(query, key):
    for _ in range(5000):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
    return query
'''


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if marker in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                        errors="replace"):
                    found.append(int(pid))
            except OSError:
                pass
    return found


class _Listener:
    """A TCP server on loopback that records whether anyone connected."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.server.accept()
                self.connections += 1
                conn.close()
            except OSError:
                continue

    def close(self):
        self.running = False
        self.thread.join()
        self.server.close()


# Two attackers hold their check for the whole limit (a loop at load time, a worker that stops
# reading): 10 s, the limit, still leaves an honest check (1-3 s of a quiet machine's time)
# room on a loaded 2-core one, and a check the load starved is run again alone.
TIMEOUT = 10


def _grade_class(tmp: pathlib.Path, attacks: dict[str, str], level: str, honest_after=1,
                 odd_files=True, shortcuts=(), attention=False):
    """Grade ``attacks`` beside honest classmates; returns what a test needs to look at.
    ``odd_files``: also the files of odd kinds and the honest students of odd names;
    ``shortcuts``: the names of :data:`SHORTCUTS` to grade too (the stable softmax), beside an
    honest student of it; ``attention``: that student also answers exercise 04 with
    jax.nn.softmax."""
    teacher = tmp / "teacher"  # the grader's working folder, with a private file in it
    (teacher / "class").mkdir(parents=True)
    (teacher / "cache").mkdir()
    secret_file = teacher / "secret.txt"
    secret_file.write_text(FILE_SECRET)
    out = teacher / "results"
    out.mkdir()
    listener = _Listener()
    folder = teacher / "class"
    classmate = folder / "aa_honest.py"
    classmate.write_text(HONEST)
    names = {
        "MODEL": repr(solution_source("dot_product_scores")),
        "CLASSMATE": repr(str(classmate)), "OUT": repr(str(out)), "SECRET_FILE":
        repr(str(secret_file)), "PORT": str(listener.port), "CACHE": repr(str(teacher / "cache")),
    }
    prelude = "".join(f"{k} = {v}\n" for k, v in names.items())
    for name, source in attacks.items():
        # The grader runs only files that define the exercise's names: an attack that takes
        # its function from elsewhere defines a wrong one first, for the stolen one to replace.
        if "def dot_product_scores" not in source:
            source = WRONG + source
        (folder / f"attack_{name}.py").write_text(prelude + source)
    exercises = ["dot_product_scores"]
    if shortcuts:
        exercises.append("stable_softmax")
        for name in shortcuts:
            if isinstance(SHORTCUTS[name], dict):  # files of one student
                (folder / f"shortcut_{name}").mkdir()
                for file, code in SHORTCUTS[name].items():
                    (folder / f"shortcut_{name}" / file).write_text(code)
            else:
                (folder / f"shortcut_{name}.py").write_text(SHORTCUTS[name])
        (folder / "zz_softmax").mkdir()  # after the shortcuts, in a worker of their own
        (folder / "zz_softmax" / "softmax.py").write_text(HONEST_SOFTMAX)
        if attention:
            exercises.append("scaled_dot_product_attention")
            (folder / "zz_softmax" / "attention.py").write_text(ATTENTION_WITH_SOFTMAX)
    for i in range(honest_after):
        (folder / f"zz_honest_{i}.py").write_text(HONEST)
    if odd_files:
        (folder / os.fsdecode(b"M\xfcller.py")).write_text(HONEST)  # a Latin-1 name
        # graded after the poisoner, from the programs the canary left in the shared cache
        (folder / "zz_model_solution.py").write_text(solution_source("dot_product_scores"))
        # (one student per odd thing would prove no more: a worker each)
        (folder / "zz_honest_0.py").write_bytes(b"# caf\xe9 cr\xe8me\n" + HONEST.encode())
        (folder / '=HYPERLINK("evil","x").py').write_text(WRONG)
        (folder / "broken.ipynb").write_text('{"cells": [{"cell_type": "code", "source": "def f(')
        (folder / "huge.py").write_text(HONEST + "#" * (3 << 20))
        (folder / "linker").mkdir()
        (folder / "linker" / "answers.py").symlink_to(SOLUTIONS)
        # Files a class folder can hold (a tar, a Windows zip): none opened, each reported.
        copy = teacher / "solutions_copy.py"  # a hard link needs the same file system
        copy.write_text(SOLUTIONS.read_text())
        (folder / "hardlinker").mkdir()
        os.link(copy, folder / "hardlinker" / "answers.py")
        os.mkfifo(folder / "fifo_student.py")
        if os.geteuid() == 0:
            os.mknod(folder / "device_student.py", stat.S_IFCHR | 0o600, os.makedev(1, 5))
        # Honest work in odd shapes: every one passes.
        (folder / ".hidden_student.py").write_text(HONEST)
        (folder / "twin.py").write_text(  # the answer after 200 other names
            "".join(f"name_{i} = {i}\n" for i in range(300)) + HONEST)
        (folder / "twin\u200b.py").write_text(HONEST)  # looks the same, is another student

    saved = {k: os.environ.get(k) for k in ("ATTENTION_TEACHER_TOKEN", "JAX_COMPILATION_CACHE_DIR")}
    os.environ["ATTENTION_TEACHER_TOKEN"] = TOKEN
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(teacher / "cache")
    cwd = os.getcwd()
    printed = io.StringIO()
    started = time.monotonic()
    try:
        os.chdir(teacher)
        with contextlib.redirect_stdout(printed):
            status = grade.main([str(folder), "--out", str(out / "scores.csv"), "--jobs", "2",
                                 "--timeout", str(TIMEOUT), "--exercises", ",".join(exercises),
                                 "--sandbox", level])
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        listener.close()
    seconds = time.monotonic() - started
    alive = _processes_with(TOKEN)
    scores_now = (out / "scores.csv").read_text()
    if "detached_rewriter" in attacks:
        time.sleep(5)  # it would strike after 4 s
    with open(out / "scores.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    with open(out / "scores_feedback.csv", newline="") as f:
        every = list(csv.DictReader(f))  # a student's graded exercise, else any
    feedback = {r["student"]: r for r in every if r["status"] != "not submitted"}
    feedback.update({r["student"]: r for r in every if r["student"] not in feedback})
    outputs = {
        "stdout": printed.getvalue(),
        "scores": (out / "scores.csv").read_text(),
        "feedback": (out / "scores_feedback.csv").read_text(),
        **{p.name: p.read_text() for p in (out / "scores_feedback").iterdir()},
    }
    return dict(status=status, rows=rows, feedback=feedback, outputs=outputs, alive=alive,
                scores_before_sleep=scores_now, listener=listener, teacher=teacher,
                seconds=seconds, attacks=attacks, shortcuts=shortcuts)


def _cleanup_strays():
    for path in (pathlib.Path(f"/tmp/redteam-{TOKEN}-tmp"), HOME / f"redteam-{TOKEN}-home",
                 PACKAGE / f"redteam_{TOKEN}.py"):
        path.unlink(missing_ok=True)
    for pid in _processes_with(TOKEN):
        with contextlib.suppress(OSError):
            os.kill(pid, 9)


SANDBOX = sandbox.choose("auto")


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory):
    if SANDBOX.level != sandbox.BUBBLEWRAP:
        if os.environ.get("CI"):
            pytest.fail("CI installs bubblewrap (.ci/run): the namespace sandbox must work")
        pytest.skip("bubblewrap is not installed or cannot create namespaces here")
    attacks = dict(ATTACKS)
    if SANDBOX.drop_user:
        attacks["fork_bomb"] = FORK_BOMB
    try:
        yield _grade_class(tmp_path_factory.mktemp("redteam"), attacks, "auto")
    finally:
        _cleanup_strays()


def test_every_attack_scores_zero_and_every_honest_submission_passes(sandboxed):
    rows = sandboxed["rows"]
    for name in sandboxed["attacks"]:
        assert rows[f"attack_{name}"]["dot_product_scores"] == "0", (
            name, sandboxed["feedback"][f"attack_{name}"]["message"])
    for student in HONEST_STUDENTS:
        assert rows[student]["dot_product_scores"] == "1", sandboxed["feedback"][student]
    # The CSV is complete: every student, attackers and broken files included.
    expected = {f"attack_{n}" for n in sandboxed["attacks"]} | set(HONEST_STUDENTS) | {
        "broken", "huge", "linker", "hardlinker", "fifo_student",
        "'=HYPERLINK(\"evil\",\"x\")"}  # read back as written: neutralised
    if os.geteuid() == 0:
        expected.add("device_student")
    assert set(rows) == expected
    assert sandboxed["status"] == 0


def _assert_shortcuts_score_zero_and_the_honest_softmax_passes(graded):
    for name in graded["shortcuts"]:
        student = f"shortcut_{name}"
        message = graded["feedback"][student]["message"]
        assert graded["rows"][student]["stable_softmax"] == "0", (name, message)
        assert ("uses jax.nn.softmax (found at run time), which does this exercise for you; "
                "it asks you to") in message, (name, message)
    assert graded["rows"]["zz_softmax"]["stable_softmax"] == "1", graded["feedback"]["zz_softmax"]


HONEST_STUDENTS = ("aa_honest", "zz_honest_0",
                   "M\\xfcller", ".hidden_student", "twin", "twin<U+200B>",
                   "zz_model_solution")


def test_the_reasons_name_what_happened(sandboxed):
    fb = {k.removeprefix("attack_"): v for k, v in sandboxed["feedback"].items()}
    assert "cannot be imported while grading" in fb["wrap_the_package"]["message"]
    assert fb["forge_result_file"]["status"] == "crashed"
    assert fb["garbage_on_the_wire"]["status"] == "crashed"
    assert fb["loop_at_load_time"]["status"] == "timed out"
    assert "could not be read" in fb["broken"]["message"]
    assert "over 2 MiB" in fb["huge"]["message"]
    assert fb["linker"]["status"] == "not submitted"  # the link to the solutions is not read
    assert "your scores" in fb["patch_allclose"]["message"]  # the parent's diagnosis
    assert "hard link" in fb["hardlinker"]["message"]
    assert "it is a FIFO, not a regular file" in fb["fifo_student"]["message"]
    if os.geteuid() == 0:
        assert "character device" in fb["device_student"]["message"]
    assert fb["stop_reading_requests"]["status"] == "timed out"
    assert "\\ud800 and \\udcff" in fb["lone_surrogate"]["message"]  # escaped, not lost
    # it found the canary's entries (the shared cache is on) and changed none of them
    found = re.search(r"poisoned (\d+) entries; (\d+) of (\d+) looked up were there",
                      fb["poison_the_shared_cache"]["message"])
    assert found and found[1] == "0" and int(found[2]) > 0, fb["poison_the_shared_cache"]


def test_nothing_the_attacks_wrote_exists(sandboxed):
    assert not pathlib.Path(f"/tmp/redteam-{TOKEN}-tmp").exists()
    assert not (HOME / f"redteam-{TOKEN}-home").exists()
    assert not (PACKAGE / f"redteam_{TOKEN}.py").exists()
    assert list((sandboxed["teacher"] / "cache").iterdir()) == []
    assert sandboxed["scores_before_sleep"] == sandboxed["outputs"]["scores"]
    assert "mallory" not in sandboxed["outputs"]["scores"]
    assert "rewritten-by-a-detached-child" not in sandboxed["outputs"]["scores"]


def test_no_process_outlives_grading_and_no_connection_was_made(sandboxed):
    assert sandboxed["alive"] == []
    assert sandboxed["listener"].connections == 0


def test_no_secret_and_no_control_character_reaches_an_output(sandboxed):
    for name, text in sandboxed["outputs"].items():
        assert TOKEN not in text, name
        assert FILE_SECRET not in text, name
        assert "\x1b" not in text and "\x07" not in text, name
    assert len(sandboxed["outputs"]["feedback"]) < 64_000  # 150 MiB of output was not copied


def test_a_formula_in_a_name_is_neutralised(sandboxed):
    scores = sandboxed["outputs"]["scores"]
    assert "'=HYPERLINK" in scores
    assert not any(line.startswith(("=", '"=')) for line in scores.splitlines())


def test_each_student_gets_a_feedback_report(sandboxed):
    report = sandboxed["outputs"]["zz_honest_0.md"]
    assert "Score: **1 / 1**" in report and "Dot-product scores" in report
    attack = sandboxed["outputs"]["attack_patch_allclose.md"]
    assert "Score: **0 / 1**" in attack


# ----------------------------------------------------------------------------- without a sandbox

PROCESS_ATTACKS = {name: ATTACKS[name] for name in (
    "forge_result_file", "patch_allclose", "wrap_the_package", "leak_the_environment",
    "children_outlive_grading", "flood_the_output", "output_as_a_link_to_a_host_file",
    "output_as_a_fifo")}


@pytest.fixture(scope="module")
def unsandboxed(tmp_path_factory):
    try:
        yield _grade_class(tmp_path_factory.mktemp("process"), PROCESS_ATTACKS, "none",
                           honest_after=0, odd_files=False, shortcuts=tuple(SHORTCUTS),
                           attention=True)
    finally:
        _cleanup_strays()


def test_without_a_sandbox_the_verdict_still_holds(unsandboxed):
    rows = unsandboxed["rows"]
    for name in PROCESS_ATTACKS:
        assert rows[f"attack_{name}"]["dot_product_scores"] == "0", (
            name, unsandboxed["feedback"][f"attack_{name}"]["message"])
    assert rows["aa_honest"]["dot_product_scores"] == "1"
    assert unsandboxed["status"] == 0


def test_a_shortcut_reached_at_run_time_scores_zero_and_exercise_04_may_use_softmax(
        unsandboxed):
    # The tripwires live in the worker: the sandbox level changes nothing for them.
    _assert_shortcuts_score_zero_and_the_honest_softmax_passes(unsandboxed)
    assert unsandboxed["rows"]["zz_softmax"]["scaled_dot_product_attention"] == "1", (
        unsandboxed["feedback"]["zz_softmax"])
    # the hider's first exercise was honest (and hid softmax for the second)
    assert unsandboxed["rows"]["shortcut_kept_from_an_earlier_exercise"][
        "dot_product_scores"] == "1"
    # (her 02 and 04 are graded in one worker, one after the other: armed, then disarmed)
    assert unsandboxed["alive"] == []  # setsid children included: the grader adopts orphans
    for name, text in unsandboxed["outputs"].items():
        assert TOKEN not in text, name
        assert FILE_SECRET not in text, name  # the link in place of the output was not read
    assert "sandbox: process only" in unsandboxed["outputs"]["stdout"]


def test_strict_refuses_without_a_namespace_sandbox(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "bubblewrap_works", lambda: False)
    (tmp_path / "alice.py").write_text(HONEST)
    assert grade.main([str(tmp_path), "--out", str(tmp_path / "s.csv"),
                       "--sandbox", "strict"]) == 2
    assert not (tmp_path / "s.csv").exists()
