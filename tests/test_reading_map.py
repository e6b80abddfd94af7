"""attention/_reading_map.py: one step numbering, read from the code, and the map built from it.

The numbering rules are checked on the package itself, each test listing every problem it
finds at once; then on small made-up packages, so that each rule is seen to catch what it is
for (a duplicate id, a later import, a notebook naming a missing step, a module outside its
subpackage's range, a stale block)."""

import functools
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from attention import _reading_map as rm

REPO = pathlib.Path(__file__).resolve().parents[1]
FIX = f"run `{rm.COMMAND}` to regenerate the blocks"


@functools.cache
def _found() -> dict[str, list[str]]:
    return rm.problems(REPO)


def _report(lines: list[str], what: str) -> str:
    return f"{len(lines)} {what}:\n" + "\n".join(f"  {line}" for line in lines)


def test_readme_and_package_docstrings_hold_the_generated_map():
    stale = rm.stale(REPO)
    if stale:
        pytest.fail(f"the reading map is out of date in {len(stale)} file(s); {FIX}\n\n"
                    + "\n\n".join(f"{path.relative_to(REPO)}:\n{diff}"
                                  for path, diff in stale.items()), pytrace=False)


@pytest.mark.parametrize("rule", ["malformed step lines", "duplicate ids", "notebook titles",
                                  "later imports", "subpackage ranges",
                                  "modules without an id"])
def test_numbering_rule(rule):
    problems = _found()[rule]
    if problems:  # every problem of the rule, one a line, without a traceback around them
        pytest.fail(_report(problems, rule), pytrace=False)


def test_every_rule_is_checked():
    assert set(_found()) == {"malformed step lines", "duplicate ids", "notebook titles",
                          "later imports", "subpackage ranges", "modules without an id"}


def test_ids_order_numbers_then_letters():
    ids = ["8", "7b", "17", "7", "7a", "0a", "0", "12b", "12"]
    assert sorted(ids, key=rm.id_key) == ["0", "0a", "7", "7a", "7b", "8", "12", "12b", "17"]
    assert rm.in_range("17b", "8", "17") and not rm.in_range("18", "8", "17")
    assert rm.in_range("7a", "7", "7a") and not rm.in_range("7b", "7", "7a")
    assert not rm.in_range("7", "7a", "9")
    with pytest.raises(ValueError, match="not a step id"):
        rm.id_key("7A")


def test_notebook_step_specs():
    assert rm.parse_spec("1, 2, 7-7a") == (("1", None), ("2", None), ("7", "7a"))
    assert rm.parse_spec("9-16") == (("9", "16"),)
    with pytest.raises(ValueError, match="not a step"):
        rm.parse_spec("nine")


# --- the rules, on a made-up package -------------------------------------------------------


def _package(tmp_path, files: dict[str, str], titles: dict[str, str] | None = None):
    for name, text in files.items():
        path = tmp_path / "attention" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    for name, title in (titles or {}).items():
        (tmp_path / "notebooks" / name).write_text(f"# %% [markdown]\n# # {title}\n",
                                                   encoding="utf-8")
    return tmp_path


GOOD = {
    "__init__.py": '''"""attention: a package.

    reading-map:start
    reading-map:end
    """
    ''',
    "_checks.py": '"""Checks, no step."""\n',
    "mech/__init__.py": '"""The mechanism, steps 1-2: scores and softmax."""\n',
    "mech/scores.py": '"""Step 1: scores, queries against keys."""\nimport attention._checks\n',
    "mech/softmax.py": '"""Step 2: softmax, what are weights?"""\n'
                       'from attention.mech.scores import x\n',
    # an alias kept for old imports is not a step, and needs no id
    "mech/old_name.py": '"""Moved to attention.mech.scores."""\n'
                        'from attention.mech.scores import x\n\n__all__ = ["x"]\n',
    "model/__init__.py": '"""The model, steps 3-3b: the layers around it."""\n'
                         'from attention.model.layer import Layer\n',
    "model/layer.py": '"""Step 3: a layer."""\nfrom attention.mech import softmax\n',
    "model/stack.py": '"""Step 3a: a stack of layers."""\nfrom attention.model import Layer\n',
}
README = "x\n<!-- course:start -->\n<!-- course:end -->\n\n<!-- reading-map:start -->\n{}" \
         "<!-- reading-map:end -->\n"
