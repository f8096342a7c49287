"""Delivering usage callbacks from the outbox until the tenant's backend says 2xx.

A background task per gateway process claims due rows (a claim expires, so a crashed
worker's rows are picked up again; ``SKIP LOCKED`` on PostgreSQL keeps two workers off
the same row), POSTs them signed the Standard Webhooks way, records the attempt, and
either marks the row delivered, retries it later with back-off and jitter (honouring
``Retry-After``), or gives up on HTTP 410 / after the last retry. ``webhook-id`` stays the
same across retries so receivers can de-duplicate. Rows live in the database, so what
is pending when a gateway stops is sent by the next one to start.
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
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from sqlalchemy import insert, or_, select, update

from dynaseal.gateway.callbacks import outbox, webhook_secrets
from dynaseal.gateway.callbacks.url_policy import (
    CallbackPolicy,
    CallbackURLRefused,
    check_callback_url,
)
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import CallbackAttempt, CallbackDelivery, Tenant

log = logging.getLogger("dynaseal.gateway.delivery")

#: Delay before each retry: Standard Webhooks' schedule (5 s, 5 min, 30 min, 2 h, 5 h,
#: 10 h, 10 h) stretched by two daily retries, so a receiver may be down ~3 days (75.6 h).
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0, 86400.0, 86400.0)
_BATCH = 32
_REFUSED_URL = "callback URL refused"


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: str
    tenant_id: str
    url: str
    payload: str
    attempts: int
    secrets: list[str]


@dataclass(frozen=True, slots=True)
class _Result:
    status_code: int | None
    retry_after: float | None
    error: str | None  # None: delivered
    duration_ms: int


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP-date; ``None`` when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        box: SecretsBox,
        policy: CallbackPolicy,
        *,
        timeout: float,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        poll_seconds: float = 1.0,
        gather_seconds: float = 0.0,
    ) -> None:
        self._db = db
        self._box = box
        self._policy = policy
        self._timeout = timeout
        # Long enough for one bounded attempt and its bookkeeping; after that a claim
        # is taken to belong to a crashed worker.
        self._claim = timedelta(seconds=2 * timeout + 5)
        self._schedule = tuple(retry_schedule)
        # A receiver's Retry-After may stretch a wait, but not past the longest planned one.
        self._max_delay = max(self._schedule, default=0.0)
        self._poll_seconds = poll_seconds
        # Let callbacks gather briefly after a wake-up: one round sends many.
        self._gather_seconds = gather_seconds
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None  # made in the running loop
        self._task: asyncio.Task[None] | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dynaseal-callback-delivery")

    def notify(self) -> None:
        """A row is due in the outbox: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop, then try once more what is due (the callbacks of the last
        requests) for as long as one attempt may take; what is left waits in the outbox."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            try:
                await asyncio.wait_for(self.deliver_due(), self._timeout + 1)
            except Exception as exc:
                log.warning("last callback round before stopping failed: %s", exc)
        if self._session is not None:
            await self._session.close()

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
                await asyncio.sleep(self._gather_seconds)
            self._wake.clear()

    async def deliver_due(self) -> int:
        """Claim and send every due row once, then record every outcome in one
        transaction; returns how many were attempted."""
        claimed = await self._claim_due()
        if claimed:
            outcomes = await asyncio.gather(*(self._attempt(row) for row in claimed))
            await self._record(claimed, outcomes)
        return len(claimed)

    async def _claim_due(self) -> list[_Claimed]:
        now = datetime.now(UTC)
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
            if not rows:
                return []
            tenant_ids = {r.tenant_id for r in rows}
            tenants = await session.scalars(select(Tenant).where(Tenant.id.in_(tenant_ids)))
            secrets = {t.id: webhook_secrets.signing_secrets(t, self._box, now) for t in tenants}
            for row in rows:
                row.claimed_until = now + self._claim
            return [
                _Claimed(
                    r.id, r.tenant_id, r.url, r.payload, r.attempts, secrets.get(r.tenant_id, [])
                )
                for r in rows
            ]

    async def _post(self, row: _Claimed) -> _Result:
        try:
            # Again at send time: the name may resolve elsewhere than when it was set.
            await check_callback_url(row.url, self._policy)
        except CallbackURLRefused as exc:
            return _Result(None, None, f"{_REFUSED_URL}: {exc}", 0)
        sent_at = datetime.now(UTC).replace(microsecond=0)
        headers = {
            "content-type": "application/json",
            "user-agent": "dynaseal-gateway",
            "webhook-id": row.id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
        }
        if row.secrets:
            headers["webhook-signature"] = webhook_secrets.signature_header(
                row.secrets, row.id, sent_at, row.payload
            )
        started = time.monotonic()
        status_code: int | None = None
        retry_after: float | None = None
        try:
            # The whole exchange is bounded, not just each read: a receiver dripping
            # bytes cannot hold the row. Its answer body is never read.
            async with (
                asyncio.timeout(self._timeout),
                self._client().post(
                    row.url, data=row.payload, headers=headers, allow_redirects=False
                ) as r,
            ):
                status_code = r.status
                retry_after = retry_after_seconds(r.headers.get("retry-after"), datetime.now(UTC))
            error = None if 200 <= status_code < 300 else f"HTTP {status_code}"
        except TimeoutError:
            error = f"no answer within {self._timeout:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration_ms = round((time.monotonic() - started) * 1000)
        return _Result(status_code, retry_after, error, duration_ms)

    def _next_state(self, row: _Claimed, result: _Result, attempt: int) -> dict[str, Any]:
        """The row's new columns after ``attempt`` ended with ``result``."""
        now = datetime.now(UTC)
        done = {"delivered_at": None, "next_attempt_at": now, "last_error": result.error}
        if result.error is None:
            log.debug("callback %s delivered to %s", row.id, row.url)
            return {**done, "status": "delivered", "delivered_at": now}
        if result.status_code == 410:
            log.warning(
                "callback endpoint %s answered 410: disabled until its URL is set again", row.url
            )
            return {**done, "status": "disabled", "last_error": "HTTP 410: endpoint disabled"}
        if result.status_code is None and result.error.startswith(_REFUSED_URL):
            return {**done, "status": "failed"}
        if attempt > len(self._schedule):
            log.error(
                "callback %s failed for good after %d attempts: %s", row.id, attempt, result.error
            )
            return {**done, "status": "failed"}
        delay = self._schedule[attempt - 1] * random.uniform(0.8, 1.2)
        if result.retry_after is not None:
            delay = max(delay, min(result.retry_after, self._max_delay))
        log.warning(
            "callback %s attempt %d failed (%s); retry in %.1fs",
            row.id,
            attempt,
            result.error,
            delay,
        )
        return {**done, "status": "pending", "next_attempt_at": now + timedelta(seconds=delay)}

    async def _attempt(self, row: _Claimed) -> tuple[datetime, _Result]:
        attempted_at = datetime.now(UTC)
        return attempted_at, await self._post(row)

    async def _record(self, rows: list[_Claimed], outcomes: list[tuple[datetime, _Result]]) -> None:
        attempts, updates, gone = [], [], set()
        for row, (attempted_at, result) in zip(rows, outcomes, strict=True):
            attempt = row.attempts + 1
            attempts.append(
                {
                    "delivery_id": row.id,
                    "attempt": attempt,
                    "attempted_at": attempted_at,
                    "url": row.url,
                    "status_code": result.status_code,
                    "error": result.error,
                    "duration_ms": result.duration_ms,
                }
            )
            state = self._next_state(row, result, attempt)
            updates.append({"id": row.id, "attempts": attempt, "claimed_until": None, **state})
            if result.status_code == 410:
                gone.add(row.tenant_id)
        async with self._db.transaction() as session:
            await session.execute(insert(CallbackAttempt), attempts)
            await session.execute(update(CallbackDelivery), updates)
            for tenant_id in gone:
                await outbox.disable_endpoint(session, tenant_id)
        retries = [u["next_attempt_at"] for u in updates if u["status"] == "pending"]
        if retries:
            self._wake_at(min(retries))

    def _wake_at(self, when: datetime) -> None:
        """Short retry delays (tests, ``Retry-After: 0``) need not wait for the next poll."""
        delay = (when - datetime.now(UTC)).total_seconds()
        if delay < self._poll_seconds:
            asyncio.get_running_loop().call_later(max(delay, 0.0), self._wake.set)
