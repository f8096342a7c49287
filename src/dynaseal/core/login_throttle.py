"""Throttling password guessing, without letting a guesser lock the owner out.

Failed logins are counted in a fixed window on three scopes: the (account, address)
pair, the address (any account), and the account (any address). Past a limit the login
answers 429 with ``Retry-After`` without checking the password. The pair limit is the
tight one, so guessing from one address blocks that address only; the account-wide limit
is looser and bounds guessing spread over many addresses, and it does not apply from an
address the account logged in from successfully before — the owner's usual place.

An attempt is counted *before* the password is checked (and forgiven when it succeeds),
so concurrent guesses cannot all slip in under the limit. Counts live in the process, or
in Redis when ``REDIS_URL`` is set, so that every worker and replica sees the same ones;
if Redis cannot be reached, logins fail closed (503).
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from redis.asyncio import Redis
from starlette.requests import Request

from dynaseal.core.errors import too_many_requests, unauthorized
from dynaseal.core.settings import ServiceSettings
from dynaseal.core.shared_redis import fail_closed

T = TypeVar("T")

#: How long a successful login keeps its address exempt from the account-wide limit.
KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600.0


class FailureCounts(Protocol):
    """Windowed counters, in the process or in Redis."""

    async def admit(self, limits: Sequence[tuple[str, int]], window: float) -> float:
        """Count one attempt on every key unless a key with a limit (> 0) is already at
        it; return 0 when counted, else the seconds until that key's window ends."""

    async def succeeded(self, forgive: Sequence[str], clear: str, remember: str) -> None:
        """Take back one attempt from ``forgive``, drop ``clear``, keep ``remember`` set
        for :data:`KNOWN_ADDRESS_SECONDS`."""

    async def is_set(self, key: str) -> bool: ...


@dataclass(slots=True)
class _Count:
    ends: float
    value: int


class LocalCounts:
    """Counts of one process; bounded so that a flood of names cannot exhaust memory."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._counts: dict[str, _Count] = {}
        self._max_keys = max_keys

    def _live(self, key: str, now: float) -> _Count | None:
        count = self._counts.get(key)
        if count is not None and count.ends <= now:
            del self._counts[key]
            return None
        return count

    async def admit(self, limits: Sequence[tuple[str, int]], window: float) -> float:
        now = time.monotonic()
        for key, limit in limits:
            count = self._live(key, now)
            if limit and count is not None and count.value >= limit:
                return count.ends - now
        for key, _ in limits:
            count = self._live(key, now)
            if count is None:
                self._make_room(now)
                self._counts[key] = _Count(now + window, 1)
            else:
                count.value += 1
        return 0.0

    async def succeeded(self, forgive: Sequence[str], clear: str, remember: str) -> None:
        now = time.monotonic()
        for key in forgive:
            count = self._live(key, now)
            if count is not None and count.value > 0:
                count.value -= 1
        self._counts.pop(clear, None)
        self._make_room(now)
        self._counts[remember] = _Count(now + KNOWN_ADDRESS_SECONDS, 1)

    async def is_set(self, key: str) -> bool:
        return self._live(key, time.monotonic()) is not None

    def _make_room(self, now: float) -> None:
        if len(self._counts) < self._max_keys:
            return
        for key in [k for k, c in self._counts.items() if c.ends <= now]:
            del self._counts[key]
        while len(self._counts) >= self._max_keys:  # the oldest entries go first
            del self._counts[next(iter(self._counts))]


# KEYS: the counters; ARGV[1]: the window in ms; ARGV[i + 1]: the limit of KEYS[i] (0: none).
_ADMIT = """
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i + 1])
  if limit > 0 and tonumber(redis.call('GET', key) or '0') >= limit then
    local ttl = redis.call('PTTL', key)
    if ttl < 1 then ttl = 1 end
    return ttl
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
end
return 0
"""

# KEYS: the counters to take one back from, then the one to drop, then the one to set;
# ARGV[1]: how long that one stays set, in ms.
_SUCCEEDED = """
local n = #KEYS
for i = 1, n - 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('DECR', KEYS[i]) end
end
redis.call('DEL', KEYS[n - 1])
redis.call('SET', KEYS[n], 1, 'PX', ARGV[1])
return 0
"""


class RedisCounts:
    """Counts every process of the service shares; each change is one atomic script."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._admit = redis.register_script(_ADMIT)
        self._succeeded = redis.register_script(_SUCCEEDED)

    async def admit(self, limits: Sequence[tuple[str, int]], window: float) -> float:
        args = [_ms(window), *(limit for _, limit in limits)]
        with fail_closed():
            wait_ms = await self._admit(keys=[key for key, _ in limits], args=args)
        return int(wait_ms) / 1000

    async def succeeded(self, forgive: Sequence[str], clear: str, remember: str) -> None:
        with fail_closed():
            await self._succeeded(
                keys=[*forgive, clear, remember], args=[_ms(KNOWN_ADDRESS_SECONDS)]
            )

    async def is_set(self, key: str) -> bool:
        with fail_closed():
            return bool(await self._redis.exists(key))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@dataclass(frozen=True, slots=True)
class Limits:
    per_account_and_address: int
    per_account: int
    per_address: int
    window_seconds: float


class LoginThrottle:
    def __init__(self, counts: FailureCounts, limits: Limits, namespace: str) -> None:
        self._counts = counts
        self._limits = limits
        self._namespace = namespace

    @classmethod
    def for_service(
        cls, settings: ServiceSettings, namespace: str, redis: Redis | None = None
    ) -> LoginThrottle:
        """``namespace`` keeps the services' counts apart when they share a Redis."""
        counts: FailureCounts = RedisCounts(redis) if redis is not None else LocalCounts()
        limits = Limits(
            per_account_and_address=settings.login_failures_per_account_and_address,
            per_account=settings.login_failures_per_account,
            per_address=settings.login_failures_per_address,
            window_seconds=settings.login_failure_window_seconds,
        )
        return cls(counts, limits, namespace)

    def _key(self, scope: str, *parts: str) -> str:
        # Hashed: logins are attacker-chosen text of any length.
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
        return f"dynaseal:{self._namespace}:login:{scope}:{digest}"

    async def login(
        self, request: Request, account: str, authenticate: Callable[[], Awaitable[T | None]]
    ) -> T:
        """Run ``authenticate`` unless throttled; ``None`` from it is a failed login (401)."""
        account = account.lower()
        address = client_network(request)
        pair = self._key("pair", account, address)
        by_account = self._key("account", account)
        by_address = self._key("address", address)
        known = self._key("known", account, address)
        limits = self._limits
        account_limit = 0 if await self._counts.is_set(known) else limits.per_account
        wait = await self._counts.admit(
            [
                (pair, limits.per_account_and_address),
                (by_address, limits.per_address),
                (by_account, account_limit),
            ],
            limits.window_seconds,
        )
        if wait:
            raise too_many_requests(
                "Too many failed logins; try again in {retry_after} seconds.",
                "too_many_login_attempts",
                wait,
            )
        found = await authenticate()
        if found is None:
            raise unauthorized("Incorrect username or password.")
        await self._counts.succeeded([by_address, by_account], clear=pair, remember=known)
        return found


def client_network(request: Request) -> str:
    """The client's address; for IPv6 its /64, which one subscriber usually holds whole."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