TITLES = {"01_scores.py": "01 Scores (step 1)", "02_model.py": "02 The model (steps 2-3)"}


def test_a_sound_package_has_no_problems_and_its_map(tmp_path):
    root = _package(tmp_path, GOOD, TITLES)
    (root / "README.md").write_text(README.format(""))
    assert rm.problems(root) == {rule: [] for rule in rm.problems(root)}
    table = rm.markdown(root)
    assert "| 3a | stack.py | a stack of layers | 02 |" in table
    assert "| **1-2** | **mech/** | **The mechanism: scores and softmax** | 01-02 |" in table
    assert table.index("scores.py") < table.index("softmax.py") < table.index("layer.py")
    assert set(rm.stale(root)) == {root / "README.md", root / "attention" / "__init__.py"}
    rm.write(root)
    assert rm.stale(root) == {}
    assert "    1 scores  2 softmax" in (root / "attention" / "__init__.py").read_text()
    overview = rm.overview(root)  # the README's list: a subpackage per item, its steps by name
    assert "- **[model/](attention/model/)** (steps 3-3b, notebook 02): The model: the layers" \
        in overview
    assert "3 `layer`, 3a `stack`" in overview and "stack of layers" not in overview


def test_the_full_table_goes_to_the_docs_page_where_there_is_one(tmp_path):
    root = _package(tmp_path, GOOD, TITLES)
    (root / "README.md").write_text(README.format(""))
    (root / "docs").mkdir()
    page = root / "docs" / "reading_map.md"
    page.write_text("# Steps\n<!-- reading-map:start -->\n<!-- reading-map:end -->\n")
    rm.write(root)
    assert "| 3a | stack.py | a stack of layers | 02 |" in page.read_text()
    assert "stack of layers" not in (root / "README.md").read_text()
    assert rm.stale(root) == {}


def test_each_rule_catches_its_problem(tmp_path):
    files = dict(GOOD)
    files["mech/masks.py"] = '"""Step 2: masks, a second step 2."""\n'
    files["mech/scores.py"] = '"""Step 1: scores.\n"""\nfrom attention.model.stack import y\n'
    files["mech/weights.py"] = '"""Step 2 (continued): weights."""\n'
    files["mech/helper.py"] = '"""A module of mech without an id."""\n'
    files["model/far.py"] = '"""Step 9: a step outside the model\'s range."""\n'
    # the model's __init__ re-exports only step 3: importing the package is no later import
    files["model/late.py"] = '"""Step 3c: imports its own package."""\nimport attention.model\n'
    titles = dict(TITLES, **{"03_x.py": "03 Missing (steps 4-5, 3b)", "04_y.py": "04 No steps"})
    found = rm.problems(_package(tmp_path, files, titles))
    assert found == {
        "malformed step lines": [
            "attention/mech/weights.py: 'Step 2 (continued): weights.' is not 'Step <id>: "
            "<summary>.' (an id like 7 or 7a, a colon, a summary ending with a full stop or a "
            "question mark)"],
        "duplicate ids": ["step 2 is both attention/mech/masks.py and attention/mech/softmax.py"],
        "notebook titles": [
            "notebooks/04_y.py: the title '# 04 No steps' does not end with '(step N)' or "
            "'(steps A-B, C)'",
            *[f"notebooks/03_x.py: its title '# 03 Missing (steps 4-5, 3b)' names step {i}, "
              "which no module has" for i in ("4", "5", "3b")]],
        "later imports": [
            "attention/mech/scores.py:3 (step 1) imports attention.model.stack (step 3a), a later "
            "step"],
        "subpackage ranges": [
            "attention/model/late.py is step 3c, outside its subpackage model/'s steps 3-3b",
            "attention/model/far.py is step 9, outside its subpackage model/'s steps 3-3b"],
        "modules without an id": [
            "attention/mech/helper.py: a module of mech/ (steps 1-2) whose first line 'A module "
            "of mech without an id.' is not 'Step <id>: ...'"],
    }


