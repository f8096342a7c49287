"""Waiting for dependencies at start-up: a replica started before its database (or Redis)
is up waits with a clear log line instead of crashing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("dynaseal")


async def wait_for(
    name: str, probe: Callable[[], Awaitable[object]], *, within: float, interval: float = 1.0
) -> None:
    """Call ``probe`` until it succeeds; give up after ``within`` seconds with the last error."""
    deadline = time.monotonic() + within
    attempt = 0
    while True:
        attempt += 1
        try:
            await probe()
        except Exception as exc:
            if time.monotonic() + interval > deadline:
                raise RuntimeError(f"{name} is not reachable after {within:g} s: {exc}") from exc
            log.warning("waiting for %s (attempt %d): %s", name, attempt, exc)
            await asyncio.sleep(interval)
        else:
            if attempt > 1:
                log.info("%s is up", name)
            return
