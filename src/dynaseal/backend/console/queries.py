"""What an end user's console page reads: the keys minted for them and the tokens the
gateway reported, per key and (generated tokens, as the daily quota counts them) per UTC
day."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.storage.backend_models import IssuedKey, UsageCallback
from dynaseal.webui.buckets import Window, bucket_start

DAYS = Window("14d", "Last 14 days", 14 * 24 * 3600, 24 * 3600, "%m-%d", tick_every=2)
KEYS_LISTED = 50


async def tokens_per_day(
    session: AsyncSession, user_id: str, now: float, *, sqlite: bool
) -> dict[int, float]:
    """Day start (unix, UTC) → tokens generated for requests that ended that day."""
    day = bucket_start(UsageCallback.occurred_at, DAYS.step, sqlite).label("day")
    rows = await session.execute(
        select(day, func.sum(UsageCallback.completion_tokens))
        .where(UsageCallback.user_id == user_id, UsageCallback.occurred_at >= DAYS.since(now))
        .group_by(day)
    )
    return {int(start): float(tokens) for start, tokens in rows}


@dataclass(frozen=True)
class MintedKey:
    key: IssuedKey
    requests: int  # callbacks received for it
    tokens: int


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
        event_id: (requests, tokens)
        for event_id, requests, tokens in await session.execute(
            select(UsageCallback.event_id, func.count(), func.sum(UsageCallback.tokens))
            .where(
                UsageCallback.user_id == user_id,
                UsageCallback.event_id.in_([k.event_id for k in keys]),
            )
            .group_by(UsageCallback.event_id)
        )
    }
    return [MintedKey(k, *(int(n) for n in used.get(k.event_id, (0, 0)))) for k in keys]
