"""Minting dynamic keys: what a business backend calls, with no web framework in sight."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dynaseal.keys.claim_values import cost_claim, int_claim
from dynaseal.keys.claims import DEFAULT_AUDIENCE, KEY_TYPE
from dynaseal.keys.errors import InvalidKey
from dynaseal.keys.jwk import is_thumbprint

SigningKey = str | bytes | Ed25519PrivateKey | EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class MintedKey:
    """A freshly minted key and the facts a device needs about it."""

    token: str
    event_id: str
    models: tuple[str, ...]
    max_tokens: int
    expires_at: int
    claims: dict[str, Any]
    #: The device key thumbprint the key is bound to (``cnf.jkt``), if any.
    jkt: str | None = None
    #: The optional budgets: prompt + generated tokens, and USD.
    max_total_tokens: int | None = None
    max_cost: Decimal | None = None


def mint_key(
    signing_key: SigningKey,
    *,
    tenant_id: str,
    model: str | Sequence[str],
    max_tokens: int,
    ttl_seconds: int = 600,
    event_id: str | None = None,
    kid: str | None = None,
    algorithm: str = "HS256",
    audience: str = DEFAULT_AUDIENCE,
    sub: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    max_requests: int | None = None,
    cnf_jkt: str | None = None,
    max_total_tokens: int | None = None,
    max_cost: Decimal | str | None = None,
    now: float | None = None,
) -> MintedKey:
    """Mint a dynamic key for one event.

    The payload carries the original design's claims (``api-key``, ``model``,
    ``max_tokens``, ``expiring``, ``event_id``) and the standard ones on top
    (``iss``, ``aud``, ``iat``, ``nbf``, ``exp``, ``jti``), so both old and new
    gateways accept it. ``max_tokens`` is the budget of tokens the model may generate
    (reasoning included) over every request made with the key, not per request;
    ``max_total_tokens`` optionally caps prompt + generated tokens, and ``max_cost``
    the cost in USD (a :class:`~decimal.Decimal` or a decimal string such as ``"0.25"``,
    never a float) at the gateway's prices. With ``cnf_jkt`` (the RFC 7638 thumbprint of the
    device's public key) the key is bound: the gateway accepts it only with DPoP
    proofs signed by that device key.
    """
    models = (model,) if isinstance(model, str) else tuple(model)
    if not models or not all(isinstance(m, str) and m for m in models):
        raise ValueError("model must be a non-empty model name or list of names")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError("max_tokens must be a positive integer")
    if ttl_seconds < 1:
        raise ValueError("ttl_seconds must be positive")
    if max_requests is not None and (isinstance(max_requests, bool) or max_requests < 1):
        raise ValueError("max_requests must be a positive integer")
    if cnf_jkt is not None and not is_thumbprint(cnf_jkt):
        raise ValueError("cnf_jkt must be a SHA-256 JWK thumbprint (43 base64url characters)")
    budgets = _optional_budgets(max_total_tokens, max_cost)
    issued_at = int(now if now is not None else time.time())
    expires_at = issued_at + int(ttl_seconds)
    event_id = event_id or uuid.uuid4().hex
    claims: dict[str, Any] = {
        "api-key": tenant_id,
        "model": models[0],
        "max_tokens": max_tokens,
        "expiring": expires_at,
        "event_id": event_id,
        "iss": tenant_id,
        "aud": audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": expires_at,
        "jti": event_id,
    }
    if len(models) > 1:
        claims["models"] = list(models)
    if max_requests is not None:
        claims["max_requests"] = max_requests
    if sub is not None:
        claims["sub"] = sub
    if metadata:
        claims["metadata"] = dict(metadata)
    if cnf_jkt is not None:
        claims["cnf"] = {"jkt": cnf_jkt}
    claims.update(budgets)
    headers: dict[str, Any] = {"typ": KEY_TYPE}
    if kid is not None:
        headers["kid"] = kid
    token = jwt.encode(claims, signing_key, algorithm=algorithm, headers=headers)
    return MintedKey(
        token,
        event_id,
        models,
        max_tokens,
        expires_at,
        claims,
        cnf_jkt,
        max_total_tokens,
        cost_claim(budgets),
    )


def _optional_budgets(
    max_total_tokens: int | None, max_cost: Decimal | str | None
) -> dict[str, Any]:
    """The optional budget claims, checked by the very rules the gateway reads them with."""
    if isinstance(max_cost, Decimal):
        max_cost = format(max_cost.normalize(), "f")
    elif max_cost is not None and not isinstance(max_cost, str):
        raise ValueError("max_cost must be a Decimal or a decimal string, never a float")
    claims = {"max_total_tokens": max_total_tokens, "max_cost": max_cost}
    claims = {name: value for name, value in claims.items() if value is not None}
    try:
        int_claim(claims, "max_total_tokens", required=False, minimum=1)
        cost_claim(claims)
    except InvalidKey as exc:
        raise ValueError(exc.reason) from None
    return claims
