"""Every course notebook in its full setting: wall time, the slowest cell, the kernel's peak memory.

Each ``notebooks/NN_name.ipynb`` is executed top to bottom with nbclient, untouched (its
comprehension checks report ``[TODO]``, as on a student's first run), in its full setting
(``ATTENTION_FAST`` unset; ``--fast`` sets it to 1, the setting the tests run), off-screen
(``MPLBACKEND=Agg``), in one fresh temporary folder for the whole run (notebooks 08 and 09
load the model notebook 07 saved there, as for a student; run without 07, they train it
themselves), with the data of ``--data`` (``ATTENTION_DATA``) and a fresh, empty JAX
compilation cache for each notebook (``ATTENTION_COMPILATION_CACHE``: every program is
compiled, as on a first run). The notebooks are read once, at the start.

Per notebook:

* **wall s**: from starting its kernel to the last cell's reply;
* **slowest cell**: its index in the notebook (0-based, markdown cells counted, as nbclient's
  errors name them), its seconds (request to reply) and its first line;
* **kernel peak**: the kernel process's peak resident memory, ``VmHWM`` of
  ``/proc/<pid>/status`` read just before the kernel is shut down (the kernel's own high-water
  mark, exact, not sampled; the notebook's arrays, JAX's buffers and compiled code are in it).
  Where there is no ``/proc`` (macOS) it is the sampled figure below;
* **tree peak, sampled**: the largest sum of the resident memory of the kernel and its child
  processes seen by polling every 0.2 s (psutil); shared pages are counted once per process;
* **budget**: what the course claims. The full setting: under about three minutes each
  (``docs/course.md``; the README: "a few minutes each" on a laptop CPU), and notebook 15's
  "about 5.5 GB of free memory" (its first cell; 4 GB in the run below). The fast setting:
  every cell within the tests' cell timeout (``CELL_TIMEOUT_S`` of ``tests/test_notebooks.py``,
  300 s).

The table is printed with the CPU (model and vector extensions), the core count and the load
average at the start and end of the run and of each notebook (other work on the machine slows
a notebook down: read the times with the load), and written to
``benchmarks/results/notebooks.txt`` (``--fast``: ``notebooks_fast.txt``; ``--out`` for another
file).

    python benchmarks/notebooks.py --only 01,02,03,05 --stop-after 25   # full setting
    python benchmarks/notebooks.py --fast --only 02                     # the fast setting

What it showed (2026-12-07, a 2-core AMD EPYC shared with other work, load average 9 to 14,
so every time is several times a quiet machine's; the quick notebooks first, 25 minutes):
11 of the 15 notebooks run finished within 3 minutes (00-06, 08, 09, 11, 13 between 10 and
150 s), 10 took 180 s, 15 196 s, 07 283 s (its training cell 204 s) and 14 576 s; 12 was not
started. The kernels peaked at 0.3 to 1.6 GB, but for notebook 15 at 5.1 GB, over the "about
4 GB" its first cell stated (now 5.5 GB, with JAX's own memory counted).
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import sys
import tempfile
import threading
import time

# benchmarks/attention.py would shadow the `attention` package when this runs as a script.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import nbclient  # noqa: E402
import nbformat  # noqa: E402
import psutil  # noqa: E402

from attention._machine import cpu_description  # noqa: E402

REPO = _HERE.parent
NOTEBOOKS_DIR = REPO / "notebooks"
RESULTS = _HERE / "results"
DEFAULT_DATA = REPO.parent / "shared" / "data"

# What the course claims. docs/course.md: "each notebook in under about three minutes" on a
# laptop CPU; notebook 15's first cell: "about 5.5 GB of free memory" in its full setting
# (it said 4 GB until this benchmark measured its kernel at 5.1 GB, 2026-12-07).
FULL_SECONDS = 180
FULL_BYTES = {"15": 5.5e9}
# The fast setting: each cell within the tests' cell timeout (tests/test_notebooks.py).
CELL_TIMEOUT_S = 300
SAMPLE_S = 0.2


def notebook_paths(only: list[str] | None = None) -> list[pathlib.Path]:
    """The course's notebooks, all in order, or those numbered in ``only`` in its order.

    Raises:
      ValueError: a number in ``only`` names no notebook.
    """
    paths = {p.name[:2]: p for p in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))}
    if only is None:
        return list(paths.values())
    unknown = [n for n in only if n not in paths]
    if unknown:
        raise ValueError(f"--only: no notebook numbered {unknown}; expected two-digit numbers "
                         f"of {sorted(paths)}")
    return [paths[n] for n in only]


def _vm_hwm(pid: int) -> int | None:
    """The peak resident memory of process ``pid`` in bytes (Linux's VmHWM), or None."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


class _TreeSampler(threading.Thread):
    """Polls the resident memory of a process and its children; keeps the largest sum."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self):
        while not self.done.wait(SAMPLE_S):
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                total = 0
                for p in tree:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return


def run_notebook(path: pathlib.Path, notebook, folder: pathlib.Path,
                 cell_timeout: float) -> dict:
    """Execute ``notebook`` (read from ``path``) in ``folder``; returns its measurements."""
    client = nbclient.NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    cells: list[tuple[int, float]] = []
    error, hwm, sampler = None, None, None
    load_start = os.getloadavg()[0]
    start = time.monotonic()
    with client.setup_kernel():
        pid = client.km.provisioner.pid
        sampler = _TreeSampler(pid)
        sampler.start()
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            cell_start = time.monotonic()
            try:
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            except (nbclient.exceptions.CellExecutionError,
                    nbclient.exceptions.CellTimeoutError) as caught:
                error = f"{type(caught).__name__} in cell {index}"
                cells.append((index, time.monotonic() - cell_start))
                break
            cells.append((index, time.monotonic() - cell_start))
        seconds = time.monotonic() - start
        hwm = _vm_hwm(pid)
        sampler.done.set()
    sampler.join()
    slowest = max(cells, key=lambda c: c[1]) if cells else (None, 0.0)
    first_line = (notebook.cells[slowest[0]].source.strip().splitlines() or [""])[0] \
        if slowest[0] is not None else ""
    return {"seconds": seconds, "slowest": slowest, "slowest_line": first_line,
            "kernel_peak": hwm if hwm is not None else sampler.peak,
            "kernel_peak_exact": hwm is not None, "tree_peak": sampler.peak, "error": error,
            "load": (load_start, os.getloadavg()[0])}


def verdict(number: str, r: dict, fast: bool) -> tuple[str, str]:
    """``(budget, "met"/"missed")`` of notebook ``number`` for measurements ``r``."""
    if fast:
        budget = f"every cell <= {CELL_TIMEOUT_S} s"
        met = r["slowest"][1] <= CELL_TIMEOUT_S
    else:
        budget = f"<= {FULL_SECONDS} s"
        met = r["seconds"] <= FULL_SECONDS
        if number in FULL_BYTES:
            budget += f", <= {FULL_BYTES[number] / 1e9:g} GB"
            met = met and r["kernel_peak"] <= FULL_BYTES[number]
    if r["error"]:
        return budget, f"missed ({r['error']})"
    return budget, "met" if met else "missed"


def table(results: list[tuple[pathlib.Path, dict | str]], fast: bool, header: dict) -> str:
    """The results file's text: the machine, then a row per notebook."""
    lines = [
        f"The course's notebooks, each run top to bottom untouched with nbclient, "
        f"{'fast setting (ATTENTION_FAST=1)' if fast else 'full setting (ATTENTION_FAST unset)'}"
        f", a fresh compilation cache each, one course folder",
        f"date: {header['date']}",
        f"CPU: {cpu_description()}; {os.cpu_count()} cores; {header['memory']}; Python "
        f"{platform.python_version()}; jax {header['jax']}",
        f"load average 1 min: {header['load'][0]:.1f} at the start, {header['load'][1]:.1f} at "
        f"the end; wall time of the run {header['seconds'] / 60:.1f} min",
        "kernel peak: the kernel's VmHWM (exact); tree peak: kernel + children, sampled every "
        f"{SAMPLE_S} s",
        "",
        "| notebook | wall s | slowest cell: index, s, first line | kernel peak GB | "
        "tree peak GB (sampled) | load (start, end) | budget | met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path, r in results:
        if isinstance(r, str):
            lines.append(f"| {path.stem} | not run: {r} | | | | | | |")
            continue
        budget, met = verdict(path.name[:2], r, fast)
        line = r["slowest_line"].replace("|", "/")[:40]
        peak = f"{r['kernel_peak'] / 1e9:.2f}" + ("" if r["kernel_peak_exact"] else " (sampled)")
        lines.append(
            f"| {path.stem} | {r['seconds']:.1f} | {r['slowest'][0]}, {r['slowest'][1]:.1f}, "
            f"`{line}` | {peak} | {r['tree_peak'] / 1e9:.2f} | "
            f"{r['load'][0]:.1f}, {r['load'][1]:.1f} | {budget} | {met} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated notebook numbers, run in this order "
                        "(default: all, in the course's order), e.g. 03,05")
    parser.add_argument("--fast", action="store_true",
                        help="the fast setting (ATTENTION_FAST=1) the tests run")
    parser.add_argument("--data", type=pathlib.Path,
                        default=pathlib.Path(os.environ.get("ATTENTION_DATA", DEFAULT_DATA)),
                        help="the folder of multi30k/ and tatoeba_en_de_small/ "
                        "(default: $ATTENTION_DATA, else ../shared/data)")
    parser.add_argument("--stop-after", type=float, default=None, metavar="MINUTES",
                        help="start no notebook once the run has taken this long; the rest "
                        "are listed as not run")
    parser.add_argument("--cell-timeout", type=float, default=None,
                        help="seconds a cell may take (default: 300 fast, 1800 full)")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="the results file (default: results/notebooks.txt, "
                        "results/notebooks_fast.txt with --fast)")
    args = parser.parse_args(argv)
    try:
        paths = notebook_paths(args.only.split(",") if args.only else None)
    except ValueError as error:
        parser.error(str(error))
    out = args.out or RESULTS / ("notebooks_fast.txt" if args.fast else "notebooks.txt")
    cell_timeout = args.cell_timeout or (CELL_TIMEOUT_S if args.fast else 1800)
    notebooks = {path: nbformat.read(path, as_version=4) for path in paths}

    # The kernels are child processes: they inherit these.
    os.environ.pop("ATTENTION_FAST", None)
    if args.fast:
        os.environ["ATTENTION_FAST"] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["ATTENTION_DATA"] = str(args.data.resolve())
    os.environ["ATTENTION_FILL_ANSWERS"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])

    import jax  # the version only; this process runs no JAX

    header = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
              "jax": jax.__version__,
              "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB memory"}
    load_start, start = os.getloadavg()[0], time.monotonic()
    results: list[tuple[pathlib.Path, dict | str]] = []
    with tempfile.TemporaryDirectory(prefix="attention-course-") as tmp:
        folder = pathlib.Path(tmp) / "course"
        folder.mkdir()
        for i, path in enumerate(paths):
            if args.stop_after is not None and time.monotonic() - start > args.stop_after * 60:
                results.append((path, f"--stop-after {args.stop_after:g} min reached"))
                continue
            os.environ["ATTENTION_COMPILATION_CACHE"] = str(pathlib.Path(tmp) / f"jit-{i}")
            print(f"running {path.name} ...", flush=True)
            results.append((path, run_notebook(path, notebooks[path], folder, cell_timeout)))
    header["load"] = (load_start, os.getloadavg()[0])
    header["seconds"] = time.monotonic() - start
    text = table(results, args.fast, header)
    print(text, end="")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
