"""The callback outbox as tenants and settlement see it: queue a callback, list and show
deliveries with their attempts, re-send one. Sending is :mod:`.delivery`'s job."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.core.errors import APIError
from dynaseal.storage.gateway_models import CallbackAttempt, CallbackDelivery, Tenant
from dynaseal.storage.types import utcnow


def new_delivery(
    *,
    tenant_id: str,
    url: str,
    payload: dict[str, Any],
    request_id: str | None = None,
    disabled: bool = False,
) -> dict[str, Any]:
    """The outbox row of a callback (its id is the webhook-id), for a bulk insert.
    ``disabled``: the endpoint said 410 Gone, so keep the callback but do not send it."""
    now = utcnow()
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "tenant_id": tenant_id,
        "request_id": request_id,
        "url": url,
        "payload": orjson.dumps(payload).decode(),
        "status": "disabled" if disabled else "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def enqueue(session: AsyncSession, **delivery: Any) -> CallbackDelivery:
    """Add one callback to the outbox in the caller's transaction."""
    row = CallbackDelivery(**new_delivery(**delivery))
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


async def disable_endpoint(session: AsyncSession, tenant_id: str) -> None:
    """410 Gone: stop sending the tenant's callbacks, keeping every one of them."""
    await session.execute(
        update(Tenant).where(Tenant.id == tenant_id).values(callback_disabled_at=utcnow())
    )
    await session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.tenant_id == tenant_id, CallbackDelivery.status == "pending")
        .values(status="disabled", last_error="endpoint answered 410 Gone")
    )


async def enable_endpoint(session: AsyncSession, tenant: Tenant, url: str | None) -> None:
    """A new callback URL re-enables the endpoint; held callbacks go out to it."""
    tenant.callback_url = url
    if url is None or tenant.callback_disabled_at is None:
        return
    tenant.callback_disabled_at = None
    await session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.tenant_id == tenant.id, CallbackDelivery.status == "disabled")
        .values(status="pending", url=url, attempts=0, next_attempt_at=utcnow(), last_error=None)
    )
