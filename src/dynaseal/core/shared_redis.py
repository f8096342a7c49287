"""Redis, where the processes and replicas of a service share their hot state, and what
happens when it is gone.

Redis unreachable means a process cannot know what the others counted, so callers fail
closed: the request gets 503 with ``Retry-After`` rather than pass unchecked. Nothing
needs restarting when Redis is back: every command reconnects by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from dynaseal.core.errors import APIError

log = logging.getLogger("dynaseal")

RETRY_AFTER_SECONDS = 1


def connect(url: str) -> Redis:
    # Short timeouts: a request should fail closed in about a second, not hang. One
    # immediate retry replaces a pooled connection that died with a restarted server.
    return Redis.from_url(
        url,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        health_check_interval=10,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )


def shared_state_unavailable() -> APIError:
    return APIError(
        503,
        "The service's shared state is unavailable; retry shortly.",
        code="service_unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@contextmanager
def fail_closed() -> Iterator[None]:
    """Turn any Redis failure inside the block into a 503 for the caller."""
    try:
        yield
    except RedisError as exc:
        log.warning("Redis unavailable, refusing the request: %s", exc)
        raise shared_state_unavailable() from None
