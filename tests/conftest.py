"""Fixtures of the test suite (the settings it shares with the doctests are in ../conftest.py)."""

import os
import pathlib

import pytest

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The folder holding multi30k/ and tatoeba_en_de_small/ (skips if it is absent)."""
    path = pathlib.Path(os.environ.get("ATTENTION_DATA", SHARED_DATA))
    if not (path / "multi30k").is_dir():
        pytest.skip(f"no shared data at {path}")
    return path
