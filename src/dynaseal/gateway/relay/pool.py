"""The upstream connection pool: how big it is, and who gets the next free connection.

Every request in flight holds an upstream connection and a device connection, two file
descriptors: the pool is sized from the process's open-files limit (raised to its hard
limit at start when allowed), unless ``UPSTREAM_MAX_CONNECTIONS`` says otherwise.

When the pool is full a request waits for a connection rather than failing, for as long
as it would wait for a slow upstream. Waiting is fair between tenants: a freed connection
goes to the waiting tenant that holds the fewest, so one tenant's flood of slow streams
delays another tenant's request by at most one stream ending, never by the whole queue.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import deque

log = logging.getLogger("dynaseal.gateway")

#: Descriptors kept for everything but relayed requests: the listening socket, database
#: and Redis connections, callback deliveries, log files.
RESERVED_FILES = 256
#: The automatic size never goes past this: memory per open stream, not descriptors,
#: is then what runs out first. More on one process: set UPSTREAM_MAX_CONNECTIONS.
MAX_AUTOMATIC_SIZE = 4096
MIN_SIZE = 16


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard one if allowed; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # e.g. macOS refuses RLIM_INFINITY
            log.info("could not raise the open-files limit from %d to %d", soft, hard)
    return MAX_AUTOMATIC_SIZE * 2 + RESERVED_FILES if soft == resource.RLIM_INFINITY else soft


def automatic_size(open_files: int) -> int:
    """Two descriptors per relayed request, within bounds."""
    return max(MIN_SIZE, min(MAX_AUTOMATIC_SIZE, (open_files - RESERVED_FILES) // 2))


class PoolTimeout(Exception):
    """No upstream connection came free within the request's wait."""


class UpstreamPool:
    """Admission to the upstream pool, ``capacity`` requests at once, shared fairly."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._held: dict[str, int] = {}
        self._total = 0
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    @property
    def in_use(self) -> int:
        return self._total

    def _take(self, tenant: str) -> None:
        self._total += 1
        self._held[tenant] = self._held.get(tenant, 0) + 1

    async def acquire(self, tenant: str, wait_seconds: float) -> None:
        """Hold one connection for ``tenant``; wait (fairly) up to ``wait_seconds``."""
        if self._total < self.capacity and not self._waiting:
            self._take(tenant)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(tenant, deque())
        queue.append(waiter)
        try:
            async with asyncio.timeout(wait_seconds):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release(tenant)  # handed over just as the wait ended
            else:
                waiter.cancel()
                self._forget(tenant, queue, waiter)
            if isinstance(exc, TimeoutError):
                raise PoolTimeout from None
            raise

    def _forget(
        self, tenant: str, queue: deque[asyncio.Future[None]], waiter: asyncio.Future[None]
    ) -> None:
        if waiter in queue:
            queue.remove(waiter)
        if not queue and self._waiting.get(tenant) is queue:
            del self._waiting[tenant]

    def release(self, tenant: str) -> None:
        """Give a connection back: to the waiting tenant holding the fewest, if any."""
        self._total -= 1
        held = self._held[tenant] - 1
        if held:
            self._held[tenant] = held
        else:
            del self._held[tenant]
        while self._waiting:
            chosen = min(self._waiting, key=lambda t: self._held.get(t, 0))
            queue = self._waiting[chosen]
            waiter = queue.popleft()
            if not queue:
                del self._waiting[chosen]
            if not waiter.done():  # else its wait ended this very moment: next one
                self._take(chosen)
                waiter.set_result(None)
                return
