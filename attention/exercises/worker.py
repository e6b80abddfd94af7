"""The grader's worker: the only process that runs a student's code, and all it does.

    python -I -S worker.py FOLDER REQUEST_FD REPLY_FD SITE_DIR...

The grader (the trusted parent, :mod:`attention.exercises.remote`) starts one worker per
student, confined by :mod:`attention.exercises.sandbox`, and grades the student's exercises
in it one after the other. The worker

1. imports NumPy and JAX and says ``hello``; on ``watch`` (when more than one exercise is to
   come), warms JAX up, installs an audit hook (:class:`Watch`) and takes a :func:`fingerprint`
   of the interpreter's state, before any student code runs (the grader's time limit starts
   after that);
2. on ``load`` (one per exercise): puts tripwires in place of the exercise's forbidden
   library objects (:class:`Guard`: ``jax.nn.softmax`` in the stable softmax, reached however
   the code names it), executes the submission's imports, definitions and
   assignments in a fresh namespace, one top-level statement at a time (a statement that
   raises is noted and skipped; checker calls, prints, loops and other statements are not
   run), and reports the names it defined;
3. answers ``call`` requests: the parent names a function and hands it inputs; the worker runs
   it (eagerly, under ``jax.jit``, under ``jax.vmap``, or through ``jax.vjp`` for the causality
   check) and sends back the raw result, with the forbidden objects its code has used;
4. on ``state`` (after each exercise): puts the forbidden objects back, compares the
   interpreter's state with the fingerprint taken before any student code ran, and names
   what changed (a patched module attribute, a
   JAX flag, a thread left running...): the parent then replaces the worker, so that nothing
   one exercise left behind can change the verdict of the next.

Nothing the worker sends can carry code or a verdict: messages are JSON headers plus raw array
bytes, of bounded size, decoded by the parent with an allow-list of dtypes (no pickle). The
parent computes the expected values and every diagnosis itself. A forged reply can only make a
student's own answer look wrong.

This file imports nothing from :mod:`attention` (the package is not importable in the worker:
the answers live there), so the grader copies it into the sandbox and runs it as a script. The
parent imports the same file for the wire format and the transforms, so one piece serves both.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import linecache
import math
import os
import struct
import sys
import traceback
import types

MAX_HEADER_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 64 << 20
MAX_DEPTH = 6
MAX_ITEMS = 64
MAX_TEXT = 2000
DTYPES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
})
SUBMISSION_FILE = "submission.py"
SUBMISSION_MODULE = "__submission__"
BLOCKED_PACKAGE = "attention"
BLOCKED_MESSAGE = (f"the `{BLOCKED_PACKAGE}` package cannot be imported while grading (the "
                   f"answers live there): write the function yourself")
_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
         ast.Assign, ast.AnnAssign)


class WireError(Exception):
    """A message that breaks the wire format (too big, a bad dtype, truncated...)."""


# ----------------------------------------------------------------------------- the wire format


def encode(value, arrays: list, depth: int = 0):
    """A JSON-able description of ``value``; its arrays are appended to ``arrays``."""
    import numpy as np

    if depth > MAX_DEPTH:
        return {"t": "other", "type": "nested too deep"}
    if value is None:
        return {"t": "none"}
    if isinstance(value, bool | np.bool_):
        return {"t": "bool", "v": bool(value)}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"t": "int", "v": int(value)} if abs(value) < 2**62 else {"t": "float",
                                                                          "v": float(value)}
    if isinstance(value, float):
        return {"t": "float", "v": _json_float(value)}
    if isinstance(value, str):
        return {"t": "str", "v": value[:MAX_TEXT]}
    if isinstance(value, tuple | list):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {"t": kind, "n": len(value),
                "items": [encode(v, arrays, depth + 1) for v in list(value)[:MAX_ITEMS]]}
    if isinstance(value, dict):
        items = list(value.items())[:MAX_ITEMS]
        if all(isinstance(k, str) for k, _ in items):
            return {"t": "dict", "items": {k[:100]: encode(v, arrays, depth + 1)
                                           for k, v in items}}
    if hasattr(value, "__array__") or isinstance(value, np.generic):
        try:
            array = np.asarray(value)
        except Exception:  # a leaked tracer, an object that refuses
            return {"t": "other", "type": _type_name(value)}
        if array.dtype.name not in DTYPES:
            if array.dtype.kind in "fV" and array.dtype.itemsize <= 8:  # bfloat16 and friends
                try:
                    array = array.astype(np.float32)
                except Exception:
                    return {"t": "other", "type": _type_name(value)}
            else:
                return {"t": "other", "type": _type_name(value)}
        arrays.append(np.asarray(array, order="C"))  # (ascontiguousarray makes 0-d 1-d)
        return {"t": "array", "i": len(arrays) - 1}
    return {"t": "other", "type": _type_name(value)}


def decode(description, arrays: list, *, opaque=None, depth: int = 0):
    """The value that :func:`encode` described; ``opaque(type_name)`` stands for the rest."""
    if depth > MAX_DEPTH + 1 or not isinstance(description, dict):
        raise WireError("a value description is not an object")
    kind = description.get("t")
    if kind == "none":
        return None
    if kind in ("bool", "int", "float"):
        value = description.get("v")
        cast = {"bool": bool, "int": int, "float": float}[kind]
        if kind == "float" and value in ("inf", "-inf", "nan"):
            return float(value)
        if not isinstance(value, int | float | bool):
            raise WireError(f"a {kind} that is not a number")
        return cast(value)
    if kind == "str":
        value = description.get("v")
        if not isinstance(value, str):
            raise WireError("a str that is not a string")
        return value[:MAX_TEXT]
    if kind in ("tuple", "list"):
        items = description.get("items")
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise WireError("a sequence of the wrong form")
        values = [decode(v, arrays, opaque=opaque, depth=depth + 1) for v in items]
        return tuple(values) if kind == "tuple" else values
    if kind == "dict":
        items = description.get("items")
        if not isinstance(items, dict) or len(items) > MAX_ITEMS:
            raise WireError("a dict of the wrong form")
        return {str(k)[:100]: decode(v, arrays, opaque=opaque, depth=depth + 1)
                for k, v in items.items()}
    if kind == "array":
        index = description.get("i")
        if not isinstance(index, int) or not 0 <= index < len(arrays):
            raise WireError("an array reference out of range")
        return arrays[index]
    if kind == "other":
        name = str(description.get("type", "object"))[:60]
        return opaque(name) if opaque else None
    if kind == "object" and opaque is None:  # only the parent sends objects, to the worker
        return description
    raise WireError(f"an unknown value kind {str(kind)[:20]!r}")


def pack_message(header: dict, arrays=()) -> bytes:
    """One message: header length, JSON header (with the arrays' dtypes and shapes), bytes."""
    header = dict(header, arrays=[[a.dtype.name, list(a.shape)] for a in arrays])
    head = json.dumps(header).encode("utf-8", errors="backslashreplace")
    payload = b"".join(a.tobytes() for a in arrays)
    return struct.pack(">IQ", len(head), len(payload)) + head + payload


def write_message(fd: int, header: dict, arrays=()) -> None:
    """Write :func:`pack_message`'s bytes to ``fd`` (a blocking pipe)."""
    view = memoryview(pack_message(header, arrays))
    while view:
        view = view[os.write(fd, view):]


def read_message(read_exact, *, max_payload: int = MAX_PAYLOAD_BYTES) -> tuple[dict, list]:
    """(header, arrays) of one message; ``read_exact(n)`` returns exactly n bytes or raises."""
    import numpy as np

    head_size, payload_size = struct.unpack(">IQ", read_exact(12))
    if head_size > MAX_HEADER_BYTES or payload_size > max_payload:
        raise WireError(f"a message of {head_size} + {payload_size} bytes is over the limit")
    try:
        header = json.loads(read_exact(head_size))
    except ValueError:
        raise WireError("a message header that is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays", []), list):
        raise WireError("a message header of the wrong form")
    payload = read_exact(payload_size)
    arrays, offset = [], 0
    for spec in header.get("arrays", []):
        if not (isinstance(spec, list) and len(spec) == 2 and spec[0] in DTYPES
                and isinstance(spec[1], list) and len(spec[1]) <= 8
                and all(isinstance(d, int) and 0 <= d < 2**31 for d in spec[1])):
            raise WireError("an array of a dtype or shape that is not allowed")
        dtype = np.dtype(spec[0])
        count = math.prod(spec[1])
        size = count * dtype.itemsize
        if offset + size > len(payload):
            raise WireError("an array longer than the message")
        arrays.append(np.frombuffer(payload, dtype, count, offset).reshape(spec[1]).copy())
        offset += size
    if offset != len(payload):
        raise WireError("bytes left over after the arrays")
    return header, arrays


