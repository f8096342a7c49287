"""The key format on its own: pure functions, no servers."""

from __future__ import annotations

import base64
import contextlib
import time

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynaseal.keys import (
    DEFAULT_AUDIENCE,
    KEY_TYPE,
    InvalidKey,
    VerificationKey,
    generate_key_pair,
    load_public_key,
    mint_key,
    peek_key,
    verify_key,
)

SECRET = "a-tenant-secret-of-decent-length"
HS_KEY = VerificationKey("k1", "HS256", SECRET.encode())


def verify(token: str, keys: list[VerificationKey] | None = None, **kw: object):
    options = {"audience": DEFAULT_AUDIENCE, "now": time.time()} | kw
    return verify_key(peek_key(token), keys or [HS_KEY], **options)  # type: ignore[arg-type]


def test_minted_key_carries_original_and_standard_claims() -> None:
    minted = mint_key(
        SECRET,
        tenant_id="t1",
        model=["m1", "m2"],
        max_tokens=50,
        kid="k1",
        sub="u",
        metadata={"a": 1},
        max_requests=3,
        ttl_seconds=60,
        now=1000,
    )
    header = jwt.get_unverified_header(minted.token)
    assert header == {"alg": "HS256", "typ": KEY_TYPE, "kid": "k1"}
    claims = minted.claims
    assert {claims[k] for k in ("api-key", "iss")} == {"t1"}
    assert claims["model"] == "m1" and claims["models"] == ["m1", "m2"]
    assert claims["expiring"] == claims["exp"] == 1060 and claims["iat"] == claims["nbf"] == 1000
    assert claims["event_id"] == claims["jti"] == minted.event_id
    assert claims["aud"] == DEFAULT_AUDIENCE


def test_verify_returns_the_grant() -> None:
    minted = mint_key(SECRET, tenant_id="t1", model="m", max_tokens=50, sub="u", max_requests=1)
    grant = verify(minted.token)
    assert (grant.tenant_id, grant.event_id, grant.models) == ("t1", minted.event_id, ("m",))
    assert grant.max_tokens == 50 and grant.max_requests == 1 and grant.sub == "u"
    assert grant.format == "dynaseal" and grant.kid == "k1"


def test_original_format_verifies() -> None:
    token = jwt.encode(
        {
            "api-key": "t1",
            "model": "m",
            "max_tokens": 100,
            "expiring": int(time.time()) + 60,
            "event_id": "e",
        },
        SECRET,
    )
    grant = verify(token)
    assert grant.format == "original" and grant.event_id == "e" and grant.issued_at is None


def test_kid_selects_the_key_and_no_kid_tries_each() -> None:
    other = VerificationKey("k2", "HS256", b"another-secret-0123456789-abcdefgh")
    with_kid = mint_key(SECRET, tenant_id="t1", model="m", max_tokens=5, kid="k2").token
    with pytest.raises(InvalidKey):
        verify(with_kid, [HS_KEY, other])  # k2's secret is not SECRET
    without = mint_key(SECRET, tenant_id="t1", model="m", max_tokens=5).token
    assert verify(without, [other, HS_KEY]).kid == "k1"


def test_leeway_applies_to_expiry() -> None:
    token = mint_key(
        SECRET, tenant_id="t1", model="m", max_tokens=5, ttl_seconds=10, now=time.time() - 20
    ).token
    assert verify(token, leeway=30).max_tokens == 5
    with pytest.raises(InvalidKey, match="expired"):
        verify(token, leeway=5)


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_asymmetric_keys(algorithm: str) -> None:
    pair = generate_key_pair(algorithm)
    key = VerificationKey("a1", algorithm, load_public_key(algorithm, pair.public_pem))
    token = mint_key(
        pair.private_pem, algorithm=algorithm, kid="a1", tenant_id="t", model="m", max_tokens=5
    ).token
    assert verify(token, [key]).kid == "a1"
    with pytest.raises(ValueError):
        load_public_key("ES256" if algorithm == "EdDSA" else "EdDSA", pair.public_pem)


def test_weak_or_unknown_key_records_are_rejected() -> None:
    with pytest.raises(ValueError):
        VerificationKey("k", "HS256", b"short")
    with pytest.raises(ValueError):
        VerificationKey("k", "none", b"x" * 32)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_tokens": 0},
        {"max_tokens": True},
        {"model": []},
        {"ttl_seconds": 0},
        {"max_requests": 0},
    ],
)
def test_mint_refuses_nonsense(kwargs: dict[str, object]) -> None:
    options = {"tenant_id": "t", "model": "m", "max_tokens": 5} | kwargs
    with pytest.raises(ValueError):
        mint_key(SECRET, **options)  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_peek_never_fails_with_anything_but_invalid_key(token: str) -> None:
    with contextlib.suppress(InvalidKey):
        peek_key(token)


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_garbage_segments_are_invalid_keys(header: bytes, payload: bytes) -> None:
    def enc(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    with contextlib.suppress(InvalidKey):
        verify(f"{enc(header)}.{enc(payload)}.c2ln")


def test_a_budget_beyond_2_53_is_refused_not_stored() -> None:
    """No database column would hold it (SQLite and PostgreSQL stop at 2**63 - 1)."""
    claims = {"api-key": "t1", "model": "m", "expiring": int(time.time()) + 60, "event_id": "e"}
    assert verify(jwt.encode(claims | {"max_tokens": 2**53}, SECRET)).max_tokens == 2**53
    with pytest.raises(InvalidKey, match="max_tokens"):
        verify(jwt.encode(claims | {"max_tokens": 2**63}, SECRET))
