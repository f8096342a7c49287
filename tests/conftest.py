"""Shared fixtures: a fake upstream, a callback receiver and a gateway, all on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import jwt
import pytest

from dynaseal.core.original_demo import DEMO_TENANT_API_KEY, DEMO_TENANT_ID
from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.keys import peek_key
from support.callbacks import CallbackSink
from support.databases import NewDatabase, chosen, fresh_database
from support.redis_server import RedisServer
from support.servers import ServerThread, serve
from support.tenants import ADMIN_PASSWORD, DEMO_MODEL, mint
from support.upstream import FakeUpstream

__all__ = ["DEMO_MODEL", "event_of", "mint", "original_key"]


def pytest_report_header() -> str:
    kind, server = chosen()
    return f"database: {kind}" + (f" on {server}" if server else "")


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[NewDatabase]:
    """Hands out URLs of fresh databases (SQLite or PostgreSQL, see support.databases)."""
    with ExitStack() as stack:
        yield lambda name: stack.enter_context(fresh_database(tmp_path, name))


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    with serve(fake.app()) as server:
        fake.url = server.url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture(scope="session")
def sink() -> Iterator[CallbackSink]:
    receiver = CallbackSink()
    with serve(receiver.app()) as server:
        receiver.url = f"{server.url}/v1/callback/usage"  # type: ignore[attr-defined]
        yield receiver


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream, sink: CallbackSink
) -> Iterator[ServerThread]:
    with fresh_database(tmp_path_factory.mktemp("gateway"), "gateway") as url:
        settings = GatewaySettings(
            database_url=url,
            openai_base_url=f"{upstream.url}/v1",  # type: ignore[attr-defined]
            openai_api_key="upstream-secret",
            admin_user_password=ADMIN_PASSWORD,
            callback_retry_schedule_seconds=[0.2, 0.5, 1.0],
        )
        app = create_gateway(settings, demo=True, demo_data_callback_url=sink.url)  # type: ignore[attr-defined]
        with serve(app) as server:
            yield server


@pytest.fixture(autouse=True)
def _fresh_fakes(request: pytest.FixtureRequest) -> None:
    for name in ("upstream", "sink"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


def original_key(**overrides: Any) -> str:
    """A key exactly as the original design's backend minted it, with plain PyJWT."""
    claims: dict[str, Any] = {
        "api-key": DEMO_TENANT_ID,
        "model": DEMO_MODEL,
        "max_tokens": 100,
        "expiring": int(time.time()) + 600,
        "event_id": f"evt-{time.time_ns()}",
    }
    claims.update(overrides)
    return jwt.encode(claims, DEMO_TENANT_API_KEY, algorithm="HS256")


def event_of(token: str) -> str:
    """The event id a key carries (what its callbacks are filed under)."""
    claims = peek_key(token).claims
    return str(claims.get("jti") or claims["event_id"])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis the tests may stop and restart."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream, redis_server: RedisServer
) -> Iterator[ServerThread]:
    """A gateway keeping its hot state in Redis (callbacks are not delivered anywhere)."""
    with fresh_database(tmp_path_factory.mktemp("redis-gw"), "gateway") as url:
        settings = GatewaySettings(
            database_url=url,
            openai_base_url=f"{upstream.url}/v1",  # type: ignore[attr-defined]
            admin_user_password=ADMIN_PASSWORD,
            redis_url=redis_server.url,
        )
        with serve(create_gateway(settings, demo=True)) as server:
            yield server


@pytest.fixture(params=["gateway", "redis_gateway"])
def any_gateway(request: pytest.FixtureRequest) -> ServerThread:
    """The same test against budgets and limits in the process and in Redis."""
    return request.getfixturevalue(request.param)
