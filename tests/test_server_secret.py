"""Without SECRET_KEY no public constant signs anything: each service generates a secret at
its first start and keeps it in its database, so restarts and sibling processes agree."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from openai import OpenAI

from dynaseal.backend import BackendSettings
from dynaseal.backend import create_app as create_backend
from dynaseal.backend.app import SESSION_AUDIENCE as BACKEND_AUDIENCE
from dynaseal.backend.demo_data import DEMO_USER_ID, DEMO_USER_PASSWORD, DEMO_USER_USERNAME
from dynaseal.core.original_demo import DEMO_TENANT_ID, DEMO_TENANT_PASSWORD, DEMO_TENANT_USERNAME
from dynaseal.core.server_secret import ServerSecret
from dynaseal.core.settings import ConfigError, load_settings
from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.services import SESSION_AUDIENCE as GATEWAY_AUDIENCE
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.storage import Database
from dynaseal.storage.backend_models import BackendSecret
from dynaseal.storage.schema import prepare_schema
from support.callbacks import CallbackSink
from support.databases import NewDatabase
from support.gateway_process import GatewayProcesses
from support.servers import free_port, serve
from support.tenants import ADMIN_PASSWORD, DEMO_MODEL, bearer, create_tenant, login
from support.upstream import FakeUpstream

#: What signed every session of a service started without SECRET_KEY, up to issue 12.
OLD_PUBLIC_SECRET = "dynaseal-insecure-development-secret-change-me"


@pytest.fixture(autouse=True)
def _no_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)


def forged_access_token(audience: str, subject: str) -> str:
    """What a device can make from the ``iss`` of its own key and the published constant."""
    now = int(time.time())
    claims = {"sub": subject, "typ": "access", "aud": audience, "iat": now, "exp": now + 600}
    return jwt.encode(claims, OLD_PUBLIC_SECRET, algorithm="HS256")


def gateway_settings(database_url: str, upstream: FakeUpstream) -> GatewaySettings:
    return GatewaySettings(
        database_url=database_url,
        openai_base_url=f"{upstream.url}/v1",  # type: ignore[attr-defined]
        admin_user_password=ADMIN_PASSWORD,
    )


def backend_settings(database_url: str) -> BackendSettings:
    return BackendSettings(database_url=database_url, llm_key=None, llm_user_id=None)


def backend_login(url: str) -> dict[str, str]:
    form = {"username": DEMO_USER_USERNAME, "password": DEMO_USER_PASSWORD}
    response = httpx.post(url + "/v1/user/login", data=form)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def chat(url: str, key: str) -> str:
    client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(
        model=DEMO_MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    return reply.choices[0].message.content or ""


def test_gateway_refuses_a_session_forged_with_the_old_public_secret(
    database_url: NewDatabase, upstream: FakeUpstream
) -> None:
    app = create_gateway(gateway_settings(database_url("gateway"), upstream), demo=True)
    with serve(app) as server:
        genuine = login(server.url, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)
        assert httpx.get(server.url + "/v1/user/me", headers=genuine).status_code == 200
        forged = bearer(forged_access_token(GATEWAY_AUDIENCE, DEMO_TENANT_ID))
        for path in ("/v1/user/me", "/v1/api-keys"):
            assert httpx.get(server.url + path, headers=forged).status_code == 401
        created = httpx.post(server.url + "/v1/api-keys", headers=forged, json={})
        assert created.status_code == 401


def test_backend_refuses_a_session_forged_with_the_old_public_secret(
    database_url: NewDatabase,
) -> None:
    app = create_backend(backend_settings(database_url("backend")), demo_data=True)
    with serve(app) as server:
        genuine = backend_login(server.url)
        assert httpx.get(server.url + "/v1/user/me", headers=genuine).status_code == 200
        forged = bearer(forged_access_token(BACKEND_AUDIENCE, DEMO_USER_ID))
        assert httpx.get(server.url + "/v1/user/me", headers=forged).status_code == 401


def test_the_generated_gateway_secret_survives_a_restart(
    database_url: NewDatabase, upstream: FakeUpstream
) -> None:
    settings = gateway_settings(database_url("gateway"), upstream)
    with serve(create_gateway(settings)) as server:
        admin = login(server.url, "admin", ADMIN_PASSWORD)
        tenant = create_tenant(server.url, with_api_key=True)
        key = tenant.key(model=DEMO_MODEL, max_tokens=100)
    with serve(create_gateway(settings)) as server:
        assert httpx.get(server.url + "/v1/user/me", headers=admin).status_code == 200
        # The tenant's API key was sealed with a key derived from the secret: it still opens.
        assert chat(server.url, key)


def test_the_generated_backend_secret_survives_a_restart(database_url: NewDatabase) -> None:
    settings = backend_settings(database_url("backend"))
    with serve(create_backend(settings, demo_data=True)) as server:
        user = backend_login(server.url)
    with serve(create_backend(settings, demo_data=True)) as server:
        assert httpx.get(server.url + "/v1/user/me", headers=user).status_code == 200


@pytest.fixture
def two_gateway_processes(
    database_url: NewDatabase, upstream: FakeUpstream, sink: CallbackSink
) -> Iterator[list[str]]:
    """Two gateway processes started at the same moment on one new database."""
    processes = GatewayProcesses(
        {
            "DATABASE_URL": database_url("gateway"),
            "BUDGET_STORE": "database",
            "OPENAI_BASE_URL": f"{upstream.url}/v1",  # type: ignore[attr-defined]
            "ADMIN_USER_PASSWORD": ADMIN_PASSWORD,
            "SECRET_KEY": None,
        }
    )
    try:
        ports = [free_port(), free_port()]
        spawned = [processes.spawn(port, sink.url) for port in ports]  # type: ignore[attr-defined]
        for process, port in zip(spawned, ports, strict=True):
            processes.wait_ready(process, port)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        processes.close()


def test_two_gateway_processes_agree_on_the_generated_secret(
    two_gateway_processes: list[str],
) -> None:
    first, second = two_gateway_processes
    tenant = create_tenant(first, with_api_key=True)
    assert httpx.get(second + "/v1/user/me", headers=tenant.auth).status_code == 200
    assert chat(second, tenant.key(model=DEMO_MODEL, max_tokens=100))


def test_two_backends_on_one_database_agree_on_the_generated_secret(
    database_url: NewDatabase,
) -> None:
    settings = backend_settings(database_url("backend"))
    with (
        serve(create_backend(settings, demo_data=True)) as first,
        serve(create_backend(settings, demo_data=True)) as second,
    ):
        user = backend_login(first.url)
        assert httpx.get(second.url + "/v1/user/me", headers=user).status_code == 200


async def test_processes_starting_at_once_all_use_the_first_stored_secret(
    database_url: NewDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """Each start-up reads, inserts a candidate when none is stored, and reads again: the
    losers of the insert race take the winner's secret."""
    url = database_url("backend")
    databases = [Database(url) for _ in range(4)]
    try:
        await prepare_schema(databases[0], "backend", auto_create=True)
        holders = [ServerSecret(None) for _ in databases]
        await asyncio.gather(
            *(h.load(db, BackendSecret) for h, db in zip(holders, databases, strict=True))
        )
    finally:
        for db in databases:
            await db.dispose()
    assert len({holder.value for holder in holders}) == 1
    generated = [r for r in caplog.records if "generated a random secret" in r.getMessage()]
    assert len(generated) == 1


@pytest.mark.parametrize("settings_class", [GatewaySettings, BackendSettings])
@pytest.mark.parametrize("secret", [None, "short", OLD_PUBLIC_SECRET])
def test_production_mode_wants_a_strong_secret_key_of_its_own(
    settings_class: type[GatewaySettings] | type[BackendSettings], secret: str | None
) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings(settings_class, dynaseal_env="production", secret_key=secret)
