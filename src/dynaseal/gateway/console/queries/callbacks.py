"""The attempts of the deliveries a callbacks page lists, in one query."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.storage.gateway_models import CallbackAttempt


async def attempts_of(
    session: AsyncSession, delivery_ids: Sequence[str]
) -> dict[str, list[CallbackAttempt]]:
    """Delivery id → its attempts, oldest first. The ids must be the tenant's own (the
    page lists only those)."""
    found: dict[str, list[CallbackAttempt]] = {d: [] for d in delivery_ids}
    rows = await session.scalars(
        select(CallbackAttempt)
        .where(CallbackAttempt.delivery_id.in_(list(delivery_ids)))
        .order_by(CallbackAttempt.id)
    )
    for attempt in rows:
        found[attempt.delivery_id].append(attempt)
    return found
