"""Check one exercise of one submission; run by the grader in a subprocess, in a temporary folder.

    python -m attention.exercises._run_submission SOURCE EXERCISE RESULT_JSON READY_FILE

1. Import JAX and the checkers, then create READY_FILE: the grader's per-exercise time limit
   starts there, so that start-up time never counts against a student.
2. Execute the submission's imports, function and class definitions and assignments, one
   top-level statement at a time (a statement that raises is noted and skipped). Other
   statements (checker calls, demos, loops, prints) are not executed: grading must not depend
   on them, and a stray top-level loop must not block the check.
3. Run the exercise's checker on the names the submission defines; write RESULT_JSON.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import pathlib
import sys

SUBMISSION_MODULE = "__submission__"
_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
         ast.Assign, ast.AnnAssign)


def _calls_a_checker(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id.startswith("check_")
        for n in ast.walk(node)
    )


def load_submission(path: pathlib.Path) -> tuple[dict, list[str]]:
    """Execute the kept top-level statements of ``path``; returns (namespace, problems)."""
    source = path.read_text(encoding="utf-8")
    namespace: dict = {"__name__": SUBMISSION_MODULE, "__file__": str(path)}
    problems: list[str] = []
    tree = ast.parse(source, filename=str(path))
    for node in tree.body:
        if not isinstance(node, _KEPT) or _calls_a_checker(node):
            continue
        code = compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(code, namespace)
        except Exception as e:
            problems.append(f"line {node.lineno} raised {type(e).__name__}: {e}")
    return namespace, problems


def _own_code(namespace: dict, names: tuple[str, ...]) -> str | None:
    """A required function that the submission imported instead of writing."""
    for name in names:
        obj = namespace.get(name)
        module = getattr(obj, "__module__", SUBMISSION_MODULE) if callable(obj) else None
        if module is not None and module != SUBMISSION_MODULE:
            return f"`{name}` is imported from {module}, not written in the submission."
    return None


def main(argv: list[str]) -> int:
    source, exercise_name, result_path, ready_path = argv
    from attention.exercises.registry import EXERCISES  # imports JAX: before READY

    pathlib.Path(ready_path).write_text("ready")
    exercise = EXERCISES[exercise_name]
    try:
        namespace, problems = load_submission(pathlib.Path(source))
    except SyntaxError as e:
        result = {"passed": False, "status": "failed",
                  "message": f"the submission has a syntax error at line {e.lineno}: {e.msg}."}
    else:
        imported = _own_code(namespace, exercise.names)
        if imported:
            result = {"passed": False, "status": "failed", "message": imported}
        else:
            with contextlib.redirect_stdout(io.StringIO()):
                checked = exercise.check_namespace(namespace)
            message = checked.message
            if not checked.passed and problems and checked.status == "not implemented":
                message += f" (while loading: {problems[0]})"
            result = {"passed": checked.passed, "status": checked.status, "message": message}
    pathlib.Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
