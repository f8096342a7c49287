"""Where the rate-limit counts live: in the process (one gateway) or in Redis (every
replica). Both count a request in all its scopes at once, only when no limit refuses it,
and hand the counts to :func:`~.rate_limits.judge`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis

from dynaseal.gateway.admission.rate_limits import Scope, Verdict, judge, window_at
from dynaseal.gateway.shared_state import fail_closed


class RateLimiter(Protocol):
    async def admit(self, scopes: Sequence[Scope]) -> Verdict: ...

    async def add_tokens(self, scopes: Sequence[Scope], tokens: int) -> None: ...


class LocalRateLimiter:
    """Counts in this process only: exact for one gateway process."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], list[int]] = {}

    def _slot(self, scope: Scope, window: int) -> list[int]:
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if k[2] >= window}
        return self._counts.setdefault((scope.name, scope.id, window), [0, 0])

    async def admit(self, scopes: Sequence[Scope]) -> Verdict:
        window, reset = window_at(time.time())
        slots = [self._slot(s, window) for s in scopes]
        verdict = judge(scopes, [(r, t) for r, t in slots], reset)
        if verdict.refused is None:
            for slot in slots:
                slot[0] += 1
        return verdict

    async def add_tokens(self, scopes: Sequence[Scope], tokens: int) -> None:
        window, _ = window_at(time.time())
        for scope in scopes:
            self._slot(scope, window)[1] += tokens


# KEYS: per scope, its requests counter then its tokens counter. ARGV: rpm, tpm per scope.
# Returns the counts before this request; counts the request only when no limit is hit.
_ADMIT = """
local counts = {}
local refused = false
for i = 1, #KEYS, 2 do
  local r = tonumber(redis.call('GET', KEYS[i]) or '0')
  local t = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  local rpm, tpm = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  if (rpm > 0 and r >= rpm) or (tpm > 0 and t >= tpm) then refused = true end
  counts[#counts + 1] = r
  counts[#counts + 1] = t
end
if not refused then
  for i = 1, #KEYS, 2 do
    redis.call('INCR', KEYS[i])
    redis.call('EXPIRE', KEYS[i], 120)
  end
end
return counts
"""


def _keys(scope: Scope, window: int) -> list[str]:
    base = f"dynaseal:rl:{scope.name}:{scope.id}:{window}"
    return [f"{base}:r", f"{base}:t"]


class RedisRateLimiter:
    """Counts in Redis: one limit across every gateway replica."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._admit = redis.register_script(_ADMIT)

    async def admit(self, scopes: Sequence[Scope]) -> Verdict:
        window, reset = window_at(time.time())
        keys = [k for s in scopes for k in _keys(s, window)]
        limits = [n for s in scopes for n in (s.rpm, s.tpm)]
        with fail_closed():
            flat = await self._admit(keys=keys, args=limits)
        counts = [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]
        return judge(scopes, counts, reset)

    async def add_tokens(self, scopes: Sequence[Scope], tokens: int) -> None:
        window, _ = window_at(time.time())
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope in scopes:
                key = _keys(scope, window)[1]
                pipe.incrby(key, tokens)
                pipe.expire(key, 120)
            await pipe.execute()
