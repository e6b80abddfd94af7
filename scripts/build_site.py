"""Build the course as a static website: ``python scripts/build_site.py`` -> ``site/html/``.

Sphinx with MyST-NB (the engine of Jupyter Book 1) and the Jupyter Book theme: the README
(reading order, the course table), the pages of docs/, every notebook executed in its fast
setting (``ATTENTION_FAST=1``, in order, in one folder, so that 08 and 09 load what 07
saved), the figures, and an interactive attention view of the course model
(:mod:`attention.inspection.views`). Sphinx runs with warnings as errors, so a broken
internal link (a page, a figure, an anchor) fails the build. Links from the README into the
package's source files, which the site does not hold, become plain text.

    python scripts/build_site.py                      # everything, executed (a few minutes)
    python scripts/build_site.py --notebooks 02 08    # some notebooks only
    python scripts/build_site.py --no-execute         # notebooks as committed (no outputs)
    python scripts/build_site.py --executed DIR       # reuse notebooks executed elsewhere

Open ``site/html/index.html`` in a browser; nothing there needs a server or the network.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

CONF = '''\
project = "attention"
author = "the attention authors"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = "attention: transformer attention from scratch"
html_static_path = ["_static"]
html_theme_options = {{"show_toc_level": 2, "use_download_button": True}}
exclude_patterns = ["_build", "runs", "figures/*.md"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = {mode!r}
nb_execution_timeout = 600
nb_execution_in_temp = False
nb_execution_raise_on_error = True
nb_merge_streams = True
suppress_warnings = ["mystnb.unknown_mime_type"]
# MathJax from the copy in _static (see _mathjax), never from a CDN: the site must work offline
# and behind firewalls. A relative path is relative to _static.
mathjax_path = "mathjax/tex-mml-chtml.js"
# No ipywidgets embedding: MyST-NB would load require.js and the widgets' HTML manager from CDNs,
# and a static page has no kernel to move a slider anyway. Notebook 08 draws the explorer's
# picture as a plain figure too, and its self-contained HTML view stays interactive on the site.
nb_ipywidgets_js = {{}}
'''

# What the pages need of MathJax 3's es5 bundle: tex-mml-chtml.js, the CHTML fonts and the
# components it loads on demand (TeX extensions, the menu, its accessibility tools); the
# other combined bundles, the SVG output and the speech engine stay out (5 of MathJax's 24 MB).
MATHJAX_BUNDLE = "tex-mml-chtml.js"
MATHJAX_SKIP = {".": {"sre"}, "output": {"svg"}}


def _page_links(markdown: str, pages: set[str], figures: str = "figures/") -> str:
    """Keep links to the site's pages, figures and anchors; turn links into the package's
    source tree (not part of the site) into their text."""

    def replace(match: re.Match) -> str:
        text, target = match.group(1), match.group(2)
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            return match.group(0)
        path = target.split("#")[0]
        if path in pages or path.startswith(figures):
            return match.group(0)
        return text

    return re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", replace, markdown)


def _mathjax(static: pathlib.Path) -> None:
    """Copy MathJax 3 from the PyPI package ``django-static-mathjax`` (the plain MathJax
    release, no Django needed; it installs as the module ``mathjax``) into ``static``."""
    try:
        import mathjax
    except ImportError:
        raise SystemExit("MathJax is missing: pip install django-static-mathjax (in the dev "
                         "extra), the site does not load it from a CDN") from None
    es5 = pathlib.Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"

    def ignore(folder: str, names: list[str]) -> set[str]:
        relative = str(pathlib.Path(folder).relative_to(es5))
        skip = set(MATHJAX_SKIP.get(relative, ()))
        if relative == ".":
            skip |= {name for name in names if name.endswith(".js") and name != MATHJAX_BUNDLE}
        return skip

    shutil.copytree(es5, static / "mathjax", ignore=ignore)


def _view_page(source: pathlib.Path) -> None:
    """An interactive attention view of the course's fast model, and a page showing it."""
    from attention.application.course import course_run
    from attention.application.translation import pair_attention
    from attention.inspection.views import translation_view

    run, _ = course_run(fast=True)
    sentence, target = "the big dog sees the small cat", "ta dog big ta cat small sees"
    pair = pair_attention(run.model, run.tokenizer, [(sentence, target)])
    view = translation_view(pair["attention_maps"], pair["source_tokens"],
                            pair["target_tokens"], title=f"{sentence} \u2192 {target}")
    view.save(source / "_static" / "attention_view.html")
    (source / "attention_view.md").write_text(
        "# Interactive attention view\n\n"
        "The head view and the model view of `attention.inspection.views`, for the course's "
        "model (fast setting, untrained: train it in notebook 07 and write your own with "
        "`attention view --checkpoint RUN \"sentence\"`). Hover a token, click a head, pick a "
        "layer; the *model view* shows every layer and head. "
        "[Open it on its own page](_static/attention_view.html).\n\n"
        "```{raw} html\n<iframe src='_static/attention_view.html' title='attention view' "
        "style='width:100%;height:760px;border:1px solid #ddd'></iframe>\n```\n",
        encoding="utf-8")


