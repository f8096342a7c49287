"""A console user without a browser: an HTTP client that logs in through the login form
and submits forms with the CSRF token of the page it last read, as a browser would."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings
from support.databases import fresh_database
from support.servers import ServerThread, serve
from support.tenants import ADMIN_PASSWORD, DEMO_MODEL
from support.upstream import FakeUpstream

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


#: USD per million tokens of the console gateways' one model: each answer of the fake
#: upstream (11 prompt and 8 generated tokens) costs 0.00001177 USD.
PRICES = {DEMO_MODEL: {"input": "0.27", "output": "1.10"}}


@contextmanager
def console_gateway(directory: Path, upstream: FakeUpstream) -> Iterator[ServerThread]:
    """A gateway of its own for console tests: an admin, callbacks allowed to loopback
    (the test receivers), retries and refusal counts written within a fraction of a
    second, a login throttle no other test shares, and a price for the demo model
    (``MODEL_PRICES``) so that the pages show what requests cost."""
    with fresh_database(directory, "gateway") as url:
        settings = GatewaySettings(
            database_url=url,
            openai_base_url=f"{upstream.url}/v1",  # type: ignore[attr-defined]
            admin_user_password=ADMIN_PASSWORD,
            allow_loopback_callbacks=True,
            callback_retry_schedule_seconds=[0.1, 0.2],
            refusal_flush_seconds=0.1,
            model_prices=json.dumps(PRICES),
        )
        with serve(create_gateway(settings)) as server:
            yield server


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


class ConsoleClient:
    """Cookies kept between requests; redirects not followed (tests look at them)."""

    def __init__(self, service_url: str) -> None:
        self.http = httpx.Client(base_url=service_url + "/console", timeout=10)
        self.page = ""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.get(path, **kwargs)
        if response.headers.get("content-type", "").startswith("text/html"):
            self.page = response.text
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        """Submit a form carrying the CSRF token of the page read last."""
        form = {"csrf_token": csrf_of(self.page), **(data or {})}
        response = self.http.post(path, data=form, **kwargs)
        if response.headers.get("content-type", "").startswith("text/html"):
            self.page = response.text
        return response

    def login(self, username: str, password: str) -> httpx.Response:
        self.get("/login")
        return self.post("/login", {"username": username, "password": password})

    def logged_in(self, username: str, password: str) -> ConsoleClient:
        response = self.login(username, password)
        assert response.status_code == 303, response.text
        self.get("/keys")  # a page with this session's CSRF token
        return self

    def close(self) -> None:
        self.http.close()
