"""Screenshots of the browser views for the README: ``python scripts/make_screenshots.py``.

Writes into figures/:

* ``attention_view_head.png``, ``attention_view_model.png``: the HTML view
  (:mod:`attention.inspection.views`) of the course model (notebook 07's run in
  ``runs/notebook07``, trained now with the same recipe if it is absent: two minutes on a
  laptop, about five on a loaded 2-core machine; ``--fast``: the fast recipe in
  ``runs/notebook07_fast``, seconds, its heads barely trained), opened in headless Chromium,
  a token hovered / a map enlarged;
* ``jupyterlab_explorer.png``, ``jupyterlab_head_view.png``: notebook 08 run in JupyterLab
  (tests/test_jupyterlab.py, which takes these when ``ATTENTION_SCREENSHOTS`` is set; its
  model is the fast one, untrained, as in the test). ``--no-jupyterlab`` skips them.

Every picture is drawn from the attention weights of a real model (``attention_maps``).
"""

import argparse
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
FIGURES = REPO / "figures"
sys.path.insert(0, str(REPO / "tests"))


def view_screenshots(fast: bool) -> None:
    from _browser import chromium

    from attention.application.course import load_or_train_course_model
    from attention.application.translation import pair_attention, translate
    from attention.inspection.views import translation_view

    folder = REPO / "runs" / ("notebook07_fast" if fast else "notebook07")
    run, message = load_or_train_course_model(folder, fast=fast)
    print(message)
    sentence = "the big dog sees the small cat"
    target = translate(run.model, run.tokenizer, [sentence])[0]
    pair = pair_attention(run.model, run.tokenizer, [(sentence, target)])
    path = translation_view(pair["attention_maps"], pair["source_tokens"],
                            pair["target_tokens"], title=f"{sentence} \u2192 {target}").save(
        REPO / "runs" / "attention_view.html")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 900, "height": 620}, device_scale_factor=2)
        page.goto(path.as_uri())
        page.click("button.av-section[data-section='2']")
        page.select_option("select.av-layer", "1")
        page.hover(".av-token[data-side=query][data-index='4']")
        page.locator(".attnview").screenshot(path=str(FIGURES / "attention_view_head.png"))
        page.mouse.move(2, 2)
        page.click("button.av-view[data-view='model']")
        page.click("canvas.av-cell[data-layer='1'][data-head='0']")
        page.locator(".attnview").screenshot(path=str(FIGURES / "attention_view_model.png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="the fast recipe (seconds)")
    parser.add_argument("--no-jupyterlab", action="store_true",
                        help="only the HTML view's screenshots")
    args = parser.parse_args(argv)
    FIGURES.mkdir(exist_ok=True)
    view_screenshots(args.fast)
    if args.no_jupyterlab:
        return 0
    env = dict(os.environ, ATTENTION_SCREENSHOTS=str(FIGURES))
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
                    "tests/test_jupyterlab.py"], check=True, cwd=REPO, env=env)
    print(f"wrote the screenshots into {FIGURES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
