"""What the services tell anyone who asks, and write to their logs: no upstream address or
credentials, no upstream error text, no end user's conversation. And an upstream URL with
credentials in it (common behind corporate proxies) works, as basic auth."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings
from support.databases import NewDatabase
from support.servers import ServerThread, free_port, serve
from support.tenants import DEMO_MODEL, mint
from support.upstream import FakeUpstream
from test_cli import run_dynaseal

USER, PASSWORD = "proxy-user", "p@ss:word/1"
QUOTED_PASSWORD = "p%40ss%3Aword%2F1"


class BasicAuthRequired:
    """An ASGI wrapper answering 401 unless the request carries USER:PASSWORD."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.expected = f"Basic {token}".encode()
        self.seen: list[bytes | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization")
            self.seen.append(given)
            if given != self.expected:
                error = {"message": "no", "type": "auth", "param": None, "code": None}
                await JSONResponse({"error": error}, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


@pytest.fixture
def guarded_upstream() -> Iterator[tuple[ServerThread, BasicAuthRequired]]:
    guard = BasicAuthRequired(FakeUpstream().app())
    with serve(guard) as server:
        yield server, guard


def test_credentials_in_openai_base_url_are_sent_as_basic_auth(
    database_url: NewDatabase, guarded_upstream: tuple[ServerThread, BasicAuthRequired]
) -> None:
    upstream, guard = guarded_upstream
    base_url = f"http://{USER}:{QUOTED_PASSWORD}@127.0.0.1:{upstream.port}/v1"
    settings = GatewaySettings(database_url=database_url("gateway"), openai_base_url=base_url)
    with serve(create_gateway(settings, demo=True)) as gateway:
        client = OpenAI(base_url=gateway.url + "/v1", api_key=mint(), max_retries=0)
        for stream in (False, True):
            reply = client.chat.completions.create(
                model=DEMO_MODEL, messages=[{"role": "user", "content": "hi"}], stream=stream
            )
            assert reply
        assert httpx.get(gateway.url + "/readyz").status_code == 200
    assert guard.seen and set(guard.seen) == {guard.expected}


def test_credentials_in_openai_base_url_beside_an_api_key_stop_the_start(
    tmp_path: Path,
) -> None:
    """Both would be the upstream's Authorization header (every chat answered 500)."""
    env = {
        "OPENAI_BASE_URL": f"http://{USER}:{QUOTED_PASSWORD}@proxy.internal/v1",
        "OPENAI_API_KEY": "sk-upstream-key",
    }
    result = run_dynaseal("gateway", "--port", "0", cwd=tmp_path, env=env, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "OPENAI_BASE_URL" in result.stderr and "OPENAI_API_KEY" in result.stderr
    for secret in (QUOTED_PASSWORD, PASSWORD, "sk-upstream-key"):
        assert secret not in result.stdout + result.stderr


def test_health_checks_reveal_neither_the_upstream_nor_its_errors(
    database_url: NewDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    closed_port = free_port()  # nothing listens there: the upstream is down
    base_url = f"http://{USER}:{QUOTED_PASSWORD}@127.0.0.1:{closed_port}/v1?api-version=7"
    settings = GatewaySettings(database_url=database_url("gateway"), openai_base_url=base_url)
    with caplog.at_level(logging.WARNING), serve(create_gateway(settings)) as gateway:
        health = httpx.get(gateway.url + "/healthz")
        ready = httpx.get(gateway.url + "/readyz")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "ok", "upstream": "unavailable"}
    for text in (health.text, ready.text):
        for secret in (USER, QUOTED_PASSWORD, str(closed_port), "api-version", "Connect"):
            assert secret not in text
    # The operator finds the reason in the log, without the credentials.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "upstream" in logged and "not ready" in logged
    assert QUOTED_PASSWORD not in logged and PASSWORD not in logged
