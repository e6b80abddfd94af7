"""Notebook 08 in a real JupyterLab, driven from headless Chromium.

A JupyterLab server runs on loopback in a temporary course folder; the browser opens
notebooks/08_visualising_attention.ipynb there, runs every cell in the fast setting
(``ATTENTION_FAST=1``), and checks what a student sees: the ``AttentionExplorer`` widget
renders with its controls and picture, and moving its layer slider (typing into its readout,
then Enter) changes the picture's bytes. Then the notebook's HTML view of
:mod:`attention.inspection.views`, shown through ``_repr_html_``, must run inside JupyterLab
(its script executes, hovering a token isolates its lines).

Notebook 08 loads the model that notebook 07 saved under ``runs/notebook07_fast`` in the same
folder (and trains one if there is none). The test saves the course's fast model there,
untrained, as notebook 07 would save it trained: the pictures need real weights of the real
architecture, not a trained model, and no training keeps the test fast.

Set ``ATTENTION_SCREENSHOTS=folder`` to keep a screenshot (scripts/make_screenshots.py).
"""

import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from attention.application.course import course_run
from attention.application.runs import save_run
from tests._browser import ConsoleErrors, chromium

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = "08_visualising_attention.ipynb"
TIMEOUT_MS = int(os.environ.get("ATTENTION_JUPYTERLAB_TIMEOUT_MS", 120_000))

# Harmless console errors of JupyterLab itself with no network and a fresh profile.
JUPYTERLAB_NOISE = ("Failed to load resource", "favicon", "net::ERR", "lsp", "LSP",
                    "Could not load", "jupyterlab-plotly")

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course")
    shutil.copy(REPO / "notebooks" / NOTEBOOK, folder / NOTEBOOK)
    run, _ = course_run(fast=True)
    save_run(run, folder / "runs" / "notebook07_fast")
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("jupyter-home")
    env = dict(
        os.environ, ATTENTION_FAST="1", MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
    )
    log = open(home / "server.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.open_browser=False", "--allow-root",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start: "
                                       + (home / "server.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        yield {"url": f"{base}/lab/tree/{NOTEBOOK}?token={token}", "folder": folder}
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


IMAGE_HASH = """async img => {
  const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let h = 0; for (const b of bytes) { h = (h * 31 + b) >>> 0; }
  return [bytes.length, h]; }"""


def test_notebook_08_runs_in_jupyterlab_and_its_explorer_follows_the_slider(jupyterlab):
    chromium_page = None
    with chromium() as browser:
        page = chromium_page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors = ConsoleErrors(page, ignore=JUPYTERLAB_NOISE)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(jupyterlab["url"])
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                               " && window.jupyterapp.shell.currentWidget.sessionContext"
                               " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                               " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                               ".kernel")
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        # done when every code cell has run and the kernel is idle; an error stops the run
        page.wait_for_function("""() => {
          const panel = window.jupyterapp.shell.currentWidget;
          const cells = panel.content.widgets.filter(c => c.model.type === 'code');
          const failed = document.querySelector(
            ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']");
          return failed || (panel.sessionContext.session.kernel.status === 'idle'
            && cells.every(c => c.model.executionCount !== null)); }""", polling=500)
        error_outputs = page.locator(
            ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
        assert error_outputs.count() == 0, error_outputs.first.inner_text()

        # the explorer: its controls and its picture
        explorer = page.locator(".jp-OutputArea-output .widget-vbox").filter(
            has=page.locator(".widget-toggle-buttons")).first
        explorer.wait_for()
        for control in (".widget-dropdown", ".widget-toggle-buttons", ".widget-slider",
                        ".widget-image"):
            assert explorer.locator(control).count() >= 1, control
        image = explorer.locator("img.widget-image, .widget-image img, img").first
        page.wait_for_function("img => img.complete && img.naturalWidth > 100",
                               arg=image.element_handle())
        before = image.evaluate(IMAGE_HASH)
        # move the layer slider as a user can: type a layer into its editable readout (the
        # number beside the track, contenteditable in ipywidgets 8) and press Enter. The
        # notebook's next cell set the slider from code, so go to the other end of it.
        slider = explorer.locator(".widget-slider").filter(has_text="layer").first
        handle = slider.locator(".noUi-handle").first
        readout = slider.locator(".widget-readout").first
        start = int(float(handle.get_attribute("aria-valuenow")))
        highest = int(float(handle.get_attribute("aria-valuemax")))
        assert highest >= 1, "the fast model has one layer: nothing to move to"
        wanted = 0 if start > 0 else highest
        src = image.get_attribute("src")
        readout.click()
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.type(str(wanted))
        page.keyboard.press("Enter")
        # the handle follows the readout, the kernel redraws, and the image gets new bytes
        page.wait_for_function("([h, v]) => parseFloat(h.getAttribute('aria-valuenow')) === v",
                               arg=[handle.element_handle(), wanted])
        page.wait_for_function(
            "([img, src]) => img.src !== src && img.complete && img.naturalWidth > 100",
            arg=[image.element_handle(), src])
        after = image.evaluate(IMAGE_HASH)
        assert after != before, "the picture did not change with the layer slider"
        shots = os.environ.get("ATTENTION_SCREENSHOTS")
        if shots:  # tall enough for the whole picture, without JupyterLab's news toast
            page.set_viewport_size({"width": 1280, "height": 1900})
            page.add_style_tag(content=".Toastify { display: none !important; }")
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=str(pathlib.Path(shots) / "jupyterlab_explorer.png"))

        # the notebook's HTML view (attention.inspection.views), shown through _repr_html_
        view = page.locator(".jp-OutputArea-output .attnview[data-ready]").first
        view.wait_for()
        view.scroll_into_view_if_needed()
        assert view.locator(".av-nojs").is_hidden()
        view.locator(".av-token[data-side=query][data-index='1']").hover()
        queries = view.evaluate(
            "v => Array.from(v.querySelectorAll('line.av-line')).map(l => +l.dataset.query)")
        assert queries and set(queries) == {1}
        if shots:
            view.screenshot(path=str(pathlib.Path(shots) / "jupyterlab_head_view.png"))
        assert errors == []
    assert chromium_page is not None
