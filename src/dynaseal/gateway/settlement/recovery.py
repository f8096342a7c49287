"""Settling the requests of gateway processes that died mid-answer.

A process takes its lease (:mod:`.leases`) before it serves and renews it while it runs.
At each renewal (and at start-up when it is the only process) it reclaims the intents
(:mod:`.intents`) whose owner's lease ran out: each becomes a request settled as
``interrupted``, charged its reservation, written by :func:`.ledger.record` exactly as
any settled request — key budget booked, ledger row, callback in the outbox. The
intents are deleted in the same transaction, on the condition that their owner is still
not alive, so two processes reclaiming at once settle each request once (the loser
deletes nothing).

Budgets held outside the database follow: in Redis the dead process's reservation is
turned into the charge; in memory (one process per database) nothing of the dead
process survives, so the booking only adds to what a key's state is seeded with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.sql import ColumnElement

from dynaseal.gateway.budget.rules import Amounts, Reservation
from dynaseal.gateway.budget.store import BudgetStore
from dynaseal.gateway.settlement import intents, ledger
from dynaseal.gateway.settlement.leases import ProcessLease, forget_expired
from dynaseal.gateway.settlement.measure import Settled
from dynaseal.gateway.settlement.writer import OutboxWatcher
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import GatewayProcess, RequestInFlight
from dynaseal.storage.types import utcnow

if TYPE_CHECKING:
    from dynaseal.gateway.metrics import GatewayMetrics

log = logging.getLogger("dynaseal.gateway")


class Recovery:
    """Keeps this process's lease and settles what dead processes left in flight.

    ``sole_process``: budgets live in this process's memory, which only works with one
    gateway process on the database (:mod:`dynaseal.gateway.exclusive`): any intent not
    its own is then a dead process's, lease or not, and no reservation of it survives.
    """

    def __init__(
        self,
        db: Database,
        budget: BudgetStore,
        lease: ProcessLease,
        outbox_watcher: OutboxWatcher,
        metrics: GatewayMetrics,
        *,
        sole_process: bool,
    ) -> None:
        self._db = db
        self._budget = budget
        self._lease = lease
        self._outbox_watcher = outbox_watcher
        self._metrics = metrics
        self._sole_process = sole_process
        self._task: asyncio.Task[None] | None = None
        self._leased = False
        # Since when the lease was renewed without a failure (loop time; None: it failed).
        self._renewed_since: float | None = None

    async def start(self) -> None:
        """Take the lease, then settle what dead processes left: at once when this is the
        only process; else once this one has had the database for a whole lease, so
        that after an outage every live process renewed its lease first."""
        await self._lease.take()
        self._leased = True
        self._renewed_since = asyncio.get_running_loop().time()
        if self._sole_process:  # before the first request: budgets are seeded after this
            await self.reclaim()
        self._task = asyncio.create_task(self._run(), name="dynaseal-lease")

    async def stop(self) -> None:
        """After the last request was settled: let the lease go."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self._leased:
            return
        try:
            await self._lease.give_up()
        except Exception as exc:  # it runs out by itself
            log.warning("could not give up the lease of %s: %s", self._lease.id, exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._lease.renew_every)
            now = asyncio.get_running_loop().time()
            try:
                await self._lease.renew()
                if self._renewed_since is None:
                    self._renewed_since = now
                if self._sole_process or now - self._renewed_since >= self._lease.lease_seconds:
                    await self.reclaim()
            except Exception as exc:  # the database is down: try again at the next turn
                self._renewed_since = None
                log.error("could not renew the lease of %s: %s", self._lease.id, exc)

    def _orphaned(self) -> ColumnElement[bool]:
        owner = RequestInFlight.owner
        if self._sole_process:
            return owner != self._lease.id
        live = select(GatewayProcess.id).where(GatewayProcess.lease_until > utcnow())
        return owner.not_in(live)

    async def reclaim(self) -> int:
        """Settle every orphaned intent as ``interrupted``; how many there were."""
        async with self._db.transaction() as session:
            taken = await session.scalars(
                delete(RequestInFlight).where(self._orphaned()).returning(RequestInFlight)
            )
            batch = [intents.interrupted(intent) for intent in taken.all()]
            queued = await ledger.record(session, self._budget, batch) if batch else 0
            await forget_expired(session)
        if not batch:
            return 0
        await self._release(batch)
        if queued:
            self._outbox_watcher.notify()
        log.warning("settled %d requests of stopped gateway processes as interrupted", len(batch))
        return len(batch)

    async def _release(self, batch: Sequence[Settled]) -> None:
        """Swap the dead requests' reservations for their charge in the hot state."""
        for settled in batch:
            self._metrics.settled(settled)
            reservation = settled.admission.reservation
            if self._sole_process:  # the reservation died with the process that held it
                reservation = Reservation(
                    Amounts(),
                    reservation.completion_cap,
                    reservation.prompt_estimate,
                    reservation.left,
                )
            await self._budget.release(settled.admission.grant, reservation, settled.amounts)
