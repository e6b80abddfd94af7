"""Comprehension checks of the notebook course (notebooks 00-15): questions that check.

Each "check your understanding" cell of a notebook leaves the student's answer empty
(``None``), then calls :func:`check` with the question's id and a test that compares the
answer with what the notebook measured::

    my_answer = None  # your answer: a number
    check("00.orthogonal_query", my_answer, lambda a: abs(a - measured) < 1e-4)

Unanswered, the cell shows ``[TODO]``; a wrong answer shows ``[FAIL]`` and a hint; a right one
``[PASS]`` and, only then, the explanation. The model answers and the explanations live in
:mod:`attention.comprehension.questions` (a teacher reads them there), not in the notebook
above the check. With ``ATTENTION_FILL_ANSWERS=1`` in the environment every unanswered
question is answered with its model answer, which is how the tests run the course "with the
answers filled in" without a second copy of each notebook.

Why a package of its own: the exercises (``attention.exercises``) grade code that a student
writes in a separate notebook; these are short questions inside the course notebooks, with no
grader, no sandbox and no submission. They share the ``[TODO]/[PASS]/[FAIL]`` vocabulary.

    checking.py   check(), show_answer(), the result shown in a notebook
    questions.py  every question: its notebook, model answer, hint and explanation
    showing.py    show_code(), the package's own code of a step, shown where it is taught
"""

from attention.comprehension.checking import (
    FILL_ANSWERS_ENV,
    CheckOutcome,
    check,
    evaluate,
    show_answer,
)
from attention.comprehension.questions import QUESTIONS, Question, questions_of
from attention.comprehension.showing import show_code

__all__ = [
    "FILL_ANSWERS_ENV",
    "QUESTIONS",
    "CheckOutcome",
    "Question",
    "check",
    "evaluate",
    "questions_of",
    "show_answer",
    "show_code",
]
