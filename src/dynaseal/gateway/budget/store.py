"""The cumulative budgets of a dynamic key: reserve before forwarding, book after.

A key's budgets (:mod:`.limits`) cover every request made with it (same tenant and event
id); a child key's request is reserved from and booked to every key of its chain
(``grant.chain``, root first) at once. Three stores apply the same rules (:mod:`.rules`)
and answer to :class:`BudgetStore`:

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

from collections.abc import Sequence
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

from dynaseal.gateway.budget.rules import Amounts, Ask, Budgets, Reservation
from dynaseal.gateway.errors import invalid_key
from dynaseal.keys import KeyGrant
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import KeyBudget


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """What a key has spent and what requests in progress hold, as a store sees it."""

    spent: Amounts
    reserved: Amounts
    requests: int
    revoked: bool


class BudgetStore(Protocol):
    async def reserve(self, grant: KeyGrant, budgets: Sequence[Budgets], ask: Ask) -> Reservation:
        """Hold back what one request may use from every key of ``grant.chain`` (whose
        budgets are ``budgets``, root first) at once, or raise the refusal (429 / 401 if
        one is revoked)."""

    #: True when :meth:`book` also frees the reservation: settlement must then be
    #: committed before the next request with the key is judged.
    books_reservations: bool

    async def book(
        self,
        session: AsyncSession,
        grant: KeyGrant,
        *,
        reserved: Amounts,
        used: Amounts,
        requests: int,
    ) -> None:
        """Record the usage of ``requests`` finished requests durably, inside the
        settlement transaction, for every key of ``grant.chain``."""

    async def release(self, grant: KeyGrant, reservation: Reservation, used: Amounts) -> None:
        """When a request ends: swap its reservation for its usage in the hot state of
        every key of ``grant.chain``."""

    async def usage(self, grant: KeyGrant) -> KeyUsage:
        """What the key has spent and holds now (for the key to look at itself)."""

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
        "total_reserved": 0,
        "total_spent": 0,
        "cost_reserved": 0,
        "cost_spent": 0,
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


def spent_of(row: KeyBudget) -> Amounts:
    return Amounts(row.spent, row.total_spent, row.cost_spent)


def reserved_of(row: KeyBudget) -> Amounts:
    return Amounts(row.reserved, row.total_reserved, row.cost_reserved)


async def durable_usage(db: Database, grant: KeyGrant) -> KeyUsage:
    """What the database says about a key: where hot state starts from. Reservations
    are not in it (the hot state holds them), except in the database store's own rows."""
    row = await durable_row(db, grant)
    if row is None:
        return KeyUsage(Amounts(), Amounts(), 0, False)
    return KeyUsage(spent_of(row), reserved_of(row), row.requests, row.revoked)


async def ensure_not_revoked(db: Database, grant: KeyGrant) -> None:
    """For requests that reserve nothing (model listing): refuse revoked event ids too,
    a child key's ancestors' included."""
    for key in grant.chain:
        row = await durable_row(db, key)
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
            budget=0,  # the counters take their defaults (0)
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
    db: Database, session: AsyncSession, grant: KeyGrant, *, used: Amounts, requests: int
) -> None:
    """Durable booking for stores that reserve elsewhere: count the requests and usage."""
    spent = {
        "spent": used.tokens,
        "total_spent": used.total_tokens,
        "cost_spent": used.cost,
        "requests": requests,
    }
    statement = dialect_insert(db, KeyBudget).values(new_row(grant, **spent))
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[KeyBudget.tenant_id, KeyBudget.event_id],
            set_={name: getattr(KeyBudget, name) + value for name, value in spent.items()},
        )
    )
