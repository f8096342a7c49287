"""The one place a request is settled, whatever ended it.

The proxy calls :meth:`Settler.begin` as an admitted request goes upstream (its intent,
:mod:`.intents`) and :meth:`Settler.settle` exactly once when it ends. Settling frees
the request's reservation for what it really used, counts those tokens against its rate
limits, and hands it to the ledger writer, which books it durably with its callback —
and returns only once that is committed, so the device never sees the end of an answer
that is not in the ledger.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dynaseal.core import tracing
from dynaseal.core.access_log import note
from dynaseal.gateway.admission.gatekeeper import Admission
from dynaseal.gateway.admission.limiters import RateLimiter
from dynaseal.gateway.budget.store import BudgetStore
from dynaseal.gateway.relay.transcript import Transcript
from dynaseal.gateway.settlement import intents
from dynaseal.gateway.settlement.measure import Settled, Status, finish
from dynaseal.gateway.settlement.writer import LedgerWriter

if TYPE_CHECKING:
    from dynaseal.gateway.metrics import GatewayMetrics

log = logging.getLogger("dynaseal.gateway")


class Settler:
    """Settles the requests of one gateway process, with the stores that admitted them."""

    def __init__(
        self,
        budget: BudgetStore,
        limiter: RateLimiter,
        ledger: LedgerWriter,
        metrics: GatewayMetrics,
        process_id: str,
    ) -> None:
        self._process_id = process_id  # owns the intents (its lease: :mod:`.leases`)
        self._budget = budget
        self._limiter = limiter
        self._ledger = ledger
        self._metrics = metrics

    def begin(self, admission: Admission) -> None:
        """The request goes upstream: record it in flight (group-committed, not awaited)."""
        self._ledger.opened(intents.row(admission, self._process_id))

    @tracing.traced("dynaseal.settle")
    async def settle(self, admission: Admission, transcript: Transcript, status: Status) -> Settled:
        """A request ended: free its place in flight and its reservation, count its
        tokens, record it durably."""
        if admission.slot is not None:
            admission.slot.release()
        settled = finish(admission, transcript, status)
        admission.used = settled.amounts  # what the answer's budget headers give back
        note(tokens=settled.used, outcome=status)
        self._metrics.settled(settled)
        with self._metrics.budget_call("release"):
            await self._budget.release(admission.grant, admission.reservation, settled.amounts)
        if admission.rate_scopes:
            try:
                await self._limiter.add_tokens(admission.rate_scopes, settled.used)
            except Exception as exc:  # the ledger has the usage; only the limit is lenient
                log.warning("could not count %d tokens against rate limits: %s", settled.used, exc)
        await self._ledger.submit(settled)  # durable before the answer ends
        return settled
