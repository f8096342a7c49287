"""The cumulative budget of a dynamic key: reserve before forwarding, settle after.

A key's ``max_tokens`` is the budget of every request made with it (same tenant and
event id). Admission reserves the prompt estimate plus the completion cap inside one
transaction holding the budget row (``SELECT ... FOR UPDATE`` on PostgreSQL, the single
writer on SQLite), so concurrent requests with one key — across processes sharing the
database — can never reserve more than the budget. Settlement (in
:mod:`dynaseal.gateway.settlement`) swaps the reservation for the real usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.gateway.errors import insufficient_quota
from dynaseal.keys import KeyGrant
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import KeyBudget


@dataclass(frozen=True, slots=True)
class Reservation:
    amount: int  # tokens held back until settlement
    completion_cap: int  # max_tokens forwarded upstream (per choice)
    prompt_estimate: int


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
        if grant.max_requests is not None and row.requests >= grant.max_requests:
            raise insufficient_quota("This key has no requests left.")
        remaining = row.budget - row.spent - row.reserved
        available_per_choice = (remaining - prompt_estimate) // choices
        if requested_cap is None:
            cap = available_per_choice
            if cap < 1:
                raise insufficient_quota(
                    f"This key's token budget is spent ({max(remaining, 0)} tokens left, "
                    f"the prompt needs about {prompt_estimate})."
                )
        else:
            cap = requested_cap
            if cap > available_per_choice:
                raise insufficient_quota(
                    f"The request may use up to {prompt_estimate + cap * choices} tokens "
                    f"but this key has {max(remaining, 0)} left; lower max_tokens."
                )
        amount = prompt_estimate + cap * choices
        row.reserved += amount
        row.requests += 1
    return Reservation(amount=amount, completion_cap=cap, prompt_estimate=prompt_estimate)
