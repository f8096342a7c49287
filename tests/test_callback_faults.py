"""Callbacks survive faults: a receiver that is down, a gateway killed with deliveries
pending, a worker that died holding claims. The end-to-end ones count requests made,
callbacks received and duplicates processed."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import openai
import pytest
from pydantic import SecretStr

from dynaseal.backend import BackendSettings
from dynaseal.backend import create_app as create_backend
from dynaseal.core.original_demo import (
    DEMO_TENANT_PASSWORD,
    DEMO_TENANT_USERNAME,
    DEMO_USER_PASSWORD,
    DEMO_USER_USERNAME,
    DEMO_WEBHOOK_SECRET,
)
from dynaseal.core.server_secret import ServerSecret
from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.callbacks import outbox
from dynaseal.gateway.callbacks.delivery import DeliveryWorker
from dynaseal.gateway.callbacks.url_policy import CallbackPolicy
from dynaseal.gateway.metrics import GatewayMetrics
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.storage import Database
from dynaseal.storage.schema import upgrade
from dynaseal.storage.types import utcnow
from support.callbacks import CallbackSink
from support.databases import NewDatabase
from support.gateway_process import GatewayProcesses, wait_until
from support.servers import free_port, serve
from support.tenants import DEMO_MODEL, event_of, mint
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]


def bearer_login(url: str, username: str, password: str) -> dict[str, str]:
    response = httpx.post(url + "/v1/user/login", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def deliveries(gateway_url: str, owner: dict[str, str], status: str) -> list[dict[str, Any]]:
    response = httpx.get(
        gateway_url + "/v1/deliveries", headers=owner, params={"status": status, "limit": 1000}
    )
    return response.json()["data"]


def ask(gateway_url: str, key: str, n: int) -> None:
    device = openai.OpenAI(base_url=gateway_url + "/v1", api_key=key, max_retries=0)
    for i in range(n):
        if i % 2:
            list(device.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES, stream=True))
        else:
            device.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)


def test_callbacks_reach_a_backend_that_was_down_each_counted_once(
    database_url: NewDatabase, upstream: FakeUpstream
) -> None:
    requests_made = 20
    backend_port = free_port()
    gateway = create_gateway(
        GatewaySettings(
            database_url=database_url("gateway"),
            openai_base_url=f"{upstream.url}/v1",
            callback_retry_schedule_seconds=[0.2, 0.5] + [1.0] * 30,
        ),
        demo=True,
        demo_data_callback_url=f"http://127.0.0.1:{backend_port}/v1/callback/usage",
    )
    backend_settings = BackendSettings(database_url=database_url("backend"), webhook_secret=None)
    with serve(gateway) as g:
        owner = bearer_login(g.url, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)
        with serve(create_backend(backend_settings, demo_data=True), backend_port) as b:
            user = bearer_login(b.url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD)
            key = httpx.post(b.url + "/v1/key/create", headers=user).json()

        ask(g.url, key["token"], requests_made)  # the backend is down meanwhile
        # Every callback queued, and each tried (and failed) at least once.
        wait_until(
            lambda: (
                len(pending := deliveries(g.url, owner, "pending")) == requests_made
                and all(d["attempts"] >= 1 for d in pending)
            )
        )

        with serve(create_backend(backend_settings, demo_data=True), backend_port) as b:

            def usage() -> dict[str, Any]:
                return httpx.get(
                    b.url + "/v1/usage", headers=user, params={"event_id": key["event_id"]}
                ).json()

            wait_until(lambda: len(usage()["data"]) == requests_made)
            delivered = wait_until(
                lambda: (
                    (d := deliveries(g.url, owner, "delivered")) and len(d) == requests_made and d
                )
            )
            # Every callback again, as a gateway retrying after a lost answer would:
            for delivery in delivered:
                httpx.post(f"{g.url}/v1/deliveries/{delivery['id']}/resend", headers=owner)
            wait_until(lambda: len(deliveries(g.url, owner, "delivered")) == requests_made)
            final = usage()

    received = {entry["delivery_id"] for entry in final["data"]}
    assert received == {d["id"] for d in delivered}
    assert len(final["data"]) == requests_made  # 40 deliveries, 20 processed
    assert final["total_tokens"] == 19 * requests_made
    assert all(d["attempts"] >= 2 for d in delivered)  # each failed while the backend was down
    print(
        f"\nbackend down: {requests_made} requests, {sum(d['attempts'] for d in delivered)} "
        f"attempts, {2 * requests_made} callbacks received (each sent twice), "
        f"{len(final['data'])} processed, {len(final['data']) - len(received)} duplicates processed"
    )


@pytest.fixture
def run_gateway(
    database_url: NewDatabase, upstream: FakeUpstream
) -> Iterator[Callable[[int, str], Any]]:
    processes = GatewayProcesses(
        {
            "DATABASE_URL": database_url("gateway"),
            "OPENAI_BASE_URL": f"{upstream.url}/v1",
            "SECRET_KEY": "fault-test-secret",
            "CALLBACK_RETRY_SCHEDULE_SECONDS": "[" + ", ".join(["0.5"] * 40) + "]",
            "CALLBACK_TIMEOUT_SECONDS": "1",
        }
    )
    yield processes.start
    processes.close()


def test_deliveries_pending_when_the_gateway_is_killed_are_sent_after_restart(
    run_gateway: Callable[[int, str], subprocess.Popen[bytes]],
) -> None:
    requests_made = 10
    gateway_port, sink_port = free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    callback_url = f"http://127.0.0.1:{sink_port}/v1/callback/usage"
    sink = CallbackSink()

    process = run_gateway(gateway_port, callback_url)  # the receiver is not up yet
    owner = bearer_login(gateway_url, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)
    key = mint()
    ask(gateway_url, key, requests_made)
    wait_until(
        lambda: (
            (d := deliveries(gateway_url, owner, "pending"))
            and len(d) == requests_made
            and all(x["attempts"] >= 1 for x in d)
        )
    )
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL

    with serve(sink.app(), sink_port):
        run_gateway(gateway_port, callback_url)
        wait_until(
            lambda: len(sink.wait_for(requests_made, 0, event_id=event_of(key))) >= requests_made
        )
        wait_until(lambda: len(deliveries(gateway_url, owner, "delivered")) == requests_made)
        time.sleep(1.0)  # a second send of any of them would arrive by now

    ids = [r.headers["webhook-id"] for r in sink.received]
    assert len(ids) == requests_made and len(set(ids)) == requests_made  # no duplicates
    for received in sink.received:
        received.verify(DEMO_WEBHOOK_SECRET)
        assert received.payload["tokens"] == 19
    print(
        f"\ngateway SIGKILLed: {requests_made} requests, {len(ids)} callbacks received, "
        f"{len(ids) - len(set(ids))} duplicates"
    )


async def test_a_crashed_workers_claim_expires_and_a_live_claim_is_respected(
    database_url: NewDatabase, sink: CallbackSink
) -> None:
    db = Database(database_url("gateway"))
    await upgrade(db, "gateway")
    now = utcnow()
    claims = {"crashed": now - timedelta(seconds=1), "busy": now + timedelta(minutes=1)}
    async with db.transaction() as session:
        for name, claimed_until in claims.items():
            row = outbox.enqueue(
                session,
                tenant_id="t",
                url=sink.url,
                payload={"type": "usage", "event_id": name, "tokens": 0},
            )
            row.claimed_until = claimed_until
    worker = DeliveryWorker(
        db,
        SecretsBox(ServerSecret(SecretStr("s"))),
        CallbackPolicy(allow_loopback=True),
        timeout=2,
        metrics=GatewayMetrics(),
        retry_schedule=[0.1],
    )
    try:
        assert await worker.deliver_due() == 1
    finally:
        await worker.stop()
        await db.dispose()
    assert [p["event_id"] for p in sink.payloads()] == ["crashed"]


async def test_callback_url_is_checked_again_when_sending(
    database_url: NewDatabase, sink: CallbackSink
) -> None:
    """A URL that became internal (policy or DNS changed) is not called."""
    db = Database(database_url("gateway"))
    await upgrade(db, "gateway")
    async with db.transaction() as session:
        row = outbox.enqueue(
            session,
            tenant_id="t",
            url=sink.url,  # on 127.0.0.1
            payload={"type": "usage", "event_id": "internal", "tokens": 0},
        )
        row_id = row.id
    worker = DeliveryWorker(
        db,
        SecretsBox(ServerSecret(SecretStr("s"))),
        CallbackPolicy(),
        timeout=2,
        metrics=GatewayMetrics(),
    )
    try:
        assert await worker.deliver_due() == 1
        async with db.sessions() as session:
            delivery = await outbox.get_delivery(session, "t", row_id)
    finally:
        await worker.stop()
        await db.dispose()
    assert delivery.status == "failed"
    assert delivery.last_error == "refused: non-public address"
    assert not sink.payloads()
