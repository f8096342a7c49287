"""Group commit of the ledger: one transaction for all the requests that ended (and
began) while the previous one was being written.

Requests that end while a commit is running go into the next one together, so the
database sees one transaction per batch instead of one per request. Every request awaits
its batch (:meth:`LedgerWriter.submit`'s future) before the device sees the end of its
answer, whatever store holds the budgets: an answer the device saw end is in the ledger.
``gather_seconds`` may let requests gather a little longer before each write (fewer,
larger transactions at the price of that much latency per request).

A request's intent (:mod:`.intents`, :meth:`LedgerWriter.opened`) goes through the same
queue without anyone waiting for it; settling removes it in the transaction of its
ledger row, and when both fall into one batch neither is written. When only intents
wait, the writer gives requests :data:`INTENT_DELAY_SECONDS` to end first: an answer that
quick costs no intent at all, and a longer one has its intent committed that much later
(a crash in between loses the intent of a request nobody was answered yet). Pending
requests are written before the gateway stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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

#: What waits to be written: a request's intent (a row, nobody waits) or a settled
#: request (its future resolves once committed).
_Item = dict[str, Any] | tuple[Settled, asyncio.Future[None]]


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
        self._pending: list[_Item] = []
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()  # a settled request waits
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
        self._pending.append(intent)
        self._wake.set()

    def submit(self, settled: Settled) -> asyncio.Future[None]:
        """Queue a finished request; the future resolves once it is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_log_failure)
        self._pending.append((settled, future))
        self._ended.set()
        self._wake.set()
        return future

    async def close(self, within: float) -> None:
        """Write everything still pending (for up to ``within`` seconds), then stop."""
        self._closing = True
        self._ended.set()
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

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self._gather_seconds and not self._closing:
                await asyncio.sleep(self._gather_seconds)
            if not self._ended.is_set():  # intents only: quick requests end meanwhile
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ended.wait(), INTENT_DELAY_SECONDS)
            self._wake.clear()
            self._ended.clear()
            while self._pending:
                batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
                await self._write(batch)
            if self._closing:
                return

    async def _write(self, batch: list[_Item]) -> None:
        while True:
            settles = [item for item in batch if isinstance(item, tuple)]
            try:
                with self._metrics.ledger_commit(len(settles), len(self._pending)):
                    async with self._db.transaction() as session:
                        queued = await self._record(session, batch, [s for s, _ in settles])
            except IntegrityError as exc:
                if len(batch) == 1:  # cannot succeed by retrying: report and move on
                    if settles:
                        settles[0][1].set_exception(exc)
                    else:
                        log.error("the intent of a request could not be written: %s", exc)
                    return
                for one in batch:  # find the one that cannot be written
                    await self._write([one])
                return
            except Exception as exc:  # the database is down or busy: keep the batch, retry
                log.error("writing %d settled requests failed, retrying: %s", len(batch), exc)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            for _, future in settles:
                if not future.done():
                    future.set_result(None)
            if queued:
                self._outbox_watcher.notify()
            return

    async def _record(
        self, session: AsyncSession, batch: list[_Item], settled: list[Settled]
    ) -> int:
        """Intents in, settled requests booked and their intents out (an intent settled in
        the same batch is neither); returns how many callbacks were queued."""
        ended = {s.admission.request_id for s in settled}
        intents = [item for item in batch if isinstance(item, dict)]
        opened = [i for i in intents if i["request_id"] not in ended]
        if opened:
            await session.execute(insert(RequestInFlight), opened)
        if not settled:
            return 0
        queued = await ledger.record(session, self._budget, settled)
        written_before = ended - {i["request_id"] for i in intents}
        if written_before:
            await session.execute(
                delete(RequestInFlight).where(RequestInFlight.request_id.in_(written_before))
            )
        return queued


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a settled request could not be recorded: %s", future.exception())
