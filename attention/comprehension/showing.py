"""The code of a step, shown in a notebook: the package's own function body, without the rest.

A notebook that teaches a step shows the lines that compute it before it calls them::

    show_code(masked_softmax)              # a function
    show_code(MultiHeadAttention.__call__)  # a method

:func:`show_code` reads the function's source (the installed package's, so what is shown is
what runs) and leaves out what a reader of the computation does not need: the docstring, and
the argument checks at the boundary (a bare ``check_*(...)`` call, an ``if ...: raise`` block).
A check whose result the body uses (``window = check_attention_args(...)``) stays, with its
arguments folded to ``...``. The result displays highlighted in Jupyter and on the course site
(its HTML needs no style sheet) and as plain text anywhere else.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer


def _is_check_call(node: ast.AST) -> bool:
    """A call of a function or method whose name starts with ``check_``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    return name.startswith("check_")


def _is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _only_raises(node: ast.stmt) -> bool:
    """``if <condition>: raise ...`` with no ``else``: a check written out."""
    return (isinstance(node, ast.If) and not node.orelse
            and all(isinstance(s, ast.Raise) for s in node.body))


def _function_node(source: str, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    raise ValueError(f"no function {name!r} in its own source")  # pragma: no cover


def _function(fn):
    """The Python function behind ``fn``: a bound method's, a jit-compiled function's."""
    target = inspect.unwrap(getattr(fn, "__func__", fn))  # jax.jit, nnx.jit: __wrapped__
    if not inspect.isfunction(target) or target.__name__ == "<lambda>":
        raise TypeError(
            f"show_code takes a function or method defined with `def`, got "
            f"{type(fn).__name__} {fn!r}; for a module's forward pass pass its method "
            f"(MultiHeadAttention.__call__)."
        )
    return target


def code_of(fn: Callable) -> str:
    """The source of ``fn`` as :func:`show_code` shows it (docstring and checks left out).

    A jit-compiled function (``jax.jit``, ``nnx.jit``) shows the function it compiles.

    Raises:
      TypeError: ``fn`` is not a Python function or method defined with ``def`` (a class, a
        builtin, a ``functools.partial``, a lambda).
    """
    target = _function(fn)
    source = textwrap.dedent(inspect.getsource(target))
    node = _function_node(source, target.__name__)
    lines = source.splitlines()
    replaced: dict[int, list[str]] = {}  # first line of a statement -> what stands for it
    for statement in ast.walk(node):  # checks at any depth (inside an `if`, a loop)
        for field in ("body", "orelse"):
            children = getattr(statement, field, [])
            children = [c for c in children if isinstance(c, ast.stmt)] \
                if isinstance(children, list) else []
            dropped = [c for c in children if (
                (_is_docstring(c) and c is node.body[0]) or _only_raises(c)
                or (isinstance(c, ast.Expr) and _is_check_call(c.value)))]
            if len(dropped) == len(children):
                continue  # a block of checks only (`if i: check_x(i)`) stays, or it breaks
            for child in children:
                if child in dropped:
                    replaced[child.lineno - 1] = []
                elif isinstance(child, ast.Assign | ast.AnnAssign) and _is_check_call(child.value):
                    line = lines[child.lineno - 1]
                    indent = line[: len(line) - len(line.lstrip())]
                    targets = ast.get_source_segment(source, child).split("=", 1)[0].strip()
                    name = ast.get_source_segment(source, child.value.func)
                    replaced[child.lineno - 1] = [
                        f"{indent}{targets} = {name}(...)  # the arguments, checked"]
                else:
                    continue
                for i in range(child.lineno, child.end_lineno):
                    replaced.setdefault(i, [])
    out = []
    for i in range(node.lineno - 1, node.end_lineno):  # decorators (jit, vjp) are not the step
        out += replaced.get(i, [lines[i]])
    return "\n".join(out).rstrip() + "\n"


class ShownCode:
    """Source code for a notebook: highlighted HTML in Jupyter, plain text elsewhere."""

    def __init__(self, code: str, title: str):
        self.code, self.title = code, title

    def __str__(self) -> str:
        return self.code

    def __repr__(self) -> str:
        return f"# {self.title}\n{self.code}"

    def _repr_html_(self) -> str:
        formatter = HtmlFormatter(noclasses=True, nobackground=True)
        return (f'<div style="font-size: 90%"><b>{self.title}</b>'
                f'{highlight(self.code, PythonLexer(), formatter)}</div>')


def show_code(fn: Callable) -> ShownCode:
    """``fn``'s body as the package runs it, without docstring and argument checks, to display.

    >>> from attention.mechanism.softmax import masked_softmax
    >>> print(show_code(masked_softmax))  # doctest: +ELLIPSIS
    def masked_softmax(...
    """
    target = _function(fn)
    code = code_of(fn)
    module = getattr(target, "__module__", "?")
    return ShownCode(code, f"{module}.{getattr(target, '__qualname__', '?')}")
