"""Group commit of the ledger: one transaction for all the requests that ended while the
previous one was being written.

Requests that end while a commit is running go into the next one together, so the
database sees one transaction per batch instead of one per request. Every request awaits
its batch (:meth:`LedgerWriter.submit`'s future) before the device sees the end of its
answer, whatever store holds the budgets: an answer the device saw end is in the ledger.
``gather_seconds`` may let requests gather a little longer before each write (fewer,
larger transactions at the price of that much latency per request).

A request's intent (:mod:`.intents`, :meth:`LedgerWriter.opened`) rides along with the
batches too, nobody waiting for it, once it is :data:`INTENT_DELAY_SECONDS` old: a request
that ends sooner drops its intent unwritten, so quick answers cost no intent at all (a
crash in that window loses the intent of a request nobody was answered yet). Settling
deletes a written intent in the transaction of its ledger row. Pending requests are
written before the gateway stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.gateway.budget.store import BudgetStore
from dynaseal.gateway.settlement import ledger
from dynaseal.gateway.settlement.measure import Settled
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import RequestInFlight

if TYPE_CHECKING:
    from dynaseal.gateway.metrics import GatewayMetrics

log = logging.getLogger("dynaseal.gateway")

_MAX_BATCH = 50
_RETRY_SECONDS = 1.0
INTENT_DELAY_SECONDS = 0.01

_Waiting = tuple[Settled, asyncio.Future[None]]


class OutboxWatcher(Protocol):
    """Who sends the callbacks a batch queued (the delivery worker)."""

    def notify(self) -> None:
        """Rows are due in the outbox: look now rather than at the next poll."""


class LedgerWriter:
    def __init__(
        self,
        db: Database,
        budget: BudgetStore,
        outbox_watcher: OutboxWatcher,
        metrics: GatewayMetrics,
        *,
        gather_seconds: float = 0.0,
        max_backlog: int = 10_000,
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._max_backlog = max_backlog
        # How long to let settled requests gather before writing (each one waits).
        self._gather_seconds = gather_seconds
        self._budget = budget
        self._outbox_watcher = outbox_watcher
        self._pending: list[_Waiting] = []
        self._intents: deque[tuple[float, dict[str, Any]]] = deque()  # (queued at, row)
        self._written: set[str] = set()  # requests in flight whose intent is in the database
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dynaseal-ledger-writer")

    @property
    def backlog(self) -> int:
        return len(self._pending)

    @property
    def backlogged(self) -> bool:
        """Too much usage waits to be written (the database is down or slow): new requests
        should be refused rather than served with their usage only in memory."""
        return len(self._pending) >= self._max_backlog

    def opened(self, intent: dict[str, Any]) -> None:
        """Queue an admitted request's intent (:func:`.intents.row`)."""
        if not self._intents:
            self._wake.set()  # the writer sets its timer by the oldest intent
        self._intents.append((asyncio.get_running_loop().time(), intent))

    def submit(self, settled: Settled) -> asyncio.Future[None]:
        """Queue a finished request; the future resolves once it is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_log_failure)
        self._pending.append((settled, future))
        self._wake.set()
        return future

    async def close(self, within: float) -> None:
        """Write everything still pending (for up to ``within`` seconds), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), within)
        except TimeoutError:
            log.error("stopping with %d settled requests not written", len(self._pending))
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _until_intent_due(self) -> float | None:
        if not self._intents:
            return None
        due = self._intents[0][0] + INTENT_DELAY_SECONDS
        return max(0.0, due - asyncio.get_running_loop().time())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._until_intent_due())
            if self._gather_seconds and not self._closing:
                await asyncio.sleep(self._gather_seconds)
            self._wake.clear()
            while True:
                intents, settles = self._take()
                if not intents and not settles:
                    break
                await self._write(intents, settles)
            if self._closing:
                return

    def _take(self) -> tuple[list[dict[str, Any]], list[_Waiting]]:
        """The next batch: settled requests, and the intents old enough (all of them when
        closing) of requests not among them (those are dropped: never written)."""
        settles, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
        ended = {s.admission.request_id for s, _ in settles}
        if ended:
            self._intents = deque(i for i in self._intents if i[1]["request_id"] not in ended)
        due = asyncio.get_running_loop().time() - INTENT_DELAY_SECONDS
        intents: list[dict[str, Any]] = []
        while self._intents and len(intents) < _MAX_BATCH:
            queued_at, row = self._intents[0]
            if queued_at > due and not self._closing:
                break
            self._intents.popleft()
            intents.append(row)
        return intents, settles

    async def _write(self, intents: list[dict[str, Any]], settles: list[_Waiting]) -> None:
        while True:
            try:
                with self._metrics.ledger_commit(len(settles), len(self._pending)):
                    async with self._db.transaction() as session:
                        queued = await self._record(session, intents, [s for s, _ in settles])
            except IntegrityError as exc:
                if len(intents) + len(settles) == 1:  # cannot succeed by retrying
                    if settles:
                        settles[0][1].set_exception(exc)
                    else:
                        log.error("the intent of a request could not be written: %s", exc)
                    return
                for intent in intents:  # find the one that cannot be written
                    await self._write([intent], [])
                for one in settles:
                    await self._write([], [one])
                return
            except Exception as exc:  # the database is down or busy: keep the batch, retry
                log.error("writing %d settled requests failed, retrying: %s", len(settles), exc)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            self._written.update(intent["request_id"] for intent in intents)
            for settled, future in settles:
                self._written.discard(settled.admission.request_id)
                if not future.done():
                    future.set_result(None)
            if queued:
                self._outbox_watcher.notify()
            return

    async def _record(
        self, session: AsyncSession, intents: list[dict[str, Any]], settled: list[Settled]
    ) -> int:
        """Intents in, settled requests booked and their intents out; returns how many
        callbacks were queued."""
        if intents:
            await session.execute(insert(RequestInFlight), intents)
        if not settled:
            return 0
        queued = await ledger.record(session, self._budget, settled)
        ended = [s.admission.request_id for s in settled if s.admission.request_id in self._written]
        if ended:
            await session.execute(
                delete(RequestInFlight).where(RequestInFlight.request_id.in_(ended))
            )
        return queued


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a settled request could not be recorded: %s", future.exception())
