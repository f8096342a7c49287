"""The refusal counter: counts in memory, adds them to the table in one upsert per flush,
files keys naming no tenant under the operator's bucket, and loses nothing when a flush
fails."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from dynaseal.core.errors import APIError
from dynaseal.gateway import tenants
from dynaseal.gateway.errors import insufficient_quota, invalid_key, model_not_allowed
from dynaseal.gateway.metrics import GatewayMetrics
from dynaseal.gateway.refusals import RefusalCounter, claimed_tenant, reason_of
from dynaseal.keys import generate_private_key, key_thumbprint, mint_child_key
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import UNKNOWN_TENANT, RefusalCount
from dynaseal.storage.schema import prepare_schema
from support.databases import NewDatabase
from support.tenants import mint

TENANT = "0123456789abcdef01234567"


@pytest.fixture
async def db(database_url: NewDatabase) -> AsyncIterator[Database]:
    database = Database(database_url("refusals"))
    await prepare_schema(database, "gateway", auto_create=True)
    async with database.transaction() as session:
        await tenants.create_tenant(
            session, username="counted", password_hash="x", tenant_id=TENANT
        )
    yield database
    await database.dispose()


def bearer(token: str) -> str:
    return f"Bearer {token}"


async def stored(db: Database) -> dict[tuple[str, str], int]:
    async with db.sessions() as session:
        rows = await session.scalars(select(RefusalCount))
        totals: dict[tuple[str, str], int] = {}
        for row in rows:
            totals[(row.tenant_id, row.reason)] = (
                totals.get((row.tenant_id, row.reason), 0) + row.count
            )
        return totals


def test_reasons_and_claimed_tenants() -> None:
    assert reason_of(invalid_key()) == "invalid_key"
    assert reason_of(model_not_allowed("x")) == "model"
    assert reason_of(insufficient_quota("spent")) == "budget"
    assert reason_of(APIError(413, "too large")) == "bad_request"
    assert reason_of(APIError(503, "redis is down")) == "unavailable"
    assert claimed_tenant(bearer(mint(tenant_id=TENANT, secret="y" * 32))) == TENANT
    device = generate_private_key("EdDSA")
    bound = mint(tenant_id=TENANT, secret="y" * 32, cnf_jkt=key_thumbprint(device))
    child = mint_child_key(bound, device, now=time.time(), max_tokens=5).token
    assert claimed_tenant(f"DPoP {bound}") == claimed_tenant(bearer(child)) == TENANT
    for garbage in (None, "", "Basic abc", "Bearer not-a-jwt", "Bearer a.b.c"):
        assert claimed_tenant(garbage) == UNKNOWN_TENANT


async def test_counts_add_up_across_flushes_in_one_row_per_minute(db: Database) -> None:
    counter = RefusalCounter(db, flush_seconds=60, metrics=GatewayMetrics())
    key = bearer(mint(tenant_id=TENANT, secret="y" * 32))
    forged = bearer(mint(tenant_id="f" * 24, secret="y" * 32))
    for _ in range(3):
        counter.refused(key, model_not_allowed("gpt"))
    counter.refused(forged, invalid_key())
    counter.refused("Bearer garbage", invalid_key())
    assert counter.pending == 5
    assert await counter.flush() == 5
    counter.refused(key, model_not_allowed("gpt"))
    counter.refused(key, insufficient_quota("spent"))
    assert await counter.flush() == 2
    assert await counter.flush() == 0
    assert await stored(db) == {
        (TENANT, "model"): 4,
        (TENANT, "budget"): 1,
        (UNKNOWN_TENANT, "invalid_key"): 2,  # the forged tenant id is the operator's
    }


async def test_a_failed_flush_keeps_the_counts(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = RefusalCounter(db, flush_seconds=60, metrics=GatewayMetrics())
    key = bearer(mint(tenant_id=TENANT, secret="y" * 32))
    counter.refused(key, invalid_key())

    async def database_down(_: object) -> None:
        raise ConnectionError("database down")

    monkeypatch.setattr(counter, "_write", database_down)
    with pytest.raises(ConnectionError):
        await counter.flush()
    counter.refused(key, invalid_key())
    monkeypatch.undo()
    assert await counter.flush() == 2
    assert await stored(db) == {(TENANT, "invalid_key"): 2}


async def test_closing_writes_what_is_left(db: Database) -> None:
    counter = RefusalCounter(db, flush_seconds=60, metrics=GatewayMetrics())
    counter.start()
    counter.refused(bearer(mint(tenant_id=TENANT, secret="y" * 32)), invalid_key())
    await counter.aclose()
    assert await stored(db) == {(TENANT, "invalid_key"): 1}


async def test_forged_ids_cannot_grow_memory(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dynaseal.gateway.refusals._MAX_COUNTERS", 10)
    counter = RefusalCounter(db, flush_seconds=60, metrics=GatewayMetrics())
    for i in range(50):
        counter.refused(bearer(mint(tenant_id=f"{i:024x}", secret="y" * 32)), invalid_key())
    assert len(counter._counts) <= 11 and counter.pending == 50
    assert await counter.flush() == 50
    assert await stored(db) == {(UNKNOWN_TENANT, "invalid_key"): 50}
