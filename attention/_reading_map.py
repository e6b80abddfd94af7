"""The reading map: every step of the package in order, built from the module docstrings.

A module that is a step opens its docstring with ``Step <id>: <summary>.``, where ``<id>`` is a
number with an optional lower-case letter (``7 < 7a < 7b < 8``). A subpackage's ``__init__``
opens with ``<Name>, steps <lo>-<hi>: <summary>.`` (or is a step itself, and then its id heads
the subpackage: ``Step 27: ...`` covers 27, 27a, 27b...). A notebook's title ends with the steps
it teaches: ``# 06 Building a layer: the encoder and the decoder (steps 9-16)``. A range
``lo-hi`` holds every id from ``lo`` to ``hi``, and the lettered ids after ``hi`` when ``hi`` has
no letter; a single id is that id only.

This module reads them with ``ast`` (it imports none of the modules it maps) and writes one map
into the marked blocks of ``README.md`` (a short table, a row per subpackage, and the list of
notebooks), ``docs/reading_map.md`` (the full table, a row per step),
``attention/__init__.py`` (plain text) and of any subpackage ``__init__`` whose docstring has a
block (that subpackage's steps)::

    python -m attention._reading_map --check   # exit 1 and say what is stale or wrong
    python -m attention._reading_map --write   # rewrite the blocks from the docstrings

:func:`problems` lists what breaks the numbering: a duplicate id, a malformed step line, a
notebook title naming an id that does not exist (a range's ends included), a step importing a
later step (anywhere in it, a name imported from a package followed to the module that defines
it), a step outside its subpackage's range, a module of a numbered subpackage without an id
(an alias that only re-exports needs none). ``tests/test_reading_map.py`` asserts there are none.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import json
import pathlib
import re
import sys
import textwrap

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "attention"
COMMAND = "python -m attention._reading_map --write"

ID = r"\d+[a-z]?"
STEP_LINE = re.compile(rf"^Step (?P<id>{ID}): (?P<summary>\S.*[.?])$")
SUBPACKAGE_LINE = re.compile(
    rf"^(?P<name>[^,]+), steps? (?P<lo>{ID})(?:-(?P<hi>{ID}))?(?P<rest>[:( ].*)$")
TITLE_LINE = re.compile(rf"^# (?P<number>\d\d) (?P<title>.*) \(steps? (?P<spec>{ID}.*)\)$")


def _marker(name: str, edge: str) -> re.Pattern:
    return re.compile(rf"^.*{name}:{edge}.*$", re.MULTILINE)


START, END = _marker("reading-map", "start"), _marker("reading-map", "end")


def id_key(step_id: str) -> tuple[int, str]:
    """The sort key of a step id: ``"7"`` -> ``(7, "")``, ``"7a"`` -> ``(7, "a")``.

    >>> sorted(["8", "7b", "17", "7", "7a"], key=id_key)
    ['7', '7a', '7b', '8', '17']
    """
    match = re.fullmatch(r"(\d+)([a-z]?)", step_id)
    if match is None:
        raise ValueError(f"not a step id: {step_id!r} (a number and an optional letter, like 7a)")
    return int(match.group(1)), match.group(2)


def in_range(step_id: str, lo: str, hi: str) -> bool:
    """Whether ``step_id`` lies in ``lo-hi``; a ``hi`` without a letter takes its letters too.

    >>> in_range("17b", "8", "17"), in_range("7b", "7", "7a")
    (True, False)
    """
    key, hi_key = id_key(step_id), id_key(hi)
    upper = key <= hi_key if hi_key[1] else key[0] <= hi_key[0]
    return id_key(lo) <= key and upper


@dataclasses.dataclass(frozen=True)
class Module:
    """One module of the package, as its source says."""

    name: str  # dotted: attention.mechanism.scores
    path: pathlib.Path
    where: str  # the path from the repository root, for messages
    first_line: str
    step: str | None  # its step id, or None
    summary: str  # the first line without "Step <id>: "
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def subpackage(self) -> str | None:
        """The top-level subpackage (``mechanism``), or None for the root's own modules."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 2 or (len(parts) == 2 and self.is_package) else None

    @property
    def file(self) -> str:
        """The file's name inside its folder (``scores.py``; a package's ``__init__.py``)."""
        return self.path.name


@dataclasses.dataclass(frozen=True)
class Subpackage:
    name: str  # mechanism
    title: str  # the summary of its __init__ (without the range)
    lo: str | None
    hi: str | None
    steps: tuple[Module, ...]  # in order


