"""Headless Chromium from the distribution (``apt-get install chromium``) driven by
Playwright for Python: no browser is downloaded. Without one, browser tests skip with
the reason; in CI (CI=true) they fail instead, since CI must install it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.waiting import eventually

LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Where the run leaves a screenshot of every page (git-ignored).
SCREENSHOTS = Path(
    os.environ.get(
        "DYNASEAL_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "screenshots"
    )
)


def chromium() -> str:
    """The system Chromium's path; skips (or fails in CI) when it or Playwright is missing."""
    problem = None
    path = os.environ.get("DYNASEAL_CHROMIUM") or shutil.which("chromium")
    if path is not None and not Path(path).is_file():
        path = None
    try:
        import playwright  # noqa: F401
    except ImportError:
        problem = "Playwright for Python is not installed: pip install -e '.[browser]'"
    if path is None:
        problem = "Chromium is not installed: apt-get install chromium (or set DYNASEAL_CHROMIUM)"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    assert path is not None
    return path


@contextmanager
def launched() -> Iterator[Any]:
    """The system Chromium, headless, driven by Playwright (skips as :func:`chromium`)."""
    path = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageWatch:
    """What a page reported while the test used it: CSP violations and script errors
    show up here, so a test can assert the console runs cleanly under its policy."""

    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"{message.type}: {message.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept()


@contextmanager
def browser_page(browser: Any, **context: Any) -> Iterator[tuple[Any, PageWatch]]:
    """A fresh browser context (own cookies) and page, watched."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, **context)
    page = ctx.new_page()
    watch = PageWatch()
    watch.attach(page)
    try:
        yield page, watch
    finally:
        ctx.close()


def shoot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def navigates(page: Any, action: Callable[[], Any]) -> None:
    """Do what loads a new page (a link, a form; htmx swaps it in) and wait until the new
    page is there: the current ``<main>`` is marked, and its replacement is not."""
    page.evaluate("document.querySelector('main').dataset.stale = '1'")
    action()
    page.wait_for_selector("main:not([data-stale])")


def reload_until(page: Any, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Reload until ``check`` is truthy (background writes: ledger, refusals, callbacks)."""

    def reloaded_check() -> Any:
        result = check()
        if not result:
            page.reload()
        return result

    return eventually(reloaded_check, timeout, every=0.2)
