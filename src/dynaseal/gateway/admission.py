"""Admission: is this dynamic key genuine, may it call this model, is there budget left?"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from dynaseal.gateway import budget, chat_request
from dynaseal.gateway.budget_rules import Reservation
from dynaseal.gateway.errors import invalid_key, model_not_allowed
from dynaseal.gateway.key_ring import KeyRing
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.gateway.token_estimate import estimate_prompt_tokens
from dynaseal.keys import InvalidKey, KeyGrant, peek_key, verify_key
from dynaseal.storage import Database

log = logging.getLogger("dynaseal.gateway")


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise invalid_key()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise invalid_key()
    return token.strip()


async def verify_dynamic_key(
    authorization: str | None, key_ring: KeyRing, settings: GatewaySettings
) -> KeyGrant:
    """Return what the key grants, or raise the one generic 401 (the log says why)."""
    token = bearer_token(authorization)
    try:
        unverified = peek_key(token)
        tenant_keys = await key_ring.keys_of(unverified.tenant_id)
        now = time.time()
        grant = verify_key(
            unverified,
            tenant_keys.active(now),
            audience=settings.gateway_audience,
            now=now,
            leeway=settings.key_leeway_seconds,
            max_lifetime=settings.key_max_lifetime_seconds,
        )
        cutoff = tenant_keys.not_before
        if cutoff is not None and (grant.issued_at is None or grant.issued_at < cutoff):
            # Original-format keys carry no iat: a cutoff refuses all of them (fail closed).
            raise InvalidKey("minted before the tenant revoked its earlier keys")
        return grant
    except InvalidKey as exc:
        log.info("dynamic key refused: %s", exc.reason)
        raise invalid_key() from None


@dataclass(slots=True)
class Admission:
    """An admitted request: what the key grants and what was reserved for it."""

    grant: KeyGrant
    reservation: Reservation
    body: dict[str, Any]
    upstream_body: dict[str, Any]
    request_id: str = field(default_factory=lambda: f"req_{uuid.uuid4().hex}")
    started_at: float = field(default_factory=time.time)

    @property
    def model(self) -> str:
        return str(self.body["model"])

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


async def admit(
    authorization: str | None,
    raw_body: bytes,
    *,
    key_ring: KeyRing,
    db: Database,
    settings: GatewaySettings,
) -> Admission:
    grant = await verify_dynamic_key(authorization, key_ring, settings)
    body = chat_request.parse_chat_body(raw_body)
    if not grant.allows_model(body["model"]):
        raise model_not_allowed(body["model"])
    reservation = await budget.reserve(
        db,
        grant,
        prompt_estimate=estimate_prompt_tokens(body),
        requested_cap=chat_request.requested_cap(body),
        choices=body.get("n") or 1,
    )
    return Admission(
        grant=grant,
        reservation=reservation,
        body=body,
        upstream_body=chat_request.upstream_body(body, reservation.completion_cap),
    )
