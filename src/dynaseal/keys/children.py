"""Child keys: the holder of a bound key narrows it, offline, for a sub-agent.

A child key is a JWT with header ``typ: dsk-child+jwt``, ``alg`` EdDSA or ES256 and
``jwk``: the public key it is signed with, which must be the key its parent is bound to
(the thumbprint of ``jwk`` equals the parent's ``cnf.jkt``; Ed25519 signatures do not
let a verifier recover the key, so it travels in the header). Its claims are ``prt``
(the whole parent token), ``jti``, ``iat``, ``exp`` (at most the parent's), and any of
``models``, ``max_tokens``, ``max_total_tokens``, ``max_cost``, ``max_requests`` and
``cnf`` - each cap no wider than the parent's. A child may itself be bound and have
children, up to :data:`MAX_CHILD_DEPTH` derivations below the tenant-signed root.

Verification, like for root keys, is split around the one step that needs storage:

1. :func:`peek_chain` unwraps the presented token down to its root;
2. the caller verifies ``chain.root`` with the tenant's keys (:func:`verify_key`);
3. :func:`verify_child_chain` checks every link and returns one grant per key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jwt

from dynaseal.keys.claim_values import cnf_claim, cost_claim, int_claim, models_claim, time_claim
from dynaseal.keys.claims import KeyGrant
from dynaseal.keys.compact import b64url_encode, split_compact
from dynaseal.keys.errors import InvalidKey
from dynaseal.keys.jwk import (
    PrivateKey,
    PublicKey,
    algorithm_of,
    jwk_thumbprint,
    key_thumbprint,
    load_private_key,
    public_jwk,
    public_key_from_jwk,
)
from dynaseal.keys.verify import UnverifiedKey, peek_key, read_grant

#: ``typ`` header of a child key.
CHILD_KEY_TYPE = "dsk-child+jwt"
#: Derivations allowed below the tenant-signed root (a grandchild has depth 2).
MAX_CHILD_DEPTH = 4
#: A child token (its ancestors inside) longer than this is refused before parsing. A
#: chain of the maximal depth stays under it, and an ``Authorization`` header of this
#: size still fits the 8 KiB header line of common proxies (nginx's default).
MAX_CHAIN_LENGTH = 7800
_CHILD_JTI = re.compile(r"^[A-Za-z0-9_.~-]{8,128}$")
_REFUSED_HEADERS = frozenset({"jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"})


@dataclass(frozen=True, slots=True)
class ChildLink:
    """One child key of a chain, parsed but not verified."""

    token: str
    claims: dict[str, Any]
    algorithm: str
    public_key: PublicKey
    #: Thumbprint of the header's ``jwk``: must be the parent's ``cnf.jkt``.
    signer_jkt: str


@dataclass(frozen=True, slots=True)
class KeyChain:
    """A presented token unwrapped: the tenant-signed root and the child keys on top of
    it (the root's child first, the presented key last; empty for a root key)."""

    token: str
    root: UnverifiedKey
    links: tuple[ChildLink, ...]

    @property
    def is_child(self) -> bool:
        return bool(self.links)


@dataclass(frozen=True, slots=True)
class MintedChild:
    """A freshly minted child key and what it grants."""

    token: str
    jti: str
    grant: KeyGrant

    @property
    def event_id(self) -> str:
        return self.grant.event_id

    @property
    def expires_at(self) -> float:
        return self.grant.expires_at


def child_event_id(parent_event_id: str, jti: str) -> str:
    """The event id a child key is charged and reported under.

    Derived from the parent's event id rather than taken from the child's ``jti`` as
    is: the holder chooses the ``jti``, and a child named after another key's event id
    would otherwise spend that key's budget and appear in its callbacks.
    """
    digest = hashlib.sha256(f"{parent_event_id}\x00{jti}".encode()).digest()
    return f"child_{b64url_encode(digest)[:32]}"


def is_child_key(token: object) -> bool:
    """Whether a token claims to be a child key (cheap; nothing is checked)."""
    try:
        header, _ = split_compact(token, max_length=MAX_CHAIN_LENGTH)
    except InvalidKey:
        return False
    return header.get("typ") == CHILD_KEY_TYPE


def _link(token: str, header: dict[str, Any], claims: dict[str, Any]) -> ChildLink:
    refused = _REFUSED_HEADERS.intersection(header)
    if refused:
        raise InvalidKey(f"refused child key header parameter(s): {sorted(refused)}")
    try:
        algorithm, public_key = public_key_from_jwk(header.get("jwk"))
        signer_jkt = jwk_thumbprint(header["jwk"])
    except ValueError as exc:
        raise InvalidKey(f"child key jwk refused: {exc}") from None
    if header.get("alg") != algorithm:  # the key decides the algorithm, never the token
        raise InvalidKey("child key alg does not match its jwk")
    return ChildLink(token, claims, algorithm, public_key, signer_jkt)


def peek_chain(token: str) -> KeyChain:
    """Unwrap a presented key down to its tenant-signed root, trusting nothing yet.

    Works for root keys too (``links`` is then empty), so the gateway can call it for
    every token.
    """
    links: list[ChildLink] = []
    current: object = token
    while True:
        header, claims = split_compact(current, max_length=MAX_CHAIN_LENGTH)
        if header.get("typ") != CHILD_KEY_TYPE:
            break
        if len(links) == MAX_CHILD_DEPTH:
            raise InvalidKey(f"child key chain deeper than {MAX_CHILD_DEPTH}")
        assert isinstance(current, str)
        links.append(_link(current, header, claims))
        current = claims.get("prt")
        if not isinstance(current, str):
            raise InvalidKey("child key claim prt missing")
    assert isinstance(current, str)
    return KeyChain(token, peek_key(current), tuple(reversed(links)))


def _narrowed(value: Any, parent_value: Any, name: str) -> Any:
    """A child's cap: its own if it has one (never above the parent's), else the parent's.

    Inheriting the parent's figure keeps the meaning of "no cap of its own": the child's
    own counter can then never bind before the parent's, which counts the child too.
    """
    if value is None:
        return parent_value
    if parent_value is not None and value > parent_value:
        raise InvalidKey(f"child key claim {name} is wider than its parent's")
    return value


def narrow_grant(
    parent: KeyGrant, claims: dict[str, Any], *, now: float, leeway: float
) -> KeyGrant:
    """The grant of a child key with these claims, or :class:`InvalidKey` if any claim is
    malformed or wider than the parent's. No signature is checked here."""
    jti = claims.get("jti")
    if not isinstance(jti, str) or not _CHILD_JTI.match(jti):
        raise InvalidKey("child key claim jti must be 8 to 128 URL-safe characters")
    issued_at = time_claim(claims, "iat", required=True)
    expires_at = time_claim(claims, "exp", required=True)
    assert issued_at is not None and expires_at is not None
    if issued_at > now + leeway:
        raise InvalidKey("child key issued in the future")
    if expires_at > parent.expires_at:
        raise InvalidKey("child key expires after its parent")
    if expires_at <= now - leeway:
        raise InvalidKey("child key expired")
    models = models_claim(claims)
    if models is not None and not set(models).issubset(parent.models):
        raise InvalidKey("child key claim models names a model its parent lacks")
    return KeyGrant(
        tenant_id=parent.tenant_id,
        event_id=child_event_id(parent.event_id, jti),
        models=models or parent.models,
        max_tokens=_narrowed(
            int_claim(claims, "max_tokens", required=False, minimum=1),
            parent.max_tokens,
            "max_tokens",
        ),
        expires_at=expires_at,
        format="child",
        kid=parent.kid,
        issued_at=issued_at,
        max_requests=_narrowed(
            int_claim(claims, "max_requests", required=False, minimum=1),
            parent.max_requests,
            "max_requests",
        ),
        sub=parent.sub,
        metadata=parent.metadata,
        jkt=cnf_claim(claims),
        max_total_tokens=_narrowed(
            int_claim(claims, "max_total_tokens", required=False, minimum=1),
            parent.max_total_tokens,
            "max_total_tokens",
        ),
        max_cost=_narrowed(cost_claim(claims), parent.max_cost, "max_cost"),
        parent_event_id=parent.event_id,
        depth=parent.depth + 1,
        ancestors=parent.chain,
    )


def _check_link_signature(link: ChildLink, parent: KeyGrant) -> None:
    if parent.jkt is None:
        raise InvalidKey("child key of a key that is not bound")
    if not hmac.compare_digest(link.signer_jkt, parent.jkt):
        raise InvalidKey("child key not signed by the key its parent is bound to")
    try:
        jwt.api_jws.decode_complete(link.token, link.public_key, algorithms=[link.algorithm])
    except jwt.InvalidTokenError:
        raise InvalidKey("child key signature does not verify") from None


def verify_child_chain(
    chain: KeyChain, root: KeyGrant, *, now: float, leeway: float = 30.0
) -> tuple[KeyGrant, ...]:
    """Every link of ``chain`` on top of its ``root`` grant, already verified by the
    caller with the tenant's keys. Returns the grants root first, presented key last
    (just ``(root,)`` for a root key); each has its own ``event_id`` and caps, and a
    request must be charged to, and refused by, every one of them."""
    if root.format == "child" or root.tenant_id != chain.root.tenant_id:
        raise InvalidKey("the root grant is not the chain's root")
    grants = [root]
    for link in chain.links:
        _check_link_signature(link, grants[-1])
        grants.append(narrow_grant(grants[-1], link.claims, now=now, leeway=leeway))
    return tuple(grants)


def _unverified_grant(token: str, *, now: float) -> tuple[KeyGrant, int]:
    """What a key its holder has in hand grants, and its depth; nothing is verified."""
    try:
        chain = peek_chain(token)
        grant = read_grant(
            chain.root, kid=chain.root.kid, audience=None, now=now, max_lifetime=math.inf
        )
        for link in chain.links:
            grant = narrow_grant(grant, link.claims, now=now, leeway=0)
    except InvalidKey as exc:
        raise ValueError(f"the parent key is not usable: {exc.reason}") from None
    return grant, len(chain.links)


def mint_child_key(
    parent_token: str,
    parent_private_key: PrivateKey | str | bytes,
    *,
    now: float,
    models: Sequence[str] | None = None,
    max_tokens: int | None = None,
    max_total_tokens: int | None = None,
    max_cost: Decimal | str | None = None,
    max_requests: int | None = None,
    ttl_seconds: float | None = None,
    expires_at: float | None = None,
    cnf_jkt: str | None = None,
    jti: str | None = None,
) -> MintedChild:
    """Derive a narrower key from a bound key, offline.

    ``parent_private_key`` is the device key the parent is bound to. The child expires
    after ``ttl_seconds`` or at ``expires_at``, never after its parent (it is cut to
    the parent's expiry). Caps left out are the parent's. With ``cnf_jkt`` the child is
    itself bound: its user needs that key to make DPoP proofs. ``ValueError`` when the
    request is malformed or would widen the parent.
    """
    key = load_private_key(parent_private_key)
    parent, depth = _unverified_grant(parent_token, now=now)
    if parent.jkt is None:
        raise ValueError("only a bound key (one with cnf.jkt) can have child keys")
    if not hmac.compare_digest(key_thumbprint(key), parent.jkt):
        raise ValueError("parent_private_key is not the key the parent key is bound to")
    if depth >= MAX_CHILD_DEPTH:
        raise ValueError(f"child keys may be derived at most {MAX_CHILD_DEPTH} levels deep")
    if ttl_seconds is not None and not ttl_seconds >= 1:
        raise ValueError("ttl_seconds must be at least 1")
    if max_cost is not None and not isinstance(max_cost, Decimal | str):
        raise ValueError("max_cost must be a Decimal or a decimal string, never a float")
    issued_at = int(now)
    exp = min(
        parent.expires_at,
        math.inf if ttl_seconds is None else issued_at + ttl_seconds,
        math.inf if expires_at is None else expires_at,
    )
    claims: dict[str, Any] = {
        "prt": parent_token,
        "jti": jti or uuid.uuid4().hex,
        "iat": issued_at,
        "exp": int(exp),
    }
    optional: dict[str, Any] = {
        "models": None if models is None else list(models),
        "max_tokens": max_tokens,
        "max_total_tokens": max_total_tokens,
        "max_cost": None if max_cost is None else str(max_cost),
        "max_requests": max_requests,
        "cnf": None if cnf_jkt is None else {"jkt": cnf_jkt},
    }
    claims.update({name: value for name, value in optional.items() if value is not None})
    try:
        grant = narrow_grant(parent, claims, now=now, leeway=0)
    except InvalidKey as exc:
        raise ValueError(exc.reason) from None
    headers = {"typ": CHILD_KEY_TYPE, "jwk": public_jwk(key)}
    token = jwt.encode(claims, key, algorithm=algorithm_of(key), headers=headers)
    if len(token) > MAX_CHAIN_LENGTH:
        raise ValueError(f"the child key would be longer than {MAX_CHAIN_LENGTH} characters")
    return MintedChild(token, claims["jti"], grant)
