"""Key budgets in Redis: the hot path of many gateway replicas, one Lua script per step.

Each dynamic key (tenant + event id) is a Redis hash of what :class:`.rules.KeyState`
holds. Reservation and release are single Lua scripts (mirroring :func:`.rules.decide`),
so they are atomic across every replica; the key's budgets are arguments, as they come
from the key and its tenant. The database stays the durable record: a key Redis does
not know (first use, or Redis restarted empty) is seeded from its database row, so a
Redis restart loses at most the reservations in flight, never what was spent.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.gateway.budget import store
from dynaseal.gateway.budget.rules import (
    BUDGET_NAMES,
    Amounts,
    Ask,
    Budgets,
    Refusal,
    Refused,
    Reservation,
    refused,
)
from dynaseal.gateway.shared_state import fail_closed, shared_state_unavailable
from dynaseal.keys import KeyGrant
from dynaseal.storage import Database

log = logging.getLogger("dynaseal.gateway")

#: How long a key's hash outlives the key itself (clock skew, late settlements).
_EXPIRY_MARGIN_SECONDS = 3600
_UNKNOWN = -100
#: The hash's fields, in the order the scripts read them.
FIELDS = ("spent", "reserved", "tspent", "treserved", "cspent", "creserved", "requests", "revoked")

# The scripts are public so that tests/test_budget_rules.py can hold them to decide().
# KEYS[1]: the key's hash. ARGV: see reserve_args(); the answer: see decision_of().
# Amounts go back into Redis through string.format('%d'): whole numbers written out,
# whatever number formatting the Redis version applies to Lua numbers.
RESERVE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-100} end
local h = redis.call('HMGET', KEYS[1], 'spent', 'reserved', 'tspent', 'treserved',
                     'cspent', 'creserved', 'requests', 'revoked')
local spent, reserved = tonumber(h[1]), tonumber(h[2])
local tspent, treserved = tonumber(h[3]), tonumber(h[4])
local cspent, creserved = tonumber(h[5]), tonumber(h[6])
local requests = tonumber(h[7])
if h[8] == '1' then return {-1} end
local max_requests, n, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if max_requests > 0 and requests >= max_requests then return {-2} end
local budget, tbudget, cbudget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local prompt, prompt_cost, price = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local function fdiv(a, b)  -- Python's a // b; the check keeps it exact up to |a| = 2^53
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
-- per budget: which (0 tokens, 1 total, 2 cost), free, fits per choice (false: any), held
local free, tfree, cfree = budget - spent - reserved, 0, 0
local judged = {{0, free, fdiv(free, n), reserved}}
if tbudget >= 0 then
  tfree = tbudget - tspent - treserved
  judged[#judged + 1] = {1, tfree, fdiv(tfree - prompt, n), treserved}
end
if cbudget >= 0 then
  cfree = cbudget - cspent - creserved
  local room, fits = cfree - prompt_cost, false
  if price > 0 then fits = fdiv(room, n * price) elseif room < 0 then fits = -1 end
  judged[#judged + 1] = {2, cfree, fits, creserved}
end
local need = cap
if cap < 0 then need = 1 end
for _, b in ipairs(judged) do
  if b[3] and b[3] < need then return {-3, b[1], b[2], b[3], b[4]} end
end
if cap < 0 then
  for _, b in ipairs(judged) do
    if b[3] and (cap < 0 or b[3] < cap) then cap = b[3] end
  end
end
local generated, tamount, camount = cap * n, 0, 0
if tbudget >= 0 then tamount = prompt + generated end
if cbudget >= 0 then camount = prompt_cost + generated * price end
redis.call('HINCRBY', KEYS[1], 'reserved', string.format('%d', generated))
redis.call('HINCRBY', KEYS[1], 'treserved', string.format('%d', tamount))
redis.call('HINCRBY', KEYS[1], 'creserved', string.format('%d', camount))
redis.call('HINCRBY', KEYS[1], 'requests', 1)
return {cap, generated, tamount, camount, free - generated, tfree - tamount, cfree - camount,
        requests + 1}
"""

# ARGV: spent, tspent, cspent, requests, revoked (0/1), expiry (unix time).
SEED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'spent', ARGV[1], 'reserved', 0, 'tspent', ARGV[2],
           'treserved', 0, 'cspent', ARGV[3], 'creserved', 0, 'requests', ARGV[4],
           'revoked', ARGV[5])
redis.call('EXPIREAT', KEYS[1], ARGV[6])
return 1
"""

# ARGV: the reservation negated, then the usage (three amounts each, see release_args()).
RELEASE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local fields = {'reserved', 'treserved', 'creserved', 'spent', 'tspent', 'cspent'}
for i, field in ipairs(fields) do redis.call('HINCRBY', KEYS[1], field, ARGV[i]) end
return 1
"""

