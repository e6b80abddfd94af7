"""Settings shared by the test suite and the package's doctests (``python -m pytest`` runs both).

* ``jax_numpy_rank_promotion="raise"``: an accidental broadcast between arrays of different
  rank (the classic swapped-axis bug) fails loudly instead of giving a wrong answer.
* Matplotlib draws off-screen.
* The tests' own processes compile at XLA's optimisation level 0
  (``--xla_backend_optimization_level=0`` added to ``XLA_FLAGS``), as a debug build is tested:
  a small test spends most of its time compiling, and level 0 compiles in about two thirds of
  the CPU time (measured: 128 against 202 CPU seconds for four test files); and XLA runs
  each operation on one thread (``--xla_cpu_multi_thread_eigen=false``): the workers already
  keep every core busy and the threads only contend (two kernel and model test files, AVX2:
  82-93 s against 91-101 s, three runs each way). The notebooks'
  kernels start with the caller's flags and run most notebooks with most optimisations off,
  the one that trains for hundreds of steps with all of them (``tests/_kernel.py``).
  ``ATTENTION_TEST_XLA_DEFAULT=1`` runs everything at the default level.
* One persistent compilation cache for the run, in a fresh temporary folder (the programs that
  several tests or a notebook's two runs compile are compiled once).
* ``ATTENTION_DATA`` points at ../shared/data beside the checkout (no machine here reaches the
  internet), unless the caller set it.
* The jaxtyping import hook (``--jaxtyping-packages=attention,beartype.beartype`` in
  ``pyproject.toml``) checks every annotated function and dataclass of the package against
  its shape annotations during the tests. Users' code runs without it, so a test that makes
  calls *outside* the annotations on purpose (a wrong shape or type, to test the package's
  own error message; a NumPy int where an ``int`` is annotated, a convenience the checks
  allow) carries the ``outside_annotations`` marker: the hook is off while it runs, as it is
  for a user, and the package's own checks answer.
* Scheduling on pytest-xdist's workers (``--dist loadfile``, refined by
  :func:`pytest_xdist_make_scheduler`): each test file is one unit of work, kept on one worker
  (its module fixtures are built once), except the notebook executions, which are units of
  their own so that the workers share them; the longest units are handed out first.
  ``-n auto`` starts one worker more than the machine has cores
  (:func:`pytest_xdist_auto_num_workers`): while a test waits (the grader's time limits, a
  browser, a server starting), the extra worker uses the core. 2 cores, AVX2: 16:37 with 3
  workers (and one thread each) against 17:14 with 2; the CPU idle went to under 2%.
"""

import atexit
import os
import pathlib
import shutil
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")

# One JAX compilation cache for the whole run (attention/_runtime.py): a fresh, empty folder,
# made here in the first process and inherited by the xdist workers and the notebook kernels
# they start, so a program that many tests compile (a small model's train step, a notebook run
# twice) compiles once. Not the user's own cache: the suite starts cold and leaves nothing.
if "ATTENTION_COMPILATION_CACHE" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="attention-test-jit-")
    os.environ["ATTENTION_COMPILATION_CACHE"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

# Read by XLA when JAX starts its backend, and by JAX's cache key at every compile: set for
# the whole process (xdist's workers and the command-line runs the tests start inherit it).
# The caller's own flags are kept in ATTENTION_TEST_USER_XLA_FLAGS for the notebook kernels.
TEST_XLA_FLAG = "--xla_backend_optimization_level=0 --xla_cpu_multi_thread_eigen=false"
os.environ.setdefault("ATTENTION_TEST_USER_XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
if os.environ.get("ATTENTION_TEST_XLA_DEFAULT") != "1":
    _flags = os.environ["ATTENTION_TEST_USER_XLA_FLAGS"]
    os.environ["XLA_FLAGS"] = f"{_flags} {TEST_XLA_FLAG}".strip()

REPO_ROOT = pathlib.Path(__file__).resolve().parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
if SHARED_DATA.is_dir():
    os.environ.setdefault("ATTENTION_DATA", str(SHARED_DATA))

import jax  # noqa: E402
import jaxtyping  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# The doctests of ``attention/`` are collected by --doctest-modules; ``python -m attention``'s
# entry point would run the command line on import.
collect_ignore = ["attention/__main__.py"]


# Units of work that take minutes on a 2-core CPU, longest first: handed out before everything
# else, so that no worker starts one of them while the other has nothing left to do. An entry
# is the start of a test's node id; the tests matching none keep the collection's order.
NOTEBOOK_RUNS = "tests/test_notebooks.py::test_notebook_runs_twice_in_the_fast_setting"
EXERCISE_RUNS = "tests/exercises/test_notebooks.py::test_notebook_blank_then_solution"
LONG_FIRST = (
    f"{NOTEBOOK_RUNS}[07",  # 07 trains the model that 08 and 09 load: one unit, see below
    f"{NOTEBOOK_RUNS}[08",
    f"{NOTEBOOK_RUNS}[09",
    f"{NOTEBOOK_RUNS}[12",
    f"{NOTEBOOK_RUNS}[06",
    f"{NOTEBOOK_RUNS}[00",
    NOTEBOOK_RUNS,
    "tests/exercises/test_red_team.py",
    "tests/test_jupyterlab.py",
    "tests/training/test_train.py",
    EXERCISE_RUNS,
    "tests/exercises/test_grade.py",
    "tests/test_site.py",
    "tests/inspection/test_views_browser.py",
    "tests/training/test_parallel.py",
)
# Notebooks 08 and 09 load the model that notebook 07 saved in the course folder (a module
# fixture of tests/test_notebooks.py): the three run as one unit, in order, on one worker.
COURSE_CHAIN = ("07", "08", "09")


def _work_unit(nodeid: str) -> str:
    """The unit of work of a test: its file; a notebook execution is a unit of its own."""
    path = nodeid.partition("::")[0]
    for runs in (NOTEBOOK_RUNS, EXERCISE_RUNS):
        if nodeid.startswith(runs + "["):
            stem = nodeid[len(runs) + 1:].rstrip("]")
            if runs == NOTEBOOK_RUNS and stem[:2] in COURSE_CHAIN:
                stem = "-".join(COURSE_CHAIN)
            return f"{path}::{stem}"
    return path


def _rank(item) -> int:
    return next((i for i, start in enumerate(LONG_FIRST) if item.nodeid.startswith(start)),
                len(LONG_FIRST))


def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)  # stable: the tests of no LONG_FIRST entry keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` with the notebook executions split off (see :func:`_work_unit`)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CourseScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return CourseScheduling(config, log)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, and one more (see the module's docstring)."""
    return len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else (
        (os.cpu_count() or 1) + 1)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "outside_annotations: calls outside the annotations on purpose (to test the "
        "package's own errors, or conveniences beyond the annotated types); runs with the "
        "jaxtyping hook off, as users run the code",
    )


@pytest.fixture(autouse=True)
def _annotation_hook_off_outside_annotations(request):
    if request.node.get_closest_marker("outside_annotations") is None:
        yield
        return
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)
