"""What an end user's console page reads: the keys minted for them and the tokens and
cost the gateway reported, per key and (generated tokens and USD, as the daily quotas
count them) per UTC day."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.storage.backend_models import IssuedKey, UsageCallback
from dynaseal.webui.buckets import Window, bucket_start

DAYS = Window("14d", "Last 14 days", 14 * 24 * 3600, 24 * 3600, "%m-%d", tick_every=2)
KEYS_LISTED = 50


async def usage_per_day(
    session: AsyncSession, user_id: str, now: float, *, sqlite: bool
) -> dict[int, dict[str, float]]:
    """Day start (unix, UTC) → ``tokens`` generated and ``cost`` (USD) of the requests
    that ended that day."""
    day = bucket_start(UsageCallback.occurred_at, DAYS.step, sqlite).label("day")
    rows = await session.execute(
        select(
            day,
            func.sum(UsageCallback.completion_tokens),
            func.sum(UsageCallback.cost),  # None when no request had a cost
        )
        .where(UsageCallback.user_id == user_id, UsageCallback.occurred_at >= DAYS.since(now))
        .group_by(day)
    )
    return {
        int(start): {"tokens": float(tokens), "cost": float(cost or 0)}
        for start, tokens, cost in rows
    }


@dataclass(frozen=True)
class MintedKey:
    key: IssuedKey
    requests: int  # callbacks received for it
    tokens: int
    cost: Decimal  # USD, of the callbacks that had a cost


async def minted_keys(session: AsyncSession, user_id: str) -> list[MintedKey]:
    """The user's most recent keys, newest first, with what the gateway reported."""
    keys = list(
        await session.scalars(
            select(IssuedKey)
            .where(IssuedKey.user_id == user_id)
            .order_by(IssuedKey.created_at.desc())
            .limit(KEYS_LISTED)
        )
    )
    used = {
        event_id: (int(requests), int(tokens), cost or Decimal(0))
        for event_id, requests, tokens, cost in await session.execute(
            select(
                UsageCallback.event_id,
                func.count(),
                func.sum(UsageCallback.tokens),
                func.sum(UsageCallback.cost),
            )
            .where(
                UsageCallback.user_id == user_id,
                UsageCallback.event_id.in_([k.event_id for k in keys]),
            )
            .group_by(UsageCallback.event_id)
        )
    }
    return [MintedKey(k, *used.get(k.event_id, (0, 0, Decimal(0)))) for k in keys]
