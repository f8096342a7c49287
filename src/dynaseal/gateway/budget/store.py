"""The cumulative budget of a dynamic key: reserve before forwarding, book after.

A key's ``max_tokens`` is the budget of every request made with it (same tenant and
event id). Three stores apply the same rules (:mod:`.rules`) and answer to
:class:`BudgetStore`:

* :class:`~.database.SqlBudget` — the budget row itself, locked while reserving, so
  processes sharing the database never reserve more than the budget together.
* :class:`~.memory.MemoryBudget` — the fast path of the one gateway process on a SQLite
  file.
* :class:`~.redis.RedisBudget` — when ``REDIS_URL`` is set: the reservation is one Lua
  script in Redis, shared by every replica.

Whatever the store, the database row is the durable record; this module also holds the
helpers that read and write it. Settlement calls :meth:`BudgetStore.book` inside its
transaction (with the ledger row and the callback), then :meth:`BudgetStore.release`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from dynaseal.gateway.budget.rules import Reservation
from dynaseal.gateway.errors import invalid_key
from dynaseal.keys import KeyGrant
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import KeyBudget


class BudgetStore(Protocol):
    async def reserve(
        self, grant: KeyGrant, *, prompt_estimate: int, requested_cap: int | None, choices: int
    ) -> Reservation:
        """Hold back tokens for one request, or raise the refusal (429 / 401 if revoked)."""

    #: True when :meth:`book` also frees the reservation: settlement must then be
    #: committed before the next request with the key is judged.
    books_reservations: bool

    async def book(
        self, session: AsyncSession, grant: KeyGrant, *, reserved: int, used: int, requests: int
    ) -> None:
        """Record the usage of ``requests`` finished requests durably, inside the
        settlement transaction."""

    async def release(self, grant: KeyGrant, reservation: Reservation, used: int) -> None:
        """When a request ends: swap its reservation for its usage in the hot state."""

    async def revoke_event(self, tenant_id: str, event_id: str, keep_until: datetime) -> None:
        """Refuse every key carrying this event id from now on."""


def dialect_insert(db: Database, table: type[KeyBudget]) -> SqliteInsert | PgInsert:
    """``INSERT`` with the database's ``ON CONFLICT`` clauses (both dialects have them)."""
    return sqlite_insert(table) if db.is_sqlite else pg_insert(table)


def new_row(grant: KeyGrant, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "tenant_id": grant.tenant_id,
        "event_id": grant.event_id,
        "budget": grant.max_tokens,
        "reserved": 0,
        "spent": 0,
        "requests": 0,
        "expires_at": datetime.fromtimestamp(grant.expires_at, UTC),
    }
    row.update(values)
    return row


def where_key(grant: KeyGrant) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (KeyBudget.tenant_id == grant.tenant_id, KeyBudget.event_id == grant.event_id)


async def durable_row(db: Database, grant: KeyGrant) -> KeyBudget | None:
    """The key's row as last committed (what hot state is seeded from)."""
    async with db.reads() as session:
        return await session.scalar(select(KeyBudget).where(*where_key(grant)))


@dataclass(frozen=True, slots=True)
class DurableState:
    """What the database says about a key: where hot state starts from."""

    budget: int
    spent: int
    requests: int
    revoked: bool


async def durable_state(db: Database, grant: KeyGrant) -> DurableState:
    row = await durable_row(db, grant)
    if row is None:
        return DurableState(grant.max_tokens, 0, 0, False)
    # A row made by revoking an unused event id has no budget of its own.
    budget = grant.max_tokens if row.revoked else row.budget
    return DurableState(budget, row.spent, row.requests, row.revoked)


async def ensure_not_revoked(db: Database, grant: KeyGrant) -> None:
    """For requests that reserve nothing (model listing): refuse revoked event ids too."""
    row = await durable_row(db, grant)
    if row is not None and row.revoked:
        raise invalid_key()


async def revoke_in_database(
    db: Database, tenant_id: str, event_id: str, keep_until: datetime
) -> None:
    """Mark an event id revoked, whether or not a key carrying it was used yet."""
    async with db.transaction() as session:
        statement = dialect_insert(db, KeyBudget).values(
            tenant_id=tenant_id,
            event_id=event_id,
            budget=0,
            reserved=0,
            spent=0,
            requests=0,
            expires_at=keep_until,
            revoked=True,
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[KeyBudget.tenant_id, KeyBudget.event_id],
                set_={"revoked": True},
            )
        )


async def book_settled(
    db: Database, session: AsyncSession, grant: KeyGrant, *, used: int, requests: int
) -> None:
    """Durable booking for stores that reserve elsewhere: count the requests and usage."""
    statement = dialect_insert(db, KeyBudget).values(new_row(grant, spent=used, requests=requests))
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[KeyBudget.tenant_id, KeyBudget.event_id],
            set_={"spent": KeyBudget.spent + used, "requests": KeyBudget.requests + requests},
        )
    )
