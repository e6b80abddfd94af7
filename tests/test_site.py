"""scripts/build_site.py: the course as a website, built small (one notebook, not executed)
and opened in headless Chromium. Sphinx runs with warnings as errors, so a broken internal
link fails the build; the test then follows the site's own navigation and checks that the
interactive view runs inside its page. Nothing the pages load leaves the machine: MathJax
comes from the site's own copy, and every request the browser makes is checked."""

import pathlib
import subprocess
import sys

from tests._browser import ConsoleErrors, chromium

REPO = pathlib.Path(__file__).resolve().parents[1]
# what a page of the site may load: its own files, and what a page makes itself
LOCAL = ("file://", "data:", "blob:", "about:")


def test_site_builds_and_its_pages_open(tmp_path):
    chromium_args = [sys.executable, str(REPO / "scripts" / "build_site.py"), "--out",
                     str(tmp_path), "--notebooks", "02", "--no-execute"]
    subprocess.run(chromium_args, check=True, cwd=tmp_path, timeout=300)
    html = tmp_path / "html"
    assert (html / "notebooks" / "02_softmax_and_masks.html").is_file()
    with chromium() as browser:
        page = browser.new_page()
        # the theme's own notice about a fresh profile's empty colour-mode setting
        errors = ConsoleErrors(page, ignore=("invalid theme mode",))
        requests, failed = [], []
        page.on("request", lambda request: requests.append(request.url))
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto((html / "index.html").as_uri())
        assert page.title().startswith("attention")
        # the README's course table and the navigation into a notebook page
        page.click("nav a[href*='02_softmax_and_masks']")
        page.wait_for_url("**/notebooks/02_softmax_and_masks.html")
        assert "softmax" in page.inner_text("main").lower()
        # its formula typeset by the local MathJax (CHTML output, fonts included)
        page.wait_for_selector("mjx-container", state="attached")
        assert page.evaluate("() => MathJax.version").startswith("3.")
        page.goto((html / "attention_view.html").as_uri())
        frame = page.frame_locator("iframe")
        frame.locator(".attnview[data-ready]").wait_for()
        frame.locator(".av-token[data-side=query][data-index='2']").hover()
        queries = frame.locator(".attnview").evaluate(
            "v => Array.from(v.querySelectorAll('line.av-line')).map(l => +l.dataset.query)")
        assert queries and set(queries) == {2}
        assert errors == [], (errors, failed)
        assert failed == []
    assert any("mathjax" in url for url in requests), requests
    outside = [url for url in requests if not url.startswith(LOCAL)]
    assert outside == [], outside
