"""Budgets held in the database itself: the store when neither Redis nor the in-memory
path applies.

Admission reserves inside one transaction holding the budget row (``SELECT ... FOR
UPDATE`` on PostgreSQL, the single writer on SQLite), so concurrent requests with one
key, across processes sharing the database, never reserve more than the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.gateway.budget import store
from dynaseal.gateway.budget.rules import Amounts, Ask, Budgets, Reservation, reserve_or_refuse
from dynaseal.gateway.budget.store import dialect_insert, new_row, where_key
from dynaseal.keys import KeyGrant
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import KeyBudget


class SqlBudget:
    """Budgets held in the database itself (no Redis configured)."""

    books_reservations = True

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _locked_row(self, session: AsyncSession, grant: KeyGrant) -> KeyBudget:
        query = select(KeyBudget).where(*where_key(grant)).with_for_update()
        row = await session.scalar(query)
        if row is None:
            insert = dialect_insert(self._db, KeyBudget).values(new_row(grant))
            await session.execute(insert.on_conflict_do_nothing())
            row = await session.scalar(query)
        assert row is not None
        return row

    async def reserve(self, grant: KeyGrant, budgets: Sequence[Budgets], ask: Ask) -> Reservation:
        async with self._db.transaction() as session:
            # Root first, like every chain: two chains never lock rows in opposite orders.
            rows = [await self._locked_row(session, key) for key in grant.chain]
            return reserve_or_refuse(rows, grant, budgets, ask)

    async def book(
        self,
        session: AsyncSession,
        grant: KeyGrant,
        *,
        reserved: Amounts,
        used: Amounts,
        requests: int,
    ) -> None:
        # ``requests`` were counted when reserved.
        for key in grant.chain:
            await session.execute(
                update(KeyBudget)
                .where(*where_key(key))
                .values(
                    reserved=KeyBudget.reserved - reserved.tokens,
                    total_reserved=KeyBudget.total_reserved - reserved.total_tokens,
                    cost_reserved=KeyBudget.cost_reserved - reserved.cost,
                    spent=KeyBudget.spent + used.tokens,
                    total_spent=KeyBudget.total_spent + used.total_tokens,
                    cost_spent=KeyBudget.cost_spent + used.cost,
                )
            )

    async def release(self, grant: KeyGrant, reservation: Reservation, used: Amounts) -> None:
        return None  # booked in the settlement transaction already

    async def usage(self, grant: KeyGrant) -> store.KeyUsage:
        return await store.durable_usage(self._db, grant)

    async def revoke_event(self, tenant_id: str, event_id: str, keep_until: datetime) -> None:
        await store.revoke_in_database(self._db, tenant_id, event_id, keep_until)
