"""Requests and tokens per minute, per key, per end user (``sub``) and per tenant.

Fixed one-minute windows. Admission checks every scope and counts the request in all of
them at once (a refused request counts nowhere); settlement adds the tokens used. Over a
limit is a 429 with ``Retry-After`` and the ``x-ratelimit-*`` headers OpenAI clients read.
Counts live in Redis when it is configured (shared by all replicas), else in the process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from dynaseal.core.errors import APIError
from dynaseal.gateway.errors import REFUSAL_HEADER
from dynaseal.gateway.shared_state import fail_closed
from dynaseal.keys import KeyGrant

WINDOW_SECONDS = 60
LIMIT_NAMES = ("key_rpm", "key_tpm", "sub_rpm", "sub_tpm", "tenant_rpm", "tenant_tpm")


@dataclass(frozen=True, slots=True)
class Scope:
    name: str  # "key", "sub" or "tenant"
    id: str
    rpm: int  # 0: unlimited
    tpm: int

    @property
    def limited(self) -> bool:
        return self.rpm > 0 or self.tpm > 0


def scopes_for(grant: KeyGrant, limits: Mapping[str, int]) -> list[Scope]:
    """The limited scopes a request with this key falls in."""
    candidates = [
        Scope("key", f"{grant.tenant_id}:{grant.event_id}", limits["key_rpm"], limits["key_tpm"]),
        Scope("tenant", grant.tenant_id, limits["tenant_rpm"], limits["tenant_tpm"]),
    ]
    if grant.sub:
        candidates.append(
            Scope("sub", f"{grant.tenant_id}:{grant.sub}", limits["sub_rpm"], limits["sub_tpm"])
        )
    return [s for s in candidates if s.limited]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Counts after admission (or at refusal) of the tightest request and token limits."""

    refused: Scope | None
    refused_on: str | None  # "requests" or "tokens"
    request_limit: int | None
    requests_left: int | None
    token_limit: int | None
    tokens_left: int | None
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        reset = f"{self.reset_seconds}s"
        headers: dict[str, str] = {}
        if self.request_limit is not None:
            headers["x-ratelimit-limit-requests"] = str(self.request_limit)
            headers["x-ratelimit-remaining-requests"] = str(max(self.requests_left or 0, 0))
            headers["x-ratelimit-reset-requests"] = reset
        if self.token_limit is not None:
            headers["x-ratelimit-limit-tokens"] = str(self.token_limit)
            headers["x-ratelimit-remaining-tokens"] = str(max(self.tokens_left or 0, 0))
            headers["x-ratelimit-reset-tokens"] = reset
        return headers

    def error(self) -> APIError:
        assert self.refused is not None
        return APIError(
            429,
            f"Rate limit reached for {self.refused_on} per minute on this {self.refused.name}; "
            f"retry in {self.reset_seconds} s.",
            code="rate_limit_exceeded",
            type=self.refused_on,
            headers={
                "Retry-After": str(self.reset_seconds),
                REFUSAL_HEADER: "rate_limited",
                **self.headers(),
            },
        )


def judge(scopes: Sequence[Scope], counts: Sequence[tuple[int, int]], reset: int) -> Verdict:
    """Apply the limits to the window's counts (requests, tokens) before this request."""
    refused: Scope | None = None
    refused_on = None
    request_limit = requests_left = token_limit = tokens_left = None
    for scope, (requests, tokens) in zip(scopes, counts, strict=True):
        if scope.rpm > 0:
            left = scope.rpm - requests
            if refused is None and left <= 0:
                refused, refused_on = scope, "requests"
            if requests_left is None or left < requests_left:
                request_limit, requests_left = scope.rpm, left
        if scope.tpm > 0:
            left = scope.tpm - tokens
            if refused is None and left <= 0:
                refused, refused_on = scope, "tokens"
            if tokens_left is None or left < tokens_left:
                token_limit, tokens_left = scope.tpm, left
    if refused is None and requests_left is not None:
        requests_left -= 1  # this request
    return Verdict(
        refused, refused_on, request_limit, requests_left, token_limit, tokens_left, reset
    )


def _window(now: float) -> tuple[int, int]:
    window = int(now // WINDOW_SECONDS)
    return window, max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))


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
        window, reset = _window(time.time())
        slots = [self._slot(s, window) for s in scopes]
        verdict = judge(scopes, [(r, t) for r, t in slots], reset)
        if verdict.refused is None:
            for slot in slots:
                slot[0] += 1
        return verdict

    async def add_tokens(self, scopes: Sequence[Scope], tokens: int) -> None:
        window, _ = _window(time.time())
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
        window, reset = _window(time.time())
        keys = [k for s in scopes for k in _keys(s, window)]
        limits = [n for s in scopes for n in (s.rpm, s.tpm)]
        with fail_closed():
            flat = await self._admit(keys=keys, args=limits)
        counts = [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]
        return judge(scopes, counts, reset)

    async def add_tokens(self, scopes: Sequence[Scope], tokens: int) -> None:
        window, _ = _window(time.time())
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope in scopes:
                key = _keys(scope, window)[1]
                pipe.incrby(key, tokens)
                pipe.expire(key, 120)
            await pipe.execute()