def build(out: pathlib.Path, notebooks: list[str] | None, execute: bool,
          executed: pathlib.Path | None) -> pathlib.Path:
    source = out / "source"
    if source.exists():
        shutil.rmtree(source)
    (source / "notebooks").mkdir(parents=True)
    (source / "_static").mkdir()
    (source / "docs").mkdir()
    shutil.copytree(REPO / "figures", source / "figures")
    chosen = sorted(p for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")
                    if notebooks is None or p.name[:2] in notebooks)
    if not chosen:
        raise SystemExit(f"no notebook matches {notebooks}")
    for path in chosen:
        origin = executed / path.name if executed and (executed / path.name).is_file() else path
        shutil.copy(origin, source / "notebooks" / path.name)
    for extra in (REPO / "notebooks" / "exercises",):
        if extra.is_dir():
            shutil.copytree(extra, source / "notebooks" / extra.name,
                            ignore=shutil.ignore_patterns("*.ipynb", "__pycache__"))
    docs = sorted((REPO / "docs").glob("*.md"))
    pages = {f"notebooks/{p.name}" for p in chosen} | {f"docs/{p.name}" for p in docs}
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for doc in docs:  # the README's detail pages: teachers, course, usage, data, ...
        text = doc.read_text(encoding="utf-8")
        siblings = {p.removeprefix("docs/") for p in pages if p.startswith("docs/")}
        (source / "docs" / doc.name).write_text(
            _page_links(text, siblings | {"../" + p for p in pages}, figures="../figures/"),
            encoding="utf-8")
    _mathjax(source / "_static")
    _view_page(source)
    toc = "\n".join(["```{toctree}", ":maxdepth: 1", ":caption: The course", "",
                     *[f"notebooks/{p.stem}" for p in chosen], "```", "",
                     "```{toctree}", ":maxdepth: 1", ":caption: More", "",
                     "attention_view", *[f"docs/{p.stem}" for p in docs], "```", ""])
    (source / "index.md").write_text(_page_links(readme, pages) + "\n\n" + toc, encoding="utf-8")
    mode = "force" if execute and executed is None else "off"
    (source / "conf.py").write_text(CONF.format(mode=mode), encoding="utf-8")
    html = out / "html"
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = dict(os.environ, ATTENTION_FAST="1", MPLBACKEND="Agg", PYTHONPATH=path)
    # the notebooks that read text find it as the tests do: $ATTENTION_DATA, else the
    # project's shared/data beside the checkout
    shared = REPO.parent / "shared" / "data"
    if "ATTENTION_DATA" not in env and shared.is_dir():
        env["ATTENTION_DATA"] = str(shared)
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
                    "-j", "1", str(source), str(html)], check=True, env=env, cwd=source)
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "site"), help="build folder (default: site/)")
    parser.add_argument("--notebooks", nargs="+", help="two-digit numbers, e.g. 02 08")
    parser.add_argument("--no-execute", action="store_true", help="do not run the notebooks")
    parser.add_argument("--executed", help="a folder of already executed notebooks to reuse")
    args = parser.parse_args(argv)
    html = build(pathlib.Path(args.out).resolve(), args.notebooks, not args.no_execute,
                 pathlib.Path(args.executed) if args.executed else None)
    print(f"built {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
