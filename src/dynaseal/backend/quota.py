"""The per-user daily token quota: usage reported by the gateway, counted per UTC day.

Checked when a key is minted (a spent quota is a 429 saying when it resets), and a new
key's budget is cut to what is left of the day, so one key cannot overshoot it much.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dynaseal.backend import crud
from dynaseal.core.errors import APIError
from dynaseal.storage import Database


def day_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Start of the current UTC day and the next midnight, when the quota resets."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


async def tokens_left_today(db: Database, user_id: str, quota: int, now: datetime) -> int | None:
    """Tokens the user may still use today; ``None`` when the quota is unlimited (0).

    Raises the 429 ``insufficient_quota`` (with ``Retry-After``) when none are left.
    """
    if not quota:
        return None
    start, reset = day_bounds(now)
    async with db.sessions() as session:
        used = await crud.tokens_used_since(session, user_id, start)
    if used < quota:
        return quota - used
    wait = max(1, int((reset - now).total_seconds()))
    raise APIError(
        429,
        f"Your daily quota of {quota} tokens is spent ({used} used today); "
        f"it resets at {reset.isoformat().replace('+00:00', 'Z')}.",
        code="insufficient_quota",
        type="insufficient_quota",
        headers={"Retry-After": str(wait)},
    )
