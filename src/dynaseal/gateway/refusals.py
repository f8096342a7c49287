"""Refused requests, counted per tenant, minute and reason for the console's charts.

The request path only adds one to a counter in memory (:meth:`RefusalCounter.refused`);
a background task adds the counts to ``refusal_counts`` every few seconds with one
multi-row upsert, so a flood of bad keys costs the database one statement per flush,
and replicas simply add up. Which tenant a refusal belongs to is what its key *claims*:
a key naming no tenant of this gateway is filed under ``UNKNOWN_TENANT`` (the
operator's view) — found out at flush time with one lookup, never per request. Counts
not yet written are kept for the next flush when the database is down; at most one
interval's worth is lost if the process dies.

Upstream failures are not counted here: those requests were admitted and are in the
ledger with status ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dynaseal.core.errors import APIError
from dynaseal.gateway.errors import REFUSAL_HEADER
from dynaseal.keys import InvalidKey, peek_chain
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import UNKNOWN_TENANT, RefusalCount, Tenant

if TYPE_CHECKING:
    from dynaseal.gateway.metrics import GatewayMetrics

log = logging.getLogger("dynaseal.gateway")

#: ``x-dynaseal-refusal`` of a refusal → the reason it is counted under.
_REASON_BY_HEADER = {
    "invalid_key": "invalid_key",
    "model_not_allowed": "model",
    "model_not_priced": "model",
    "insufficient_quota": "budget",
    "rate_limited": "rate_limit",
}
#: Every reason counted here, in the order the console shows them.
REASONS = ("invalid_key", "model", "budget", "rate_limit", "bad_request", "unavailable")
#: Distinct (tenant, minute, reason) counters held between flushes; past this, new
#: tenants are counted under UNKNOWN_TENANT so forged ids cannot grow memory.
_MAX_COUNTERS = 10_000
_ROWS_PER_STATEMENT = 500

Counter = tuple[str, int, str]  # tenant id, unix minute, reason
T = TypeVar("T")


def reason_of(error: APIError) -> str:
    """What a refusal is counted as: the refusal header, else by status."""
    header = (error.headers or {}).get(REFUSAL_HEADER)
    if header in _REASON_BY_HEADER:
        return _REASON_BY_HEADER[header]
    return "unavailable" if error.status >= 500 else "bad_request"


def claimed_tenant(authorization: str | None) -> str:
    """The tenant id the presented key (or a child key's root) names, unverified, or
    ``UNKNOWN_TENANT``."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() not in ("bearer", "dpop"):
        return UNKNOWN_TENANT
    try:
        return peek_chain(token.strip()).root.tenant_id
    except InvalidKey:
        return UNKNOWN_TENANT


class RefusalCounter:
    def __init__(self, db: Database, flush_seconds: float, metrics: GatewayMetrics) -> None:
        self._db = db
        self._metrics = metrics
        self._flush_seconds = flush_seconds
        self._counts: dict[Counter, int] = {}
        self._task: asyncio.Task[None] | None = None

    def refused(self, authorization: str | None, error: APIError) -> None:
        """Count one refused request (no I/O; called on the request path)."""
        reason = reason_of(error)
        self._metrics.refused(reason)
        counter = (claimed_tenant(authorization), int(time.time()) // 60 * 60, reason)
        counts = self._counts
        if counter not in counts and len(counts) >= _MAX_COUNTERS:
            counter = (UNKNOWN_TENANT, counter[1], counter[2])
        counts[counter] = counts.get(counter, 0) + 1

    @property
    def pending(self) -> int:
        """Refusals counted but not yet written."""
        return sum(self._counts.values())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dynaseal-refusal-counter")

    async def aclose(self) -> None:
        """Stop the periodic flush and write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # the counts were put back: the next round retries
                log.warning("could not write refusal counts, retrying: %s", exc)

    async def flush(self) -> int:
        """Add the counts so far to the table; returns how many refusals were written."""
        counts, self._counts = self._counts, {}
        if not counts:
            return 0
        try:
            await self._write(counts)
        except BaseException:
            for counter, n in counts.items():  # nothing was committed: keep them
                self._counts[counter] = self._counts.get(counter, 0) + n
            raise
        return sum(counts.values())

    async def _write(self, counts: dict[Counter, int]) -> None:
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        async with self._db.transaction() as session:
            claimed = sorted({tenant for tenant, _, _ in counts} - {UNKNOWN_TENANT})
            known: set[str] = set()
            for chunk in _chunks(claimed):
                known.update(await session.scalars(select(Tenant.id).where(Tenant.id.in_(chunk))))
            rows: dict[Counter, int] = {}
            for (tenant, minute, reason), n in counts.items():
                counter = (tenant if tenant in known else UNKNOWN_TENANT, minute, reason)
                rows[counter] = rows.get(counter, 0) + n
            values: list[dict[str, object]] = [
                {
                    "tenant_id": tenant,
                    "minute": datetime.fromtimestamp(minute, UTC),
                    "reason": reason,
                    "count": n,
                }
                for (tenant, minute, reason), n in rows.items()
            ]
            for rows_chunk in _chunks(values):
                statement = insert(RefusalCount).values(rows_chunk)
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=[
                            RefusalCount.tenant_id,
                            RefusalCount.minute,
                            RefusalCount.reason,
                        ],
                        set_={"count": RefusalCount.count + statement.excluded.count},
                    )
                )


def _chunks(items: list[T]) -> Iterable[list[T]]:
    for start in range(0, len(items), _ROWS_PER_STATEMENT):
        yield items[start : start + _ROWS_PER_STATEMENT]
