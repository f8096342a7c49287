"""The backend's daily quota cannot be outrun by minting keys before spending them: the
unspent budget of every live key counts as used, and minting is rate limited per user."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from openai import OpenAI, RateLimitError

from dynaseal.backend import BackendSettings
from dynaseal.backend import create_app as create_backend
from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings
from support.databases import NewDatabase
from support.servers import free_port, serve
from support.upstream import FakeUpstream
from test_backend import assert_openai_error, bearer, login
from test_backend_usage import post_signed, usage_payload

ADMIN_PASSWORD = "admin-password-of-the-quota-tests"
MESSAGES = [{"role": "user", "content": "Tell me a long story"}]


def backend_settings(database_url: str, **overrides: Any) -> BackendSettings:
    options: dict[str, Any] = {
        "database_url": database_url,
        "admin_user_password": ADMIN_PASSWORD,
        "secret_key": "quota-tests-secret-that-is-long-enough",
    }
    return BackendSettings(**{**options, **overrides})


def new_user(http: httpx.Client, **policy: Any) -> dict[str, str]:
    """A fresh end user with ``policy``; its access token as a header."""
    admin = bearer(login(http, "admin", ADMIN_PASSWORD)["access_token"])
    name = f"user-{uuid.uuid4().hex[:8]}"
    body = {"username": name, "password": "pw", **policy}
    created = http.post("/v1/user/create", headers=admin, json=body)
    assert created.status_code == 201, created.text
    return bearer(login(http, name, "pw")["access_token"])


@dataclass
class System:
    backend: httpx.Client
    gateway_url: str


@pytest.fixture
def system(database_url: NewDatabase, upstream: FakeUpstream) -> Iterator[System]:
    """Gateway and backend wired together: the backend signs with the demo tenant's key
    and receives the gateway's callbacks."""
    backend_port = free_port()
    gateway = create_gateway(
        GatewaySettings(
            database_url=database_url("gateway"),
            openai_base_url=f"{upstream.url}/v1",  # type: ignore[attr-defined]
        ),
        demo=True,
        demo_data_callback_url=f"http://127.0.0.1:{backend_port}/v1/callback/usage",
    )
    backend = create_backend(backend_settings(database_url("backend")), demo_data=True)
    with (
        serve(gateway) as g,
        serve(backend, backend_port) as b,
        httpx.Client(base_url=b.url, timeout=30) as http,
    ):
        yield System(http, g.url)


def spend(gateway_url: str, token: str) -> int:
    """Chat with the key until the gateway refuses; the number of answered requests."""
    client = OpenAI(base_url=gateway_url + "/v1", api_key=token, max_retries=0)
    answered = 0
    while True:
        try:
            client.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
        except RateLimitError:
            return answered
        answered += 1


def test_minting_ten_keys_before_spending_them_stays_within_the_daily_quota(
    system: System, upstream: FakeUpstream
) -> None:
    upstream.script.words = 40
    user = new_user(system.backend, daily_token_quota=200)
    minted = [system.backend.post("/v1/key/create", headers=user) for _ in range(10)]
    keys = [r.json() for r in minted if r.status_code == 200]
    for refused in (r for r in minted if r.status_code != 200):
        assert assert_openai_error(refused, 429)["code"] == "insufficient_quota"
    assert sum(key["max_tokens"] for key in keys) <= 200

    answered = sum(spend(system.gateway_url, key["token"]) for key in keys)
    assert answered > 0

    deadline = time.monotonic() + 20
    while True:  # every answered request is reported to the backend
        usage = system.backend.get("/v1/usage", headers=user).json()
        if len(usage["data"]) >= answered or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(usage["data"]) == answered
    # The quota counts generated tokens, as a key's max_tokens does.
    generated = sum(entry["payload"]["completion_tokens"] for entry in usage["data"])
    assert 0 < generated <= 200


@pytest.fixture
def backend(database_url: NewDatabase) -> Iterator[httpx.Client]:
    """The demo backend (it trusts the demo webhook secret), releasing the unspent budget
    of a key as soon as the key expires."""
    settings = backend_settings(
        database_url("backend"), key_settlement_grace_seconds=0, keys_per_user_per_minute=10
    )
    with (
        serve(create_backend(settings, demo_data=True)) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        yield http


async def test_concurrent_mints_take_turns_on_the_quota(backend: httpx.Client) -> None:
    user = new_user(backend, daily_token_quota=200, key_budget_tokens=50)
    async with httpx.AsyncClient(base_url=str(backend.base_url), headers=user) as http:
        answers = await asyncio.gather(*(http.post("/v1/key/create") for _ in range(10)))
    granted = [a.json()["max_tokens"] for a in answers if a.status_code == 200]
    assert granted == [50] * 4
    for refused in (a for a in answers if a.status_code != 200):
        assert assert_openai_error(refused, 429)["code"] == "insufficient_quota"


def test_unspent_budget_is_reserved_until_the_key_expires(backend: httpx.Client) -> None:
    lifetime = 3  # long enough for the next two requests, even on a loaded machine
    user = new_user(backend, daily_token_quota=100, key_lifetime_seconds=lifetime)
    first = backend.post("/v1/key/create", headers=user).json()
    assert first["max_tokens"] == 100
    post_signed(backend, usage_payload(first["event_id"], tokens=30))
    # 25 generated and 75 still spendable with the live key: nothing left for another key.
    refused = backend.post("/v1/key/create", headers=user)
    assert assert_openai_error(refused, 429)["code"] == "insufficient_quota"
    assert 0 < int(refused.headers["Retry-After"]) <= lifetime + 1  # when the key expires

    time.sleep(max(0.0, first["expires_at"] - time.time()) + 1.1)
    second = backend.post("/v1/key/create", headers=user)
    assert second.status_code == 200, second.text
    assert second.json()["max_tokens"] == 75  # only what the expired key really used is gone


def test_minting_is_rate_limited_per_user(backend: httpx.Client) -> None:
    user, other = new_user(backend), new_user(backend)
    answers = [backend.post("/v1/key/create", headers=user) for _ in range(11)]
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    error = assert_openai_error(answers[-1], 429)
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
    assert backend.post("/v1/key/create", headers=other).status_code == 200
