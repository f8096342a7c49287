"""Dynamic keys in use: the tenant's recent event ids, what their budgets say and what
the ledger saw of them. The gateway learns of a key when it is first used, so a key
minted but never used is not listed (it can still be revoked by its event id)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.storage.gateway_models import KeyBudget, UsageRecord

LIMIT = 50


@dataclass(frozen=True)
class EventRow:
    event_id: str
    sub: str | None
    requests: int
    tokens: int  # prompt + completion, from the ledger
    cost: Decimal  # USD, from the ledger (requests of unpriced models count 0)
    last_use: datetime | None
    budget: int | None  # generated tokens the key may use; None: no budget row yet
    spent: int
    reserved: int
    expires_at: datetime | None
    revoked: bool

    @property
    def remaining(self) -> int | None:
        if self.budget is None or self.revoked:
            return None
        return max(self.budget - self.spent - self.reserved, 0)

    def status(self, now: datetime) -> str:
        if self.revoked:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.remaining == 0:
            return "spent"
        return "active"


async def recent_events(
    session: AsyncSession, tenant_id: str, now: datetime, lookback: timedelta, event_id: str = ""
) -> list[EventRow]:
    """The events used most recently within ``lookback`` (a key's longest lifetime), or
    the one ``event_id`` asked for, whenever it was used (or revoked unused)."""
    where = [UsageRecord.tenant_id == tenant_id]
    where.append(
        UsageRecord.event_id == event_id if event_id else UsageRecord.ended_at >= now - lookback
    )
    last_use = func.max(UsageRecord.ended_at)
    used = (
        await session.execute(
            select(
                UsageRecord.event_id,
                func.max(UsageRecord.sub),
                func.count(),
                func.coalesce(func.sum(UsageRecord.total_tokens), 0),
                func.sum(UsageRecord.cost),  # None when no request had a price
                last_use,
            )
            .where(*where)
            .group_by(UsageRecord.event_id)
            .order_by(last_use.desc())
            .limit(LIMIT)
        )
    ).all()
    ids = [row[0] for row in used] or ([event_id] if event_id else [])
    budgets = {
        row.event_id: row
        for row in await session.scalars(
            select(KeyBudget).where(KeyBudget.tenant_id == tenant_id, KeyBudget.event_id.in_(ids))
        )
    }
    ledger = {row[0]: row for row in used}
    events = []
    for event in ids:
        budget = budgets.get(event)
        if event not in ledger and budget is None:
            continue  # a searched id this tenant's gateway never saw
        _, sub, requests, tokens, cost, last = ledger.get(
            event, (event, None, 0, 0, Decimal(0), None)
        )
        events.append(
            EventRow(
                event_id=event,
                sub=sub,
                requests=int(requests),
                tokens=int(tokens),
                cost=cost or Decimal(0),
                last_use=last,
                budget=budget.budget if budget else None,
                spent=budget.spent if budget else 0,
                reserved=budget.reserved if budget else 0,
                expires_at=budget.expires_at if budget else None,
                revoked=bool(budget and budget.revoked),
            )
        )
    return events
