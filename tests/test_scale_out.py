"""Production mode: several gateway processes sharing one PostgreSQL database and Redis
behave as one gateway; SIGTERM lets streams finish and books them."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from dynaseal.core.original_demo import DEMO_TENANT_PASSWORD, DEMO_TENANT_USERNAME
from support.callbacks import CallbackSink
from support.databases import NewDatabase, fresh_database
from support.gateway_process import GatewayProcesses, wait_until
from support.redis_server import RedisServer
from support.servers import free_port
from support.tenants import ADMIN_PASSWORD, DEMO_MODEL, create_tenant, event_of, login, mint
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]


@dataclass
class Replicas:
    urls: list[str]

    def url(self, i: int) -> str:
        return self.urls[i % len(self.urls)]


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: FakeUpstream,
    sink: CallbackSink,
    redis_server: RedisServer,
) -> Iterator[Replicas]:
    directory = tmp_path_factory.mktemp("replicas")
    with fresh_database(directory, "replicas", kind="postgresql") as database_url:
        processes = GatewayProcesses(
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_server.url,
                "OPENAI_BASE_URL": f"{upstream.url}/v1",
                "SECRET_KEY": "replica-test-secret-that-is-long-enough",
                "ADMIN_USER_PASSWORD": ADMIN_PASSWORD,
                "CALLBACK_RETRY_SCHEDULE_SECONDS": "[0.2, 0.5, 1.0]",
                "MODEL_PRICES": json.dumps({DEMO_MODEL: {"input": "0.27", "output": "1.10"}}),
                # Budgets alone decide who of 200 requests at once with one key is served.
                "RATE_LIMIT_KEY_CONCURRENCY": "0",
            }
        )
        try:
            ports = [free_port(), free_port()]
            for port in ports:
                processes.start(port, sink.url)
            yield Replicas([f"http://127.0.0.1:{port}" for port in ports])
        finally:
            processes.close()


async def spread(replicas: Replicas, key: str, count: int, **body: object) -> list[int]:
    """``count`` requests at once with one key, alternating between the replicas."""
    payload = {"model": DEMO_MODEL, "messages": MESSAGES, **body}

    async def one(client: httpx.AsyncClient, url: str) -> int:
        response = await client.post(url + "/v1/chat/completions", json=payload)
        return response.status_code

    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=60, limits=limits
    ) as client:
        return await asyncio.gather(*(one(client, replicas.url(i)) for i in range(count)))


@pytest.mark.parametrize(
    "budget",
    [
        {"max_tokens": 400},
        {"max_tokens": 10**6, "max_total_tokens": 800},
        # 10 prompt tokens at 0.27 and 10 generated at 1.10 USD per million, 40 times
        {"max_tokens": 10**6, "max_cost": "0.000548"},
    ],
    ids=["max_tokens", "max_total_tokens", "max_cost"],
)
async def test_one_budget_across_replicas(
    replicas: Replicas, upstream: FakeUpstream, sink: CallbackSink, budget: dict[str, Any]
) -> None:
    """Done when of issue 11: 200 requests of max_tokens 10 at once on two replicas, each
    generating 10 tokens of a 10-token prompt (what the gateway estimates): exactly 40
    fit in each budget, and none is overspent."""
    upstream.script.words, upstream.script.prompt_tokens = 10, 10
    key = mint(**budget)
    statuses = await spread(replicas, key, 200, max_tokens=10)
    granted, refused = statuses.count(200), statuses.count(429)
    callbacks = await asyncio.to_thread(sink.wait_for, granted, 20.0, event_id=event_of(key))
    generated = sum(p["completion_tokens"] for p in callbacks)
    tokens = sum(p["tokens"] for p in callbacks)
    cost = sum(Decimal(p["cost"]) for p in callbacks)
    print(
        f"\nreplicas, {budget}: 200 requests, {granted} granted, {refused} refused; "
        f"{generated} generated, {tokens} tokens, {cost} USD"
    )
    assert (granted, refused) == (40, 160) and upstream.count == 40 == len(callbacks)
    assert generated <= budget["max_tokens"]
    assert tokens <= budget.get("max_total_tokens", tokens)
    assert cost <= Decimal(budget.get("max_cost", cost))
    seen = httpx.get(replicas.url(1) + "/v1/key", headers={"Authorization": f"Bearer {key}"})
    for name, figures in seen.json()["budgets"].items():
        if figures is not None:
            assert figures["reserved"] in (0, "0") and Decimal(figures["used"]) <= Decimal(
                figures["limit"]
            ), name


async def test_single_use_key_on_both_replicas_at_once(
    replicas: Replicas, upstream: FakeUpstream
) -> None:
    statuses = await spread(replicas, mint(max_requests=1), 40)
    assert statuses.count(200) == 1 and statuses.count(429) == 39
    assert upstream.count == 1


def test_key_revoked_through_one_replica_is_refused_by_the_other(replicas: Replicas) -> None:
    tenant = create_tenant(replicas.url(0), with_api_key=True)
    key = tenant.key()

    def chat(url: str) -> int:
        return httpx.post(
            url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": DEMO_MODEL, "messages": MESSAGES},
        ).status_code

    assert chat(replicas.url(1)) == 200
    assert tenant.api_key is not None
    revoked = httpx.delete(
        replicas.url(0) + f"/v1/api-keys/{tenant.api_key['kid']}", headers=tenant.auth
    )
    assert revoked.status_code == 200
    revoked_at = time.monotonic()
    wait_until(lambda: chat(replicas.url(1)) == 401, timeout=5)
    elapsed = time.monotonic() - revoked_at
    print(f"\nrevoked on replica A, refused by replica B after {elapsed:.2f} s")
    assert elapsed <= 1.0


def test_event_revoked_through_one_replica_is_refused_by_the_other_at_once(
    replicas: Replicas,
) -> None:
    key = mint()
    owner = login(replicas.url(0), DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": DEMO_MODEL, "messages": MESSAGES}
    assert httpx.post(replicas.url(1) + "/v1/chat/completions", headers=headers, json=body)
    revoked = httpx.post(
        replicas.url(0) + "/v1/revocations", headers=owner, json={"event_id": event_of(key)}
    )
    assert revoked.status_code == 200
    after = httpx.post(replicas.url(1) + "/v1/chat/completions", headers=headers, json=body)
    assert after.status_code == 401


def test_redis_down_means_503_on_every_replica_then_recovery(
    replicas: Replicas, redis_server: RedisServer, upstream: FakeUpstream
) -> None:
    key = mint()
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": DEMO_MODEL, "messages": MESSAGES}

    def chat(url: str) -> httpx.Response:
        return httpx.post(url + "/v1/chat/completions", headers=headers, json=body, timeout=10)

    redis_server.stop()
    try:
        for url in replicas.urls:
            refused = chat(url)
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1"
            ready = httpx.get(url + "/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["redis"] != "ok"
        assert upstream.count == 0
    finally:
        redis_server.start()
    for url in replicas.urls:
        wait_until(lambda url=url: chat(url).status_code == 200, timeout=10)
        assert httpx.get(url + "/readyz").status_code == 200


def test_sigterm_lets_a_stream_finish_and_books_it(
    database_url: NewDatabase, upstream: FakeUpstream, sink: CallbackSink, tmp_path: Path
) -> None:
    upstream.script.words, upstream.script.chunk_delay = 20, 0.05
    processes = GatewayProcesses(
        {
            "DATABASE_URL": database_url("graceful"),
            "OPENAI_BASE_URL": f"{upstream.url}/v1",
            "SHUTDOWN_TIMEOUT_SECONDS": "20",
        }
    )
    port = free_port()
    try:
        process = processes.start(port, sink.url)
        key = mint()
        with httpx.stream(
            "POST",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": DEMO_MODEL, "messages": MESSAGES, "stream": True},
            timeout=30,
        ) as response:
            lines = response.iter_lines()
            first = [next(lines) for _ in range(4)]
            process.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        assert any("w0" in line for line in first)
        assert rest[-1] == "data: [DONE]"
        assert sum("w" in line for line in first + rest) >= 20
        # uvicorn re-raises the signal once it has shut down gracefully.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        [payload] = sink.wait_for(1, event_id=event_of(key))
        assert payload["status"] == "completed" and payload["completion_tokens"] == 20
    finally:
        processes.close()
