"""What a submission's source defines and calls, read without running it.

    python -I -S source.py      (requests on stdin, replies on stdout)

Parsing is the only thing the grader does with a student's text before a worker runs it, and
``ast.parse`` has no time limit: 2 MiB of ``f(a)(a)(a)`` lines take minutes. So the grader
parses in this small helper process (nothing of the package imported, a memory limit, killed
when a file takes too long) and gets back plain names. The same functions serve in-process
for tests and notebooks.

A request is a 4-byte length and a JSON object ``{"code": ..., "forbidden": [...]}``; the
reply is a 4-byte length and :func:`analyse`'s JSON.
"""

from __future__ import annotations

import ast
import json
import struct
import sys

BLOCKED_PACKAGE = "attention"


def analyse(code: str, forbidden: tuple[str, ...] = ()) -> dict:
    """``{"defined": [...], "imports_package": bool, "uses": {function: [[name, line]]}}``.

    ``defined``: the top-level names (functions, classes, assignments, imports), in order.
    ``uses``: for each top-level function, the ``forbidden`` dotted names (such as
    ``"jax.nn.softmax"``) it refers to, itself or through the top-level functions it names,
    with the line; imports are followed (``from jax import nn``, ``import jax.nn as jnn``).
    A file that does not parse gives ``{"syntax_error": "line N: ..."}``.
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError) as e:
        return {"syntax_error": f"line {getattr(e, 'lineno', '?')}: {getattr(e, 'msg', e)}"}
    defined: list[str] = []
    top: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Import | ast.ImportFrom):  # imported, still "defined"
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
        else:
            names = []
        for name in names:
            if name not in top:
                defined.append(name)
            top[name] = node
    aliases, package = _aliases(tree)
    uses = {}
    if forbidden:
        direct = {name: _forbidden_in(node, aliases, forbidden) for name, node in top.items()}
        for name, node in top.items():
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Assign
                          | ast.AnnAssign | ast.ClassDef):
                found = _reachable(name, top, direct)
                if found:
                    uses[name] = found
    return {"defined": defined, "imports_package": package, "uses": uses}


def _aliases(tree: ast.AST) -> tuple[dict[str, str], bool]:
    """``{local name: dotted name}`` for every import in the file, and whether one of them is
    the package."""
    aliases, package = {}, False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                package |= a.name.split(".")[0] == BLOCKED_PACKAGE
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    aliases.setdefault(a.name.split(".")[0], a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            package |= node.module.split(".")[0] == BLOCKED_PACKAGE
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases, package


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def _forbidden_in(node: ast.AST, aliases: dict[str, str], forbidden) -> list:
    found = []
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute | ast.Name):
            name = _dotted(n, aliases)
            if name and any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append([next(f for f in forbidden if name == f or
                                   name.startswith(f + ".")), getattr(n, "lineno", 0)])
    return found


def _reachable(name: str, top: dict, direct: dict) -> list:
    """The forbidden names used by ``name`` or by any top-level name it refers to."""
    seen, todo, found = {name}, [name], []
    while todo:
        current = todo.pop()
        found += [f for f in direct.get(current, []) if f not in found]
        for n in ast.walk(top[current]):
            if isinstance(n, ast.Name) and n.id in top and n.id not in seen:
                seen.add(n.id)
                todo.append(n.id)
    return found


def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError
    return data


def main() -> int:
    """Answer requests until stdin closes."""
    sys.setrecursionlimit(10_000)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            (size,) = struct.unpack(">I", _read_exact(stdin, 4))
            request = json.loads(_read_exact(stdin, size))
        except EOFError:
            return 0
        try:
            reply = analyse(str(request["code"]), tuple(request.get("forbidden", ())))
        except (RecursionError, MemoryError) as e:
            reply = {"syntax_error": f"the code is too deeply nested to read ({type(e).__name__})"}
        data = json.dumps(reply).encode("utf-8", errors="backslashreplace")
        stdout.write(struct.pack(">I", len(data)) + data)
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
