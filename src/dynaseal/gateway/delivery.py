"""Delivering usage callbacks from the outbox until the tenant's backend says 2xx.

A background task per gateway process claims due rows (a claim expires, so a crashed
worker's rows are picked up again; ``SKIP LOCKED`` on PostgreSQL keeps two workers off
the same row), POSTs them, and either marks them delivered, retries them later with
back-off and jitter (honouring ``Retry-After``), or gives up on HTTP 410 / after the
last retry. ``webhook-id`` stays the same across retries so receivers can de-duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import or_, select, update

from dynaseal.storage import Database
from dynaseal.storage.gateway_models import CallbackDelivery
from dynaseal.storage.types import utcnow

log = logging.getLogger("dynaseal.gateway.delivery")

#: Delay before each retry (Standard Webhooks' schedule): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h…
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0, 86400.0)
_CLAIM_SECONDS = 120
_BATCH = 64


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: str
    url: str
    payload: str
    attempts: int


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        *,
        timeout: float,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        poll_seconds: float = 1.0,
    ) -> None:
        self._db = db
        self._schedule = tuple(retry_schedule)
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dynaseal-callback-delivery")

    def notify(self) -> None:
        """A new row is in the outbox: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.deliver_due()
            except Exception:
                log.exception("callback delivery round failed")
                sent = 0
            if sent:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
            self._wake.clear()

    async def deliver_due(self) -> int:
        """Claim and send every due row once; returns how many were attempted."""
        claimed = await self._claim()
        await asyncio.gather(*(self._deliver(row) for row in claimed))
        return len(claimed)

    async def _claim(self) -> list[_Claimed]:
        now = utcnow()
        async with self._db.transaction() as session:
            rows = list(
                await session.scalars(
                    select(CallbackDelivery)
                    .where(
                        CallbackDelivery.status == "pending",
                        CallbackDelivery.next_attempt_at <= now,
                        or_(
                            CallbackDelivery.claimed_until.is_(None),
                            CallbackDelivery.claimed_until < now,
                        ),
                    )
                    .order_by(CallbackDelivery.next_attempt_at)
                    .limit(_BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.claimed_until = now + timedelta(seconds=_CLAIM_SECONDS)
            return [_Claimed(r.id, r.url, r.payload, r.attempts) for r in rows]

    async def _deliver(self, row: _Claimed) -> None:
        headers = {
            "content-type": "application/json",
            "user-agent": "dynaseal-gateway",
            "webhook-id": row.id,
            "webhook-timestamp": str(int(time.time())),
        }
        response: httpx.Response | None = None
        try:
            response = await self._client.post(row.url, content=row.payload, headers=headers)
            error = None if response.is_success else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts = row.attempts + 1
        values: dict[str, object] = {"attempts": attempts, "claimed_until": None}
        if error is None:
            values.update(status="delivered", delivered_at=utcnow(), last_error=None)
            log.info("callback %s delivered to %s", row.id, row.url)
        elif response is not None and response.status_code == 410:
            values.update(status="disabled", last_error="HTTP 410: endpoint disabled")
            log.warning("callback %s: endpoint %s answered 410, giving up", row.id, row.url)
        elif attempts > len(self._schedule):
            values.update(status="failed", last_error=error)
            log.error("callback %s failed for good after %d attempts: %s", row.id, attempts, error)
        else:
            delay = self._schedule[attempts - 1] * random.uniform(0.8, 1.2)
            delay = max(delay, _retry_after(response) or 0.0)
            values.update(
                next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay), last_error=error
            )
            log.warning(
                "callback %s attempt %d failed (%s); retry in %.1fs", row.id, attempts, error, delay
            )
        async with self._db.transaction() as session:
            await session.execute(
                update(CallbackDelivery).where(CallbackDelivery.id == row.id).values(**values)
            )
