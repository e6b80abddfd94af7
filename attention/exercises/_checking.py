"""The machinery every checker shares: call the student's code safely, compare, explain.

A checker runs the student's function on inputs with distinct sizes on every axis, compares
the result with the package, and stops at the FIRST problem, which it explains in words. The
helpers here raise :class:`Mistake` with that explanation; :func:`checker` turns it into a
:class:`CheckResult`. Nothing a student's function does (raise, return None, return the
wrong type) escapes as an exception: it becomes the message.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import math
from collections.abc import Callable, Sequence

import jax
import numpy as np

from attention._checks import shape_str
from attention.exercises.remote import Lent, RemoteFunction, StudentError, WorkerFailure
from attention.exercises.worker import apply_transform, describe_error

PASSED = "passed"
FAILED = "failed"
NOT_IMPLEMENTED = "not implemented"


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """What a checker found.

    Attributes:
      exercise: the exercise's name, e.g. ``"dot_product_scores"``.
      passed: True when every comparison agreed.
      message: one paragraph, the first problem found (or a short confirmation).
      status: ``"passed"``, ``"failed"`` or ``"not implemented"`` (the blank is still empty).

    In a notebook the result displays as a coloured box; ``print(result)`` gives one line.
    """

    exercise: str
    passed: bool
    message: str
    status: str = FAILED

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark = {PASSED: "PASS", NOT_IMPLEMENTED: "TODO"}.get(self.status, "FAIL")
        return f"[{mark}] {self.exercise}: {self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour, icon = {
            PASSED: ("#e6f4ea", "&#9989;"),
            NOT_IMPLEMENTED: ("#fef7e0", "&#9999;&#65039;"),
        }.get(self.status, ("#fce8e6", "&#10060;"))
        return (
            f'<div style="background:{colour};padding:0.6em 0.8em;border-radius:6px;'
            f'color:#202124">{icon} <b>{html.escape(self.exercise)}</b>: '
            f"{html.escape(self.message)}</div>"
        )

    def show(self) -> CheckResult:
        """Display the result (a box in Jupyter, one line elsewhere) and return it."""
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                display(self)
                return self
        except ImportError:  # pragma: no cover - IPython comes with Jupyter
            pass
        print(self)
        return self


class Mistake(Exception):
    """Raised inside a checker with the explanation of the first problem found."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotImplementedYet(Mistake):
    """The student's blank still raises NotImplementedError."""


def checker(exercise: str) -> Callable:
    """Decorator: run a checker body, turn a :class:`Mistake` into a failed result.

    The body returns a confirmation message on success. Any other exception means the checker
    itself could not interpret what the student's code gave back; it is reported, never raised.
    """

    def wrap(body: Callable[..., str]) -> Callable[..., CheckResult]:
        @functools.wraps(body)
        def run(*args, **kwargs) -> CheckResult:
            try:
                with jax.numpy_rank_promotion("allow"):
                    message = body(*args, **kwargs)
            except NotImplementedYet as e:
                return CheckResult(exercise, False, e.message, NOT_IMPLEMENTED)
            except Mistake as e:
                return CheckResult(exercise, False, e.message, FAILED)
            except WorkerFailure:  # the grader scores it "timed out" or "crashed"
                raise
            except Exception as e:  # a result the checker could not even compare
                return CheckResult(
                    exercise,
                    False,
                    f"the checker could not use what your code gave back: "
                    f"{type(e).__name__}: {_first_line(e)}",
                    FAILED,
                )
            return CheckResult(exercise, True, message, PASSED)

        run.exercise = exercise
        return run

    return wrap


# --------------------------------------------------------------------------- describing things


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else "(no message)"


def describe_inputs(inputs: dict) -> str:
    """``query [2, 3, 7, 16], key [2, 5, 7, 16], num_heads=7``."""
    parts = []
    for name, value in inputs.items():
        value = value.obj if isinstance(value, Lent) else value
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            parts.append(f"{name} {shape_str(value.shape)}")
        elif isinstance(value, int | float | bool | str) or value is None:
            parts.append(f"{name}={value!r}")
        else:
            parts.append(f"{name} ({type(value).__name__})")
    return ", ".join(parts)


# --------------------------------------------------------------------------- calling the student


def reject_package_function(fn, name: str) -> None:
    """The package's own implementation passed in place of the student's: not a solution."""
    module = getattr(fn, "__module__", "") or ""
    if module.startswith("attention.") and not module.startswith("attention.exercises"):
        raise Mistake(
            f"`{name}` is the package's own {module}.{getattr(fn, '__name__', name)}, "
            f"imported rather than written: write your own version in the exercise cell."
        )
    if not callable(fn):
        raise Mistake(f"`{name}` should be a function, got {type(fn).__name__}.")


