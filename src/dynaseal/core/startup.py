"""Start-up helpers both services share: waiting for dependencies, and one-time set-up
steps that stay correct when several processes run them at once.

A replica started before its database (or Redis) is up waits with a clear log line
instead of crashing; when the wait is over, :class:`DependencyUnavailable` says which
dependency and why in one line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from dynaseal.core.errors import APIError

log = logging.getLogger("dynaseal")

T = TypeVar("T")


class DependencyUnavailable(Exception):
    """A database or Redis did not answer within the start-up timeout."""


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
                raise DependencyUnavailable(
                    f"{name} is not reachable after {within:g} s: {exc or type(exc).__name__}"
                ) from exc
            log.warning("waiting for %s (attempt %d): %s", name, attempt, exc)
            await asyncio.sleep(interval)
        else:
            if attempt > 1:
                log.info("%s is up", name)
            return


async def create_if_absent(job: Callable[[], Awaitable[T]]) -> T:
    """Run an insert-if-absent start-up step (admin account, demo data).

    When another process inserted the same row between our look-up and our insert (the
    unique constraint refuses ours), run the step once more: it now finds the row.
    """
    try:
        return await job()
    except IntegrityError:
        pass
    except APIError as exc:  # the step's own "already exists" check lost the same race
        if exc.status != 409:
            raise
    log.debug("a concurrent start-up created the row first; reading it back")
    return await job()
