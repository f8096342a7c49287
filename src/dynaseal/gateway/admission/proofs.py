"""DPoP proofs of possession (RFC 9449) for device-bound keys: the gateway's side.

A key with ``cnf.jkt`` is only accepted with one ``DPoP`` header holding a fresh proof
signed by the device key of that thumbprint, for this method and this URL, carrying the
hash of the presented key (every check is :func:`dynaseal.keys.verify_binding`). What
needs state is here: a proof's ``jti`` is refused the second time within its window —
in this process's memory, or in Redis when the gateway has one, so that a proof captured
on its way to one replica cannot be replayed to another.

Server nonces (RFC 9449 section 8) are not demanded: they would cost every device an
extra round trip per nonce period, while the ``jti`` cache plus the ±60 s ``iat``
window already make each proof single-use, across replicas too.

The URL compared with ``htu`` is the one the device addressed: ``PUBLIC_URL`` (the
gateway's address behind a reverse proxy, path prefix included) followed by the
request's path when it is set; otherwise the request's own URL (scheme, ``Host`` header
and path — uvicorn applies ``X-Forwarded-Proto`` from trusted proxies). Every mount
(``/v1``, ``/api/v1`` and the root) works, since the path is the one the request came to.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from pydantic import AnyHttpUrl
from redis.asyncio import Redis
from starlette.requests import Request

from dynaseal.core.access_log import note
from dynaseal.core.errors import APIError
from dynaseal.core.shared_redis import fail_closed
from dynaseal.gateway.errors import invalid_key
from dynaseal.keys import DPOP_HEADER, InvalidDpopProof, KeyGrant, verify_binding

log = logging.getLogger("dynaseal.gateway")

#: The ``WWW-Authenticate`` challenge of a refused or missing proof (RFC 9449 section 7.1).
DPOP_CHALLENGE = 'DPoP algs="EdDSA ES256", error="invalid_dpop_proof"'
_SWEEP_ABOVE = 100_000


class Presented:
    """What a proof is checked against: the request as the device sent it. Read only for
    bound keys, so that other requests pay nothing for it."""

    __slots__ = ("_public_url", "_request")

    def __init__(self, request: Request, public_url: AnyHttpUrl | None) -> None:
        self._request = request
        self._public_url = public_url

    @property
    def method(self) -> str:
        return self._request.method

    @property
    def url(self) -> str:
        """The URL the device addressed (see the module's docstring), without query."""
        if self._public_url is not None:
            return str(self._public_url).rstrip("/") + self._request.url.path
        return str(self._request.url.replace(query="", fragment=""))

    @property
    def proofs(self) -> list[str]:
        """Every ``DPoP`` header of the request."""
        return self._request.headers.getlist(DPOP_HEADER)


def invalid_proof() -> APIError:
    """The generic refusal of any invalid key, with the DPoP challenge."""
    refusal = invalid_key()
    refusal.headers = {**(refusal.headers or {}), "WWW-Authenticate": DPOP_CHALLENGE}
    return refusal


class ReplayCache(Protocol):
    async def first_use(self, replay_key: str, until: float) -> bool:
        """Record a proof's ``jti``; ``False`` when it was already seen before ``until``."""


class MemoryReplays:
    """The ``jti`` values of this process's proofs, until their window has passed."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    async def first_use(self, replay_key: str, until: float) -> bool:
        now = time.time()
        seen = self._seen.get(replay_key)
        if seen is not None and seen > now:
            return False
        if len(self._seen) >= _SWEEP_ABOVE:
            self._seen = {key: end for key, end in self._seen.items() if end > now}
        self._seen[replay_key] = until
        return True


class RedisReplays:
    """The ``jti`` values of every replica's proofs: ``SET NX`` expiring with the window."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def first_use(self, replay_key: str, until: float) -> bool:
        with fail_closed():
            stored = await self._redis.set(
                f"dynaseal:dpop:{replay_key}", 1, nx=True, exat=int(until) + 1
            )
        return bool(stored)


class ProofChecker:
    """Checks the DPoP proof of every request made with a bound key."""

    def __init__(self, replays: ReplayCache | None = None) -> None:
        self._replays = replays if replays is not None else MemoryReplays()

    @classmethod
    def shared(cls, redis: Redis | None) -> ProofChecker:
        """Replays refused across replicas through ``redis``; in this process without."""
        return cls(RedisReplays(redis) if redis is not None else None)

    async def check(self, grant: KeyGrant, token: str, request: Presented | None) -> None:
        """Nothing for a key that is not bound; else a valid, unseen proof or the 401."""
        if grant.jkt is None:
            return
        try:
            if request is None:
                raise InvalidDpopProof("a bound key on a route that takes no proofs")
            proof = verify_binding(
                grant, token, request.proofs, htm=request.method, htu=request.url, now=time.time()
            )
            if proof is not None and not await self._replays.first_use(
                proof.replay_key, proof.fresh_until
            ):
                raise InvalidDpopProof("proof replayed")
        except InvalidDpopProof as exc:
            log.info("dynamic key %s refused: %s", grant.event_id, exc.reason)
            note(refusal_reason=exc.reason)
            raise invalid_proof() from None
