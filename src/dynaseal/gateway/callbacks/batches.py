"""Gathering a tenant's usage events into one ``usage.batch`` delivery.

Settlement queues one outbox row per request, whatever the tenant's settings. For a
tenant with ``callback_batch_seconds`` above 0 the delivery loop leaves those rows alone
(:func:`dynaseal.gateway.callbacks.outbox.claim_due` skips them) until the oldest has
waited that long or ``callback_batch_max`` of them wait; then :func:`gather_due` turns
them, in one transaction, into a new outbox row whose payload is

    {"type": "usage.batch", "data": [{"id": <the event's own webhook-id>, ...}, ...]}

and marks them ``batched`` under it. From then on the batch is an ordinary delivery:
signed once, retried as a whole on the same schedule, re-sendable. Every event keeps
the id it would have had alone, so a receiver stores each once even when a batch (or an
event re-sent alone) arrives twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from dynaseal.gateway.callbacks.outbox import new_delivery
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import CallbackDelivery, Tenant

BATCH_TYPE = "usage.batch"
#: A batch's JSON stays under a megabyte (far under the reference backend's 8 MiB limit,
#: and what receivers commonly accept), however much text its events carry.
MAX_BATCH_BYTES = 1_000_000

#: Rows a tenant's batches take per round, so one round stays bounded however long the
#: receiver was away; the next round takes the rest.
_ROUND_BATCHES = 10


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A batching tenant's unsent events."""

    tenant_id: str
    url: str | None
    count: int
    oldest: datetime
    seconds: float
    most: int

    def due(self, now: datetime) -> bool:
        return self.count >= self.most or self.oldest + timedelta(seconds=self.seconds) <= now

    def wait(self, now: datetime) -> float:
        return (self.oldest + timedelta(seconds=self.seconds) - now).total_seconds()


def _unsent(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Single events still waiting for a delivery (not yet in a batch, not claimed)."""
    return (
        CallbackDelivery.status == "pending",
        CallbackDelivery.events.is_(None),
        CallbackDelivery.next_attempt_at <= now,
        or_(CallbackDelivery.claimed_until.is_(None), CallbackDelivery.claimed_until < now),
    )


async def gather_due(db: Database) -> float | None:
    """Turn every batch that is due into its delivery. Returns the seconds until the next
    batch falls due (``None``: no events wait)."""
    now = datetime.now(UTC)
    async with db.transaction() as session:
        waiting = await _waiting(session, now)
        for tenant in waiting:
            if tenant.due(now):
                await _gather(session, tenant, now)
    waits = [t.wait(now) for t in waiting if not t.due(now)]
    return min(waits, default=None)


async def _waiting(session: AsyncSession, now: datetime) -> list[_Waiting]:
    rows = await session.execute(
        select(
            CallbackDelivery.tenant_id,
            Tenant.callback_url,
            func.count(),
            func.min(CallbackDelivery.created_at),
            Tenant.callback_batch_seconds,
            Tenant.callback_batch_max,
        )
        .join(Tenant, Tenant.id == CallbackDelivery.tenant_id)
        .where(*_unsent(now), Tenant.callback_batch_seconds > 0)
        .group_by(
            CallbackDelivery.tenant_id,
            Tenant.callback_url,
            Tenant.callback_batch_seconds,
            Tenant.callback_batch_max,
        )
    )
    return [_Waiting(*row) for row in rows]


async def _gather(session: AsyncSession, tenant: _Waiting, now: datetime) -> None:
    """The tenant's waiting events, oldest first, in batches of at most ``most``; a last,
    partial batch only once its oldest event has waited long enough."""
    rows = list(
        await session.scalars(
            select(CallbackDelivery)
            .where(*_unsent(now), CallbackDelivery.tenant_id == tenant.tenant_id)
            .order_by(CallbackDelivery.created_at, CallbackDelivery.id)
            .limit(tenant.most * _ROUND_BATCHES)
            .with_for_update(skip_locked=True)
        )
    )
    chunks, last_is_full = _chunks(rows, tenant.most)
    if chunks and not last_is_full:
        last = chunks[-1][0].created_at + timedelta(seconds=tenant.seconds)
        if last > now:
            chunks.pop()
    for chunk in chunks:
        await _batch(session, tenant.url or chunk[-1].url, chunk)


def _chunks(
    rows: Sequence[CallbackDelivery], most: int
) -> tuple[list[list[CallbackDelivery]], bool]:
    """``rows`` in batches of at most ``most`` events and ``MAX_BATCH_BYTES`` (an event
    larger than that goes alone); whether the last batch is full."""
    chunks: list[list[CallbackDelivery]] = []
    size = 0
    full = True
    for row in rows:
        if full or size + len(row.payload) > MAX_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += len(row.payload)
        full = len(chunks[-1]) >= most or size >= MAX_BATCH_BYTES
    return chunks, full


def batch_payload(events: Sequence[tuple[str, str]]) -> dict[str, object]:
    """The ``usage.batch`` body of ``(webhook-id, payload JSON)`` events."""
    return {
        "type": BATCH_TYPE,
        "data": [{"id": event_id} | orjson.loads(payload) for event_id, payload in events],
    }


async def _batch(session: AsyncSession, url: str, rows: Sequence[CallbackDelivery]) -> None:
    delivery = new_delivery(
        tenant_id=rows[0].tenant_id,
        url=url,
        payload=batch_payload([(row.id, row.payload) for row in rows]),
    )
    delivery["events"] = len(rows)
    await session.execute(insert(CallbackDelivery), [delivery])
    await session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.id.in_([row.id for row in rows]))
        .values(status="batched", batch_id=delivery["id"], claimed_until=None, last_error=None)
    )
