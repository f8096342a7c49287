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


def test_a_login_with_a_nul_character_is_refused_not_a_server_error(
    gateway: ServerThread,
) -> None:
    response = httpx.post(
        gateway.url + "/v1/user/login", data={"username": "user1\x00", "password": "user1"}
    )
    assert response.status_code == 401, response.text
