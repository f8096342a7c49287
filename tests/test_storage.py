"""Storage behaves alike on SQLite and PostgreSQL for values only one of them accepts."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from dynaseal.storage import Database
from dynaseal.storage.gateway_models import KeyBudget, Tenant
from dynaseal.storage.schema import upgrade
from dynaseal.storage.types import utcnow
from support.databases import NewDatabase
from support.servers import ServerThread


async def test_nul_characters_and_64_bit_counters_round_trip(database_url: NewDatabase) -> None:
    db = Database(database_url("gateway"))
    try:
        await upgrade(db, "gateway")
        async with db.transaction() as session:
            session.add(Tenant(id="t\x00", username="a\x00b", password_hash="x"))
            session.add(
                KeyBudget(
                    tenant_id="t\x00",
                    event_id="e",
                    budget=2**53,
                    expires_at=utcnow() + timedelta(1),
                )
            )
        async with db.sessions() as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.username == "a\x00b"))
            budget = await session.get(KeyBudget, ("t\x00", "e"))
    finally:
        await db.dispose()
    assert tenant is not None
    assert budget is not None and budget.budget == 2**53


async def test_several_rows_of_one_table_in_one_flush(database_url: NewDatabase) -> None:
    """An ORM flush of several objects (one multi-row INSERT on PostgreSQL) keeps working
    with the NUL guard, and each row keeps its own values."""
    db = Database(database_url("gateway"))
    expires = utcnow() + timedelta(1)
    try:
        await upgrade(db, "gateway")
        async with db.transaction() as session:
            session.add(Tenant(id="t", username="t", password_hash="x"))
            await session.flush()
            session.add_all(
                KeyBudget(tenant_id="t", event_id=f"e\x00{n}", budget=n, expires_at=expires)
                for n in range(3)
            )
        async with db.sessions() as session:
            rows = (await session.execute(select(KeyBudget.event_id, KeyBudget.budget))).all()
    finally:
        await db.dispose()
    assert sorted(budget for _, budget in rows) == [0, 1, 2]
    assert len({event_id for event_id, _ in rows}) == 3


def test_a_login_with_a_nul_character_is_refused_not_a_server_error(
    gateway: ServerThread,
) -> None:
    response = httpx.post(
        gateway.url + "/v1/user/login", data={"username": "user1\x00", "password": "user1"}
    )
    assert response.status_code == 401, response.text
