"""Key budgets in Redis: the hot path of many gateway replicas, one Lua script per step.

Each dynamic key (tenant + event id) is a Redis hash ``{budget, spent, reserved,
requests, revoked}``. Reservation and release are single Lua scripts (mirroring
:func:`.rules.decide`), so they are atomic across every replica.
The database stays the durable record: a key Redis does not know (first use, or Redis
restarted empty) is seeded from its database row, so a Redis restart loses at most the
reservations in flight, never what was spent.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.gateway.budget import store
from dynaseal.gateway.budget.rules import Refusal, Reservation, refused
from dynaseal.gateway.shared_state import fail_closed, shared_state_unavailable
from dynaseal.keys import KeyGrant
from dynaseal.storage import Database

log = logging.getLogger("dynaseal.gateway")

#: How long a key's hash outlives the key itself (clock skew, late settlements).
_EXPIRY_MARGIN_SECONDS = 3600
_UNKNOWN = -100

# The scripts are public so that tests/test_budget_rules.py can hold them to decide().
# KEYS[1]: the key's hash. ARGV: see reserve_args(); the answer: see decision_of().
RESERVE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-100, 0} end
local h = redis.call('HMGET', KEYS[1], 'budget', 'spent', 'reserved', 'requests', 'revoked')
local budget, spent = tonumber(h[1]), tonumber(h[2])
local reserved, requests = tonumber(h[3]), tonumber(h[4])
if h[5] == '1' then return {-1, 0} end
local max_requests = tonumber(ARGV[1])
if max_requests > 0 and requests >= max_requests then return {-2, 0} end
local prompt, cap, choices = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local remaining = budget - spent - reserved
local per_choice = math.floor((remaining - prompt) / choices)
if cap < 0 then
  cap = per_choice
  if cap < 1 then return {-3, remaining} end
elseif cap > per_choice then
  return {-4, remaining}
end
local amount = prompt + cap * choices
redis.call('HINCRBY', KEYS[1], 'reserved', amount)
redis.call('HINCRBY', KEYS[1], 'requests', 1)
return {cap, amount}
"""

# ARGV: budget, spent, requests, revoked (0/1), expiry (unix time).
SEED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'budget', ARGV[1], 'spent', ARGV[2], 'reserved', 0,
           'requests', ARGV[3], 'revoked', ARGV[4])
redis.call('EXPIREAT', KEYS[1], ARGV[5])
return 1
"""

# ARGV: the reservation, the tokens used.
RELEASE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[1], 'spent', tonumber(ARGV[2]))
return 1
"""

REVOKE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'revoked', 1) end
return 0
"""

_REFUSALS = {
    -1: Refusal.REVOKED,
    -2: Refusal.NO_REQUESTS_LEFT,
    -3: Refusal.SPENT,
    -4: Refusal.CAP_TOO_HIGH,
}


def budget_key(tenant_id: str, event_id: str) -> str:
    return f"dynaseal:budget:{tenant_id}:{event_id}"


def reserve_args(
    max_requests: int | None, prompt_estimate: int, requested_cap: int | None, choices: int
) -> list[int]:
    """:data:`RESERVE_LUA`'s ARGV: 0 stands for no request limit, -1 for no cap asked."""
    cap = -1 if requested_cap is None else requested_cap
    return [max_requests or 0, prompt_estimate, cap, choices]


def decision_of(code: int, value: int, prompt_estimate: int) -> Reservation | tuple[Refusal, int]:
    """:data:`RESERVE_LUA`'s answer (not ``_UNKNOWN``), as :func:`.rules.decide` gives it."""
    if code < 0:
        return _REFUSALS[code], value
    return Reservation(amount=value, completion_cap=code, prompt_estimate=prompt_estimate)


class RedisBudget:
    books_reservations = False

    def __init__(self, redis: Redis, db: Database) -> None:
        self._redis = redis
        self._db = db
        self._reserve = redis.register_script(RESERVE_LUA)
        self._seed = redis.register_script(SEED_LUA)
        self._release = redis.register_script(RELEASE_LUA)
        self._revoke = redis.register_script(REVOKE_LUA)

    async def reserve(
        self, grant: KeyGrant, *, prompt_estimate: int, requested_cap: int | None, choices: int
    ) -> Reservation:
        keys = [budget_key(grant.tenant_id, grant.event_id)]
        args = reserve_args(grant.max_requests, prompt_estimate, requested_cap, choices)
        with fail_closed():
            code, value = await self._reserve(keys=keys, args=args)
            if code == _UNKNOWN:
                await self._seed_from_database(grant)
                code, value = await self._reserve(keys=keys, args=args)
        if code == _UNKNOWN:
            raise shared_state_unavailable()
        decision = decision_of(code, value, prompt_estimate)
        if not isinstance(decision, Reservation):
            refusal, remaining = decision
            raise refused(grant, refusal, remaining, prompt_estimate, requested_cap, choices)
        return decision

    async def _seed_from_database(self, grant: KeyGrant) -> None:
        state = await store.durable_state(self._db, grant)
        expires = int(max(grant.expires_at, time.time())) + _EXPIRY_MARGIN_SECONDS
        await self._seed(
            keys=[budget_key(grant.tenant_id, grant.event_id)],
            args=[state.budget, state.spent, state.requests, int(state.revoked), expires],
        )

    async def book(
        self, session: AsyncSession, grant: KeyGrant, *, reserved: int, used: int, requests: int
    ) -> None:
        await store.book_settled(self._db, session, grant, used=used, requests=requests)

    async def release(self, grant: KeyGrant, reservation: Reservation, used: int) -> None:
        try:
            await self._release(
                keys=[budget_key(grant.tenant_id, grant.event_id)], args=[reservation.amount, used]
            )
        except Exception as exc:  # the database has the usage; Redis reseeds from it
            log.error("could not release the reservation of %s in Redis: %s", grant.event_id, exc)

    async def revoke_event(self, tenant_id: str, event_id: str, keep_until: datetime) -> None:
        await store.revoke_in_database(self._db, tenant_id, event_id, keep_until)
        with fail_closed():
            await self._revoke(keys=[budget_key(tenant_id, event_id)], args=[])
