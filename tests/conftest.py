"""Shared fixtures: a fake upstream, a callback receiver, gateways and the reference
backend, all on loopback. Helpers live in ``support/``: test modules import them from
there, never from this file or from each other."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from dynaseal.backend.demo_data import DEMO_USER_PASSWORD, DEMO_USER_USERNAME
from support.backend import ADMIN_PASSWORD as BACKEND_ADMIN_PASSWORD
from support.backend import demo_backend, login
from support.callbacks import CallbackSink
from support.databases import NewDatabase, chosen, fresh_database
from support.gateways import demo_gateway
from support.redis_server import RedisServer
from support.routing import deployment, routed_gateway
from support.servers import ServerThread, serve
from support.tenants import bearer
from support.upstream import FakeUpstream


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
        fake.url = server.url
        yield fake


@pytest.fixture(scope="session")
def sink() -> Iterator[CallbackSink]:
    receiver = CallbackSink()
    with serve(receiver.app()) as server:
        receiver.url = f"{server.url}/v1/callback/usage"
        yield receiver


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream, sink: CallbackSink
) -> Iterator[ServerThread]:
    """The shared gateway: budgets and limits in the process, callbacks to ``sink``."""
    with demo_gateway(
        tmp_path_factory.mktemp("gateway"),
        upstream,
        callback_url=sink.url,
        openai_api_key="upstream-secret",
        callback_retry_schedule_seconds=[0.2, 0.5, 1.0],
    ) as server:
        yield server


@pytest.fixture(scope="session")
def chat_only_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream, sink: CallbackSink
) -> Iterator[ServerThread]:
    """A gateway whose one deployment serves chat completions only: Responses API
    requests are translated (set ``upstream.script.endpoints`` to make the fake a chat-only
    server too)."""
    routing = deployment("*", f"{upstream.url}/v1", name="chat-only", endpoints=["chat"])
    with routed_gateway(
        tmp_path_factory.mktemp("chat-only"), routing, callback_url=sink.url
    ) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fakes(request: pytest.FixtureRequest) -> None:
    for name in ("upstream", "sink"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


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
    with demo_gateway(
        tmp_path_factory.mktemp("redis-gw"), upstream, redis_url=redis_server.url
    ) as server:
        yield server


@pytest.fixture(params=["gateway", "redis_gateway"])
def any_gateway(request: pytest.FixtureRequest) -> ServerThread:
    """The same test against budgets and limits in the process and in Redis."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The reference backend with its demo data, one per test module."""
    with demo_backend(tmp_path_factory.mktemp("backend")) as http:
        yield http


@pytest.fixture(scope="module")
def client1(backend: httpx.Client) -> dict[str, str]:
    """The backend's demo user, logged in."""
    return bearer(login(backend, DEMO_USER_USERNAME, DEMO_USER_PASSWORD)["access_token"])


@pytest.fixture(scope="module")
def admin(backend: httpx.Client) -> dict[str, str]:
    """The backend's admin, logged in."""
    return bearer(login(backend, "admin", BACKEND_ADMIN_PASSWORD)["access_token"])
