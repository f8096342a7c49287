"""A web page as a device, in a real browser (headless Chromium, Playwright): a page
served from an origin of its own logs in to the business backend, gets a dynamic key,
and streams a chat completion — then a Responses API stream — from the gateway with the
official ``openai`` npm package, bundled into the page by esbuild. The text shows up on
the page as it is generated; the page reads the gateway's request id (an exposed header).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from dynaseal.backend import create_app as create_backend
from support.backend import backend_settings
from support.browser import browser_page, launched, shoot
from support.databases import fresh_database
from support.node import node_modules
from support.servers import ServerThread, serve
from support.upstream import FakeUpstream

PAGE_SOURCE = Path(__file__).parent / "web" / "page"
WORDS = "w0 w1 w2 w3 w4 w5 "


@pytest.fixture(scope="module")
def page_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """The page and its bundle (``openai`` included), served from an origin of their own."""
    modules = node_modules()
    site = tmp_path_factory.mktemp("site")
    shutil.copy(PAGE_SOURCE / "index.html", site / "index.html")
    subprocess.run(
        [
            str(modules / ".bin" / "esbuild"),
            str(PAGE_SOURCE / "app.js"),
            "--bundle",
            "--format=esm",
            "--platform=browser",
            f"--outfile={site / 'app.js'}",
            "--log-level=warning",
        ],
        cwd=modules.parent,
        check=True,
        timeout=120,
    )
    files = StaticFiles(directory=site, html=True)
    with serve(Starlette(routes=[Mount("/", files)])) as server:
        yield server


@pytest.fixture(scope="module")
def backend_for_pages(
    tmp_path_factory: pytest.TempPathFactory, gateway: ServerThread, page_site: ServerThread
) -> Iterator[ServerThread]:
    """The reference backend, minting keys for the shared gateway's demo tenant; it lets
    its own web app's origin (the page's) call it."""
    with fresh_database(tmp_path_factory.mktemp("backend"), "backend") as url:
        settings = backend_settings(url).model_copy(
            update={"gateway_url": gateway.url, "cors_origins": [page_site.url]}
        )
        with serve(create_backend(settings, demo_data=True)) as server:
            yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


def test_a_web_page_streams_a_completion_with_the_official_js_sdk(
    browser: Any,
    page_site: ServerThread,
    backend_for_pages: ServerThread,
    gateway: ServerThread,
    upstream: FakeUpstream,
) -> None:
    upstream.script.words = 6
    upstream.script.chunk_delay = 0.15
    with browser_page(browser) as (page, watch):
        page.goto(f"{page_site.url}/?backend={backend_for_pages.url}")
        # The first words are on the page while the rest is still being generated.
        page.wait_for_function("document.getElementById('answer').textContent.length > 0")
        early = page.inner_text("#answer")
        page.wait_for_selector("#status:has-text('done')", timeout=30_000)
        assert early and early != WORDS.strip()
        assert page.inner_text("#answer").strip() == WORDS.strip()
        arrivals = page.evaluate("window.arrivals")
        assert len(arrivals) == 6 and arrivals[-1] - arrivals[0] > 500  # milliseconds
        assert page.inner_text("#request-id").startswith("req_")
        assert page.inner_text("#response-text").strip() == WORDS.strip()
        shoot(page, "browser-device")
        assert watch.problems == [], watch.problems
    # The page's origin differs from the gateway's: every call was cross-origin.
    assert page_site.url != gateway.url
    assert upstream.paths == ["/v1/chat/completions", "/v1/responses"]
