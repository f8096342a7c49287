"""The overview: usage and cost per time bucket, refusals by reason, top users and models.

A new measure is one more entry in :data:`USAGE_SUMS` and one more chart in
``routes/overview.py``'s ``CHARTS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.gateway.refusals import REASONS
from dynaseal.storage.gateway_models import RefusalCount, UsageRecord
from dynaseal.webui.buckets import Window, bucket_start

WINDOWS = {
    w.name: w
    for w in (
        Window("1h", "Last hour", 3600, 60, "%H:%M", tick_every=10),
        Window("24h", "Last 24 hours", 24 * 3600, 1800, "%H:%M", tick_every=8),
        Window("30d", "Last 30 days", 30 * 24 * 3600, 24 * 3600, "%m-%d", tick_every=5),
    )
}

#: The ledger's sums per bucket, by name. Each chart on the overview draws some of them.
USAGE_SUMS: dict[str, Any] = {
    "requests": func.count(),
    "prompt_tokens": func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
    "completion_tokens": func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
    # USD (a Decimal, exact; drawn as a float): requests of unpriced models count 0.
    "cost": func.coalesce(func.sum(UsageRecord.cost), 0),
    # Admitted requests the upstream failed: the "upstream" refusals, straight from the
    # ledger (they are not counted with the refusals before admission).
    "upstream": func.coalesce(func.sum(case((UsageRecord.status == "failed", 1), else_=0)), 0),
}

#: Every refusal reason, in the order shown, with its label.
REFUSAL_LABELS = {
    "invalid_key": "Invalid key",
    "model": "Model not allowed",
    "budget": "Budget spent",
    "rate_limit": "Rate limited",
    "upstream": "Upstream failed",
    "bad_request": "Malformed request",
    "unavailable": "Gateway unavailable",
}
assert set(REASONS) | {"upstream"} == set(REFUSAL_LABELS)

Buckets = dict[int, dict[str, float]]  # bucket start (unix) → sums by name


async def usage_buckets(
    session: AsyncSession, tenant_id: str, window: Window, now: float, *, sqlite: bool
) -> Buckets:
    bucket = bucket_start(UsageRecord.ended_at, window.step, sqlite).label("bucket")
    rows = await session.execute(
        select(bucket, *(sum_.label(name) for name, sum_ in USAGE_SUMS.items()))
        .where(UsageRecord.tenant_id == tenant_id, UsageRecord.ended_at >= window.since(now))
        .group_by(bucket)
    )
    return {
        int(row.bucket): {name: float(row._mapping[name]) for name in USAGE_SUMS} for row in rows
    }


async def refusal_buckets(
    session: AsyncSession, tenant_id: str, window: Window, now: float, *, sqlite: bool
) -> Buckets:
    bucket = bucket_start(RefusalCount.minute, window.step, sqlite).label("bucket")
    rows = await session.execute(
        select(bucket, RefusalCount.reason, func.sum(RefusalCount.count))
        .where(RefusalCount.tenant_id == tenant_id, RefusalCount.minute >= window.since(now))
        .group_by(bucket, RefusalCount.reason)
    )
    buckets: Buckets = {}
    for start, reason, count in rows:
        buckets.setdefault(int(start), {})[reason] = float(count)
    return buckets


async def refusal_totals(session: AsyncSession, tenant_id: str, since: datetime) -> dict[str, int]:
    """Refusals per reason since ``since``, upstream failures included; every reason is
    present (0 when none)."""
    totals = dict.fromkeys(REFUSAL_LABELS, 0)
    rows = await session.execute(
        select(RefusalCount.reason, func.sum(RefusalCount.count))
        .where(RefusalCount.tenant_id == tenant_id, RefusalCount.minute >= since)
        .group_by(RefusalCount.reason)
    )
    for reason, count in rows:
        totals[reason] = int(count)
    totals["upstream"] = int(
        await session.scalar(
            select(func.count()).where(
                UsageRecord.tenant_id == tenant_id,
                UsageRecord.ended_at >= since,
                UsageRecord.status == "failed",
            )
        )
        or 0
    )
    return totals


@dataclass(frozen=True)
class Top:
    name: str | None
    requests: int
    tokens: int
    cost: Decimal  # USD, of the requests whose model had a price


async def top(
    session: AsyncSession, tenant_id: str, since: datetime, column: Any, limit: int = 8
) -> list[Top]:
    """The ``column`` values (``sub`` or ``model``) that used the most tokens."""
    tokens = func.coalesce(func.sum(UsageRecord.total_tokens), 0)
    cost = func.coalesce(func.sum(UsageRecord.cost), 0)
    rows = await session.execute(
        select(column, func.count(), tokens, cost)
        .where(UsageRecord.tenant_id == tenant_id, UsageRecord.ended_at >= since)
        .group_by(column)
        .order_by(tokens.desc(), func.count().desc())
        .limit(limit)
    )
    return [Top(name, int(requests), int(used), spent) for name, requests, used, spent in rows]