def _json_float(x: float):
    return x if math.isfinite(x) else {True: "inf", False: "-inf"}.get(x > 0, "nan")


def _type_name(value) -> str:
    return type(value).__name__[:60]


# ----------------------------------------------------------------------------- the student's code


def load_submission(source: str, filename: str = SUBMISSION_FILE) -> tuple[dict, list[str]]:
    """Execute the kept top-level statements of ``source``; returns (namespace, problems)."""
    namespace: dict = {"__name__": SUBMISSION_MODULE, "__file__": filename}
    problems: list[str] = []
    tree = ast.parse(source, filename=filename)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    for node in tree.body:
        if not isinstance(node, _KEPT) or _calls_a_checker(node):
            continue
        code = compile(ast.Module(body=[node], type_ignores=[]), filename, "exec")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(code, namespace)
        except Exception as e:
            problems.append(f"line {node.lineno} raised {type(e).__name__}: {_first_line(e)}")
    return namespace, problems


def _calls_a_checker(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id.startswith("check_")
        for n in ast.walk(node)
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else "(no message)"


def describe_error(error: BaseException, fn) -> dict:
    """What the student's function raised, in words the parent turns into feedback."""
    import jax

    category = None
    if isinstance(error, jax.errors.TracerBoolConversionError
                  | jax.errors.ConcretizationTypeError
                  | jax.errors.TracerIntegerConversionError):
        category = "python control flow"
    elif isinstance(error, jax.errors.TracerArrayConversionError):
        category = "numpy on a tracer"
    elif isinstance(error, jax.errors.NonConcreteBooleanIndexError):
        category = "boolean indexing"
    return {
        "type": type(error).__name__[:60],
        "message": _first_line(error),
        "where": _where_in_student_code(error, fn),
        "category": category,
        "not_implemented": isinstance(error, NotImplementedError),
    }


def _where_in_student_code(error: BaseException, fn) -> str:
    """`` (line 4 of `f`: `return q @ k`)`` for the deepest frame in the student's code."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return ""
    found = ""
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == code.co_filename:
            line = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
            offset = frame.lineno - code.co_firstlineno + 1
            found = f" (line {offset} of `{code.co_name}`: `{line[:200]}`)" if line else ""
    return found


def apply_transform(fn, transform: str, args: tuple, kwargs: dict, static: tuple = (),
                    wrt: int = 0):
    """Run ``fn`` the way a check needs; exceptions from the student's code propagate.

    * ``eager``: ``fn(*args, *static, **kwargs)``.
    * ``jit``: the same under ``jax.jit``, the ``args`` traced and ``static`` held fixed.
    * ``vmap``: ``jax.jit(jax.vmap(...))`` over a new leading axis of every ``args`` array.
    * ``influence``: ``[T, S]``, |d out[:, t] / d args[wrt][:, s]| maximised over everything
      else (one vector-Jacobian product per output row t): the causality check. With a correct
      causal mask the entries s > t are exactly zero.
    """
    import jax
    import jax.numpy as jnp

    bound = lambda *arrays: fn(*arrays, *static, **kwargs)  # noqa: E731
    if transform == "eager":
        return bound(*args)
    if transform == "jit":
        return jax.jit(bound)(*args)
    if transform == "vmap":
        return jax.jit(jax.vmap(bound))(*args)
    if transform != "influence":
        raise ValueError(f"unknown transform {transform!r}")
    x = args[wrt]
    B, S = x.shape[0], x.shape[1]

    def of_x(x_):
        return jnp.asarray(bound(*args[:wrt], x_, *args[wrt + 1:]))

    def influence_TS(x, eager=False):
        out, pullback = jax.vjp(of_x, x)

        def row(t):
            (grad_x,) = pullback(jnp.zeros_like(out).at[:, t].set(1.0))
            return jnp.abs(grad_x).reshape(B, S, -1).max(axis=(0, 2))

        if eager:
            return jnp.stack([row(t) for t in range(out.shape[1])])
        return jax.lax.map(row, jnp.arange(out.shape[1]))

    try:  # one compilation instead of one per operation
        return jax.jit(influence_TS)(x)
    except Exception:  # a function that does not survive jit: the jit check reports it later
        return influence_TS(x, eager=True)


def compiled_or_eager(fn, args: tuple, kwargs: dict, static: tuple = ()):
    """``fn(*args, *static, **kwargs)``, the ``eager`` transform, as one compiled program where
    it can be: running a function op by op compiles every operation for every new shape (about
    three times the cost of compiling the function once). Its arguments that are not arrays
    are held static, and the compiled function is kept for the next call (until the next
    :func:`load_submission`). A function that does not survive ``jax.jit`` (Python control flow
    on values, NumPy on its inputs, a lent object's method among its inputs) runs op by op,
    and its error, if any, is the op-by-op one."""
    import jax

    full = (*args, *static)
    fixed = tuple(i for i, a in enumerate(full) if not isinstance(a, jax.Array))
    names = tuple(sorted(k for k, v in kwargs.items() if not isinstance(v, jax.Array)))
    try:
        if _holds_lent((args, kwargs, static)):  # (a call back to the parent cannot be traced)
            raise TypeError
        hash(tuple(full[i] for i in fixed) + tuple(kwargs[k] for k in names))
        key = (id(fn), fixed, names)
        if _COMPILED.get(key, (None,))[0] is not fn:
            _COMPILED[key] = (fn, jax.jit(fn, static_argnums=fixed, static_argnames=names))
        return jax.block_until_ready(_COMPILED[key][1](*full, **kwargs))
    except Exception:
        return fn(*full, **kwargs)


_COMPILED: dict = {}  # (id(fn), static positions, static names) -> (fn, jax.jit(fn))


def _holds_lent(value) -> bool:
    if isinstance(value, LentObject):
        return True
    if isinstance(value, tuple | list):
        return any(_holds_lent(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_lent(v) for v in value.values())
    return False


# ------------------------------------------------------------------- objects lent by the parent


class LentObject:
    """Stands in the worker for an object of the parent's (greedy decoding's model): its plain
    attributes are copies; calling one of its methods asks the parent, which runs its own code."""

    def __init__(self, description: dict, ask):
        self._id, self._ask = description.get("id"), ask
        self._methods = set(description.get("methods", []))
        for name, value in description.get("attributes", {}).items():
            setattr(self, name, _namespace(value))

    def __getattr__(self, name):
        if name.startswith("_") or name not in self._methods:
            raise AttributeError(name)
        return lambda *args, **kwargs: self._ask(self._id, name, args, kwargs)


def _namespace(value):
    if isinstance(value, dict):
        space = type("Attributes", (), {})()
        for k, v in value.items():
            setattr(space, k, _namespace(v))
        return space
    return value


# ----------------------------------------------------------------------------- the worker's loop


def _serve(request_fd: int, reply_fd: int) -> None:
    import jax.numpy as jnp
    import numpy as np

    def read_exact(n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = os.read(request_fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def send(header: dict, value) -> None:
        arrays: list = []
        write_message(reply_fd, dict(header, value=encode(value, arrays)), arrays)

    def receive_value(description, arrays):
        def lend(d):
            return LentObject(d, ask) if isinstance(d, dict) and d.get("t") == "object" else d

        value = decode(description, arrays)
        value = _lend_all(value, lend)
        return _as_jax(value, jnp, np)

    def ask(object_id, method, args, kwargs):
        arrays: list = []
        write_message(reply_fd, {"op": "callback", "object": object_id, "method": method,
                                 "args": encode(tuple(args), arrays),
                                 "kwargs": encode(dict(kwargs), arrays)}, arrays)
        header, arrays = read_message(read_exact)
        if header.get("op") == "callback error":
            raise RuntimeError(str(header.get("message", "")))
        return receive_value(header.get("value"), arrays)

    guard = Guard()  # its audit hook before the watch's, which refuses any later one
    write_message(reply_fd, {"op": "hello"})
    namespace: dict = {}
    baseline, watch, loaded = None, None, False
    while True:
        try:
            header, arrays = read_message(read_exact)
        except EOFError:
            return
        op = header.get("op")
        if op == "watch":  # before any student code, or never
            if not loaded and watch is None:
                _warm_up()
                # The forbidden names' modules imported now, not later, and their places noted.
                guard.index([str(name) for name in header.get("preload", [])[:MAX_ITEMS]])
                watch = Watch(guard)
                baseline = fingerprint()
            write_message(reply_fd, {"op": "watching", "watching": baseline is not None})
            continue
        if op == "load":  # a fresh namespace: nothing of the previous exercise's functions
            source = bytes(arrays[0]).decode("utf-8", errors="replace") if arrays else ""
            wanted = [str(n) for n in header.get("names", [])]
            namespace, loaded = {}, True
            _COMPILED.clear()
            guard.arm([str(n) for n in header.get("forbidden", [])[:MAX_ITEMS]])
            report = _load_report(source, wanted, namespace)
            write_message(reply_fd, dict(report, shortcuts=guard.used))
            continue
        if op == "state":
            guard.disarm()
            changed = (["no fingerprint was taken"] if baseline is None
                       else _changes(baseline, watch.seen))
            write_message(reply_fd, {"op": "state", "changed": changed,
                                     "cpu_seconds": _cpu_seconds()})
            continue
        if op != "call":
            return
        fn = namespace.get(str(header.get("name")))
        try:
            args = receive_value(header.get("args"), arrays)
            kwargs = receive_value(header.get("kwargs"), arrays)
            static = receive_value(header.get("static"), arrays)
            transform = str(header.get("transform"))
            with contextlib.redirect_stdout(io.StringIO()):
                if transform == "eager":
                    result = compiled_or_eager(fn, tuple(args), dict(kwargs), tuple(static))
                else:
                    result = apply_transform(fn, transform, tuple(args), dict(kwargs),
                                             tuple(static), int(header.get("wrt", 0)))
            send({"op": "result", "shortcuts": guard.used}, result)
        except Exception as e:
            write_message(reply_fd, {"op": "error", **describe_error(e, fn),
                                     "shortcuts": guard.used})


def _load_report(source: str, wanted: list[str], namespace: dict) -> dict:
    """Load ``source`` into ``namespace``; the ``loaded`` message: what it defined."""
    try:
        loaded, problems = load_submission(source)
    except SyntaxError as e:
        return {"op": "loaded", "syntax_error": f"line {e.lineno}: {e.msg}"}
    namespace.update(loaded)
    defined = {}
    # The names the exercise needs first, then others up to 200 (a notebook of 10,000 cells
    # still reports its answer).
    names = [n for n in wanted if n in namespace]
    names += [n for n in list(namespace)[:200] if n not in names]
    for name in names:
        obj = namespace[name]
        if name.startswith("__"):
            continue
        entry = {"callable": callable(obj), "module": str(getattr(obj, "__module__", "") or "")
                 if callable(obj) else ""}
        if not callable(obj) and isinstance(obj, str | int | float | bool | type(None)):
            entry["value"] = encode(obj, [])
        defined[name[:100]] = entry
    return {"op": "loaded", "defined": defined, "problems": problems[:5]}


# ----------------------------------------------------------------------------- library shortcuts


SHORTCUT_EVENT = "attention.shortcut"
# The garbage collector's lists hold every object, the originals too: refused while armed.
CLOSED_WHILE_ARMED = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents"})
_HARMLESS = frozenset({"__name__", "__qualname__", "__module__", "__doc__", "__tripwire__"})


class ShortcutError(RuntimeError):
    """Raised by a tripwire: the submission reached a library object the exercise forbids."""


def shortcut_message(name: str) -> str:
    return f"{name} does this exercise for you; write it yourself"


class Guard:
    """Tripwires in place of the current exercise's forbidden library objects (``jax.nn.softmax``
    in the stable softmax), wherever a loaded module holds one, while the exercise runs.

    :meth:`arm` resolves each dotted name (importing its module), finds every module attribute
    that *is* that object (``jax.nn.softmax``, ``jax._src.nn.functions.softmax``,
    ``flax.nnx.softmax``...) and puts a tripwire there; a module imported later binds the
    tripwire too. A tripwire is a function (for a function) or a class (for a class: calling
    it, subclassing it with ``class`` or ``type(...)`` and reading its attributes trip it) that
    raises :class:`ShortcutError`; the original itself trips as well (a Python function's code
    is swapped, a class's ``__init__`` and ``__init_subclass__``), for a reference kept where
    no module shows it. Each use is recorded through ``sys.audit``, by a hook no
    student code can remove, in :attr:`used`: catching the error does not hide it. While
    armed, the hook refuses the garbage collector's lists of objects
    (:data:`CLOSED_WHILE_ARMED`), where the originals could be searched for.
    :meth:`disarm` puts the originals back (the fingerprint taken before any student code
    matches again). :meth:`index`, before any student code, notes where the objects sit, so
    arming and disarming visit those places and the modules imported since (under a
    millisecond) instead of every module (about 40 ms). A student who rewrites the worker in
    memory can defeat it (docs/teachers.md says what each layer stops).
    """

    def __init__(self):
        self.used: list[str] = []
        self.busy = False  # setting the originals' attributes (not a student's doing)
        self._armed: dict[str, object] = {}  # name -> tripwire
        self._originals: dict[int, object] = {}  # id(tripwire) -> original
        self._patched: list[tuple] = []  # (class, attribute, its own value or _ABSENT)
        # Where the forbidden objects sat when :meth:`index` ran (before any student code):
        # ids of the objects, their (module dict, key) places, the modules searched.
        self._indexed: set[int] = set()
        self._places: list[tuple[dict, str]] = []
        self._searched: set[str] = set()
        self._index_objects: dict[int, object] = {}  # kept alive: their ids stay theirs
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args) -> None:
        if event == SHORTCUT_EVENT and args and args[0] in self._armed:
            if args[0] not in self.used:
                self.used.append(args[0])
            raise ShortcutError(shortcut_message(args[0]))
        if event in CLOSED_WHILE_ARMED and self._armed:  # a search for the originals
            raise RuntimeError(f"{event} is refused while grading an exercise that forbids "
                               f"{', '.join(self._armed)}")

    def index(self, names) -> None:
        """Remember where the objects of ``names`` sit in the loaded modules, once, before any
        student code runs: :meth:`arm` and :meth:`disarm` then visit those places and the
        modules imported since, not every module (a search of all of them takes about 40 ms).
        A place a student adds later changes the state, and the worker is replaced."""
        objects = {id(o): o for o in map(resolve, names) if o is not None}
        self._searched = set(sys.modules)
        self._places = list(_places_in(list(sys.modules.values()), objects))
        self._indexed, self._index_objects = set(objects), objects

    def _swap(self, swaps: dict, originals) -> None:
        """Each module attribute that is a key of ``swaps`` (by id) replaced by its value."""
        if not swaps:
            return
        if not set(map(id, originals)) <= self._indexed:
            _replace_in_modules(swaps, list(sys.modules.values()))
            return
        for space, key in self._places:
            if id(space.get(key)) in swaps:
                space[key] = swaps[id(space[key])]
        _replace_in_modules(swaps, [m for n, m in list(sys.modules.items())
                                    if n not in self._searched])

    def arm(self, names) -> list[str]:
        """Tripwires for ``names``; returns those that could not be found (not installed)."""
        self.disarm()
        self.used = []
        missing, swaps = [], {}
        for name in names:
            original = resolve(name)
            if original is None:
                missing.append(name)
                continue
            tripwire = _tripwire(name, original)
            self._armed[name] = tripwire
            self._originals[id(tripwire)] = original
            swaps[id(original)] = tripwire
            if isinstance(original, type):  # reached otherwise (``Module.__subclasses__()``)
                self._patch(name, original)
            else:  # a reference kept elsewhere, or the undecorated function of a jitted one
                for function in (original, getattr(original, "__wrapped__", None)):
                    self._rewire(name, function)
        self._swap(swaps, self._originals.values())
        return missing

    def _rewire(self, name: str, function) -> None:
        """A Python function itself trips while armed: its code is a tripwire's."""
        if not isinstance(function, types.FunctionType) or function.__code__.co_freevars:
            return
        self.busy = True
        try:
            self._patched.append((function, "__code__", function.__code__))
            function.__code__ = _tripwire_code(name)
        finally:
            self.busy = False

    def _patch(self, name: str, cls: type) -> None:
        """The original class itself trips when made or subclassed, while armed."""
        def tripping_init(self, *args, **kwargs):
            _trip_name(name)

        def tripping_init_subclass(cls, **kwargs):
            _trip_name(name)

        self.busy = True
        try:
            for attribute, value in (("__init__", tripping_init),
                                     ("__init_subclass__", classmethod(tripping_init_subclass))):
                self._patched.append((cls, attribute, vars(cls).get(attribute, _ABSENT)))
                type.__setattr__(cls, attribute, value)
        finally:
            self.busy = False

    def disarm(self) -> None:
        """The originals back, in every module that holds a tripwire (one imported since too)."""
        if self._armed:
            swaps = {id(t): self._originals[id(t)] for t in self._armed.values()}
            self._swap(swaps, self._originals.values())
        self.busy = True
        try:
            for owner, attribute, value in reversed(self._patched):
                if attribute == "__code__":
                    owner.__code__ = value
                elif value is _ABSENT:
                    type.__delattr__(owner, attribute)
                else:
                    type.__setattr__(owner, attribute, value)
        finally:
            self.busy = False
        self._armed, self._originals, self._patched = {}, {}, []


def resolve(name: str):
    """The object a dotted name (``jax.nn.softmax``) names, its module imported; None if none."""
    import importlib

    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except Exception:
            continue
        try:
            for part in parts[cut:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj
    return None


def _places_in(modules, objects: dict):
    """The (module dict, key) places of ``modules`` that hold one of ``objects`` (by id)."""
    for module in modules:
        space = getattr(module, "__dict__", None)
        if not isinstance(space, dict) or objects.keys().isdisjoint(map(id, space.values())):
            continue
        for key, value in list(space.items()):
            if id(value) in objects:
                yield space, key


def _replace_in_modules(swaps: dict, modules) -> None:
    """Every attribute of ``modules`` that is one of the keys (by id) replaced by its value."""
    for space, key in list(_places_in(modules, swaps)):
        space[key] = swaps[id(space[key])]


def _tripwire(name: str, original):
    """A stand-in for ``original`` that raises (and is recorded) when used."""
    if isinstance(original, type):
        return type.__new__(_TripwireClass, getattr(original, "__name__", name), (), {
            "__tripwire__": name, "__module__": getattr(original, "__module__", None),
            "__qualname__": getattr(original, "__qualname__", name),
            "__doc__": shortcut_message(name)})

    def tripwire(*args, **kwargs):
        _trip_name(name)

    for attribute in ("__name__", "__qualname__", "__module__"):
        with contextlib.suppress(Exception):
            setattr(tripwire, attribute, getattr(original, attribute))
    tripwire.__doc__ = shortcut_message(name)
    return tripwire


def _tripwire_code(name: str):
    """The code of a function that trips for ``name``, using nothing but builtins (it runs
    with the globals of the library's module)."""
    source = (f"def tripwire(*args, **kwargs):\n"
              f"    __import__('sys').audit({SHORTCUT_EVENT!r}, {name!r})\n"
              f"    raise RuntimeError({shortcut_message(name)!r})\n")
    space: dict = {}
    exec(compile(source, "<tripwire>", "exec"), space)
    return space["tripwire"].__code__


def _trip(cls) -> None:
    _trip_name(type.__getattribute__(cls, "__tripwire__"))


# Taken at start-up: a student who replaces ``sys.audit`` cannot keep a use from being recorded.
_AUDIT = sys.audit


def _trip_name(name: str) -> None:
    """Record the use of ``name`` (through the audit hooks) and raise."""
    _AUDIT(SHORTCUT_EVENT, name)
    raise ShortcutError(shortcut_message(name))


_ABSENT = object()


class _TripwireClass(type):
    """The metaclass of a class's tripwire: instantiating, subclassing (``class X(...)``,
    ``type(name, bases, ...)``) and reading attributes trip it."""

    def __new__(mcs, name, bases, namespace, **kwargs):  # a subclass of a tripwire
        for base in bases:
            if isinstance(base, _TripwireClass):
                _trip(base)
        return super().__new__(mcs, name, bases, namespace)

    def __call__(cls, *args, **kwargs):
        _trip(cls)

    def __getattribute__(cls, attribute):
        if attribute in _HARMLESS:
            return type.__getattribute__(cls, attribute)
        _trip(cls)

    def __instancecheck__(cls, instance):
        _trip(cls)

    def __subclasscheck__(cls, subclass):
        _trip(cls)


# ------------------------------------------------------------------- state between exercises


# Audit events after which the worker is not reused: processes started, the C environment
# changed, native code or the interpreter's internals reached (the way to patch what the
# fingerprint reads), attributes of classes set. ``sys.addaudithook`` is refused outright.
TAINTING_EVENTS = frozenset({
    "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system",
    "subprocess.Popen", "os.putenv", "os.unsetenv", "os.chdir", "os.kill", "os.killpg",
    "signal.pthread_kill", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata",
    "ctypes.addressof", "ctypes.call_function", "object.__setattr__", "object.__delattr__",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
    "sys.setprofile", "sys.settrace", "cpython._PySys_ClearAuditHooks", "sys.addaudithook",
})


XLA_THREADS = ("tf_", "llvm-")


class Watch:
    """An audit hook (PEP 578) installed before any student code runs: it notes the
    :data:`TAINTING_EVENTS` seen, and refuses new audit hooks (one could change any later
    call's behaviour, and a hook cannot be removed)."""

    def __init__(self, guard: Guard | None = None):
        self.seen: set[str] = set()
        self.guard = guard  # its own setting of class attributes taints nothing
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args) -> None:
        if event in TAINTING_EVENTS and not (self.guard is not None and self.guard.busy):
            self.seen.add(event)
            if event == "sys.addaudithook":
                raise RuntimeError("audit hooks are not allowed while grading")


def _ids(mapping) -> int:
    return hash(tuple((k, id(v)) for k, v in list(mapping.items())))


def fingerprint() -> dict[str, object]:
    """What in the interpreter could carry one exercise's doing into the next one's verdict:
    every attribute of every imported module (by identity: a patched ``jnp.exp``, ``np.allclose``
    or builtin shows), the attributes of JAX's array class, ``sys.modules``, every JAX flag (x64,
    matmul precision, debug_nans, disable_jit, also when set in a context left open), Python's
    threads and the OS's, child processes, the folder, the environment, signal handlers,
    resource limits, the recursion limit, tracing hooks, import hooks, NumPy's error state,
    print options and global random state, warning filters, open files. Cheap: about 20 ms."""
    import gc
    import resource
    import signal
    import threading
    import warnings

    import jax
    import numpy as np

    modules = dict(sys.modules)
    state: dict[str, object] = {"sys.modules": _ids(modules)}
    for name, module in modules.items():
        try:
            state[f"module {name}"] = _ids(vars(module))
        except TypeError:  # not a module (a lazy placeholder of some library)
            state[f"module {name}"] = id(module)
    for cls in {jax.Array, type(jax.numpy.asarray(np.zeros(()))), np.random.Generator}:
        state[f"class {cls.__qualname__}"] = _ids(vars(cls))
    holders = getattr(jax.config, "_value_holders", {})
    state["jax.config"] = hash(tuple((n, repr(h.value)) for n, h in holders.items()))
    state["threads"] = tuple(sorted(t.ident or 0 for t in threading.enumerate()))
    # XLA starts and ends threads of its own (tf_foreach, llvm-worker) while it compiles; a
    # thread the student's Python code starts bears the process's name.
    state["OS threads"] = tuple(task for task in _listing("/proc/self/task") if not _read(
        f"/proc/self/task/{task}/comm").startswith(XLA_THREADS))
    state["child processes"] = tuple(sorted(
        pid for task in _listing("/proc/self/task")
        for pid in _read(f"/proc/self/task/{task}/children").split()))
    if os.getpid() < 100:  # a PID namespace of its own (bubblewrap): every process in it
        state["processes"] = tuple(p for p in _listing("/proc") if p.isdigit())
    state["open files"] = len(_listing("/proc/self/fd"))
    state["folder"] = os.getcwd()
    state["environment"] = hash(tuple(sorted(os.environ.items())))
    umask = os.umask(0o22)
    os.umask(umask)
    state["umask"] = umask
    state["signal handlers"] = tuple(id(signal.getsignal(s)) for s in sorted(
        signal.valid_signals()) if s not in (signal.SIGKILL, signal.SIGSTOP))
    state["resource limits"] = tuple(resource.getrlimit(getattr(resource, r)) for r in
                                     sorted(dir(resource)) if r.startswith("RLIMIT_"))
    state["interpreter"] = (sys.getrecursionlimit(), sys.getswitchinterval(),
                            id(sys.gettrace()), id(sys.getprofile()),
                            sys.get_int_max_str_digits(), gc.isenabled(), gc.get_threshold(),
                            len(gc.callbacks), id(threading.gettrace()),
                            id(threading.getprofile()))
    state["import system"] = (tuple(sys.path), tuple(map(id, sys.meta_path)),
                              tuple(map(id, sys.path_hooks)))
    state["numpy"] = (tuple(sorted(np.geterr().items())),
                      repr(sorted(np.get_printoptions().items())), np.getbufsize(),
                      hash(np.random.get_state()[1].tobytes()))  # noqa: NPY002
    state["warnings"] = hash(tuple(map(repr, warnings.filters)))
    return state


def _listing(folder: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(folder)))
    except OSError:
        return ()


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _changes(baseline: dict, seen: set[str]) -> list[str]:
    """What differs from ``baseline`` (at most 5 names), and the tainting events ``seen``."""
    try:
        now = fingerprint()
        changed = [key for key in baseline.keys() | now.keys()
                   if baseline.get(key) != now.get(key)]
    except Exception as e:  # the student's code broke what the fingerprint reads
        changed = [f"the state could not be read ({type(e).__name__})"]
    return sorted(changed)[:5] + sorted(f"event {e}" for e in seen)[:5]


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _warm_up() -> None:
    """Run JAX once the ways a check does (eager, jit, vmap, vjp, lax.map, einsum), so that
    what JAX sets up lazily exists before the fingerprint is taken."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    x = jnp.asarray(np.ones((2, 3, 2), np.float32))
    def fn(x):
        scores = jnp.einsum("...tn,...sn->...ts", x, x) / jnp.sqrt(2.0)
        return jax.nn.softmax(scores + jnp.tril(jnp.ones_like(scores)))
    for transform in ("eager", "jit", "vmap", "influence"):
        np.asarray(apply_transform(fn, transform, (x,), {}))
    # A program no compilation cache holds (a random constant in it): XLA starts its
    # compiler's threads now, before the fingerprint, also where every program above was
    # loaded from the class's cache (else the first program a student compiles would look
    # like a thread the student started).
    salt = int.from_bytes(os.urandom(3), "big") | 1
    np.asarray(jax.jit(lambda x: x * salt)(x))
    np.asarray(jnp.zeros((2,), jnp.bfloat16).astype(jnp.float32))


def _lend_all(value, lend):
    if isinstance(value, tuple | list):
        items = [_lend_all(v, lend) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict) and value.get("t") != "object":
        return {k: _lend_all(v, lend) for k, v in value.items()}
    return lend(value)


def _as_jax(value, jnp, np):
    """Arrays as JAX arrays, as the student's function meets them in the notebook."""
    if isinstance(value, np.ndarray):
        return jnp.asarray(value)
    if isinstance(value, tuple | list):
        items = [_as_jax(v, jnp, np) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return {k: _as_jax(v, jnp, np) for k, v in value.items()}
    return value


class _BlockPackage:
    """Refuses ``import attention`` in the worker, with the reason (the answers live there)."""

    def find_spec(self, name, path=None, target=None):
        if name == BLOCKED_PACKAGE or name.startswith(BLOCKED_PACKAGE + "."):
            raise ModuleNotFoundError(BLOCKED_MESSAGE, name=name)
        return None


def main(argv: list[str]) -> int:
    _folder, request_fd, reply_fd, *site_dirs = argv
    sys.path[:0] = site_dirs
    sys.meta_path.insert(0, _BlockPackage())
    import jax  # noqa: F401  (before hello: start-up time never counts against a student)

    _serve(int(request_fd), int(reply_fd))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
