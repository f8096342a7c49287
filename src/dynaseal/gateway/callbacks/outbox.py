"""The callback outbox: every query on its rows. Settlement and tenants queue callbacks,
list and show deliveries with their attempts and re-send one; the delivery loop
(:mod:`.delivery`) claims the due rows and records each attempt (:mod:`.batches`
gathers a batching tenant's rows into one delivery first).

A claim expires, so a crashed worker's rows are picked up again; ``SKIP LOCKED`` on
PostgreSQL keeps two workers off the same row. Rows live in the database, so what is
pending when a gateway stops is sent by the next one to start."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.core.errors import APIError
from dynaseal.gateway.callbacks import webhook_secrets
from dynaseal.gateway.callbacks.retry import AttemptResult, Outcome, Step
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.storage import Database
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
    have been fixed since). The webhook-id stays, so a receiver that got it ignores it.
    An event that went in a batch goes out again alone, or in the tenant's next batch."""
    row.url = callback_url or row.url
    row.batch_id = None
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


@dataclass(frozen=True, slots=True)
class Claimed:
    """A due callback, claimed for one attempt, with what signing it takes."""

    id: str
    tenant_id: str
    url: str
    payload: str
    attempts: int
    secrets: list[str]
    #: A ``usage.batch``: how many events it carries (None: a single callback).
    events: int | None = None


async def claim_due(
    db: Database, box: SecretsBox, *, claim_for: timedelta, limit: int
) -> list[Claimed]:
    """Claim up to ``limit`` due rows, oldest due first, for ``claim_for``."""
    now = datetime.now(UTC)
    async with db.transaction() as session:
        rows = list(
            await session.scalars(
                select(CallbackDelivery)
                .outerjoin(Tenant, Tenant.id == CallbackDelivery.tenant_id)
                .where(
                    CallbackDelivery.status == "pending",
                    CallbackDelivery.next_attempt_at <= now,
                    or_(
                        CallbackDelivery.claimed_until.is_(None),
                        CallbackDelivery.claimed_until < now,
                    ),
                    # A batching tenant's events wait for their batch (:mod:`.batches`).
                    or_(
                        CallbackDelivery.events.is_not(None),
                        Tenant.callback_batch_seconds.is_(None),
                        Tenant.callback_batch_seconds <= 0,
                    ),
                )
                .order_by(CallbackDelivery.next_attempt_at)
                .limit(limit)
                .with_for_update(of=CallbackDelivery, skip_locked=True)
            )
        )
        if not rows:
            return []
        tenant_ids = {r.tenant_id for r in rows}
        tenants = await session.scalars(select(Tenant).where(Tenant.id.in_(tenant_ids)))
        secrets = {t.id: webhook_secrets.signing_secrets(t, box, now) for t in tenants}
        for row in rows:
            row.claimed_until = now + claim_for
        return [
            Claimed(
                r.id,
                r.tenant_id,
                r.url,
                r.payload,
                r.attempts,
                secrets.get(r.tenant_id, []),
                r.events,
            )
            for r in rows
        ]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One finished attempt at a claimed row, and what becomes of the row."""

    delivery: Claimed
    attempted_at: datetime
    result: AttemptResult
    step: Step

    @property
    def number(self) -> int:
        return self.delivery.attempts + 1


def _row_update(attempt: Attempt, now: datetime) -> dict[str, Any]:
    step = attempt.step
    retry_at = now if step.retry_in is None else now + timedelta(seconds=step.retry_in)
    return {
        "id": attempt.delivery.id,
        "attempts": attempt.number,
        "claimed_until": None,
        "status": step.status,
        "delivered_at": now if step.status == "delivered" else None,
        "next_attempt_at": retry_at,
        "last_error": step.last_error,
    }


async def record_attempts(db: Database, attempts: Sequence[Attempt]) -> None:
    """Log every attempt, release the rows to their new state, and disable the endpoints
    that answered 410 Gone: one transaction."""
    now = datetime.now(UTC)
    log_rows = [
        {
            "delivery_id": a.delivery.id,
            "attempt": a.number,
            "attempted_at": a.attempted_at,
            "url": a.delivery.url,
            "status_code": a.result.status_code,
            "error": a.result.error,
            "duration_ms": a.result.duration_ms,
        }
        for a in attempts
    ]
    gone = {a.delivery.tenant_id for a in attempts if a.result.outcome is Outcome.GONE}
    async with db.transaction() as session:
        await session.execute(insert(CallbackAttempt), log_rows)
        await session.execute(update(CallbackDelivery), [_row_update(a, now) for a in attempts])
        for tenant_id in gone:
            await disable_endpoint(session, tenant_id)


async def backlog(db: Database, statuses: Sequence[str]) -> tuple[dict[str, int], datetime | None]:
    """How many rows have each of ``statuses``, and when the oldest ``pending`` one was
    queued (for the metrics: one query on the status index, at scrape time)."""
    async with db.reads() as session:
        rows = await session.execute(
            select(
                CallbackDelivery.status,
                func.count(),
                func.min(CallbackDelivery.created_at),
            )
            .where(CallbackDelivery.status.in_(statuses))
            .group_by(CallbackDelivery.status)
        )
        counts: dict[str, int] = {}
        oldest: datetime | None = None
        for status, count, first in rows:
            counts[status] = count
            if status == "pending":
                oldest = first
    return counts, oldest
