"""Group commit of settled requests: one transaction for all the requests that ended
while the previous one was being written.

Requests that end while a commit is running go into the next one together, so the
database sees one transaction per batch instead of one per request. When the budget
lives in the database, requests await :meth:`LedgerWriter.submit`'s future and each batch
is written at once; otherwise (memory, Redis) nobody waits and the writer lets requests
gather for a few milliseconds first, which keeps one process's database work small. A
crash loses at most the requests of that window — as it would lose a request whose
commit had not finished. Pending requests are written before the gateway stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.exc import IntegrityError

from dynaseal.gateway.budget.store import BudgetStore
from dynaseal.gateway.settlement import ledger
from dynaseal.gateway.settlement.measure import Settled
from dynaseal.storage import Database

if TYPE_CHECKING:
    from dynaseal.gateway.metrics import GatewayMetrics

log = logging.getLogger("dynaseal.gateway")

_MAX_BATCH = 50
_RETRY_SECONDS = 1.0


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
        # How long to let requests gather before writing, when nobody awaits the write.
        self._gather_seconds = gather_seconds
        self._budget = budget
        self._outbox_watcher = outbox_watcher
        self._pending: list[tuple[Settled, asyncio.Future[None]]] = []
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

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self._gather_seconds and not self._closing:
                await asyncio.sleep(self._gather_seconds)
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
                await self._write(batch)
            if self._closing:
                return

    async def _write(self, batch: list[tuple[Settled, asyncio.Future[None]]]) -> None:
        while True:
            try:
                with self._metrics.ledger_commit(len(batch), len(self._pending)):
                    async with self._db.transaction() as session:
                        queued = await ledger.record(session, self._budget, [s for s, _ in batch])
            except IntegrityError as exc:
                if len(batch) == 1:  # cannot succeed by retrying: report and move on
                    batch[0][1].set_exception(exc)
                    return
                for one in batch:  # find the one that cannot be written
                    await self._write([one])
                return
            except Exception as exc:  # the database is down or busy: keep the batch, retry
                log.error("writing %d settled requests failed, retrying: %s", len(batch), exc)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            if queued:
                self._outbox_watcher.notify()
            return


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a settled request could not be recorded: %s", future.exception())
