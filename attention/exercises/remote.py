"""The grader's side of a worker: the student's functions as handles the checkers can call.

A :class:`WorkerSession` starts :mod:`attention.exercises.worker` confined by a
:class:`~attention.exercises.sandbox.Sandbox`, loads a submission into it (a fresh namespace
for each exercise, :meth:`WorkerSession.load`) and hands out a :class:`RemoteFunction` per
required name; :class:`StudentWorker` keeps one worker for all of a student's exercises and
replaces it after a crash, a timeout, or any change of the interpreter's state. The checkers
call those handles exactly as they call a student's function in a notebook
(:func:`attention.exercises._checking.invoke`): the
inputs, chosen here, go to the worker as raw arrays; the outputs come back as raw arrays,
bounded in size, decoded without pickle; the expected values and every diagnosis are computed
here, in the grader's process, which never runs student code. What the worker prints is read
back only as its last few kilobytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import select
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from attention.exercises import worker as wire
from attention.exercises.sandbox import (
    BUBBLEWRAP,
    CacheMount,
    CheckGroup,
    Reaper,
    Sandbox,
    clean_environment,
    site_dirs,
)

OUTPUT_TAIL_BYTES = 4096
MAX_CALLBACKS = 500
MAX_CALLBACK_PAYLOAD = 1 << 20
MAX_CALLBACK_REPLIES = 64 << 20  # bytes the lent model may send back in one check, in all
MAX_SHORTCUTS = 16
REFUSED_KEYWORDS = frozenset({"sow_weights"})  # would keep weights in the grader's model


class WorkerFailure(Exception):
    """The worker timed out, died, or broke the wire format: the check scores 0.

    Attributes: ``status`` ("timed out" or "crashed"), ``message`` (words for the student) and
    ``starved``: the check timed out while the machine kept it waiting to run for more than a
    quarter of its time (not the student's doing: the grader runs it again, alone).
    """

    def __init__(self, status: str, message: str, starved: bool = False):
        super().__init__(message)
        self.status, self.message, self.starved = status, message, starved


@dataclasses.dataclass(frozen=True)
class StudentError(Exception):
    """The student's function raised: its type name, first line, and where in their code."""

    type: str
    message: str
    where: str = ""
    category: str | None = None
    not_implemented: bool = False

    @classmethod
    def from_report(cls, report: dict) -> StudentError:
        text = lambda key, n: str(report.get(key) or "")[:n]  # noqa: E731
        category = report.get("category")
        return cls(text("type", 60) or "Exception", text("message", 300), text("where", 300),
                   category if isinstance(category, str) else None,
                   bool(report.get("not_implemented")))


@dataclasses.dataclass(frozen=True)
class Lent:
    """An object of the grader's lent to the student's code (greedy decoding's model): in the
    worker its ``attributes`` are copies and its ``methods`` call back here."""

    obj: object
    methods: tuple[str, ...]
    attributes: tuple[str, ...] = ()


class Opaque:
    """Stands for a returned value that is not an array, a number, a string or a container."""


def _opaque(type_name: str) -> Opaque:
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in type_name) or "object"
    return type(safe[:60], (Opaque,), {})()


class RemoteFunction:
    """A student's function that lives in the worker; calling it runs it there."""

    __module__ = wire.SUBMISSION_MODULE

    def __init__(self, session: WorkerSession, name: str):
        self.session, self.name = session, name
        self.__name__ = name

    def run(self, transform: str, args: tuple, kwargs: dict | None = None,
            static: tuple = (), wrt: int = 0):
        return self.session.request(self.name, transform, args, kwargs or {}, static, wrt)

    def __call__(self, *args, **kwargs):
        return self.run("eager", args, kwargs)