def test_a_later_step_reached_through_a_package_or_a_function_is_caught(tmp_path):
    files = dict(GOOD)
    files["mech/scores.py"] = '"""Step 1: scores."""\nfrom attention.model import Layer\n'
    files["mech/softmax.py"] = '"""Step 2: softmax."""\nfrom attention import model\n'
    files["model/stack.py"] = '"""Step 3a: a stack."""\n\n\ndef f():\n' \
                              '    from attention.model.later import g\n'
    files["model/later.py"] = '"""Step 3b: later."""\n'
    # an alias of a later step is that step
    files["mech/old_name.py"] = '"""Moved."""\nfrom attention.model.later import g\n'
    files["mech/weights.py"] = '"""Step 2a: weights."""\nfrom attention.mech.old_name import g\n'
    found = rm.problems(_package(tmp_path, files, TITLES))
    assert found["later imports"] == [
        "attention/mech/scores.py:2 (step 1) imports attention.model.layer (step 3), a later "
        "step",
        "attention/mech/softmax.py:2 (step 2) imports attention.model.layer (step 3) (through "
        "attention.model), a later step",
        "attention/mech/weights.py:2 (step 2a) imports attention.model.later (step 3b), a later "
        "step",
        "attention/model/stack.py:5 (step 3a) imports attention.model.later (step 3b), a later "
        "step"]


def test_a_paired_notebook_whose_title_differs_is_caught(tmp_path):
    root = _package(tmp_path, GOOD, TITLES)
    (root / "notebooks" / "01_scores.ipynb").write_text(
        '{"cells": [{"cell_type": "markdown", "source": ["# 01 Scores (steps 1-2)\\n"]}]}')
    found = rm.problems(root)
    assert found["notebook titles"] == [
        "notebooks/01_scores.ipynb: its title '# 01 Scores (steps 1-2)' differs from the paired "
        ".py's '# 01 Scores (step 1)'"]


def test_check_names_the_stale_file_and_the_command(tmp_path):
    root = _package(tmp_path, GOOD, TITLES)
    (root / "README.md").write_text(README.format("old\n"))
    stale = rm.stale(root)
    assert "-old" in stale[root / "README.md"]
    (root / "README.md").write_text("no block\n")
    with pytest.raises(ValueError, match="README.md has no block between"):
        rm.write(root)


def test_the_command_line_check_says_what_differs_and_how_to_fix(tmp_path, capsys):
    root = _package(tmp_path, GOOD, TITLES)
    (root / "README.md").write_text(README.format("old\n"))
    assert rm.main(["--check"], root=root) == 1
    out = capsys.readouterr().out
    assert f"README.md: the reading map is stale; run `{rm.COMMAND}`" in out
    assert "-old" in out and "+- **[mech/](attention/mech/)** (steps 1-2" in out
    assert rm.main(["--write"], root=root) == 0
    assert rm.main(["--check"], root=root) == 0


def test_the_module_runs_as_a_command():
    result = subprocess.run([sys.executable, "-m", "attention._reading_map", "--help"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--check" in result.stdout


# --- the README, a front door ---------------------------------------------------------------

QUICK_START = [  # what .ci/run and the users rely on, word for word
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && attention train",
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && python -m pytest',
]


def test_the_readme_is_short_and_keeps_the_quick_start():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    assert size <= 15_000, f"README.md is {size:,} bytes; move details into docs/ (limit 15,000)"
    long = [f"line {i}: {len(line)} characters" for i, line in enumerate(text.splitlines(), 1)
            if len(line) > 300]
    assert not long, "README.md lines over 300 characters:\n" + "\n".join(long)
    for command in QUICK_START:
        assert command in text, f"the quick start lost {command!r}"


@pytest.mark.parametrize("page", ["README.md", "benchmarks/README.md", "docs/course.md",
                                  "docs/usage.md", "docs/data.md", "docs/dependencies.md",
                                  "docs/testing.md", "docs/references.md", "docs/teachers.md",
                                  "docs/reading_map.md"])
def test_links_between_the_pages_lead_somewhere(page):
    path = REPO / page
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{page} links to files that do not exist: {broken}"
