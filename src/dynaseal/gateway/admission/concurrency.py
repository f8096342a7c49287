"""Requests in flight at once: per key, per end user (``sub``), per tenant, and a fair
place in the upstream pool.

Rate limits count requests per minute; a few slow streams stay under any of them and
still hold the pool. So admission also counts what is in flight and refuses past the
limit with 429, ``Retry-After`` and ``x-dynaseal-refusal: rate_limited``. The limits are
on by default, sized from the upstream pool: one key gets 1/64 of it, one end user 1/16,
one tenant 3/4, so one key cannot take a tenant's share nor one tenant everybody's. The
gateway's defaults (``RATE_LIMIT_{KEY,SUB,TENANT}_CONCURRENCY``) and each tenant's own
(``PATCH /v1/user/me {"rate_limits": {"key_concurrency": 8}}``, 0 = unlimited) set them.

Counted in each gateway process, like the pool and the descriptors they protect. A
request holds its :class:`Slot` from admission until it is settled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dynaseal.core.errors import APIError
from dynaseal.gateway.errors import REFUSAL_HEADER
from dynaseal.gateway.relay.pool import PoolTimeout, UpstreamPool
from dynaseal.keys import KeyGrant

CONCURRENCY_NAMES = ("key_concurrency", "sub_concurrency", "tenant_concurrency")
#: Default share of the pool of each scope.
_SHARES = {"key_concurrency": 1 / 64, "sub_concurrency": 1 / 16, "tenant_concurrency": 3 / 4}
_MIN_DEFAULT = 4


def default_limits(pool_size: int, configured: Mapping[str, int | None]) -> dict[str, int]:
    """The configured limits, and a share of the pool for those left unset."""
    return {
        name: value
        if (value := configured.get(name)) is not None
        else max(_MIN_DEFAULT, int(pool_size * share))
        for name, share in _SHARES.items()
    }


@dataclass(frozen=True, slots=True)
class _Scope:
    name: str  # "key", "sub" or "tenant"
    id: str
    limit: int


def _scopes(grant: KeyGrant, limits: Mapping[str, int]) -> list[_Scope]:
    root = grant.chain[0].event_id  # a child key shares its root key's places
    scopes = [
        _Scope("key", f"{grant.tenant_id}:{root}", limits["key_concurrency"]),
        _Scope("tenant", grant.tenant_id, limits["tenant_concurrency"]),
    ]
    if grant.sub:
        scopes.append(_Scope("sub", f"{grant.tenant_id}:{grant.sub}", limits["sub_concurrency"]))
    return scopes


def _refused(scope: _Scope) -> APIError:
    return APIError(
        429,
        f"Too many requests in flight on this {scope.name} (at most {scope.limit} at once); "
        "retry when one has finished.",
        code="rate_limit_exceeded",
        headers={"Retry-After": "1", REFUSAL_HEADER: "rate_limited"},
    )


def _pool_busy() -> APIError:
    return APIError(
        503,
        "Every upstream connection stayed busy; retry shortly.",
        code="upstream_busy",
        headers={"Retry-After": "1", REFUSAL_HEADER: "rate_limited"},
    )


class Slot:
    """A request's place in flight; :meth:`release` (once the request is settled) is
    idempotent."""

    __slots__ = ("_gate", "_keys", "_tenant")

    def __init__(self, gate: Concurrency, keys: list[tuple[str, str]], tenant: str) -> None:
        self._gate: Concurrency | None = gate
        self._keys = keys
        self._tenant = tenant

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.leave(self._keys, self._tenant)


class Concurrency:
    """Counts requests in flight in this process and seats them in the upstream pool."""

    def __init__(self, pool: UpstreamPool, defaults: Mapping[str, int], wait_seconds: float):
        self.pool = pool
        self.defaults = dict(defaults)
        self._wait = wait_seconds
        self._in_flight: dict[tuple[str, str], int] = {}

    def limits(self, tenant_limits: Mapping[str, int]) -> dict[str, int]:
        return self.defaults | {k: v for k, v in tenant_limits.items() if k in self.defaults}

    async def enter(self, grant: KeyGrant, tenant_limits: Mapping[str, int]) -> Slot:
        """Count the request in every scope and seat it in the pool, or raise 429 / 503."""
        scopes = _scopes(grant, self.limits(tenant_limits))
        keys = [(scope.name, scope.id) for scope in scopes]
        for scope, key in zip(scopes, keys, strict=True):
            if scope.limit > 0 and self._in_flight.get(key, 0) >= scope.limit:
                raise _refused(scope)
        for key in keys:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        try:
            await self.pool.acquire(grant.tenant_id, self._wait)
        except BaseException as exc:
            self._uncount(keys)
            if isinstance(exc, PoolTimeout):
                raise _pool_busy() from None
            raise
        return Slot(self, keys, grant.tenant_id)

    def leave(self, keys: list[tuple[str, str]], tenant: str) -> None:
        self._uncount(keys)
        self.pool.release(tenant)

    def _uncount(self, keys: list[tuple[str, str]]) -> None:
        for key in keys:
            left = self._in_flight[key] - 1
            if left:
                self._in_flight[key] = left
            else:
                del self._in_flight[key]
