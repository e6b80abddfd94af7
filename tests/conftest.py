"""Shared test settings.

* ``jax_numpy_rank_promotion="raise"``: an accidental broadcast between arrays of different
  rank (the classic swapped-axis bug) fails loudly instead of giving a wrong answer.
* Matplotlib draws off-screen.
* ``ATTENTION_DATA`` points at ../shared/data beside the checkout (no machine here reaches the
  internet), unless the caller set it.
"""

import os
import pathlib

os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
if SHARED_DATA.is_dir():
    os.environ.setdefault("ATTENTION_DATA", str(SHARED_DATA))

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The folder holding multi30k/ and tatoeba_en_de_small/ (skips if it is absent)."""
    path = pathlib.Path(os.environ.get("ATTENTION_DATA", SHARED_DATA))
    if not (path / "multi30k").is_dir():
        pytest.skip(f"no shared data at {path}")
    return path
