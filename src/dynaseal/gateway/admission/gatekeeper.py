"""Admission: is this dynamic key genuine, may it call this model, is it within its rate
limits, is there budget left? Everything before a request may go upstream."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dynaseal.core import tracing
from dynaseal.core.access_log import note
from dynaseal.core.money import MAX_UNITS
from dynaseal.core.request_id import current_request_id
from dynaseal.gateway.admission.chains import verify_presented
from dynaseal.gateway.admission.concurrency import Concurrency, Slot
from dynaseal.gateway.admission.key_ring import KeyRing, TenantKeys
from dynaseal.gateway.admission.limiters import RateLimiter
from dynaseal.gateway.admission.proofs import Presented, ProofChecker
from dynaseal.gateway.admission.rate_limits import Scope, Verdict, scopes_for
from dynaseal.gateway.budget import report
from dynaseal.gateway.budget.limits import chain_budgets
from dynaseal.gateway.budget.rules import Amounts, Ask, Reservation
from dynaseal.gateway.budget.store import BudgetStore
from dynaseal.gateway.endpoints.base import Demand, Endpoint, EndpointName
from dynaseal.gateway.endpoints.chat import CHAT
from dynaseal.gateway.errors import (
    invalid_key,
    model_not_allowed,
    model_not_priced,
    origin_not_allowed,
)
from dynaseal.gateway.pricing import Price
from dynaseal.gateway.relay.attempts import Attempt
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.keys import InvalidKey, KeyGrant

if TYPE_CHECKING:
    from dynaseal.gateway.metrics import GatewayMetrics

log = logging.getLogger("dynaseal.gateway")

_MAX_VERIFIED = 100_000


def bearer_token(authorization: str | None) -> str:
    """The key of ``Authorization: Bearer`` (what OpenAI SDKs send) or ``DPoP`` (RFC 9449)."""
    if not authorization:
        raise invalid_key()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() not in ("bearer", "dpop") or not token.strip():
        raise invalid_key()
    return token.strip()


@dataclass(slots=True)
class Admission:
    """An admitted request: what the key grants and what was reserved for it."""

    grant: KeyGrant
    reservation: Reservation
    body: dict[str, Any]
    upstream_body: dict[str, Any]
    rate_scopes: list[Scope] = field(default_factory=list)
    rate_verdict: Verdict | None = None
    slot: Slot | None = None  # its place in flight, released when it is settled
    upstream_headers: dict[str, str] = field(default_factory=dict)  # what was dropped
    #: Which OpenAI endpoint the request is for (how its body and answer are read).
    endpoint: Endpoint = CHAT
    #: Each upstream deployment tried, in order (the router notes them).
    attempts: list[Attempt] = field(default_factory=list)
    request_id: str = field(default_factory=current_request_id)
    started_at: float = field(default_factory=time.time)
    #: The model's price (``None``: none known, the request's cost is unknown).
    price: Price | None = None
    #: What the request used, once settled (set by the settler).
    used: Amounts | None = None

    @property
    def model(self) -> str:
        return str(self.body["model"])

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def response_headers(self) -> dict[str, str]:
        headers = self.rate_verdict.headers() if self.rate_verdict is not None else {}
        headers.update(report.remaining_headers(self.reservation, self.used))
        return headers | self.upstream_headers


class Gatekeeper:
    """Verifies dynamic keys and admits requests; one per gateway process."""

    def __init__(
        self,
        settings: GatewaySettings,
        key_ring: KeyRing,
        budget: BudgetStore,
        limiter: RateLimiter,
        concurrency: Concurrency,
        metrics: GatewayMetrics,
        prices: Mapping[str, Price] | None = None,
        proofs: ProofChecker | None = None,
    ) -> None:
        self._settings = settings
        self._key_ring = key_ring
        self._budget = budget
        self._limiter = limiter
        self._prices = prices or {}  # the gateway's table; a tenant's own prices win
        self._concurrency = concurrency
        self._metrics = metrics
        self._proofs = proofs or ProofChecker()
        # token -> (the tenant keys it was verified against, its grant). A device reuses
        # its key for many requests; re-checking the signature each time is wasted work.
        self._verified: dict[str, tuple[TenantKeys, KeyGrant]] = {}
        self._default_limits = settings.rate_limits({})

    def _rate_limits(self, tenant_limits: Mapping[str, int]) -> Mapping[str, int]:
        """The gateway's limits (read once) with the tenant's own on top."""
        if not tenant_limits:
            return self._default_limits
        return self._settings.rate_limits(tenant_limits)

    async def _still_valid(self, token: str) -> tuple[KeyGrant, TenantKeys] | None:
        """The cached grant, if nothing it was verified against has changed since."""
        cached = self._verified.get(token)
        if cached is None:
            return None
        verified_against, grant = cached
        current = await self._key_ring.keys_of(grant.tenant_id)
        now = time.time()
        if (
            current is verified_against  # no key created, revoked or cut off since
            and grant.expires_at > now - self._settings.key_leeway_seconds
            and any(key.kid == grant.kid for key in current.active(now))  # not retired
        ):
            return grant, current
        self._verified.pop(token, None)  # a concurrent request may have dropped it already
        return None

    @tracing.traced("dynaseal.verify_key")
    async def verify(
        self,
        authorization: str | None,
        origin: str | None = None,
        request: Presented | None = None,
    ) -> tuple[KeyGrant, TenantKeys]:
        """What the key grants (and its tenant's keys), or the one generic 401; the log
        says why. A bound key also needs the DPoP proof of ``request``. A request from a
        web page (``origin``) is refused with 403 unless the tenant lets its keys work
        from there."""
        token = bearer_token(authorization)
        grant, tenant_keys = await self._verify(token)
        await self._proofs.check(grant, token, request)
        allowed = tenant_keys.allowed_origins
        if origin is not None and allowed is not None and origin not in allowed:
            raise origin_not_allowed(origin)
        return grant, tenant_keys

    async def _verify(self, token: str) -> tuple[KeyGrant, TenantKeys]:
        cached = await self._still_valid(token)
        if cached is not None:
            return cached
        try:
            grant, tenant_keys = await verify_presented(
                token, self._key_ring, self._settings, time.time()
            )
        except InvalidKey as exc:
            log.info("dynamic key refused: %s", exc.reason)
            note(refusal_reason=exc.reason)
            raise invalid_key() from None
        if len(self._verified) >= _MAX_VERIFIED:
            self._verified.clear()
        self._verified[token] = (tenant_keys, grant)
        return grant, tenant_keys

    async def admit(
        self,
        authorization: str | None,
        raw_body: bytes,
        endpoint: Endpoint = CHAT,
        *,
        origin: str | None = None,
        screen: Callable[[EndpointName, dict[str, Any]], None] | None = None,
        request: Presented | None = None,
    ) -> Admission:
        """Admit a request to ``endpoint``; ``screen`` refuses (400) what no upstream can
        serve, before anything is reserved."""
        grant, tenant_keys = await self.verify(authorization, origin, request)
        body = endpoint.parse(raw_body)
        model = body["model"]
        if not grant.allows_model(model):
            raise model_not_allowed(model)
        budgets = chain_budgets(grant, tenant_keys.key_defaults)  # a child's ancestors too
        price = tenant_keys.prices.get(model) or self._prices.get(model)
        if any(key.cost is not None for key in budgets) and price is None:
            raise model_not_priced(model)
        if screen is not None:
            screen(endpoint.name, body)
        scopes = scopes_for(grant, self._rate_limits(tenant_keys.rate_limits))
        verdict = None
        if scopes:
            with tracing.span("dynaseal.rate_limit"):
                verdict = await self._limiter.admit(scopes)
            if verdict.refused is not None:
                raise verdict.error()
        demand = endpoint.demand(body)
        with tracing.span("dynaseal.concurrency"):  # may wait for a place in the pool
            slot = await self._concurrency.enter(grant, tenant_keys.rate_limits)
        try:
            with self._metrics.budget_call("reserve"):
                reservation = await self._budget.reserve(grant, budgets, ask_of(demand, price))
        except BaseException:
            slot.release()
            raise
        forwarded = endpoint.upstream_body(
            body,
            reservation.completion_cap,
            endpoint.allowed(tenant_keys.upstream_fields),
            self._settings.upstream_cap_fields,
        )
        return Admission(
            grant=grant,
            reservation=reservation,
            body=body,
            upstream_body=forwarded.body,
            rate_scopes=scopes,
            rate_verdict=verdict,
            slot=slot,
            upstream_headers=forwarded.headers(),
            endpoint=endpoint,
            price=price,
        )


def ask_of(demand: Demand, price: Price | None) -> Ask:
    """What a checked request asks of its key's budgets, money included."""
    prompt = demand.prompt_estimate
    return Ask(
        prompt_estimate=prompt,
        prompt_cost=0 if price is None else min(prompt * price.prompt_token, MAX_UNITS),
        output_price=0 if price is None else price.output,
        requested_cap=demand.requested_cap,
        choices=demand.choices,
    )