@dataclasses.dataclass(frozen=True)
class Notebook:
    number: str  # "06"
    path: pathlib.Path
    title: str  # the whole heading line, "# 06 ... (steps 9-16)"
    spec: tuple[tuple[str, str | None], ...]  # (id, None) or (lo, hi)

    def teaches(self, step_id: str) -> bool:
        return any(step_id == lo if hi is None else in_range(step_id, lo, hi)
                   for lo, hi in self.spec)


def parse_spec(spec: str) -> tuple[tuple[str, str | None], ...]:
    """``"1, 2, 7-7a"`` -> ``(("1", None), ("2", None), ("7", "7a"))``."""
    items = []
    for item in re.split(r",\s*|\s+and\s+", spec.strip()):
        match = re.fullmatch(rf"({ID})(?:\s*-\s*({ID}))?", item.strip())
        if match is None:
            raise ValueError(f"not a step or a range of steps: {item!r}")
        items.append((match.group(1), match.group(2)))
    return tuple(items)


_PARSED: dict[tuple, ast.Module] = {}


def _parse(path: pathlib.Path) -> ast.Module:
    """``ast.parse`` of a file, kept while the file is unchanged (a map reads each module
    several times: one parse of the package costs seconds)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _PARSED:
        _PARSED[key] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return _PARSED[key]


def read_modules(root: pathlib.Path = REPO) -> list[Module]:
    """Every module of the package under ``root``, parsed, in path order."""
    modules = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        relative = path.relative_to(root).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        tree = _parse(path)
        docstring = ast.get_docstring(tree) or ""
        first = docstring.splitlines()[0].strip() if docstring else ""
        match = STEP_LINE.match(first)
        step = match.group("id") if match else None
        summary = match.group("summary") if match else first
        modules.append(Module(".".join(parts), path, str(path.relative_to(root)), first, step,
                              summary, tree))
    return modules


def read_notebooks(root: pathlib.Path = REPO) -> tuple[list[Notebook], list[str]]:
    """The course notebooks' titles and the steps they name, and what could not be read."""
    notebooks, problems = [], []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        title = next((line for line in lines if line.startswith("# # ")), None)
        where = path.relative_to(root)
        if title is None:
            problems.append(f"{where}: no title line '# # NN Title (steps ...)'")
            continue
        heading = title[2:]
        match = TITLE_LINE.match(heading)
        if match is None:
            problems.append(f"{where}: the title {heading!r} does not end with '(step N)' or "
                            "'(steps A-B, C)'")
            continue
        try:
            spec = parse_spec(match.group("spec"))
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        notebooks.append(Notebook(match.group("number"), path, heading, spec))
        paired = path.with_suffix(".ipynb")
        if paired.is_file():
            cells = json.loads(paired.read_text(encoding="utf-8"))["cells"]
            first = next((c for c in cells if c["cell_type"] == "markdown"), None)
            source = "".join(first["source"]).splitlines()[0] if first else ""
            if source != heading:
                problems.append(f"{paired.relative_to(root)}: its title {source!r} differs "
                                f"from the paired .py's {heading!r}")
    return notebooks, problems


def _subpackages(modules: list[Module]) -> tuple[list[Subpackage], list[str]]:
    problems = []
    by_name: dict[str, list[Module]] = {}
    inits: dict[str, Module] = {}
    for module in modules:
        if module.subpackage is None:
            continue
        if module.is_package and module.name.count(".") == 1:
            inits[module.subpackage] = module
        if module.step is not None:
            by_name.setdefault(module.subpackage, []).append(module)
    subpackages = []
    for name, init in inits.items():
        steps = tuple(sorted(by_name.get(name, []), key=lambda m: id_key(m.step)))
        if init.step is not None:
            lo = hi = init.step
            title = init.summary
        elif match := SUBPACKAGE_LINE.match(init.first_line):
            lo, hi = match.group("lo"), match.group("hi") or match.group("lo")
            title = match.group("name") + match.group("rest")
        else:
            lo = hi = None
            title = init.first_line
            if steps:
                problems.append(
                    f"{init.where}: its first line {init.first_line!r} names no range of "
                    f"steps, but its modules are steps; write '<Name>, steps "
                    f"{steps[0].step}-{steps[-1].step}: <summary>.'")
        subpackages.append(Subpackage(name, title, lo, hi, steps))
    subpackages.sort(key=lambda s: (s.lo is None, id_key(s.lo) if s.lo else (0, ""), s.name))
    return subpackages, problems


