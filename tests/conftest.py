"""Fixtures of the test suite (the settings it shares with the doctests are in ../conftest.py)."""

import os
import pathlib

import pytest

from attention.comprehension import FILL_ANSWERS_ENV
from tests._kernel import Kernel

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The folder holding multi30k/ and tatoeba_en_de_small/ (skips if it is absent)."""
    path = pathlib.Path(os.environ.get("ATTENTION_DATA", SHARED_DATA))
    if not (path / "multi30k").is_dir():
        pytest.skip(f"no shared data at {path}")
    return path


@pytest.fixture(scope="session")
def notebook_kernel():
    """One Jupyter kernel for every notebook this worker executes (the course's and the
    exercises'), cleared before each (tests/_kernel.py): a kernel start costs about 3 CPU
    seconds. It runs the course's fast setting (``ATTENTION_FAST=1``) with the comprehension
    answers left blank, draws off-screen, and has this checkout on its path."""
    env = {"ATTENTION_FAST": "1", "MPLBACKEND": "Agg", FILL_ANSWERS_ENV: "0",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT),
                                          *filter(None, [os.environ.get("PYTHONPATH")])])}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with Kernel(timeout=CELL_TIMEOUT_S) as kernel:
            yield kernel