def invoke(fn, transform: str, args: tuple, kwargs: dict | None = None, static: tuple = (),
           wrt: int = 0):
    """Run the student's ``fn`` (see :func:`attention.exercises.worker.apply_transform`).

    ``fn`` is the student's own function in a notebook, or a
    :class:`~attention.exercises.remote.RemoteFunction` when the grader checks it in a
    confined worker; either way what the student's code raised comes back as a
    :class:`~attention.exercises.remote.StudentError`, and :class:`Lent` objects reach the
    function as themselves here and as call-backs in the worker.
    """
    kwargs = kwargs or {}
    if isinstance(fn, RemoteFunction):
        return fn.run(transform, tuple(args), kwargs, tuple(static), wrt)
    args = tuple(a.obj if isinstance(a, Lent) else a for a in args)
    try:
        return apply_transform(fn, transform, args, kwargs, tuple(static), wrt)
    except Exception as e:
        raise StudentError.from_report(describe_error(e, fn)) from e


def call(fn: Callable, name: str, inputs: dict, **static) -> object:
    """``fn(*inputs.values(), **static)``; a raised exception becomes a :class:`Mistake`."""
    try:
        return invoke(fn, "eager", tuple(inputs.values()), static)
    except StudentError as e:
        if e.not_implemented:
            raise NotImplementedYet(
                f"not implemented yet: `{name}` still raises NotImplementedError. Replace "
                f"`raise NotImplementedError(...)` with your code, run that cell, then this "
                f"one."
            ) from None
        raise Mistake(
            f"your function `{name}` raised {e.type}: {e.message}{e.where} on inputs "
            f"{describe_inputs(inputs | static)}."
        ) from None


def as_array(value, name: str, what: str = "result") -> np.ndarray:
    """The student's return value as a NumPy array, or a :class:`Mistake` saying what it was."""
    if value is None:
        raise Mistake(
            f"`{name}` returned None: did you forget the `return` at the end of the function?"
        )
    if isinstance(value, tuple | list) and not np.isscalar(value):
        raise Mistake(
            f"`{name}` returned a {type(value).__name__} of {len(value)} items; its {what} "
            f"should be one array."
        )
    try:
        array = np.asarray(value)
    except Exception as e:
        raise Mistake(
            f"`{name}` returned a {type(value).__name__}, which is not an array ({e})."
        ) from None
    if array.dtype == object:
        raise Mistake(f"`{name}` returned a {type(value).__name__}, which is not an array.")
    return array


# --------------------------------------------------------------------------- comparing


def _is(what: str, singular: str, plural: str) -> str:
    """``what`` with its verb: "your scores have", "your loss has"."""
    return f"{what} {plural if what.endswith('s') and not what.endswith('ss') else singular}"


def check_shape(got: np.ndarray, expected: Sequence[int], axes: str, name: str, what="output"):
    """Explain a wrong shape, naming the axes that look swapped (the sizes are all distinct)."""
    expected = tuple(int(d) for d in expected)
    if tuple(got.shape) == expected:
        return
    labels = list(axes) if len(axes) == len(expected) else [str(i) for i in range(len(expected))]
    message = (
        f"your {_is(what, 'has', 'have')} shape {shape_str(got.shape)}; "
        f"expected {shape_str(expected)} "
        f"([{', '.join(labels)}])"
    )
    if got.ndim == len(expected) and sorted(got.shape) == sorted(expected):
        wrong = [i for i in range(got.ndim) if got.shape[i] != expected[i]]
        size_to_label = {}
        for label, size in zip(labels, expected, strict=True):
            size_to_label.setdefault(size, label)
        if len(wrong) == 2:
            i, j = wrong
            message += (
                f": axes {i} and {j} look swapped ({labels[j]} is where {labels[i]} should be)"
            )
        else:
            yours = ", ".join(size_to_label.get(d, "?") for d in got.shape)
            message += f": your axes look ordered [{yours}]"
        message += "."
    elif got.ndim == len(expected) - 1:
        message += ": one axis is missing (did you sum over an axis, or drop one with indexing?)."
    elif got.ndim == len(expected) + 1:
        message += ": there is one axis too many."
    else:
        message += "."
    raise Mistake(message)


def close(got, expected, *, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    got, expected = np.asarray(got), np.asarray(expected)
    if got.dtype == bool or expected.dtype == bool:
        return got.shape == expected.shape and bool(np.array_equal(got, expected))
    return got.shape == expected.shape and bool(
        np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=False)
    )


def check_finite(got: np.ndarray, expected: np.ndarray, name: str, situation: str, hint: str):
    """NaN or inf where the reference is finite: explain it in the words of ``situation``."""
    bad = ~np.isfinite(got) & np.isfinite(expected)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise Mistake(
            f"`{name}` gives {got[index]} {situation} (first at index {list(index)}); "
            f"expected finite numbers. {hint}"
        )


