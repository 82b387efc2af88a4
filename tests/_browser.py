"""Debian's Chromium under Playwright, launched one way for every browser test.

Browser tests run against the system Chromium (``executable_path``) rather than a downloaded
Playwright build, so nothing is fetched at test time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(args: Sequence[str] = CHROMIUM_ARGS) -> Iterator[Any]:
    """A headless Chromium, closed on the way out (the ``browser`` fixture in conftest.py wraps it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(args))
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, email: str, password: str, path: str) -> None:
    """Open ``path`` (signed out, so the sign-in form shows), sign in, and wait to leave the form."""
    page.goto(path)
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