def _imports(module: Module, modules: dict[str, Module]) -> list[tuple[int, str]]:
    """``(line, module name)`` for every package module that ``module`` imports, anywhere in
    it; a name imported from a package is followed to the module that defines it."""
    found = []
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    found.append((node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                target = _resolve(base, alias.name, modules)
                found.append((node.lineno, target))
    return found


def _resolve(base: str, name: str, modules: dict[str, Module], depth: int = 0) -> str:
    """The module that ``from base import name`` takes ``name`` from."""
    if f"{base}.{name}" in modules:
        return f"{base}.{name}"
    origin = modules.get(base)
    if origin is None or depth > 10:
        return base
    for node in origin.tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if any((alias.asname or alias.name) == name for alias in node.names):
                return _resolve(node.module, name, modules, depth + 1)
    return base


def _dependencies(name: str, modules: dict[str, Module], seen: set[str] | None = None
                  ) -> set[str]:
    """The step modules that importing ``name`` brings: itself if it is a step; for a package
    or an alias without an id, the steps it re-exports; nothing for another module without an
    id (such as ``attention._checks``)."""
    module = modules.get(name)
    if module is None:
        return set()
    if module.step is not None:
        return {name}
    if not (module.is_package or _only_reexports(module)):
        return set()
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    deps: set[str] = set()
    for _, target in _imports(module, modules):
        deps |= _dependencies(target, modules, seen)
    return deps


def _only_reexports(module: Module) -> bool:
    """Whether a module only imports names (and lists them in ``__all__``): an alias kept for
    old imports, or a package's index, not a step of its own."""
    body = module.tree.body[1:] if ast.get_docstring(module.tree) else module.tree.body
    return bool(body) and all(isinstance(node, ast.Import | ast.ImportFrom)
               or (isinstance(node, ast.Assign) and [getattr(t, "id", None)
                                                     for t in node.targets] == ["__all__"])
               for node in body)


def problems(root: pathlib.Path = REPO) -> dict[str, list[str]]:
    """What breaks the numbering, by rule; every list empty when the numbering is sound."""
    modules = read_modules(root)
    by_name = {m.name: m for m in modules}
    found: dict[str, list[str]] = {
        "malformed step lines": [], "duplicate ids": [], "notebook titles": [],
        "later imports": [], "subpackage ranges": [], "modules without an id": []}
    for module in modules:
        if module.first_line.startswith("Step") and module.step is None:
            found["malformed step lines"].append(
                f"{module.where}: {module.first_line!r} is not 'Step <id>: <summary>.' (an id "
                "like 7 or 7a, a colon, a summary ending with a full stop or a question mark)")
    seen: dict[str, Module] = {}
    for module in modules:
        if module.step is None:
            continue
        if module.step in seen:
            found["duplicate ids"].append(
                f"step {module.step} is both {seen[module.step].where} and {module.where}")
        else:
            seen[module.step] = module
    notebooks, title_problems = read_notebooks(root)
    found["notebook titles"] += title_problems
    for notebook in notebooks:
        for lo, hi in notebook.spec:
            for end in (lo, hi):
                if end is not None and end not in seen:
                    found["notebook titles"].append(
                        f"{notebook.path.relative_to(root)}: its title {notebook.title!r} names "
                        f"step {end}, which no module has")
    later: list[str] = []
    for module in modules:
        if module.step is None:
            continue
        for line, target in _imports(module, by_name):
            if module.is_package and target.startswith(module.name + "."):
                continue  # a subpackage's __init__ re-exports its own modules
            for dep in sorted(_dependencies(target, by_name)):
                dep_step = by_name[dep].step
                if id_key(dep_step) > id_key(module.step):
                    via = "" if dep == target else f" (through {target})"
                    later.append(
                        f"{module.where}:{line} (step {module.step}) imports {dep} (step "
                        f"{dep_step}){via}, a later step")
    found["later imports"] = list(dict.fromkeys(later))  # one line per import statement
    subpackages, range_problems = _subpackages(modules)
    found["subpackage ranges"] += range_problems
    for sub in subpackages:
        for module in sub.steps:
            if sub.lo is not None and not in_range(module.step, sub.lo, sub.hi):
                span = sub.lo if sub.lo == sub.hi else f"{sub.lo}-{sub.hi}"
                found["subpackage ranges"].append(
                    f"{module.where} is step {module.step}, outside its subpackage {sub.name}/'s "
                    f"steps {span}")
        if sub.lo is not None:
            for module in modules:
                if (module.subpackage == sub.name and module.step is None
                        and not module.file.startswith("_")
                        and not module.first_line.startswith("Step")
                        and not _only_reexports(module)):
                    found["modules without an id"].append(
                        f"{module.where}: a module of {sub.name}/ (steps {_sub_span(sub)}) "
                        f"whose first line {module.first_line!r} is not 'Step <id>: ...'")
    return found


def _span(ids: list[str]) -> str:
    """``["01", "02", "03", "05"]`` -> ``"01-03, 05"``."""
    numbers = sorted({int(i) for i in ids})
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]:02d}" if len(r) == 1 else f"{r[0]:02d}-{r[-1]:02d}" for r in runs)