class WorkerSession:
    """One confined worker; use as a context manager. :meth:`load` puts a submission in it
    (again for each exercise), :meth:`state` says what its code changed in the interpreter.

    Args:
      code: the submission's Python source, loaded at once (or None: call :meth:`load`).
      sandbox: how to confine the worker.
      timeout: seconds for loading the submission and every check, from the worker's hello
        (the import of JAX never counts against a student).
      startup_timeout: seconds allowed until the hello.
      reaper: kills what the worker left behind (shared by one grading run).
      python: the interpreter the worker runs (default: this one).
      names: the names the exercise needs, reported first whatever else the file defines.
      forbidden: the library objects the exercise forbids (dotted names): the worker puts
        tripwires in their place while it runs the exercise, and :attr:`shortcuts` lists those
        the submission used.
      cache: the grading run's compilation cache
        (:class:`~attention.exercises.sandbox.CompilationCache`), bubblewrap level only.

    ``timeout`` counts only the time spent waiting for the worker, never the grader's own
    work between requests (compiling its reference), so the load of the machine on the
    grader's side does not eat a student's time.
    """

    def __init__(self, code: str | None = None, *, sandbox: Sandbox, timeout: float,
                 startup_timeout: float = 300.0, reaper: Reaper | None = None,
                 python: str | None = None, names: tuple[str, ...] = (),
                 forbidden: tuple[str, ...] = (), cache: CacheMount | None = None):
        self.code, self.sandbox, self.timeout = code, sandbox, timeout
        self.cache = cache if sandbox.level == BUBBLEWRAP else None
        self.startup_timeout, self.python = startup_timeout, python or sys.executable
        self.names, self.forbidden = tuple(names), tuple(forbidden)
        self.shortcuts: list[str] = []
        self._replied = 0
        self.reaper = reaper or Reaper(adopt_orphans=sandbox.level != BUBBLEWRAP)
        self.defined: dict[str, dict] = {}
        self.problems: list[str] = []
        self.syntax_error: str | None = None
        self._lent: dict[int, Lent] = {}
        self._callbacks = 0

    # ------------------------------------------------------------------ start and stop

    def __enter__(self) -> WorkerSession:
        self._folder = pathlib.Path(tempfile.mkdtemp(prefix="attention-grade-"))
        self._output_start = 0
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        folder = self._folder
        shutil.copyfile(wire.__file__, folder / "worker.py")
        request_read, self._request_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        inside = self.sandbox.inside(folder)
        argv = [self.python, "-I", "-S", f"{inside}/worker.py", inside, str(request_read),
                str(reply_write), *site_dirs()]
        command = self.sandbox.command(folder, argv, self.cache)
        # The whole check's memory and processes, where a cgroup can be made (root on Linux).
        self._group = CheckGroup.make(self.sandbox.limits)
        if self._group is not None:
            command = self._group.wrap(command)
        os.set_blocking(self._request_write, False)  # writes wait in select, with a deadline
        # What the worker prints goes to an anonymous file of the grader's: no path the worker
        # could replace by a link or a FIFO; read back through this descriptor only.
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        try:
            self.process = self.reaper.start(lambda: subprocess.Popen(
                command, cwd=folder, env=clean_environment(inside, self.cache), stdout=self._output,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                pass_fds=(request_read, reply_write),
            ))
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._budget = self.startup_timeout
        header, _ = self._receive()
        if header.get("op") != "hello":
            raise self._broken("the worker did not start properly")
        if self.code is not None:
            self.load(self.code, self.names, self.forbidden)

    def load(self, code: str, names: tuple[str, ...] = (),
             forbidden: tuple[str, ...] = ()) -> None:
        """Load ``code`` in a fresh namespace of the worker (its top-level statements run
        again); ``names``: the exercise's, reported first; ``forbidden``: the library objects
        it must not use (tripwires in the worker until the next :meth:`load` or
        :meth:`state`). The time limit starts again here, and what the worker printed before
        is no longer read back."""
        self.code, self.names, self.forbidden = code, tuple(names), tuple(forbidden)
        self.shortcuts = []
        self._budget = self.timeout
        self._callbacks = self._replied = 0
        self._lent = {}
        self.defined, self.problems, self.syntax_error = {}, [], None
        self._output_start = _size(self._output)
        self._waits = self._group.waits() if self._group is not None else {}
        data = np.frombuffer(code.encode("utf-8", errors="backslashreplace"), np.uint8)
        self._send({"op": "load", "names": list(self.names),
                    "forbidden": list(self.forbidden)}, [data])
        header, _ = self._receive()
        self._note_shortcuts(header)
        if header.get("op") != "loaded":
            raise self._broken("the worker did not report loading the submission")
        if header.get("syntax_error"):
            self.syntax_error = str(header["syntax_error"])[:300]
        defined = header.get("defined", {})
        self.defined = {str(k)[:100]: v for k, v in defined.items()
                        if isinstance(v, dict)} if isinstance(defined, dict) else {}
        problems = header.get("problems", [])
        self.problems = [str(p)[:300] for p in problems[:5]] if isinstance(problems, list) else []

    def watch(self, preload: tuple[str, ...] = ()) -> None:
        """Have the worker take the fingerprint that :meth:`state` compares with, before any
        student code runs (within the start-up time, not the student's); ``preload``: the
        forbidden names of the exercises to come, whose modules it imports first (a module
        imported later would change the state it compares)."""
        self._budget = self.startup_timeout
        self._send({"op": "watch", "preload": list(preload)}, [])
        header, _ = self._receive()
        if header.get("op") != "watching":
            raise self._broken("the worker did not take its fingerprint")

    def state(self, seconds: float = 30.0) -> tuple[list[str], float]:
        """(what the last exercise changed in the worker's interpreter, CPU seconds the worker
        has used): an empty list when it can grade another exercise. Raises WorkerFailure."""
        self._budget = min(self.timeout, seconds)
        self._send({"op": "state"}, [])
        header, _ = self._receive()
        changed, cpu = header.get("changed"), header.get("cpu_seconds")
        if header.get("op") != "state" or not isinstance(changed, list) \
                or not isinstance(cpu, int | float):
            raise self._broken("the worker did not report its state")
        return [str(c)[:100] for c in changed[:10]], float(cpu)

    def __exit__(self, *exc) -> None:
        process = getattr(self, "process", None)
        for fd in (getattr(self, "_request_write", None), getattr(self, "_reply_read", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if process is not None:
            self.reaper.finished(process.pid)  # the whole tree, every time
            process.wait()
        group = getattr(self, "_group", None)
        if group is not None:
            group.close()  # and whatever left the tree
        output = getattr(self, "_output", None)
        if output is not None:
            output.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    # ------------------------------------------------------------------ what the submission defines

    def value(self, name: str):
        """A required name: a :class:`RemoteFunction` for a function, else its plain value."""
        entry = self.defined.get(name)
        if entry is None:
            return None
        if entry.get("callable"):
            return RemoteFunction(self, name)
        try:
            return wire.decode(entry.get("value", {"t": "none"}), [], opaque=_opaque)
        except wire.WireError:
            return None

    def module_of(self, name: str) -> str:
        entry = self.defined.get(name) or {}
        return str(entry.get("module", ""))[:100]

    def output_tail(self) -> str:
        """The last few KB of what the worker printed, control characters removed."""
        output = getattr(self, "_output", None)
        try:
            fd = output.fileno()
            size = os.fstat(fd).st_size
            start = max(getattr(self, "_output_start", 0), size - OUTPUT_TAIL_BYTES)
            data = os.pread(fd, size - start, start)
        except (OSError, ValueError, AttributeError):
            return ""
        text = data.decode("utf-8", errors="replace")
        return "".join(c if c.isprintable() or c == "\n" else " " for c in text)

    # ------------------------------------------------------------------ talking to the worker

    def request(self, name: str, transform: str, args: tuple, kwargs: dict, static: tuple,
                wrt: int):
        arrays: list = []
        header = {"op": "call", "name": name, "transform": transform, "wrt": int(wrt),
                  "args": self._encode(tuple(args), arrays),
                  "kwargs": self._encode(dict(kwargs), arrays),
                  "static": self._encode(tuple(static), arrays)}
        self._send(header, arrays)
        while True:
            header, arrays = self._receive()
            op = header.get("op")
            if op in ("result", "error"):
                self._note_shortcuts(header)
            if op == "result":
                return self._decode(header.get("value"), arrays)
            if op == "error":
                raise StudentError.from_report(header)
            if op == "callback":
                self._answer_callback(header, arrays)
                continue
            raise self._broken("the worker sent a reply of an unknown kind")

    def _note_shortcuts(self, header: dict) -> None:
        """The forbidden objects the worker says the code used (a forged list can only fail
        the student: only the names this exercise forbids are kept)."""
        used = header.get("shortcuts", [])
        for name in used[:MAX_SHORTCUTS] if isinstance(used, list) else []:
            if name in self.forbidden and name not in self.shortcuts:
                self.shortcuts.append(name)

    def _answer_callback(self, header: dict, arrays: list) -> None:
        import jax.numpy as jnp

        self._callbacks += 1
        lent = self._lent.get(header.get("object"))
        method = header.get("method")
        reply: list = []
        if self._callbacks > MAX_CALLBACKS:
            raise self._broken(f"more than {MAX_CALLBACKS} calls to the lent model")
        if lent is None or method not in lent.methods:
            self._send({"op": "callback error", "message": f"no method {str(method)[:40]!r}"},
                       [])
            return
        if sum(a.nbytes for a in arrays) > MAX_CALLBACK_PAYLOAD:
            raise self._broken("a call to the lent model with inputs over 1 MiB")
        if self._replied > MAX_CALLBACK_REPLIES:
            raise self._broken(f"the lent model's replies went over {MAX_CALLBACK_REPLIES >> 20} "
                               f"MiB in one check")
        try:
            args = self._decode(header.get("args"), arrays)
            kwargs = self._decode(header.get("kwargs"), arrays)
            args = tuple(jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args)
            refused = REFUSED_KEYWORDS.intersection(map(str, dict(kwargs)))
            if refused:
                raise ValueError(f"{', '.join(sorted(refused))} is not lent to the submission")
            kwargs = {str(k): jnp.asarray(v) if isinstance(v, np.ndarray) else v
                      for k, v in dict(kwargs).items()
                      if isinstance(v, np.ndarray | bool | int | float | type(None))}
            result = getattr(lent.obj, method)(*args, **kwargs)
            value = self._encode(result, reply)
            self._replied += sum(a.nbytes for a in reply)
            self._send({"op": "callback reply", "value": value}, reply)
        except Exception as e:  # the grader's model refused the student's inputs
            self._send({"op": "callback error",
                        "message": f"{type(e).__name__}: {str(e)[:200]}"}, [])

    def _encode(self, value, arrays: list):
        if isinstance(value, Lent):
            key = len(self._lent)
            self._lent[key] = value
            attributes = {a: _plain(getattr(value.obj, a)) for a in value.attributes}
            return {"t": "object", "id": key, "methods": list(value.methods),
                    "attributes": attributes}
        if isinstance(value, tuple | list):
            items = [self._encode(v, arrays) for v in value]
            return {"t": "tuple" if isinstance(value, tuple) else "list", "items": items}
        if isinstance(value, dict):
            return {"t": "dict", "items": {k: self._encode(v, arrays) for k, v in value.items()}}
        return wire.encode(value, arrays)

    def _decode(self, description, arrays: list):
        try:
            return wire.decode(description, arrays, opaque=_opaque)
        except wire.WireError as e:
            raise self._broken(str(e)) from None

    def _send(self, header: dict, arrays: list) -> None:
        """Write one message, waiting (within the time left) while the worker does not read."""
        view = memoryview(wire.pack_message(header, arrays))
        while view:
            started = time.monotonic()
            try:
                _, ready, _ = select.select([], [self._request_write], [],
                                            max(0.0, min(self._budget, 1.0)))
                if ready:
                    view = view[os.write(self._request_write, view[:1 << 16]):]
            except BlockingIOError:
                pass
            except OSError:
                raise self._broken("the worker stopped listening") from None
            self._spend(started)
            if view and self.process.poll() is not None:
                raise self._broken(f"the worker exited (code {self.process.returncode})")

    def _spend(self, started: float) -> None:
        """Count the time since ``started`` against the budget; a timeout when it is spent."""
        self._budget -= time.monotonic() - started
        if self._budget <= 0:
            group = getattr(self, "_group", None)
            starved = (group is not None
                       and group.longest_wait(getattr(self, "_waits", None)) > self.timeout / 4)
            raise WorkerFailure("timed out", self._timeout_message(), starved)

    def _receive(self) -> tuple[dict, list]:
        try:
            return wire.read_message(self._read_exact)
        except wire.WireError as e:
            raise self._broken(str(e)) from None

    def _read_exact(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            started = time.monotonic()
            ready, _, _ = select.select([self._reply_read], [], [], max(0.0, min(self._budget,
                                                                               1.0)))
            self._spend(started)
            if not ready:
                if self.process.poll() is not None and not _readable(self._reply_read):
                    raise self._broken(f"the worker exited (code {self.process.returncode})")
                continue
            chunk = os.read(self._reply_read, min(left, 1 << 20))
            if not chunk:
                raise self._broken(f"the worker exited (code {self.process.poll()})")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _timeout_message(self) -> str:
        if self.defined or self.syntax_error:
            return (f"timed out: the check did not finish within {self.timeout:g} s (an "
                    f"endless loop, or a very slow function?).")
        return ("timed out: loading the submission or starting the checker took more than "
                "the limit (an endless loop at the top level of the file?).")

    def _broken(self, what: str) -> WorkerFailure:
        tail = self.output_tail().strip().splitlines()[-1:]
        return WorkerFailure("crashed", f"the check stopped without a result ({what})"
                             + (f": {tail[0][:200]}" if tail else "."))


class StudentWorker:
    """One student's worker, started at their first exercise and kept for the next ones.

    Each exercise is loaded in a fresh namespace (:meth:`WorkerSession.load`); after it the
    worker is asked what the exercise changed in its interpreter
    (:func:`attention.exercises.worker.fingerprint`: a patched module, a JAX flag, a thread
    left running...). It is killed, and a fresh one started for the next exercise, after a
    crash, a timeout, any such change, or a tenth of its CPU-time limit used (each check keeps
    at least 90% of it). Bubblewrap, Python and JAX are paid once per student unless the
    student's code changes something; nothing one exercise leaves behind reaches the next
    one's verdict. Use as a context manager.

    Args: those of :class:`WorkerSession` but ``code`` and ``names``.

    Attributes: ``started`` (workers started), ``replaced`` (why each was replaced),
    ``state_seconds`` (the time spent asking workers for their state, in all), ``last`` (set
    before the student's last exercise: its worker is stopped after it, its state unread),
    ``preload`` (the forbidden names of the student's exercises: their modules are imported
    in a new worker before its fingerprint).
    """

    def __init__(self, **session):
        self._session_arguments = session
        self.session: WorkerSession | None = None
        self.started = 0
        self.replaced: list[str] = []
        self.state_seconds = 0.0
        self.last = False
        self.preload: tuple[str, ...] = ()

    def __enter__(self) -> StudentWorker:
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def _stop(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.__exit__(None, None, None)

    @contextlib.contextmanager
    def check(self, code: str, names: tuple[str, ...], forbidden: tuple[str, ...] = ()):
        """A session with ``code`` freshly loaded, for one exercise (``forbidden``: its
        forbidden library objects, see :meth:`WorkerSession.load`); raises WorkerFailure."""
        if self.session is None:
            self.started += 1
            self.session = WorkerSession(**self._session_arguments).__enter__()
            if not self.last:  # more exercises to come: the state to compare with
                try:
                    self.session.watch(self.preload)
                except BaseException:
                    self._stop()
                    raise
        try:
            self.session.load(code, names, forbidden)
            yield self.session
        except BaseException as e:
            self.replaced.append(f"{type(e).__name__}: {str(e)[:100]}")
            self._stop()
            raise
        if self.last:  # nothing follows: no state to check
            self._stop()
            return
        started = time.monotonic()
        try:
            changed, cpu = self.session.state()
        except WorkerFailure as e:
            changed, cpu = [f"its state could not be read ({e.message[:100]})"], 0.0
        self.state_seconds += time.monotonic() - started
        if cpu > self.session.sandbox.limits.cpu_seconds / 10:
            changed.append(f"{cpu:.0f} s of CPU time used")
        self.session.reaper.sweep()  # process level: orphans that left the worker's group
        if changed:
            self.replaced.append(", ".join(changed))
            self._stop()


def _size(file) -> int:
    try:
        return os.fstat(file.fileno()).st_size
    except (OSError, ValueError, AttributeError):
        return 0


def _readable(fd: int) -> bool:
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)


def _plain(value):
    """A config dataclass as a dict of its plain fields (numbers, strings, flags)."""
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)
                if isinstance(getattr(value, f.name), bool | int | float | str | type(None))}
    return value
