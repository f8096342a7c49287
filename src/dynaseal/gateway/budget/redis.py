"""Key budgets in Redis: the hot path of many gateway replicas, one Lua script per step.

Each dynamic key (tenant + event id) is a Redis hash of what :class:`.rules.KeyState`
holds. A reservation is one Lua script over the hashes of the key's whole chain (a child
key and its ancestors; mirroring :func:`.rules.decide_chain`), so it is atomic across
every replica; release adds back to each hash with one script. The budgets are
arguments, as they come from the keys and their tenant. The database stays the durable
record: a key Redis does not know (first use, or Redis restarted empty) is seeded from
its database row, so a Redis restart loses at most the reservations in flight, never
what was spent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
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
# KEYS: the hashes of a key's chain, root first (one for a root key). ARGV: see
# reserve_args(); the answer: see decision_of(). Amounts go back into Redis through
# string.format('%d'): whole numbers written out, whatever number formatting the Redis
# version applies to Lua numbers.
RESERVE_LUA = """
local n, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local prompt, prompt_cost, price = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local function fdiv(a, b)  -- Python's a // b; the check keeps it exact up to |a| = 2^53
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
for k = 1, #KEYS do
  if redis.call('EXISTS', KEYS[k]) == 0 then return {-100} end
end
local need = cap
if cap < 0 then need = 1 end
local smallest, any_total, any_cost, requests_left = false, false, false, -1
local frees = {}
for k = 1, #KEYS do
  local h = redis.call('HMGET', KEYS[k], 'spent', 'reserved', 'tspent', 'treserved',
                       'cspent', 'creserved', 'requests', 'revoked')
  local spent, reserved = tonumber(h[1]), tonumber(h[2])
  local tspent, treserved = tonumber(h[3]), tonumber(h[4])
  local cspent, creserved = tonumber(h[5]), tonumber(h[6])
  local requests = tonumber(h[7])
  local at = 5 + (k - 1) * 4
  if h[8] == '1' then return {-1, k - 1} end
  local max_requests = tonumber(ARGV[at + 1])
  if max_requests > 0 and requests >= max_requests then return {-2, k - 1} end
  local budget, tbudget, cbudget = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]),
                                   tonumber(ARGV[at + 4])
  -- per budget: which (0 tokens, 1 total, 2 cost), free, fits per choice (false: any), held
  local free, tfree, cfree = budget - spent - reserved, false, false
  local judged = {{0, free, fdiv(free, n), reserved}}
  if tbudget >= 0 then
    any_total = true
    tfree = tbudget - tspent - treserved
    judged[#judged + 1] = {1, tfree, fdiv(tfree - prompt, n), treserved}
  end
  if cbudget >= 0 then
    any_cost = true
    cfree = cbudget - cspent - creserved
    local room, fits = cfree - prompt_cost, false
    if price > 0 then fits = fdiv(room, n * price) elseif room < 0 then fits = -1 end
    judged[#judged + 1] = {2, cfree, fits, creserved}
  end
  for _, b in ipairs(judged) do
    if b[3] and b[3] < need then return {-3, k - 1, b[1], b[2], b[3], b[4]} end
    if b[3] and (not smallest or b[3] < smallest) then smallest = b[3] end
  end
  frees[k] = {free, tfree, cfree}
  if max_requests > 0 then
    local after = max_requests - requests - 1
    if requests_left < 0 or after < requests_left then requests_left = after end
  end
end
if cap < 0 then cap = smallest end
local generated, tamount, camount = cap * n, 0, 0
if any_total then tamount = prompt + generated end
if any_cost then camount = prompt_cost + generated * price end
local left, tleft, cleft = false, false, false
for k = 1, #KEYS do
  redis.call('HINCRBY', KEYS[k], 'reserved', string.format('%d', generated))
  redis.call('HINCRBY', KEYS[k], 'treserved', string.format('%d', tamount))
  redis.call('HINCRBY', KEYS[k], 'creserved', string.format('%d', camount))
  redis.call('HINCRBY', KEYS[k], 'requests', 1)
  local f = frees[k]
  if not left or f[1] - generated < left then left = f[1] - generated end
  if f[2] and (not tleft or f[2] - tamount < tleft) then tleft = f[2] - tamount end
  if f[3] and (not cleft or f[3] - camount < cleft) then cleft = f[3] - camount end
end
return {cap, generated, tamount, camount, left, tleft or 0, cleft or 0, requests_left}
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


def reserve_args(
    max_requests: Sequence[int | None], budgets: Sequence[Budgets], ask: Ask
) -> list[int]:
    """:data:`RESERVE_LUA`'s ARGV: the ask, then four figures per key of the chain (root
    first). 0 stands for no request limit, -1 for no cap asked and for a budget the key
    does not have."""
    args = [
        ask.choices,
        -1 if ask.requested_cap is None else ask.requested_cap,
        ask.prompt_estimate,
        ask.prompt_cost,
        ask.output_price,
    ]
    for limit, key_budgets in zip(max_requests, budgets, strict=True):
        args += [
            limit or 0,
            key_budgets.tokens,
            -1 if key_budgets.total_tokens is None else key_budgets.total_tokens,
            -1 if key_budgets.cost is None else key_budgets.cost,
        ]
    return args


def release_args(reservation: Reservation, used: Amounts) -> list[int]:
    held = reservation.amounts
    return [-held.tokens, -held.total_tokens, -held.cost, used.tokens, used.total_tokens, used.cost]


def decision_of(answer: list[int], budgets: Sequence[Budgets], ask: Ask) -> Reservation | Refused:
    """:data:`RESERVE_LUA`'s answer (not ``_UNKNOWN``), as :func:`.rules.decide_chain`
    gives it for a chain whose keys have ``budgets``."""
    code = answer[0]
    if code == -1:
        return Refused(Refusal.REVOKED, index=answer[1])
    if code == -2:
        return Refused(Refusal.NO_REQUESTS_LEFT, index=answer[1])
    if code == -3:
        index, which, left, fits, held = answer[1:6]
        return Refused(Refusal.SHORT, BUDGET_NAMES[which], left, fits, held, index)
    _, generated, total, cost, left, total_left, cost_left, requests_left = answer
    any_total = any(b.total_tokens is not None for b in budgets)
    any_cost = any(b.cost is not None for b in budgets)
    return Reservation(
        Amounts(generated, total, cost),
        code,
        ask.prompt_estimate,
        Budgets(left, total_left if any_total else None, cost_left if any_cost else None),
        None if requests_left < 0 else requests_left,
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

    async def reserve(self, grant: KeyGrant, budgets: Sequence[Budgets], ask: Ask) -> Reservation:
        chain = grant.chain
        keys = [budget_key(key.tenant_id, key.event_id) for key in chain]
        args = reserve_args([key.max_requests for key in chain], budgets, ask)
        with fail_closed():
            answer = await self._reserve(keys=keys, args=args)
            if answer[0] == _UNKNOWN:
                for key in chain:  # seeding a hash that exists does nothing
                    await self._seed_from_database(key)
                answer = await self._reserve(keys=keys, args=args)
        if answer[0] == _UNKNOWN:
            raise shared_state_unavailable()
        decision = decision_of(answer, budgets, ask)
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
        for key in grant.chain:
            await store.book_settled(self._db, session, key, used=used, requests=requests)

    async def release(self, grant: KeyGrant, reservation: Reservation, used: Amounts) -> None:
        try:
            for key in grant.chain:
                await self._release(
                    keys=[budget_key(key.tenant_id, key.event_id)],
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
