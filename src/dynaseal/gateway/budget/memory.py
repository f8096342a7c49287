"""Key budgets in the gateway's own memory: the fast path of a single gateway process.

The rules are :func:`.rules.decide`'s, applied without an await
between reading and updating a key's state, so they are atomic within the process. A
key's state starts from its database row (first use, or after a restart), which the
ledger writer keeps current — the database stays the durable record. Only correct when
this process is the one gateway using the database: :mod:`dynaseal.gateway.exclusive`
makes sure of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.gateway.budget import store
from dynaseal.gateway.budget.rules import Amounts, Ask, Budgets, Reservation, reserve_or_refuse
from dynaseal.keys import KeyGrant
from dynaseal.storage import Database

_SWEEP_ABOVE = 100_000
_EXPIRY_MARGIN_SECONDS = 3600


@dataclass(slots=True)
class _KeyState:
    """A :class:`.rules.KeyState` in memory."""

    spent: int
    total_spent: int
    cost_spent: int
    requests: int
    revoked: bool
    forget_after: float
    reserved: int = 0
    total_reserved: int = 0
    cost_reserved: int = 0

    def usage(self) -> store.KeyUsage:
        return store.KeyUsage(
            Amounts(self.spent, self.total_spent, self.cost_spent),
            Amounts(self.reserved, self.total_reserved, self.cost_reserved),
            self.requests,
            self.revoked,
        )


class MemoryBudget:
    books_reservations = False

    def __init__(self, db: Database) -> None:
        self._db = db
        self._keys: dict[tuple[str, str], _KeyState] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[_KeyState]] = {}

    async def _state(self, grant: KeyGrant) -> _KeyState:
        key = (grant.tenant_id, grant.event_id)
        state = self._keys.get(key)
        if state is not None:
            return state
        loading = self._loading.get(key)
        if loading is not None:  # another request is reading the same row
            return await loading
        future: asyncio.Future[_KeyState] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            durable = await store.durable_usage(self._db, grant)
            state = _KeyState(
                durable.spent.tokens,
                durable.spent.total_tokens,
                durable.spent.cost,
                durable.requests,
                durable.revoked,
                max(grant.expires_at, time.time()) + _EXPIRY_MARGIN_SECONDS,
            )
            self._sweep()
            self._keys[key] = state
            future.set_result(state)
            return state
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            del self._loading[key]

    def _sweep(self) -> None:
        if len(self._keys) < _SWEEP_ABOVE:
            return
        now = time.time()
        self._keys = {k: s for k, s in self._keys.items() if s.forget_after > now or s.reserved > 0}

    async def reserve(self, grant: KeyGrant, budgets: Sequence[Budgets], ask: Ask) -> Reservation:
        states = [await self._state(key) for key in grant.chain]
        return reserve_or_refuse(states, grant, budgets, ask)  # no await: atomic

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
        for key in grant.chain:
            state = self._keys.get((key.tenant_id, key.event_id))
            if state is None:
                continue
            held = reservation.amounts
            state.reserved -= held.tokens
            state.total_reserved -= held.total_tokens
            state.cost_reserved -= held.cost
            state.spent += used.tokens
            state.total_spent += used.total_tokens
            state.cost_spent += used.cost

    async def usage(self, grant: KeyGrant) -> store.KeyUsage:
        state = self._keys.get((grant.tenant_id, grant.event_id))
        return state.usage() if state is not None else await store.durable_usage(self._db, grant)

    async def revoke_event(self, tenant_id: str, event_id: str, keep_until: datetime) -> None:
        await store.revoke_in_database(self._db, tenant_id, event_id, keep_until)
        state = self._keys.get((tenant_id, event_id))
        if state is not None:
            state.revoked = True