@dataclasses.dataclass(frozen=True)
class Row:
    step: str
    path: str  # subpackage-relative file, or "name/" for a subpackage
    summary: str
    notebooks: str
    is_subpackage: bool


def reading_map(root: pathlib.Path = REPO) -> list[tuple[Subpackage, list[Row], str]]:
    """The map: each subpackage (in step order, then those without steps) with its steps and
    the notebooks that teach any of them (``"01-04, 11"``)."""
    modules = read_modules(root)
    notebooks, _ = read_notebooks(root)
    subpackages, _ = _subpackages(modules)
    out = []
    for sub in subpackages:
        rows = []
        taught_here = [n.number for n in notebooks if any(n.teaches(m.step) for m in sub.steps)]
        for module in sub.steps:
            if module.is_package:
                continue  # a subpackage that is a step: its heading row is the step
            taught = [n.number for n in notebooks if n.teaches(module.step)]
            file = module.file if not module.is_package else "__init__.py"
            relative = module.name.split(".")[2:-1] if not module.is_package else []
            path = "/".join([*relative, file])
            rows.append(Row(module.step, path, module.summary, _span(taught) if taught else "",
                            False))
        out.append((sub, rows, _span(taught_here) if taught_here else ""))
    return out


def _sub_span(sub: Subpackage) -> str:
    """The subpackage's steps as its line says them, or as its modules have them when its
    ``__init__`` is a step itself (``27-27e``)."""
    if sub.lo is None:
        return ""
    hi = sub.hi
    if sub.lo == sub.hi and sub.steps and not id_key(sub.lo)[1]:
        hi = max((m.step for m in sub.steps), key=id_key)
    return sub.lo if sub.lo == hi else f"{sub.lo}-{hi}"


def markdown(root: pathlib.Path = REPO) -> str:
    """The map as one Markdown table, a bold row heading each subpackage."""
    lines = ["| step | module | what it is | notebook |", "|---|---|---|---|"]
    for sub, rows, notebooks in reading_map(root):
        span = f"**{_sub_span(sub)}**" if sub.lo else ""
        title = _cell(_capital(sub.title))
        lines.append(f"| {span} | **{sub.name}/** | **{title}** | {notebooks} |")
        for row in rows:
            lines.append(f"| {row.step} | {row.path} | {_cell(row.summary)} | {row.notebooks} |")
    return "\n".join(lines)


def overview(root: pathlib.Path = REPO, width: int = 96) -> str:
    """The map as a short Markdown list for the README: an item per subpackage, its steps by
    id and module name (the full table, with what each step is, is :func:`markdown`)."""
    out = []
    for sub, rows, notebooks in reading_map(root):
        span = _sub_span(sub)
        plural = "s" * (len(notebooks) > 2)
        where = ", ".join(filter(None, [span and f"steps {span}",
                                        notebooks and f"notebook{plural} {notebooks}"]))
        head = f"- **[{sub.name}/]({PACKAGE}/{sub.name}/)**" + (f" ({where})" if where else "")
        words = [f"{row.step}\u00a0`{row.path.removesuffix('.py')}`" for row in rows]
        text = f"{head}: {_capital(sub.title).removesuffix('.')}." + (
            "<br>" + ", ".join(words) if words else "")
        lines = textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)
        out += [line.replace("\u00a0", " ") for line in lines]
    return "\n".join(out)


def _cell(text: str) -> str:
    """A summary as a table cell: without its full stop, a ``|`` escaped."""
    return text.removesuffix(".").replace("|", "\\|")