REVOKE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'revoked', 1) end
return 0
"""


def budget_key(tenant_id: str, event_id: str) -> str:
    # Not the ``dynaseal:budget:`` of earlier versions, whose hashes counted other units.
    return f"dynaseal:budgets:{tenant_id}:{event_id}"


def reserve_args(max_requests: int | None, budgets: Budgets, ask: Ask) -> list[int]:
    """:data:`RESERVE_LUA`'s ARGV: 0 stands for no request limit, -1 for no cap asked
    and for a budget the key does not have."""
    return [
        max_requests or 0,
        ask.choices,
        -1 if ask.requested_cap is None else ask.requested_cap,
        budgets.tokens,
        -1 if budgets.total_tokens is None else budgets.total_tokens,
        -1 if budgets.cost is None else budgets.cost,
        ask.prompt_estimate,
        ask.prompt_cost,
        ask.output_price,
    ]


def release_args(reservation: Reservation, used: Amounts) -> list[int]:
    held = reservation.amounts
    return [-held.tokens, -held.total_tokens, -held.cost, used.tokens, used.total_tokens, used.cost]


def decision_of(
    answer: list[int], max_requests: int | None, budgets: Budgets, ask: Ask
) -> Reservation | Refused:
    """:data:`RESERVE_LUA`'s answer (not ``_UNKNOWN``), as :func:`.rules.decide` gives it."""
    code = answer[0]
    if code == -1:
        return Refused(Refusal.REVOKED)
    if code == -2:
        return Refused(Refusal.NO_REQUESTS_LEFT)
    if code == -3:
        which, left, fits, held = answer[1:5]
        return Refused(Refusal.SHORT, BUDGET_NAMES[which], left, fits, held)
    _, generated, total, cost, left, total_left, cost_left, requests = answer
    return Reservation(
        Amounts(generated, total, cost),
        code,
        ask.prompt_estimate,
        Budgets(
            left,
            None if budgets.total_tokens is None else total_left,
            None if budgets.cost is None else cost_left,
        ),
        None if max_requests is None else max_requests - requests,
    )


class RedisBudget:
    books_reservations = False

    def __init__(self, redis: Redis, db: Database) -> None:
        self._redis = redis
        self._db = db
        self._reserve = redis.register_script(RESERVE_LUA)
        self._seed = redis.register_script(SEED_LUA)
        self._release = redis.register_script(RELEASE_LUA)
        self._revoke = redis.register_script(REVOKE_LUA)

    async def reserve(self, grant: KeyGrant, budgets: Budgets, ask: Ask) -> Reservation:
        keys = [budget_key(grant.tenant_id, grant.event_id)]
        args = reserve_args(grant.max_requests, budgets, ask)
        with fail_closed():
            answer = await self._reserve(keys=keys, args=args)
            if answer[0] == _UNKNOWN:
                await self._seed_from_database(grant)
                answer = await self._reserve(keys=keys, args=args)
        if answer[0] == _UNKNOWN:
            raise shared_state_unavailable()
        decision = decision_of(answer, grant.max_requests, budgets, ask)
        if isinstance(decision, Refused):
            raise refused(grant, decision, ask)
        return decision

    async def _seed_from_database(self, grant: KeyGrant) -> None:
        durable = await store.durable_usage(self._db, grant)
        spent = durable.spent
        expires = int(max(grant.expires_at, time.time())) + _EXPIRY_MARGIN_SECONDS
        await self._seed(
            keys=[budget_key(grant.tenant_id, grant.event_id)],
            args=[
                spent.tokens,
                spent.total_tokens,
                spent.cost,
                durable.requests,
                int(durable.revoked),
                expires,
            ],
        )

    async def book(
        self,
        session: AsyncSession,
        grant: KeyGrant,
        *,
        reserved: Amounts,
        used: Amounts,
        requests: int,
    ) -> None:
        await store.book_settled(self._db, session, grant, used=used, requests=requests)

    async def release(self, grant: KeyGrant, reservation: Reservation, used: Amounts) -> None:
        try:
            await self._release(
                keys=[budget_key(grant.tenant_id, grant.event_id)],
                args=release_args(reservation, used),
            )
        except Exception as exc:  # the database has the usage; Redis reseeds from it
            log.error("could not release the reservation of %s in Redis: %s", grant.event_id, exc)

    async def usage(self, grant: KeyGrant) -> store.KeyUsage:
        with fail_closed():
            values = await self._redis.hmget(budget_key(grant.tenant_id, grant.event_id), FIELDS)
        if values[0] is None:  # not in Redis (yet): the database knows
            return await store.durable_usage(self._db, grant)
        spent, reserved, tspent, treserved, cspent, creserved, requests = (
            int(value or 0) for value in values[:7]
        )
        return store.KeyUsage(
            Amounts(spent, tspent, cspent),
            Amounts(reserved, treserved, creserved),
            requests,
            values[7] in (b"1", "1"),
        )

    async def revoke_event(self, tenant_id: str, event_id: str, keep_until: datetime) -> None:
        await store.revoke_in_database(self._db, tenant_id, event_id, keep_until)
        with fail_closed():
            await self._revoke(keys=[budget_key(tenant_id, event_id)], args=[])
