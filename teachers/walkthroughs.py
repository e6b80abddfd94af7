"""Post-grading walkthroughs, one per exercise: ``docs/walkthroughs/NN_name.md``.

Each file has a hand-written part (what the exercise is about, how the model solution works,
what to say in class), then a part generated from the code, so that it never drifts: the
model solution (``solution_source``) and every explanation its checker can give, read from
the checker's module (the first argument of each ``Mistake(...)`` and the message of each
known wrong version passed to ``match_variant``). Regenerate after changing a checker or a
solution::

    python -m teachers.walkthroughs          # rewrites the generated part of every file

``tests/exercises/test_checking.py`` fails when a file is out of date. Release a file to the
class after the deadline: it contains the answer.
"""

from __future__ import annotations

import ast
import inspect
import pathlib
import sys

from attention.exercises import _checking, _shared
from attention.exercises.registry import EXERCISES, MODULES

FOLDER = pathlib.Path(__file__).resolve().parents[1] / "docs" / "walkthroughs"
MARKER = "<!-- generated below by python -m teachers.walkthroughs: do not edit -->"

# Explanations that live in _shared.py and _checking.py, given by the checkers that use these
# helpers (the generic ones of _checking, such as a wrong shape, are listed once in prose).
_SHARED_HELPERS = {
    "mha_variants": _shared, "check_leak": _shared, "check_boolean": _shared,
    "sqrt_hint": _checking, "check_jit_and_vmap": _checking,
}


def _text(node: ast.AST) -> str | None:
    """A message's text, with each f-string field shown as ``{expression}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                parts.append("{" + ast.unparse(value.value) + "}")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        if left is not None and right is not None:
            return left + right
        return left if left is not None else right
    return None


def _messages_in(tree: ast.AST, returns: bool = False) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Mistake":
            text = _text(node.args[0]) if node.args else None
            if text:
                found.append(text)
        elif isinstance(node, ast.Tuple) and len(node.elts) >= 2:
            # A known wrong version: (message, how to compute it).
            text = _text(node.elts[0])
            second = node.elts[1]
            if text and isinstance(second, ast.Lambda | ast.Compare | ast.Call | ast.Name):
                if len(text) > 30 and " " in text:
                    found.append(text)
        elif returns and isinstance(node, ast.Return) and node.value is not None:
            text = _text(node.value)  # a helper that returns its words (sqrt_hint)
            if text and text.startswith("your "):
                found.append(text)
    unique = []
    for text in found:
        if text not in unique:
            unique.append(text)
    return unique


def checker_messages(module) -> list[str]:
    """Every explanation the checker of ``module`` can give, in source order."""
    source = inspect.getsource(module)
    messages = _messages_in(ast.parse(source))
    for helper, home in _SHARED_HELPERS.items():
        if f"{helper}(" in source:
            messages += _messages_in(ast.parse(inspect.getsource(getattr(home, helper))),
                                     returns=True)
    return list(dict.fromkeys(messages))


def path_for(name: str) -> pathlib.Path:
    return FOLDER / f"{EXERCISES[name].notebook}.md"


def generated_part(name: str) -> str:
    from teachers.solutions import solution_source

    module = next(m for m in MODULES if m.EXERCISE.name == name)
    lines = [MARKER, "", "## The model solution", "", "```python",
             solution_source(name).rstrip(), "```", "",
             "## What the checker recognises", "",
             "Each explanation a student can receive, in the order they appear in the checker "
             "(`{...}` is filled in with the sizes of the failing input). Besides these, every "
             "checker reports a blank still raising `NotImplementedError`, an exception (with "
             "its line and the input shapes), `None` returned, a wrong shape (naming the axes "
             "that look swapped), NaN, a constant factor, and the package's own function "
             "passed in.", ""]
    for message in checker_messages(module):
        lines.append("- " + " ".join(message.split()))
    return "\n".join(lines) + "\n"


def render(name: str) -> str:
    """The file as it should be: its hand-written part, then the generated part."""
    text = path_for(name).read_text(encoding="utf-8")
    hand = text.split(MARKER)[0].rstrip() + "\n\n"
    return hand + generated_part(name)


def main() -> int:
    for name in EXERCISES:
        path = path_for(name)
        if not path.exists():
            print(f"missing: {path} (write its hand-written part first)", file=sys.stderr)
            continue
        path.write_text(render(name), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