def plain(root: pathlib.Path = REPO, width: int = 96) -> str:
    """The map as plain text for a docstring: per subpackage, its steps, its notebooks, what it
    is, and its modules by id."""
    out = []
    for sub, rows, notebooks in reading_map(root):
        span = _sub_span(sub)
        head = f"{sub.name + '/':<15}{('steps ' + span) if span else '':<15}"
        plural = "s" if len(notebooks) > 2 else ""
        out.append((head + (f"notebook{plural} {notebooks}" if notebooks else "")).rstrip())
        out += textwrap.wrap(_capital(sub.title), width, initial_indent=" " * 4,
                             subsequent_indent=" " * 4)
        # a step and its module's name never part at the end of a line
        words = [f"{row.step}\u00a0{row.path.removesuffix('.py')}" for row in rows]
        lines = textwrap.wrap("  ".join(words), width, initial_indent=" " * 4,
                              subsequent_indent=" " * 4, break_on_hyphens=False)
        out += [line.replace("\u00a0", " ") for line in lines]
    return "\n".join(out)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def plain_subpackage(name: str, root: pathlib.Path = REPO, width: int = 96) -> str:
    """One subpackage's steps with their summaries, for its ``__init__``'s docstring."""
    for sub, rows, _ in reading_map(root):
        if sub.name != name:
            continue
        pad = max((len(row.step) for row in rows), default=1) + 2
        path_pad = max((len(row.path) for row in rows), default=1) + 2
        out = []
        for row in rows:
            head = f"{row.step:<{pad}}{row.path:<{path_pad}}"
            out += textwrap.wrap(row.summary, width, initial_indent=head,
                                 subsequent_indent=" " * len(head))
        return "\n".join(out)
    raise ValueError(f"no subpackage {name!r} in the reading map")


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def course(root: pathlib.Path = REPO) -> str:
    """The notebooks as a Markdown list of their titles, each a link to its notebook."""
    notebooks, _ = read_notebooks(root)
    return "\n".join(f"- [{n.title.removeprefix('# ')}](notebooks/{n.path.stem}.ipynb)"
                     for n in notebooks)


def blocks(root: pathlib.Path = REPO) -> dict[pathlib.Path, dict[str, str]]:
    """Each file with generated blocks: the name of each block and the text it should hold."""
    out = {root / "README.md": {"reading-map": "\n" + overview(root) + "\n",
                                "course": "\n" + course(root) + "\n"},
           root / PACKAGE / "__init__.py": {"reading-map": _indent(plain(root), "    ")}}
    steps = root / "docs" / "reading_map.md"  # the full table, where the project has that page
    if steps.is_file():
        out[steps] = {"reading-map": "\n" + markdown(root) + "\n"}
    for init in sorted((root / PACKAGE).glob("*/__init__.py")):
        if START.search(init.read_text(encoding="utf-8")):
            out[init] = {"reading-map": _indent(plain_subpackage(init.parent.name, root),
                                                "    ")}
    return out


def _replace(text: str, contents: dict[str, str], where: str) -> str:
    for name, content in contents.items():
        start, end = _marker(name, "start").search(text), _marker(name, "end").search(text)
        if start is None or end is None or end.start() < start.end():
            raise ValueError(f"{where} has no block between a '{name}:start' line and a "
                             f"'{name}:end' line")
        text = text[: start.end()] + "\n" + content + "\n" + text[end.start():]
    return text


def stale(root: pathlib.Path = REPO) -> dict[pathlib.Path, str]:
    """Each file whose blocks differ from the generated ones, with a diff of the change."""
    out = {}
    for path, content in blocks(root).items():
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(root))
        try:
            new = _replace(text, content, where)
        except ValueError as error:
            out[path] = str(error)
            continue
        if new != text:
            diff = difflib.unified_diff(text.splitlines(), new.splitlines(), where,
                                        f"{where} (generated)", lineterm="", n=1)
            out[path] = "\n".join(diff)
    return out


def write(root: pathlib.Path = REPO) -> list[pathlib.Path]:
    """Rewrite every stale block; returns the files changed. Raises ``ValueError`` naming a file
    that has lost its block's marker lines (it writes nothing then)."""
    changed, new_texts = [], {}
    for path, content in blocks(root).items():
        text = path.read_text(encoding="utf-8")
        new_texts[path] = (text, _replace(text, content, str(path.relative_to(root))))
    for path, (text, new) in new_texts.items():
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None, root: pathlib.Path = REPO) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true",
                       help="exit 1 if a block is stale or the numbering breaks a rule")
    group.add_argument("--write", action="store_true", help="rewrite the blocks")
    args = parser.parse_args(argv)
    status = 0
    if args.write:
        try:
            changed = write(root)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 1
        for path in changed:
            print(f"rewrote the reading map in {path.relative_to(root)}")
    else:
        for path, diff in stale(root).items():
            status = 1
            print(f"{path.relative_to(root)}: the reading map is stale; run `{COMMAND}`\n"
                  f"{diff}\n")
    for rule, found in problems(root).items():
        if found:
            status = 1
            print(f"{rule}:\n" + "\n".join(f"  {line}" for line in found) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
