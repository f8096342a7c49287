"""A gateway killed mid-answer loses no request: what the devices saw answered, and the
streams its death cut, reach the ledger and the backend once each, in every budget mode;
a live replica keeps its requests in flight while another starts."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import func, insert, select

from dynaseal.gateway.budget.database import SqlBudget
from dynaseal.gateway.metrics import GatewayMetrics
from dynaseal.gateway.settlement.leases import ProcessLease
from dynaseal.gateway.settlement.recovery import Recovery
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import (
    CallbackDelivery,
    KeyBudget,
    RequestInFlight,
    Tenant,
    UsageRecord,
)
from dynaseal.storage.schema import upgrade
from dynaseal.storage.types import utcnow
from support.callbacks import CallbackSink
from support.crash_load import BackToBack, SlowStream, device, recorded
from support.databases import NewDatabase, fresh_database
from support.gateway_process import GatewayProcesses, wait_until
from support.servers import free_port
from support.tenants import DEMO_MODEL, mint
from support.upstream import FakeUpstream

STREAM_BUDGET = 60  # each cut stream reserves its key's whole budget
STREAMS = 3


def _environment(mode: str, database_url: str, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "crash-test-secret-that-is-long-enough",
        "PROCESS_LEASE_SECONDS": "1",
        "CALLBACK_RETRY_SCHEDULE_SECONDS": json.dumps([0.2] * 20),
        # A delivery the killed gateway had claimed is sent again once its claim (twice
        # this plus 5 s) has run out.
        "CALLBACK_TIMEOUT_SECONDS": "1",
        "RATE_LIMIT_KEY_CONCURRENCY": "0",
    }
    if mode == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_server").url
    else:
        env["BUDGET_STORE"] = mode
    return env


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Budgets in memory need SQLite; the other modes run on the suite's database."""
    kind = "sqlite" if request.node.callspec.params.get("mode") == "memory" else None
    with fresh_database(tmp_path, "crash", kind=kind) as url:
        yield url


def _callbacks(sink: CallbackSink) -> dict[str, set[str]]:
    """request id -> the webhook ids it was delivered under (a re-send keeps its id)."""
    by_request: dict[str, set[str]] = defaultdict(set)
    for received in list(sink.received):
        by_request[received.payload["request_id"]].add(received.headers["webhook-id"])
    return by_request


