"""The lease of a gateway process: a row saying "this process is alive", renewed while it
runs. The requests in flight (:mod:`.intents`) a process owns are only ever reclaimed
once its lease has run out, so a replica that is still streaming keeps its own.

A lease runs ``lease_seconds`` past its last renewal and is renewed three times per
lease. A process cut off from the database for longer than a lease may see its requests
settled as ``interrupted`` by another that was not (the ledger's primary key keeps each
request to one row, whichever settles it first); when every process was cut off, none
reclaims before it has had the database for a whole lease, by which time the live ones
have renewed theirs (:mod:`.recovery`).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, delete, exists, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.storage import Database
from dynaseal.storage.gateway_models import GatewayProcess, RequestInFlight
from dynaseal.storage.types import utcnow

log = logging.getLogger("dynaseal.gateway")


class ProcessLease:
    """This process's lease; ``id`` owns its requests in flight."""

    def __init__(self, db: Database, lease_seconds: float) -> None:
        self._db = db
        self.lease_seconds = lease_seconds
        self.id = f"gw_{uuid.uuid4().hex}"

    @property
    def renew_every(self) -> float:
        return self.lease_seconds / 3

    def _until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_seconds)

    async def take(self) -> None:
        """Register this process (before it serves: its intents must never look orphaned)."""
        now = utcnow()
        async with self._db.transaction() as session:
            await session.execute(
                insert(GatewayProcess).values(
                    id=self.id,
                    host=socket.gethostname()[:256],
                    pid=os.getpid(),
                    started_at=now,
                    heartbeat_at=now,
                    lease_until=self._until(now),
                )
            )

    async def renew(self) -> None:
        """Extend the lease; take it again if it ran out and was dropped meanwhile."""
        now = utcnow()
        async with self._db.transaction() as session:
            renewed: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
                update(GatewayProcess)
                .where(GatewayProcess.id == self.id)
                .values(heartbeat_at=now, lease_until=self._until(now))
            )
        if not renewed.rowcount:
            log.warning("the lease of %s had run out: taking it again", self.id)
            await self.take()

    async def give_up(self) -> None:
        """At a clean stop, once every request of this process was settled."""
        async with self._db.transaction() as session:
            await session.execute(delete(GatewayProcess).where(GatewayProcess.id == self.id))


async def forget_expired(session: AsyncSession) -> None:
    """Drop the leases that ran out and own no request in flight any more."""
    owns = exists().where(RequestInFlight.owner == GatewayProcess.id)
    await session.execute(
        delete(GatewayProcess).where(GatewayProcess.lease_until < utcnow(), ~owns)
    )
