"""Batched usage callbacks, end to end with real processes: ``dynaseal gateway`` (which
starts its delivery worker process) and ``dynaseal backend``, both with the demo data, so
the demo tenant's callbacks go to the reference backend, signed with its secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dynaseal.core.original_demo import DEMO_TENANT_PASSWORD, DEMO_TENANT_USERNAME
from dynaseal.gateway.callbacks import batches
from dynaseal.storage.gateway_models import CallbackDelivery
from support.batch_stack import BACKEND_ADMIN_PASSWORD, Stack, ask
from support.callbacks import CallbackSink
from support.commands import started
from support.console import ConsoleClient
from support.databases import fresh_database
from support.gateway_process import wait_until
from support.servers import ServerThread, free_port
from support.tenants import (
    ADMIN_PASSWORD,
    TENANT_PASSWORD,
    create_tenant,
    event_of,
    login,
    original_key,
)
from support.upstream import FakeUpstream

REQUESTS = 50
BATCH_MAX = 25


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("batches")
    gateway_port = free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    with (
        fresh_database(directory, "gateway") as gateway_db,
        fresh_database(directory, "backend") as backend_db,
    ):
        gateway_env = {
            "DATABASE_URL": gateway_db,
            "ADMIN_USER_PASSWORD": ADMIN_PASSWORD,
            "OPENAI_BASE_URL": f"{upstream.url}/v1",
            # A receiver that is down is tried again within a second, every time.
            "CALLBACK_RETRY_SCHEDULE_SECONDS": "[0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
        }
        args = ("gateway", "--port", str(gateway_port), "--demo-data")
        with started(*args, cwd=directory, env=gateway_env) as gateway:
            gateway.wait_ready(gateway_url + "/readyz")
            stack = Stack(
                directory,
                gateway_url,
                free_port(),
                {
                    "DATABASE_URL": backend_db,
                    "ADMIN_USER_PASSWORD": BACKEND_ADMIN_PASSWORD,
                    "GATEWAY_URL": gateway_url,
                },
            )
            with stack.processes:
                yield stack


def test_fifty_requests_reach_the_backend_in_a_handful_of_deliveries(stack: Stack) -> None:
    stack.start_backend()
    stack.batching(seconds=5, most=BATCH_MAX)
    key = original_key(max_tokens=100_000)
    stack.ask(key, REQUESTS)
    event_id = event_of(key)
    stored = wait_until(lambda: len(found := stack.stored(event_id)) >= REQUESTS and found)
    assert len(stored) == REQUESTS
    assert len({entry["delivery_id"] for entry in stored}) == REQUESTS  # each event once
    assert all(entry["signature_verified"] for entry in stored)

    batches = stack.batches_of(event_id)
    sizes = [len(batch["payload"]["data"]) for batch in batches]
    assert sum(sizes) == REQUESTS and 2 <= len(batches) < REQUESTS
    assert max(sizes) <= BATCH_MAX
    assert all(batch["status"] == "delivered" for batch in batches)
    # Each event keeps its own id: the id its own delivery would have had.
    ids = {event["id"] for batch in batches for event in batch["payload"]["data"]}
    assert ids == {entry["delivery_id"] for entry in stored}
    members = [d for d in stack.deliveries() if d["batch_id"] in {b["id"] for b in batches}]
    assert len(members) == REQUESTS and {d["status"] for d in members} == {"batched"}


def test_a_backend_that_was_down_gets_every_event_once(stack: Stack) -> None:
    stack.start_backend()
    stack.batching(seconds=1, most=BATCH_MAX)
    stack.stop_backend()
    key = original_key(max_tokens=100_000)
    event_id = event_of(key)
    stack.ask(key, REQUESTS)

    def retried() -> bool:
        batches = stack.batches_of(event_id)
        carried = sum(len(batch["payload"]["data"]) for batch in batches)
        return carried == REQUESTS and all(batch["attempts"] >= 2 for batch in batches)

    wait_until(retried, timeout=60)  # every batch failed at least twice, as a whole
    stack.start_backend()
    stored = wait_until(lambda: len(found := stack.stored(event_id)) >= REQUESTS and found)
    assert len({entry["delivery_id"] for entry in stored}) == REQUESTS
    batches = stack.batches_of(event_id)
    assert all(batch["status"] == "delivered" for batch in batches)

    # A batch sent again (say, the tenant re-sends it) is acknowledged, not re-counted.
    again = batches[0]
    resent = httpx.post(
        f"{stack.gateway_url}/v1/deliveries/{again['id']}/resend", headers=stack.tenant()
    )
    assert resent.status_code == 200, resent.text

    def delivered_again() -> bool:
        detail = httpx.get(
            f"{stack.gateway_url}/v1/deliveries/{again['id']}", headers=stack.tenant()
        ).json()
        attempts = len(detail["attempt_log"])
        return detail["status"] == "delivered" and attempts > len(again["attempt_log"])

    wait_until(delivered_again)
    stored = stack.stored(event_id)
    assert len(stored) == REQUESTS
    assert sum(entry["tokens"] for entry in stored) == sum(
        event["tokens"] for batch in batches for event in batch["payload"]["data"]
    )


def test_without_batching_each_request_is_a_callback_of_its_own(stack: Stack) -> None:
    stack.start_backend()
    stack.batching(seconds=0, most=BATCH_MAX)
    key = original_key(max_tokens=100_000)
    event_id = event_of(key)
    stack.ask(key, 3)
    stored = wait_until(lambda: len(found := stack.stored(event_id)) >= 3 and found)
    assert len(stored) == 3
    singles = {d["id"]: d for d in stack.deliveries() if d["type"] == "usage"}
    for entry in stored:
        # The original form: a flat payload under its own webhook-id.
        assert singles[entry["delivery_id"]]["status"] == "delivered"
        assert entry["payload"]["event_id"] == event_id and entry["payload"]["type"] == "usage"
        assert entry["content"] and entry["tokens"] > 0
    assert not stack.batches_of(event_id)


def test_the_batch_settings_are_shown_and_checked(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    tenant = create_tenant(gateway.url, sink.url)
    me = httpx.get(gateway.url + "/v1/user/me", headers=tenant.auth).json()
    assert (me["callback_batch_seconds"], me["callback_batch_max"]) == (0, 100)
    for bad in (
        {"callback_batch_seconds": -1},
        {"callback_batch_seconds": 3601},
        {"callback_batch_seconds": "soon"},
        {"callback_batch_seconds": True},
        {"callback_batch_seconds": None},
        {"callback_batch_max": 0},
        {"callback_batch_max": 1001},
        {"callback_batch_max": 2.5},
    ):
        refused = httpx.patch(gateway.url + "/v1/user/me", headers=tenant.auth, json=bad)
        assert refused.status_code in (400, 422), (bad, refused.text)
        error = refused.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"], (bad, error)
    body = {"callback_batch_seconds": 2.5, "callback_batch_max": 10}
    changed = httpx.patch(gateway.url + "/v1/user/me", headers=tenant.auth, json=body)
    assert changed.status_code == 200 and changed.json()["callback_batch_seconds"] == 2.5
    me = httpx.get(gateway.url + "/v1/user/me", headers=tenant.auth).json()
    assert (me["callback_batch_seconds"], me["callback_batch_max"]) == (2.5, 10)


def test_a_gateway_that_delivers_inline_batches_too(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    tenant = create_tenant(gateway.url, sink.url, with_api_key=True)
    body = {"callback_batch_seconds": 0.3, "callback_batch_max": 5}
    assert httpx.patch(gateway.url + "/v1/user/me", headers=tenant.auth, json=body).is_success
    key = tenant.key(max_tokens=100_000)
    ask(gateway.url, key, 7)

    def carried() -> list[dict[str, Any]]:
        batches = [
            p
            for p in sink.payloads()
            if p.get("type") == "usage.batch" and p["data"][0]["event_id"] == event_of(key)
        ]
        return batches if sum(len(b["data"]) for b in batches) >= 7 else []

    batches = wait_until(carried)
    assert sum(len(b["data"]) for b in batches) == 7 and max(len(b["data"]) for b in batches) <= 5
    for batch in batches:
        sink.delivery_of(batch).verify(str(tenant.webhook_secret))  # one signature per batch
        # A new tenant's events carry no generated text unless it asks for it.
        assert all(event["content"] is None and event["tokens"] > 0 for event in batch["data"])
    # ... and none of them went out alone as well.
    assert not [p for p in sink.payloads() if p.get("event_id") == event_of(key)]


def test_the_console_shows_and_sets_the_batch_settings(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    tenant = create_tenant(gateway.url, sink.url)
    console = ConsoleClient(gateway.url).logged_in(tenant.username, TENANT_PASSWORD)
    try:
        assert 'name="batch_seconds"' in console.get("/callbacks").text
        form = {"callback_url": sink.url, "batch_seconds": "2.5", "batch_max": "50"}
        assert console.post("/callbacks/settings", form).status_code == 303
        me = httpx.get(gateway.url + "/v1/user/me", headers=tenant.auth).json()
        assert (me["callback_batch_seconds"], me["callback_batch_max"]) == (2.5, 50)
        console.get("/callbacks")
        refused = console.post("/callbacks/settings", {**form, "batch_max": "0"})
        assert 400 <= refused.status_code < 500
        me = httpx.get(gateway.url + "/v1/user/me", headers=tenant.auth).json()
        assert me["callback_batch_max"] == 50
    finally:
        console.close()


def test_gateways_that_only_queue_and_a_delivery_worker_of_their_own(
    tmp_path: Path, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with fresh_database(tmp_path, "external") as database_url:
        env = {
            "DATABASE_URL": database_url,
            "ADMIN_USER_PASSWORD": ADMIN_PASSWORD,
            "OPENAI_BASE_URL": f"{upstream.url}/v1",
            "CALLBACK_DELIVERY": "external",  # as docker-compose.yml runs its gateways
        }
        with started("gateway", "--port", str(port), "--demo-data", cwd=tmp_path, env=env) as gw:
            gw.wait_ready(url + "/readyz")
            owner = login(url, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)
            to_sink = {"callback_url": sink.url}
            pointed = httpx.patch(url + "/v1/user/me", headers=owner, json=to_sink)
            assert pointed.status_code == 200, pointed.text
            key = original_key(max_tokens=100_000)
            ask(url, key, 3)

            def queued() -> bool:
                listed = httpx.get(
                    url + "/v1/deliveries", params={"status": "pending"}, headers=owner
                ).json()["data"]
                return len(listed) == 3

            wait_until(queued)
            assert not sink.payloads()  # the gateway itself sends nothing
            worker_env = {**env, "ALLOW_LOOPBACK_CALLBACKS": "true"}
            with started("gateway", "worker", cwd=tmp_path, env=worker_env) as worker:
                assert len(sink.wait_for(3, timeout=30, event_id=event_of(key))) == 3
                assert worker.stop() == 0, worker.log  # SIGTERM: its last round, then out
    assert len(sink.payloads()) == 3


def test_a_batch_is_bounded_in_events_and_in_bytes() -> None:
    def rows(*sizes: int) -> list[CallbackDelivery]:
        return [CallbackDelivery(id=str(n), payload="x" * size) for n, size in enumerate(sizes)]

    def shape(chunks: list[list[CallbackDelivery]]) -> list[list[str]]:
        return [[row.id for row in chunk] for chunk in chunks]

    chunks, full = batches._chunks(rows(10, 10, 10, 10, 10), most=2)
    assert shape(chunks) == [["0", "1"], ["2", "3"], ["4"]] and not full
    chunks, full = batches._chunks(rows(10, 10), most=2)
    assert shape(chunks) == [["0", "1"]] and full
    big = batches.MAX_BATCH_BYTES
    chunks, full = batches._chunks(rows(big // 2, big // 2 + 1, 5, big * 2, 5), most=100)
    # Content-heavy events go in smaller batches; one past the limit goes alone.
    assert shape(chunks) == [["0"], ["1", "2"], ["3"], ["4"]] and not full
