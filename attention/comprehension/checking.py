"""Run one comprehension check: unanswered -> TODO, wrong -> FAIL + hint, right -> PASS + why.

The notebook owns the *test* (what the truth is, measured in the cells above); the question
registry (:mod:`attention.comprehension.questions`) owns the model answer, the hint and the
explanation. An answer is unanswered when it is ``None``, or when it is a function that returns
``None`` (a formula still to be written: ``def f(d_k): return None``).
"""

from __future__ import annotations

import dataclasses
import html
import os
from collections.abc import Callable
from typing import Any

from attention.comprehension.questions import QUESTIONS, Question

FILL_ANSWERS_ENV = "ATTENTION_FILL_ANSWERS"

TODO, PASS, FAIL = "TODO", "PASS", "FAIL"


class _Unanswered(Exception):
    """A formula answer returned None: the student has not written it yet."""


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """What :func:`check` found: ``status`` is ``"TODO"``, ``"PASS"`` or ``"FAIL"``.

    ``str(outcome)`` is one line starting ``[STATUS] question_id:`` (what the tests read); in
    Jupyter the outcome displays as a coloured box.
    """

    question: str
    status: str
    message: str
    filled_in: bool = False  # the model answer was used (ATTENTION_FILL_ANSWERS=1)

    def __bool__(self) -> bool:
        return self.status == PASS

    def __str__(self) -> str:
        return f"[{self.status}] {self.question}: {self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = {PASS: "#e6f4ea", TODO: "#fef7e0"}.get(self.status, "#fce8e6")
        body = html.escape(self.message).replace("\n", "<br>")
        return (f'<div style="background:{colour};padding:0.6em 0.8em;border-radius:6px;'
                f'color:#202124"><b>[{self.status}] {html.escape(self.question)}</b>: '
                f"{body}</div>")


def _question(question_id: str) -> Question:
    if not isinstance(question_id, str):
        raise TypeError(f"question_id must be a str such as '00.orthogonal_query'; got "
                        f"{type(question_id).__name__}.")
    if question_id not in QUESTIONS:
        raise ValueError(f"question_id={question_id!r} is not a known question; known: "
                         f"{', '.join(sorted(QUESTIONS))}.")
    return QUESTIONS[question_id]


def _guarded(answer: Any) -> Any:
    """A function answer that raises :class:`_Unanswered` when it returns None."""
    if not callable(answer):
        return answer

    def call(*args, **kwargs):
        result = answer(*args, **kwargs)
        if result is None:
            raise _Unanswered
        return result

    return call


def _filling_in() -> bool:
    return os.environ.get(FILL_ANSWERS_ENV, "0") == "1"


def _display(outcome: CheckOutcome) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(outcome)
            return
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        pass
    print(outcome)


def evaluate(question_id: str, answer: Any, test: Callable[[Any], Any]) -> CheckOutcome:
    """:func:`check` without displaying anything (what the tests call)."""
    question = _question(question_id)
    if not callable(test):
        raise TypeError(f"test must be a function of the answer returning True or False; got "
                        f"{type(test).__name__}.")
    outcome = _evaluate(question, answer, test, filled_in=False)
    if outcome.status == TODO and _filling_in():
        outcome = _evaluate(question, question.solution, test, filled_in=True)
    return outcome


def _names_used(function: Callable) -> set[str]:
    """The global, enclosing-scope and attribute names a function's code reads (its own
    arguments and locals excluded), nested functions and lambdas included."""
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    stack, names = [code] if code is not None else [], set()
    while stack:
        code = stack.pop()
        names |= set(code.co_names) | set(code.co_freevars)
        stack += [c for c in code.co_consts if hasattr(c, "co_names")]
    return names


def _evaluate(question: Question, answer: Any, test: Callable[[Any], Any], *,
              filled_in: bool) -> CheckOutcome:
    question_id = question.id
    if answer is None:
        return CheckOutcome(question_id, TODO, f"not answered yet: {question.prompt}")
    used = sorted(_names_used(answer) & set(question.measured)) if callable(answer) else []
    if used:
        return CheckOutcome(question_id, FAIL, f"your function uses {', '.join(used)}, what the "
                            f"notebook measured; predict it with a formula of the arguments "
                            f"instead. Hint: {question.hint}", filled_in)
    try:
        verdict = test(_guarded(answer))
    except _Unanswered:
        return CheckOutcome(question_id, TODO, f"your function still returns None: "
                            f"{question.prompt}", filled_in)
    except Exception as error:  # the student's answer broke the test: say how, do not raise
        return CheckOutcome(question_id, FAIL, f"your answer could not be checked "
                            f"({type(error).__name__}: {error}). Hint: {question.hint}",
                            filled_in)
    if verdict is True or (verdict is not False and bool(verdict)):
        source = " (the model answer, filled in)" if filled_in else ""
        return CheckOutcome(question_id, PASS, f"right{source}. {question.explanation}",
                            filled_in)
    return CheckOutcome(question_id, FAIL, f"not quite. Hint: {question.hint} (Stuck? "
                        f"show_answer({question_id!r}) tells the answer.)", filled_in)


def check(question_id: str, answer: Any, test: Callable[[Any], Any]) -> None:
    """Check a student's ``answer`` to question ``question_id`` with ``test(answer)``.

    Args:
      question_id: ``"NN.name"``, a key of :data:`attention.comprehension.QUESTIONS`.
      answer: the student's answer: ``None`` while unanswered; a value, or a function (which
        is unanswered while it returns ``None``).
      test: ``test(answer) -> bool``, written in the notebook against what it measured. An
        exception raised inside it (a wrong type, a wrong shape) counts as a wrong answer.

    Displays the :class:`CheckOutcome` (and returns None, so that a notebook does not show it
    twice; :func:`evaluate` returns it). A wrong answer never raises: the rest of the notebook
    still runs.

    Raises:
      TypeError: ``question_id`` not a str, ``test`` not callable.
      ValueError: an unknown ``question_id``.

    >>> check("00.orthogonal_query", None, lambda a: a == 20)  # doctest: +ELLIPSIS
    [TODO] 00.orthogonal_query: not answered yet: ...
    >>> str(evaluate("00.orthogonal_query", 20.0, lambda a: abs(a - 20.0) < 1e-4))[:31]
    '[PASS] 00.orthogonal_query: rig'
    """
    _display(evaluate(question_id, answer, test))


def show_answer(question_id: str) -> str:
    """The model answer and explanation of ``question_id`` (for when a student is stuck)."""
    question = _question(question_id)
    solution = question.solution
    shown = (getattr(solution, "__doc__", None) or "a function") if callable(solution) \
        else repr(solution)
    text = f"{question_id}: {shown}. {question.explanation}"
    print(text)
    return text