def _key_budget(gateway_url: str, key: str) -> dict[str, int]:
    answer = httpx.get(gateway_url + "/v1/key", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["budgets"]["max_tokens"]


@pytest.mark.parametrize("mode", ["memory", "database", "redis"])
def test_sigkill_under_load_loses_no_answered_request_nor_cut_stream(
    mode: str,
    database: str,
    request: pytest.FixtureRequest,
    upstream: FakeUpstream,
    sink: CallbackSink,
) -> None:
    upstream.script.words = 200
    upstream.script.chunk_delay = 0.1  # a stream of STREAM_BUDGET words takes seconds
    env = _environment(mode, database, request)
    processes = GatewayProcesses({**env, "OPENAI_BASE_URL": f"{upstream.url}/v1"})
    try:
        port = free_port()
        first = processes.start(port, sink.url)
        url = f"http://127.0.0.1:{port}"
        stream_keys = [mint(max_tokens=STREAM_BUDGET) for _ in range(STREAMS)]
        streams = [SlowStream(url, key).start() for key in stream_keys]
        load = BackToBack(url, mint(max_tokens=1_000_000)).start()
        wait_until(lambda: all(s.chunks >= 3 for s in streams) and len(load.answered) >= 5)

        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        for stream in streams:
            stream.join()
        assert load.thread is not None
        load.thread.join(timeout=30)
        answered = list(load.answered)
        cut = [s.request_id for s in streams]
        assert all(id is not None for id in cut) and not any(s.finished for s in streams)

        port = free_port()
        processes.start(port, sink.url)  # the same database (and Redis)
        url = f"http://127.0.0.1:{port}"
        expected = {*answered, *(id for id in cut if id is not None)}
        wait_until(
            lambda: expected <= _callbacks(sink).keys() and not recorded(database).in_flight, 40
        )
        wait_until(lambda: recorded(database).ledger.keys() <= _callbacks(sink).keys(), 40)

        after = recorded(database)
        callbacks = _callbacks(sink)
        assert expected <= after.ledger.keys()
        assert callbacks.keys() == after.ledger.keys()  # nothing reported but not booked
        assert all(len(ids) == 1 for ids in callbacks.values())  # each stored once
        assert {after.ledger[id] for id in answered} == {"completed"}
        assert {after.ledger[id] for id in cut if id is not None} == {"interrupted"}
        for payload in sink.payloads():
            if payload["request_id"] in cut:
                assert payload["status"] == "interrupted"
                assert payload["completion_tokens"] == STREAM_BUDGET

        for key in stream_keys:  # the cut stream's reservation is spent, once
            assert _key_budget(url, key) == {
                "limit": STREAM_BUDGET,
                "used": STREAM_BUDGET,
                "reserved": 0,
                "remaining": 0,
                "source": "claim",
            }
            with pytest.raises(openai.RateLimitError) as refused:
                device(url, key).chat.completions.create(
                    model=DEMO_MODEL, messages=[{"role": "user", "content": "more"}]
                )
            assert refused.value.code == "insufficient_quota"
        statuses = Counter(after.ledger.values())
        print(
            f"\n{mode}: {len(answered)} answered + {len(cut)} streams cut by SIGKILL; "
            f"ledger {dict(statuses)}; {len(callbacks)} requests called back, "
            f"{sum(len(ids) for ids in callbacks.values()) - len(callbacks)} twice; "
            f"{len(sink.received) - len(callbacks)} re-sends of one delivery"
        )
    finally:
        processes.close()


@pytest.mark.parametrize("mode", ["database", "redis"])
def test_a_live_replica_keeps_its_stream_while_another_starts(
    mode: str,
    database: str,
    request: pytest.FixtureRequest,
    upstream: FakeUpstream,
    sink: CallbackSink,
) -> None:
    upstream.script.words = 200
    upstream.script.chunk_delay = 0.1
    env = _environment(mode, database, request)
    processes = GatewayProcesses({**env, "OPENAI_BASE_URL": f"{upstream.url}/v1"})
    try:
        serving = free_port()
        processes.start(serving, sink.url)
        key = mint(max_tokens=2 * STREAM_BUDGET)  # a stream of twelve seconds
        stream = SlowStream(f"http://127.0.0.1:{serving}", key).start()
        wait_until(lambda: stream.chunks >= 2)
        processes.start(free_port(), sink.url)  # reclaims at start, then every lease/3
        time.sleep(2)  # two leases: the new replica looks for orphans six times meanwhile
        stream.join()

        assert stream.finished and stream.request_id is not None
        assert recorded(database).ledger == {stream.request_id: "completed"}
        (payload,) = sink.wait_for(1, request_id=stream.request_id)
        assert payload["status"] == "completed"
        assert len(sink.received) == 1
    finally:
        processes.close()


class _Outbox:
    def notify(self) -> None:
        """Nobody sends here: the test counts the rows."""


def _intent(request_id: str) -> dict[str, object]:
    now = utcnow()
    return {
        "request_id": request_id,
        "owner": "gw_dead",  # no lease at all: its process is gone
        "tenant_id": "t",
        "event_id": "e",
        "sub": None,
        "key_metadata": None,
        "key_max_tokens": 1000,
        "key_expires_at": now + timedelta(hours=1),
        "model": DEMO_MODEL,
        "endpoint": "chat",
        "stream": True,
        "reserved_tokens": 10,
        "reserved_total_tokens": 0,
        "reserved_cost": 0,
        "completion_cap": 10,
        "prompt_estimate": 3,
        "cost_estimate": None,
        "started_at": now,
    }


async def test_two_gateways_reclaiming_at_once_settle_each_request_once(
    database_url: NewDatabase,
) -> None:
    db = Database(database_url("gateway"))
    await upgrade(db, "gateway")
    orphans = 40
    async with db.transaction() as session:
        session.add(Tenant(id="t", username="t", password_hash="-", callback_url="http://a.b/c"))
        await session.flush()
        await session.execute(insert(RequestInFlight), [_intent(f"r{i}") for i in range(orphans)])
    reclaimers = [
        Recovery(
            db, SqlBudget(db), ProcessLease(db, 1), _Outbox(), GatewayMetrics(), sole_process=False
        )
        for _ in range(2)
    ]
    try:
        settled = await asyncio.gather(*(r.reclaim() for r in reclaimers))
        async with db.reads() as session:
            ledger = (await session.execute(select(UsageRecord.status))).scalars().all()
            callbacks = await session.scalar(select(func.count()).select_from(CallbackDelivery))
            left = await session.scalar(select(func.count()).select_from(RequestInFlight))
    finally:
        await db.dispose()
    assert sum(settled) == orphans
    assert sorted(ledger) == ["interrupted"] * orphans
    assert callbacks == orphans and left == 0


async def test_a_child_keys_interrupted_request_is_charged_to_its_ancestors_too(
    database_url: NewDatabase,
) -> None:
    """A crash must not let a parent key spend what its child's cut stream reserved: the
    recovered request is booked to every key of the chain, and its callback names it."""
    db = Database(database_url("gateway"))
    await upgrade(db, "gateway")
    expires = (utcnow() + timedelta(hours=1)).timestamp()
    intent = {
        **_intent("r-child"),
        "event_id": "child",
        "key_ancestors": [
            {"event_id": "root", "max_tokens": 500, "expires_at": expires},
            {"event_id": "parent", "max_tokens": 100, "expires_at": expires},
        ],
    }
    async with db.transaction() as session:
        session.add(Tenant(id="t", username="t", password_hash="-", callback_url="http://a.b/c"))
        await session.flush()
        await session.execute(insert(RequestInFlight), [intent])
        # The database store held the reservation on every key of the chain.
        for event_id, budget in (("root", 500), ("parent", 100), ("child", 1000)):
            session.add(
                KeyBudget(
                    tenant_id="t",
                    event_id=event_id,
                    budget=budget,
                    reserved=10,
                    expires_at=datetime.fromtimestamp(expires, UTC),
                )
            )
    recovery = Recovery(
        db, SqlBudget(db), ProcessLease(db, 1), _Outbox(), GatewayMetrics(), sole_process=False
    )
    try:
        assert await recovery.reclaim() == 1
        async with db.reads() as session:
            rows = (await session.execute(select(KeyBudget))).scalars().all()
            spent = {row.event_id: row.spent for row in rows}
            reserved = {row.event_id: row.reserved for row in rows}
            payload = await session.scalar(select(CallbackDelivery.payload))
    finally:
        await db.dispose()
    assert spent == {"root": 10, "parent": 10, "child": 10}
    assert reserved == {"root": 0, "parent": 0, "child": 0}
    assert payload is not None
    assert json.loads(payload)["chain"] == ["root", "parent", "child"]
