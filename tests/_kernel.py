"""Notebooks executed the way a student re-runs them: twice in a row, in one folder, one kernel.

A student who runs a notebook again usually presses "Run All" in the kernel that is already
open: the second run meets everything the first one left, in the folder (a saved model,
figures) and in the kernel (names, imported modules, compiled functions). :meth:`Kernel.run`
does exactly that.

A :class:`Kernel` stays open for many notebooks, since starting one (a Python process
importing JAX and the package) costs about 3 CPU seconds: before each, :meth:`Kernel.run`
clears the kernel as IPython's ``%reset -f`` does (every name the last notebook defined goes,
so a notebook that forgets an import still fails; the imported modules stay, as a warm
interpreter keeps them), closes its figures, sets back the environment variables changed for
the last notebook and moves to the new notebook's folder.
"""

from __future__ import annotations

import json
import os
import pathlib

import nbclient
import nbformat


def _code(source: str):
    return nbformat.v4.new_code_cell(source)


class Kernel:
    """One Jupyter kernel that runs notebooks in turn (a context manager).

    The kernel starts with XLA's flags as the caller gave them (not the tests' own level,
    conftest.py). Each notebook then runs with most of XLA's optimisations off
    (``jax_disable_most_optimizations``), since a notebook's fast setting mostly compiles
    small programs and runs them briefly: measured over 15 notebooks' two runs, 292 against
    359 CPU seconds. A notebook that trains for hundreds of steps asks for them
    (``optimised=True``; notebook 12: 59 against 83). ``ATTENTION_TEST_XLA_DEFAULT=1``
    keeps them on for every notebook.
    """

    def __init__(self, *, timeout: float):
        self.client = nbclient.NotebookClient(nbformat.v4.new_notebook(), timeout=timeout,
                                              kernel_name="python3")
        self._setup = None
        self._start_env: dict[str, str] = {}
        self._env_set: list[str] = []

    def __enter__(self) -> Kernel:
        env = dict(os.environ, XLA_FLAGS=os.environ.get("ATTENTION_TEST_USER_XLA_FLAGS", ""))
        if not env["XLA_FLAGS"]:
            del env["XLA_FLAGS"]
        self._start_env = env
        self._setup = self.client.setup_kernel(env=env)
        self._setup.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._setup.__exit__(*exc)

    def _run_hidden(self, source: str) -> None:
        # A notebook of its own: execute_cell writes the cell back into client.nb.
        self.client.nb = nbformat.v4.new_notebook(cells=[_code(source)])
        self.client.execute_cell(self.client.nb.cells[0], 0, store_history=False)

    def run(self, notebooks, folder: pathlib.Path,
            env_between: dict[str, str] | None = None, optimised: bool = False) -> None:
        """Execute each of ``notebooks`` in turn, every cell in order, in ``folder``; the
        cells' outputs are written into the notebooks.

        ``env_between``: environment variables set in the kernel after the first notebook
        (what a student changes between two runs, such as filling in the comprehension
        answers); before the next call they are set back to what the kernel started with.
        ``optimised``: compile with all of XLA's optimisations (see the class).

        Raises:
          nbclient.exceptions.CellExecutionError: a cell raised; the message names the cell.
        """
        restore = {n: self._start_env[n] for n in self._env_set if n in self._start_env}
        optimised = optimised or os.environ.get("ATTENTION_TEST_XLA_DEFAULT") == "1"
        self._run_hidden(
            "%reset -f\n"
            "import os as _os, matplotlib.pyplot as _plt, jax as _jax\n"
            "_plt.close('all')\n"
            f"_jax.config.update('jax_disable_most_optimizations', {not optimised!r})\n"
            f"[_os.environ.pop(_n, None) for _n in {self._env_set!r}]\n"
            f"_os.environ.update({restore!r})\n"
            f"_os.chdir({str(folder)!r})\n"
            "del _os, _plt, _jax")
        self._env_set = []
        for number, notebook in enumerate(notebooks):
            if number and env_between:
                self._run_hidden("import os\nos.environ.update(" + json.dumps(env_between) +
                                 ")\ndel os")
                self._env_set = sorted(env_between)
            self.client.nb = notebook
            for index, cell in enumerate(notebook.cells):
                self.client.execute_cell(cell, index)

