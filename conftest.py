"""Settings shared by the test suite and the package's doctests (``python -m pytest`` runs both).

* ``jax_numpy_rank_promotion="raise"``: an accidental broadcast between arrays of different
  rank (the classic swapped-axis bug) fails loudly instead of giving a wrong answer.
* Matplotlib draws off-screen.
* ``ATTENTION_DATA`` points at ../shared/data beside the checkout (no machine here reaches the
  internet), unless the caller set it.
* The jaxtyping import hook (``--jaxtyping-packages=attention,beartype.beartype`` in
  ``pyproject.toml``) checks every annotated function and dataclass of the package against
  its shape annotations during the tests. Users' code runs without it, so a test that makes
  calls *outside* the annotations on purpose (a wrong shape or type, to test the package's
  own error message; a NumPy int where an ``int`` is annotated, a convenience the checks
  allow) carries the ``outside_annotations`` marker: the hook is off while it runs, as it is
  for a user, and the package's own checks answer.
"""

import os
import pathlib

os.environ.setdefault("MPLBACKEND", "Agg")

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
