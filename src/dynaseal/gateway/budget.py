"""The cumulative budget of a dynamic key: reserve before forwarding, settle after.

A key's ``max_tokens`` is the budget of every request made with it (same tenant and
event id). Admission reserves the prompt estimate plus the completion cap inside one
transaction holding the budget row (``SELECT ... FOR UPDATE`` on PostgreSQL, the single
writer on SQLite), so concurrent requests with one key — across processes sharing the
database — can never reserve more than the budget. Settlement (in
:mod:`dynaseal.gateway.settlement`) swaps the reservation for the real usage.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.gateway.budget_rules import Reservation, decide, refusal_error
from dynaseal.gateway.errors import invalid_key
from dynaseal.keys import KeyGrant
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import KeyBudget

log = logging.getLogger("dynaseal.gateway")


async def _locked_row(session: AsyncSession, db: Database, grant: KeyGrant) -> KeyBudget:
    query = (
        select(KeyBudget)
        .where(KeyBudget.tenant_id == grant.tenant_id, KeyBudget.event_id == grant.event_id)
        .with_for_update()
    )
    row = await session.scalar(query)
    if row is not None:
        return row
    insert = sqlite_insert if db.is_sqlite else pg_insert
    await session.execute(
        insert(KeyBudget)
        .values(
            tenant_id=grant.tenant_id,
            event_id=grant.event_id,
            budget=grant.max_tokens,
            reserved=0,
            spent=0,
            requests=0,
            expires_at=datetime.fromtimestamp(grant.expires_at, UTC),
        )
        .on_conflict_do_nothing()
    )
    row = await session.scalar(query)
    assert row is not None
    return row


async def reserve(
    db: Database,
    grant: KeyGrant,
    *,
    prompt_estimate: int,
    requested_cap: int | None,
    choices: int = 1,
) -> Reservation:
    """Hold back tokens for one request, or refuse with 429 ``insufficient_quota``."""
    async with db.transaction() as session:
        row = await _locked_row(session, db, grant)
        decision = decide(
            budget=row.budget,
            spent=row.spent,
            reserved=row.reserved,
            requests=row.requests,
            revoked=row.revoked,
            max_requests=grant.max_requests,
            prompt_estimate=prompt_estimate,
            requested_cap=requested_cap,
            choices=choices,
        )
        if not isinstance(decision, Reservation):
            refusal, remaining = decision
            log.info("key %s refused: %s", grant.event_id, refusal.value)
            raise refusal_error(
                refusal,
                remaining=remaining,
                prompt_estimate=prompt_estimate,
                requested=prompt_estimate + (requested_cap or 0) * choices,
            )
        row.reserved += decision.amount
        row.requests += 1
    return decision


async def ensure_not_revoked(db: Database, grant: KeyGrant) -> None:
    """For requests that reserve nothing (model listing): refuse revoked event ids too."""
    async with db.sessions() as session:
        revoked = await session.scalar(
            select(KeyBudget.revoked).where(
                KeyBudget.tenant_id == grant.tenant_id, KeyBudget.event_id == grant.event_id
            )
        )
    if revoked:
        raise invalid_key()


async def revoke_event(db: Database, tenant_id: str, event_id: str, keep_until: datetime) -> None:
    """Mark an event id revoked, whether or not a key carrying it was used yet."""
    async with db.transaction() as session:
        insert = sqlite_insert if db.is_sqlite else pg_insert
        statement = insert(KeyBudget).values(
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
