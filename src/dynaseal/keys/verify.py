"""Verifying dynamic keys by RFC 8725: every check, no I/O.

Verification is split around the one lookup that needs storage, which the caller does:

1. :func:`peek_key` parses the untrusted token strictly and says which tenant
   (and which ``kid``) it claims to come from;
2. the caller loads that tenant's key records;
3. :func:`verify_key` checks the signature with the algorithm *of the record*
   (never the token's choice) and validates every claim.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

from dynaseal.keys.claim_values import (
    cnf_claim,
    cost_claim,
    int_claim,
    models_claim,
    str_claim,
    time_claim,
)
from dynaseal.keys.claims import KEY_TYPE, KeyGrant
from dynaseal.keys.compact import split_compact
from dynaseal.keys.errors import InvalidKey

#: Tokens longer than this are refused before any parsing.
MAX_TOKEN_LENGTH = 4096
#: Algorithms a key record may have. One algorithm per record; ``none`` never.
SUPPORTED_ALGORITHMS = frozenset({"HS256", "EdDSA", "ES256"})
#: Header parameters that would let the token choose its own verification key.
_REFUSED_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit"})
#: ``kid`` and tenant ids are lookup values from an attacker: keep them boring.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_MAX_METADATA_BYTES = 2048


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One tenant key record as the verifier needs it."""

    kid: str
    algorithm: str
    key: Any  # bytes secret for HS256, a public key object for EdDSA / ES256

    def __post_init__(self) -> None:
        if self.algorithm not in SUPPORTED_ALGORITHMS:
            raise ValueError(f"unsupported algorithm {self.algorithm!r}")
        if self.algorithm.startswith("HS") and not (
            isinstance(self.key, bytes | str) and len(self.key) >= 16
        ):
            raise ValueError("an HMAC key must be at least 16 bytes")


@dataclass(frozen=True, slots=True)
class UnverifiedKey:
    """A token that parsed cleanly but whose signature nobody has checked yet."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    tenant_id: str
    kid: str | None

    @property
    def is_dynaseal_format(self) -> bool:
        return self.header.get("typ") == KEY_TYPE


def _identifier(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise InvalidKey(f"{what} is missing or malformed")
    return value


def peek_key(token: str) -> UnverifiedKey:
    """Parse a compact JWS strictly, without trusting anything in it."""
    header, claims = split_compact(token, max_length=MAX_TOKEN_LENGTH)
    if not isinstance(header.get("alg"), str):
        raise InvalidKey("alg header missing")
    refused = _REFUSED_HEADERS.intersection(header)
    if refused:
        raise InvalidKey(f"refused header parameter(s): {sorted(refused)}")
    kid = header.get("kid")
    if kid is not None:
        kid = _identifier(kid, "kid")
    iss, api_key = claims.get("iss"), claims.get("api-key")
    if iss is not None and api_key is not None and iss != api_key:
        raise InvalidKey("iss and api-key name different tenants")
    tenant_id = _identifier(iss if iss is not None else api_key, "tenant id")
    return UnverifiedKey(token, header, claims, tenant_id, kid)


def _check_signature(unverified: UnverifiedKey, candidates: Sequence[VerificationKey]) -> str:
    """Return the kid of the record whose key verifies the token's signature."""
    alg = unverified.header["alg"]
    if unverified.kid is not None:
        candidates = [c for c in candidates if c.kid == unverified.kid]
    for candidate in candidates:
        if candidate.algorithm != alg:  # the record decides, never the token
            continue
        try:
            jwt.api_jws.decode_complete(
                unverified.token, candidate.key, algorithms=[candidate.algorithm]
            )
        except jwt.InvalidTokenError:
            continue
        return candidate.kid
    raise InvalidKey("no key of the tenant verifies the signature")


def _models(claims: dict[str, Any]) -> tuple[str, ...]:
    models = models_claim(claims)
    if models is not None:
        single = claims.get("model")
        if single is not None and single not in models:
            raise InvalidKey("claim model is not among models")
        return models
    model = str_claim(claims, "model", required=True)
    return (model,)  # type: ignore[return-value]


def _audience_ok(aud: Any, audience: str) -> bool:
    if isinstance(aud, str):
        return aud == audience
    return isinstance(aud, list) and audience in aud and all(isinstance(a, str) for a in aud)


def verify_key(
    unverified: UnverifiedKey,
    candidates: Sequence[VerificationKey],
    *,
    audience: str,
    now: float,
    leeway: float = 30.0,
    max_lifetime: float = 7 * 24 * 3600,
) -> KeyGrant:
    """Check the signature against the tenant's key records, then every claim.

    ``candidates`` are the tenant's active key records. A token with a ``kid``
    is checked against that record only; one without (the original format) is
    tried against each record whose algorithm matches.
    """
    kid = _check_signature(unverified, candidates)
    return read_grant(
        unverified, kid=kid, audience=audience, now=now, leeway=leeway, max_lifetime=max_lifetime
    )


def read_grant(
    unverified: UnverifiedKey,
    *,
    kid: str | None,
    audience: str | None,
    now: float,
    leeway: float = 30.0,
    max_lifetime: float = 7 * 24 * 3600,
) -> KeyGrant:
    """Every claim check of :func:`verify_key`, without the signature.

    Only for a token whose signature was checked by the caller, or for a device
    reading its own key (``audience=None`` skips the audience check).
    """
    claims = unverified.claims
    max_tokens = int_claim(claims, "max_tokens", required=True, minimum=1)
    models = _models(claims)

    if unverified.is_dynaseal_format:
        if audience is not None and not _audience_ok(claims.get("aud"), audience):
            raise InvalidKey("wrong audience")
        if claims.get("iss") != unverified.tenant_id:
            raise InvalidKey("iss missing")
        event_id = str_claim(claims, "jti", required=True)
        legacy_event = claims.get("event_id")
        if legacy_event is not None and legacy_event != event_id:
            raise InvalidKey("event_id and jti differ")
        issued_at = time_claim(claims, "iat", required=True)
        expires_at = time_claim(claims, "exp", required=True)
        not_before = time_claim(claims, "nbf", required=False)
        assert issued_at is not None and expires_at is not None
        if issued_at > now + leeway:
            raise InvalidKey("issued in the future")
        if expires_at - issued_at > max_lifetime:
            raise InvalidKey("lifetime longer than allowed")
        if not_before is not None and not_before > now + leeway:
            raise InvalidKey("not yet valid")
    else:
        event_id = str_claim(claims, "event_id", required=True)
        expires_at = time_claim(claims, "expiring", required=True)
        issued_at = not_before = None
        assert expires_at is not None

    if expires_at <= now - leeway:
        raise InvalidKey("expired")
    max_requests = int_claim(claims, "max_requests", required=False, minimum=1)
    sub = str_claim(claims, "sub", required=False)
    metadata = claims.get("metadata") or {}
    if not isinstance(metadata, dict) or len(orjson.dumps(metadata)) > _MAX_METADATA_BYTES:
        raise InvalidKey("claim metadata must be a small JSON object")
    return KeyGrant(
        tenant_id=unverified.tenant_id,
        event_id=event_id,  # type: ignore[arg-type]
        models=models,
        max_tokens=max_tokens,
        expires_at=expires_at,
        format="dynaseal" if unverified.is_dynaseal_format else "original",
        kid=kid,
        issued_at=issued_at,
        not_before=not_before,
        max_requests=max_requests,
        sub=sub,
        metadata=metadata,
        jkt=cnf_claim(claims),
        max_total_tokens=int_claim(claims, "max_total_tokens", required=False, minimum=1),
        max_cost=cost_claim(claims),
    )