def constant_ratio(got: np.ndarray, expected: np.ndarray) -> float | None:
    """c when got == c * expected everywhere (c != 1), else None."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape or not np.all(np.isfinite(got)):
        return None
    big = np.abs(expected) > 1e-3 * (np.abs(expected).max() + 1e-30)
    if big.sum() < 2:
        return None
    ratio = got[big] / expected[big]
    c = float(np.median(ratio))
    if abs(c - 1.0) < 1e-3 or not np.allclose(got, c * expected, rtol=1e-3, atol=1e-5):
        return None
    return c


def first_difference(got: np.ndarray, expected: np.ndarray, axes: str, what: str) -> str:
    """``at [b, t, n, s] = [0, 1, 2, 3] you have 0.123, expected 0.456``."""
    difference = np.abs(np.asarray(got, np.float64) - np.asarray(expected, np.float64))
    tolerance = 1e-5 + 1e-4 * np.abs(expected)
    index = tuple(int(i) for i in np.argwhere(~(difference <= tolerance))[0])
    labels = ", ".join(axes.lower()) if len(axes) == len(index) else "index"
    return (
        f"your {_is(what, 'differs from the expected one', 'differ from the expected ones')}: "
        f"at [{labels}] = {list(index)} you have "
        f"{float(got[index]):.6g}, expected {float(expected[index]):.6g} (largest difference "
        f"{float(difference.max()):.3g})"
    )


def match_variant(got, variants: Sequence[tuple[str, Callable[[], object]]]) -> None:
    """Raise the message of the first known wrong version that ``got`` equals."""
    for message, compute in variants:
        try:
            candidate = np.asarray(compute())
        except Exception:  # a wrong version that does not even apply to these inputs
            continue
        if candidate.shape == np.shape(got) and close(got, candidate, rtol=1e-4, atol=1e-5):
            raise Mistake(message)


_TRANSFORM_REASONS = {
    "python control flow": (
        "Python control flow or a Python number on a traced value (`if x > 0:`, `while`, "
        "`bool(x)`, `float(x)`, `int(x)`, `.item()`). Under jit and vmap an array is an "
        "abstract tracer without values; use jnp.where(condition, a, b) or jax.lax.cond "
        "instead."
    ),
    "numpy on a tracer": (
        "a traced array was converted to NumPy (np.asarray, np.exp, np.array, ...); use "
        "the jax.numpy (jnp) functions, which work on tracers."
    ),
    "boolean indexing": (
        "boolean indexing `x[mask]` gives a shape that depends on the values, which "
        "cannot be compiled; keep the shape with jnp.where(mask, x, other)."
    ),
}


def explain_transform_error(error: StudentError, transform: str, name: str, inputs: dict) -> str:
    """Why a function that works eagerly breaks under ``jax.jit`` or ``jax.vmap``."""
    reason = _TRANSFORM_REASONS.get(
        error.category, "it works on concrete arrays but not on traced ones.")
    return (
        f"your function `{name}` breaks under {transform}: it raised {error.type}: "
        f"{error.message} on inputs {describe_inputs(inputs)}. The cause: {reason}"
    )


def check_jit_and_vmap(
    fn: Callable,
    name: str,
    inputs: dict,
    other_inputs: dict,
    expected,
    other_expected,
    *,
    static: dict | None = None,
    vmap: bool = True,
) -> None:
    """``fn`` must give the same results under ``jax.jit`` and under ``jax.vmap``.

    ``inputs`` are the leading positional array arguments; ``static`` are the positional
    arguments after them, held fixed (Python ints, flags). vmap maps over a new leading axis
    of two stacked input sets, so ``other_inputs`` must have the same shapes as ``inputs``.
    """
    static = static or {}
    fixed = tuple(static.values())
    try:
        got = invoke(fn, "jit", tuple(inputs.values()), static=fixed)
    except StudentError as e:
        raise Mistake(explain_transform_error(e, "jax.jit", name, inputs | static)) from None
    if not close(as_array(got, name), expected, rtol=1e-3, atol=1e-4):
        raise Mistake(
            f"`{name}` gives different results under jax.jit than without it on inputs "
            f"{describe_inputs(inputs | static)}: does it depend on Python-side state?"
        )
    if not vmap:
        return
    pairs = zip(inputs.values(), other_inputs.values(), strict=True)
    stacked = tuple(np.stack([np.asarray(a), np.asarray(b)]) for a, b in pairs)
    try:
        # Compiled, so that it costs one compilation; jit alone already worked above.
        got = invoke(fn, "vmap", stacked, static=fixed)
    except StudentError as e:
        raise Mistake(explain_transform_error(e, "jax.vmap", name, inputs | static)) from None
    want = np.stack([np.asarray(expected), np.asarray(other_expected)])
    if not close(as_array(got, name), want, rtol=1e-3, atol=1e-4):
        raise Mistake(
            f"`{name}` gives different results under jax.vmap (mapping over a new leading "
            f"axis) than on each input alone: does it use a hard-coded axis number counted "
            f"from the left, such as axis=0 or .shape[0]? Count from the right (axis=-1) or "
            f"name the axes."
        )


def find_future_leak(
    fn, name: str, args: tuple, wrt: int, threshold: float = 1e-6
) -> tuple[int, int, float] | None:
    """(t, s, size) of the first output position t whose gradient reaches ``args[wrt]`` at s > t.

    Causality through gradients: with a correct causal mask d out[:, t] / d x[:, s] is exactly
    zero for every s > t, whatever the weights. ``args[wrt]`` is ``[B, S, ...]``, the output
    ``[B, T, ...]``.
    """
    try:
        size_TS = np.asarray(invoke(fn, "influence", tuple(args), wrt=wrt), np.float64)
    except StudentError as e:
        raise Mistake(
            f"your function `{name}` raised {e.type} when differentiated (jax.vjp, to test "
            f"causality): {e.message}{e.where}."
        ) from None
    S = np.shape(args[wrt])[1]
    if size_TS.ndim != 2 or size_TS.shape[1] != S:
        raise Mistake(f"`{name}`'s output could not be differentiated position by position.")
    T = size_TS.shape[0]
    for t in range(min(T, S - 1)):
        for s in range(t + 1, S):
            if size_TS[t, s] > threshold or not np.isfinite(size_TS[t, s]):
                return t, s, float(size_TS[t, s])
    return None


def sqrt_hint(c: float, head_dim: int, what: str = "scores") -> str | None:
    """Words for a constant ratio that is a power of sqrt(d_k)."""
    root = math.sqrt(head_dim)
    if math.isclose(c, root, rel_tol=1e-3):
        return (
            f"your {what} are sqrt(d_k)={root:.2f} times too large: divide the dot products "
            f"by sqrt(d_k), the square root of the head dim H={head_dim} (section 3.2.1)."
        )
    if math.isclose(c, 1 / root, rel_tol=1e-3):
        return (
            f"your {what} are sqrt(d_k)={root:.2f} times too small: divide by sqrt(d_k) once "
            f"(not by d_k={head_dim}, and not twice)."
        )
    return None


def compare(
    got: np.ndarray,
    expected: np.ndarray,
    *,
    axes: str,
    name: str,
    what: str,
    inputs: dict,
    variants: Sequence[tuple[str, Callable[[], object]]] = (),
    ratio_words: Callable[[float], str | None] | None = None,
) -> None:
    """Shape, then NaN, then the known wrong versions, then a constant factor, then values."""
    check_shape(got, expected.shape, axes, name, what)
    check_finite(got, expected, name, f"on inputs {describe_inputs(inputs)}", "")
    if close(got, expected):
        return
    match_variant(got, variants)
    c = constant_ratio(got, expected)
    if c is not None:
        words = ratio_words(c) if ratio_words else None
        raise Mistake(
            words
            or f"your {_is(what, 'is', 'are')} {c:.4g} times the expected values on inputs "
            f"{describe_inputs(inputs)}: a constant factor is off."
        )
    raise Mistake(
        first_difference(got, expected, axes, what) + f" on inputs {describe_inputs(inputs)}."
    )


# --------------------------------------------------------------------------- an exercise


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise.

    Attributes:
      name: short id, used as the CSV column and in ``solution_source``.
      title: what the notebook is called.
      notebook: file name under ``notebooks/exercises/`` (without extension).
      names: the top-level names the student defines (functions, and for 00 the answer).
      check: the checker; called with the student's objects in the order of ``names``.
      minutes: how long it usually takes (for the teacher's guide).
      optional: names a submission may leave out.
      forbidden: the library functions that would do the exercise for the student (dotted
        names, such as ``"jax.nn.softmax"``), and what the exercise asks instead; the grader
        scores a required function that uses one 0 with that message.
    """

    name: str
    title: str
    notebook: str
    names: tuple[str, ...]
    check: Callable[..., CheckResult]
    minutes: int
    optional: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    instead: str = ""

    def check_namespace(self, namespace: dict) -> CheckResult:
        """Run the checker on the objects a submission defined (the grader's entry point)."""
        missing = [n for n in self.names if n not in namespace and n not in self.optional]
        if missing:
            return CheckResult(
                self.name, False, f"not submitted: {', '.join(missing)} not defined.",
                "not implemented",
            )
        return self.check(*(namespace.get(n) for n in self.names))
