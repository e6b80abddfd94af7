"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright.

Playwright never downloads a browser here: it is pointed at the system Chromium
(``executable_path``), which ``.ci/run`` installs from Debian's packages. The flags keep
Chromium off the network (this project's machines have none) and out of any profile: Playwright
gives every launch a fresh, empty user-data directory of its own.

Where Chromium is absent the browser tests skip, saying so, except under CI (``CI=true``),
where ``.ci/run`` has installed it and a missing browser is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str:
    """The system Chromium, or a skip (a failure under CI) naming what is missing."""
    path = os.environ.get("ATTENTION_CHROMIUM") or shutil.which("chromium") or (
        "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        reason = ("Chromium is not installed (Debian: apt-get install chromium chromium-driver; "
                  ".ci/run installs it)")
        if os.environ.get("CI"):
            pytest.fail(reason + ", but CI must run the browser tests")
        pytest.skip(reason)
    return path


@contextlib.contextmanager
def chromium():
    """A headless Chromium browser (Playwright's ``Browser``), closed afterwards."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            yield browser
        finally:
            browser.close()


class ConsoleErrors(list):
    """Collects a page's console errors and uncaught exceptions, as text."""

    def __init__(self, page, ignore: tuple[str, ...] = ()):
        super().__init__()
        self.ignore = ignore
        page.on("console", lambda m: self._add(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: self._add(f"uncaught: {error}"))

    def _add(self, text: str) -> None:
        if not any(pattern in text for pattern in self.ignore):
            self.append(text)
