"""Notebooks executed the way a student re-runs them: twice in a row, in one folder, one kernel.

A student who runs a notebook again usually presses "Run All" in the kernel that is already
open: the second run meets everything the first one left, in the folder (a saved model,
figures) and in the kernel (names, imported modules, compiled functions). :func:`run_in_one_kernel`
does exactly that, and pays for one kernel (a Python process importing JAX and the package,
seconds on a small CPU) instead of one per run.
"""

from __future__ import annotations

import json
import os
import pathlib

import nbclient
import nbformat


def run_in_one_kernel(notebooks, folder: pathlib.Path, *, timeout: float,
                      env_between: dict[str, str] | None = None) -> None:
    """Execute each of ``notebooks`` in turn, every cell in order, in one kernel started in
    ``folder``; the cells' outputs are written into the notebooks.

    ``env_between``: environment variables set in the kernel after the first notebook (what
    a student changes between two runs, such as filling in the comprehension answers).

    Raises:
      nbclient.exceptions.CellExecutionError: a cell raised; the message names the cell.
    """
    client = nbclient.NotebookClient(notebooks[0], timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    # The kernel compiles as a student's does: XLA's flags as the caller gave them, without
    # the optimisation level the tests' own processes use (conftest.py).
    env = dict(os.environ, XLA_FLAGS=os.environ.get("ATTENTION_TEST_USER_XLA_FLAGS", ""))
    if not env["XLA_FLAGS"]:
        del env["XLA_FLAGS"]
    with client.setup_kernel(env=env):
        for number, notebook in enumerate(notebooks):
            if number and env_between:
                # A notebook of its own: execute_cell writes the cell back into client.nb.
                client.nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
                    "import os\nos.environ.update(" + json.dumps(env_between) + ")")])
                client.execute_cell(client.nb.cells[0], 0, store_history=False)
            client.nb = notebook
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
