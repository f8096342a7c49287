"""The callback outbox as tenants and settlement see it: queue a callback, list and show
deliveries with their attempts, re-send one. Sending is :mod:`.delivery`'s job."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.core.errors import APIError
from dynaseal.storage.gateway_models import CallbackAttempt, CallbackDelivery
from dynaseal.storage.types import utcnow


def enqueue(
    session: AsyncSession,
    *,
    tenant_id: str,
    url: str,
    payload: dict[str, Any],
    request_id: str | None = None,
) -> CallbackDelivery:
    """Add a callback to the outbox in the caller's transaction; its id is the webhook-id."""
    row = CallbackDelivery(
        id=f"msg_{uuid.uuid4().hex}",
        tenant_id=tenant_id,
        request_id=request_id,
        url=url,
        payload=orjson.dumps(payload).decode(),
        status="pending",
        attempts=0,
        next_attempt_at=utcnow(),
        created_at=utcnow(),
    )
    session.add(row)
    return row


async def list_deliveries(
    session: AsyncSession, tenant_id: str, *, status: str | None, limit: int
) -> Sequence[CallbackDelivery]:
    query = select(CallbackDelivery).where(CallbackDelivery.tenant_id == tenant_id)
    if status is not None:
        query = query.where(CallbackDelivery.status == status)
    query = query.order_by(CallbackDelivery.created_at.desc()).limit(limit)
    return (await session.scalars(query)).all()


async def get_delivery(session: AsyncSession, tenant_id: str, delivery_id: str) -> CallbackDelivery:
    """The tenant's own delivery; another tenant's is as missing as a made-up id."""
    row = await session.get(CallbackDelivery, delivery_id)
    if row is None or row.tenant_id != tenant_id:
        raise APIError(404, "No such delivery.", code="not_found", param="delivery_id")
    return row


async def attempts_of(session: AsyncSession, delivery_id: str) -> Sequence[CallbackAttempt]:
    rows = await session.scalars(
        select(CallbackAttempt)
        .where(CallbackAttempt.delivery_id == delivery_id)
        .order_by(CallbackAttempt.id)
    )
    return rows.all()


def resend(row: CallbackDelivery, callback_url: str | None) -> None:
    """Send again now, with a fresh retry schedule, to the tenant's current URL (it may
    have been fixed since). The webhook-id stays, so a receiver that got it ignores it."""
    row.url = callback_url or row.url
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = utcnow()
    row.last_error = None
