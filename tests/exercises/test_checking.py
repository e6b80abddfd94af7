"""What every checker shares: the model solutions pass, a blank is reported, not raised, and
every exercise's entry matches its notebook and its module."""

import importlib

import jax.numpy as jnp
import pytest

from attention import exercises
from attention.exercises import EXERCISES
from teachers import solutions

from ._helpers import fails


def test_every_solution_passes():
    for exercise in EXERCISES.values():
        result = exercise.check_namespace(vars(solutions))
        assert result.passed, result
        assert result.status == "passed"
        assert str(result).startswith(f"[PASS] {exercise.name}: ")



def test_not_implemented_blank_is_reported_not_raised():
    def blank(query, key):
        raise NotImplementedError("your code here")

    result = exercises.check_dot_product_scores(blank)
    fails(result, "not implemented yet", "dot_product_scores", status="not implemented")
    assert str(result).startswith("[TODO]")
    assert "not implemented yet" in result._repr_html_()


def test_student_exception_is_reported_with_inputs_and_line():
    def broken(query, key):
        x = query + 1
        return x @ key  # matmul of [B, T, N, H] by [B, S, N, H]: a shape error

    fails(exercises.check_dot_product_scores(broken),
           "your function `dot_product_scores` raised ValueError",
           "line 3 of `broken`: `return x @ key", "query [2, 3, 7, 16], key [2, 5, 7, 16]")


def test_returning_none_and_package_function():
    def no_return(query, key):
        jnp.einsum("btnh,bsnh->bnts", query, key)

    fails(exercises.check_dot_product_scores(no_return), "returned None", "`return`")
    from attention import dot_product_scores

    fails(exercises.check_dot_product_scores(dot_product_scores), "package's own")


@pytest.mark.parametrize("name", list(EXERCISES))
def test_registry_names_match_notebook_blanks(name):
    """Every exercise's names are defined by its solution and its notebook's blank cell."""
    import pathlib

    exercise = EXERCISES[name]
    notebook = pathlib.Path(__file__).parents[2] / "notebooks" / "exercises"
    text = (notebook / f"{exercise.notebook}.py").read_text()
    for n in exercise.names:
        assert hasattr(solutions, n)
        assert f"def {n}(" in text or f"{n} = " in text
    assert exercise.minutes > 0 and exercise.check.exercise == name
    module = importlib.import_module(exercise.check.__module__)
    assert module.EXERCISE is exercise
    assert getattr(module, exercise.check.__name__) is exercise.check


@pytest.mark.parametrize("name", list(EXERCISES))
def test_walkthrough_is_in_sync_with_checker_and_solution(name):
    """docs/walkthroughs/NN_name.md has a hand-written part, then the model solution and every
    explanation its checker can give (teachers/walkthroughs.py, regenerated from the code):
    a checker that learns a new mistake, or a changed solution, fails here until the file is
    regenerated."""
    import inspect

    from teachers import walkthroughs

    path = walkthroughs.path_for(name)
    text = path.read_text()
    assert text == walkthroughs.render(name), "out of date: python -m teachers.walkthroughs"
    hand = text.split(walkthroughs.MARKER)[0]
    assert hand.startswith(f"# Walkthrough {EXERCISES[name].notebook[:2]}:")
    assert "Release after the deadline" in hand and "**What to discuss in class.**" in hand
    module = importlib.import_module(EXERCISES[name].check.__module__)
    messages = walkthroughs.checker_messages(module)
    assert messages
    flat = " ".join(text.split())
    for message in messages:
        assert " ".join(message.split()) in flat
    source = inspect.getsource(module)
    if "_NOTE = (" in source:  # a convention accepted with a note: the page explains it
        assert "**Conventions accepted.**" in hand
