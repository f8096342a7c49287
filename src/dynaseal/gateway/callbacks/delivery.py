"""Delivering usage callbacks from the outbox until the tenant's backend says 2xx.

A background task per gateway process claims due rows (:mod:`.outbox`), sends each one
(:mod:`.sender`), lets the retry policy (:mod:`.retry`) say what becomes of it —
delivered, retried later with back-off and jitter (honouring ``Retry-After``), or given
up on after HTTP 410 or the last retry — and records every attempt in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dynaseal.core import tracing
from dynaseal.gateway.callbacks import batches, outbox
from dynaseal.gateway.callbacks.outbox import Attempt, Claimed
from dynaseal.gateway.callbacks.retry import DEFAULT_RETRY_SCHEDULE, RetryPolicy
from dynaseal.gateway.callbacks.sender import CallbackSender
from dynaseal.gateway.callbacks.url_policy import CallbackPolicy
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.storage import Database

if TYPE_CHECKING:
    from dynaseal.gateway.metrics import GatewayMetrics
    from dynaseal.gateway.settings import GatewaySettings

log = logging.getLogger("dynaseal.gateway.delivery")

_BATCH = 32


def _log(attempt: Attempt) -> None:
    """The operator's log: the particulars the tenant's attempt log leaves out."""
    row, result, step = attempt.delivery, attempt.result, attempt.step
    why = result.detail or result.error
    if step.status == "delivered":
        log.debug("callback %s delivered to %s", row.id, row.url)
    elif step.status == "disabled":
        log.warning(
            "callback endpoint %s answered 410: disabled until its URL is set again", row.url
        )
    elif step.exhausted:
        log.error(
            "callback %s failed for good after %d attempts: %s",
            row.id,
            attempt.number,
            why,
        )
    elif step.status == "failed":
        log.warning("callback %s to %s refused: %s", row.id, row.url, why)
    elif step.status == "pending":
        log.warning(
            "callback %s attempt %d failed (%s); retry in %.1fs",
            row.id,
            attempt.number,
            why,
            step.retry_in,
        )


def delivers_inline(settings: GatewaySettings) -> bool:
    """Whether the serving process sends callbacks itself (else a worker process does)."""
    return settings.callback_delivery in ("auto", "inline")


class _NoWatcher:
    """The ledger's watcher when another process delivers: it polls, nobody tells it."""

    def notify(self) -> None:
        pass


NO_WATCHER = _NoWatcher()


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        box: SecretsBox,
        policy: CallbackPolicy,
        *,
        timeout: float,
        metrics: GatewayMetrics,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        poll_seconds: float = 1.0,
        gather_seconds: float = 0.0,
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._box = box
        self._sender = CallbackSender(policy, timeout=timeout)
        self._retry = RetryPolicy(retry_schedule)
        # Long enough for one bounded attempt and its bookkeeping; after that a claim
        # is taken to belong to a crashed worker.
        self._claim = timedelta(seconds=2 * timeout + 5)
        self._poll_seconds = poll_seconds
        # Let callbacks gather briefly after a wake-up: one round sends many.
        self._gather_seconds = gather_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_settings(
        cls,
        settings: GatewaySettings,
        db: Database,
        box: SecretsBox,
        policy: CallbackPolicy,
        metrics: GatewayMetrics,
    ) -> DeliveryWorker:
        return cls(
            db,
            box,
            policy,
            timeout=settings.callback_timeout_seconds,
            metrics=metrics,
            retry_schedule=settings.callback_retry_schedule_seconds,
            poll_seconds=settings.callback_poll_seconds,
            gather_seconds=settings.callback_gather_seconds,
        )

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
                await asyncio.wait_for(self.deliver_due(), self._sender.timeout + 1)
            except Exception as exc:
                log.warning("last callback round before stopping failed: %s", exc)
        await self._sender.aclose()

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
        """Gather the batches that are due, claim and send every due row once, then
        record every outcome in one transaction; returns how many were attempted."""
        next_batch = await batches.gather_due(self._db)
        if next_batch is not None:
            self._wake_in(next_batch)
        claimed = await outbox.claim_due(self._db, self._box, claim_for=self._claim, limit=_BATCH)
        if claimed:
            attempts = await asyncio.gather(*(self._attempt(row) for row in claimed))
            for attempt in attempts:
                _log(attempt)
                self._metrics.callback_attempted(attempt)
            await outbox.record_attempts(self._db, attempts)
            retries = [a.step.retry_in for a in attempts if a.step.retry_in is not None]
            if retries:
                self._wake_in(min(retries))
        return len(claimed)

    async def _attempt(self, row: Claimed) -> Attempt:
        attempted_at = datetime.now(UTC)
        with tracing.span("dynaseal.callback.deliver", {"dynaseal.tenant_id": row.tenant_id}):
            result = await self._sender.send(row)
        return Attempt(row, attempted_at, result, self._retry.after(result, row.attempts + 1))

    def _wake_in(self, delay: float) -> None:
        """Short retry delays (tests, ``Retry-After: 0``) need not wait for the next poll."""
        if delay < self._poll_seconds:
            asyncio.get_running_loop().call_later(max(delay, 0.0), self._wake.set)
