"""The gateway with Redis as the shared hot state: budgets, use counts, revocation and
rate limits in Redis, the database as the durable record, and failing closed."""

from __future__ import annotations

import time

import httpx

from dynaseal.core.original_demo import DEMO_TENANT_PASSWORD, DEMO_TENANT_USERNAME
from dynaseal.keys import peek_key
from support.redis_server import RedisServer
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, mint
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]


def chat(gateway: ServerThread, key: str, **body: object) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES, **body},
        timeout=10,
    )


def test_budget_holds_and_survives_a_redis_restart(
    redis_gateway: ServerThread, redis_server: RedisServer, upstream: FakeUpstream
) -> None:
    key = mint(max_tokens=40)
    statuses = [chat(redis_gateway, key, max_tokens=10).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]  # 3 x 8 = 24 generated
    redis_server.stop()
    redis_server.start()  # empty: the key is reseeded from what the database booked
    after = [chat(redis_gateway, key, max_tokens=10).status_code for _ in range(4)]
    # One more fits (32 generated); had Redis forgotten the spend, all four would pass.
    assert after == [200, 429, 429, 429]
    assert upstream.count == 4


def test_revoked_event_is_refused(redis_gateway: ServerThread) -> None:
    key = mint()
    assert chat(redis_gateway, key).status_code == 200
    login = httpx.post(
        redis_gateway.url + "/v1/user/login",
        data={"username": DEMO_TENANT_USERNAME, "password": DEMO_TENANT_PASSWORD},
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    event_id = peek_key(key).claims["jti"]
    revoked = httpx.post(
        redis_gateway.url + "/v1/revocations", headers=headers, json={"event_id": event_id}
    )
    assert revoked.status_code == 200
    assert chat(redis_gateway, key).status_code == 401


def test_redis_down_fails_closed_then_recovers(
    redis_gateway: ServerThread, redis_server: RedisServer, upstream: FakeUpstream
) -> None:
    key = mint()
    assert chat(redis_gateway, key).status_code == 200
    redis_server.stop()
    try:
        refused = chat(redis_gateway, key)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["code"] == "service_unavailable"
        assert upstream.count == 1
    finally:
        redis_server.start()
    deadline = time.monotonic() + 10
    while chat(redis_gateway, key).status_code != 200:
        assert time.monotonic() < deadline, "the gateway did not recover"
        time.sleep(0.1)
