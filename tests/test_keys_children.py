"""Child keys: narrowing a bound key offline, and verifying the whole chain (pure)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import jwt
import pytest

from dynaseal.keys import (
    CHILD_KEY_TYPE,
    DEFAULT_AUDIENCE,
    KEY_TYPE,
    MAX_CHAIN_LENGTH,
    InvalidKey,
    KeyGrant,
    VerificationKey,
    child_event_id,
    generate_private_key,
    is_child_key,
    key_thumbprint,
    mint_child_key,
    mint_key,
    peek_chain,
    public_jwk,
    verify_child_chain,
    verify_key,
)
from dynaseal.keys.jwk import algorithm_of

SECRET = "a-tenant-secret-of-decent-length"
HS_KEY = VerificationKey("k1", "HS256", SECRET.encode())
DEVICE = generate_private_key("EdDSA")
SUB_AGENT = generate_private_key("ES256")
THIRD = generate_private_key("EdDSA")


def root_token(*, ttl: int = 600, budgets: dict[str, Any] | None = None, **extra: Any) -> str:
    """A bound root key; ``budgets`` are claims mint_key does not take (yet)."""
    options: dict[str, Any] = {
        "tenant_id": "t1",
        "model": ["m1", "m2"],
        "max_tokens": 1000,
        "ttl_seconds": ttl,
        "kid": "k1",
        "sub": "user-7",
        "cnf_jkt": key_thumbprint(DEVICE),
    }
    minted = mint_key(SECRET, **(options | extra))
    if not budgets:
        return minted.token
    headers = {"typ": KEY_TYPE, "kid": "k1"}
    return jwt.encode(minted.claims | budgets, SECRET, algorithm="HS256", headers=headers)


def verify_chain(token: str, now: float | None = None) -> tuple[KeyGrant, ...]:
    now = time.time() if now is None else now
    chain = peek_chain(token)
    root = verify_key(chain.root, [HS_KEY], audience=DEFAULT_AUDIENCE, now=now)
    return verify_child_chain(chain, root, now=now)


def child(parent: str, key: Any = DEVICE, **caps: Any) -> str:
    return mint_child_key(parent, key, now=time.time(), **caps).token


def test_a_root_key_is_a_chain_of_one() -> None:
    token = root_token()
    assert not peek_chain(token).is_child and not is_child_key(token)
    (grant,) = verify_chain(token)
    assert grant.depth == 0 and grant.jkt == key_thumbprint(DEVICE)


def test_a_child_narrows_and_inherits() -> None:
    parent = root_token()
    minted = mint_child_key(
        parent,
        DEVICE,
        now=time.time(),
        models=["m2"],
        max_tokens=100,
        max_cost="0.50",
        ttl_seconds=60,
        jti="sub-agent-1",
    )
    header = jwt.get_unverified_header(minted.token)
    assert header["typ"] == CHILD_KEY_TYPE and header["alg"] == "EdDSA"
    assert header["jwk"] == public_jwk(DEVICE)
    claims = jwt.decode(minted.token, options={"verify_signature": False})
    assert claims["prt"] == parent and claims["jti"] == "sub-agent-1"
    assert claims["exp"] - claims["iat"] == 60 and claims["max_cost"] == "0.50"
    assert is_child_key(minted.token)

    root, grant = verify_chain(minted.token)
    assert grant == minted.grant
    assert grant.models == ("m2",) and grant.max_tokens == 100
    assert grant.max_cost == Decimal("0.50") and grant.max_requests is None
    assert grant.event_id == child_event_id(root.event_id, "sub-agent-1") == minted.event_id
    assert grant.parent_event_id == root.event_id and grant.depth == 1
    assert (grant.tenant_id, grant.sub, grant.kid) == ("t1", "user-7", "k1")
    assert grant.format == "child" and grant.jkt is None  # a bearer key for the sub-agent


def test_caps_left_out_are_the_parents() -> None:
    parent = root_token(max_requests=5)
    _, grant = verify_chain(child(parent))
    assert grant.models == ("m1", "m2") and grant.max_tokens == 1000
    assert grant.max_requests == 5
    assert grant.expires_at == jwt.decode(parent, options={"verify_signature": False})["exp"]


def test_a_ttl_beyond_the_parent_is_cut_to_the_parent() -> None:
    parent = root_token(ttl=100)
    minted = mint_child_key(parent, DEVICE, now=time.time(), ttl_seconds=10_000)
    root, grant = verify_chain(minted.token)
    assert grant.expires_at == root.expires_at


@pytest.mark.parametrize(
    ("caps", "reason"),
    [
        ({"models": ["m3"]}, "models"),
        ({"models": []}, "models"),
        ({"max_tokens": 1001}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_cost": "abc"}, "max_cost"),
        ({"max_cost": 0.5}, "max_cost"),
        ({"jti": "short"}, "jti"),
        ({"cnf_jkt": "not-a-thumbprint"}, "cnf"),
    ],
)
def test_minting_refuses_widening_or_nonsense(caps: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        child(root_token(), **caps)


def test_minting_needs_the_parents_device_key_and_a_bound_parent() -> None:
    with pytest.raises(ValueError, match="not the key"):
        child(root_token(), key=THIRD)
    unbound = mint_key(SECRET, tenant_id="t1", model="m1", max_tokens=5).token
    with pytest.raises(ValueError, match="bound"):
        child(unbound)
    expired = root_token(now=time.time() - 1000, ttl=60)
    with pytest.raises(ValueError, match="expired"):
        child(expired)


def test_caps_narrow_along_the_chain() -> None:
    parent = root_token(max_requests=10, budgets={"max_total_tokens": 5000, "max_cost": "2"})
    first = child(parent, max_tokens=500, max_cost="1.5", cnf_jkt=key_thumbprint(SUB_AGENT))
    with pytest.raises(ValueError, match="max_cost"):
        child(first, key=SUB_AGENT, max_cost="1.6")
    with pytest.raises(ValueError, match="max_requests"):
        child(first, key=SUB_AGENT, max_requests=11)
    with pytest.raises(ValueError, match="max_total_tokens"):
        child(first, key=SUB_AGENT, max_total_tokens=5001)
    second = child(first, key=SUB_AGENT, max_tokens=50, max_requests=2)
    root, middle, leaf = verify_chain(second)
    assert [g.max_tokens for g in (root, middle, leaf)] == [1000, 500, 50]
    assert [g.max_requests for g in (root, middle, leaf)] == [10, 10, 2]
    assert leaf.max_cost == Decimal("1.5") and leaf.max_total_tokens == 5000
    assert leaf.parent_event_id == middle.event_id and middle.parent_event_id == root.event_id
    assert len({root.event_id, middle.event_id, leaf.event_id}) == 3


def test_a_grandchild_bound_to_a_third_key() -> None:
    first = child(root_token(), cnf_jkt=key_thumbprint(SUB_AGENT))
    second = child(first, key=SUB_AGENT, cnf_jkt=key_thumbprint(THIRD))
    grants = verify_chain(second)
    assert [g.jkt for g in grants] == [
        key_thumbprint(DEVICE),
        key_thumbprint(SUB_AGENT),
        key_thumbprint(THIRD),
    ]
    assert [g.depth for g in grants] == [0, 1, 2]


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_four_levels_with_every_cap_fit_in_a_header(algorithm: str) -> None:
    keys = [DEVICE] + [generate_private_key(algorithm) for _ in range(4)]
    token = root_token(sub="671247fadb2faa4fec2c6f39", metadata={"app": "notes"})
    for level in range(4):
        token = child(
            token,
            key=keys[level],
            models=["m1"],
            max_tokens=900 - level,
            max_total_tokens=2000,
            max_cost="0.25",
            max_requests=10,
            cnf_jkt=key_thumbprint(keys[level + 1]),
        )
    assert len(token) <= MAX_CHAIN_LENGTH
    assert [g.depth for g in verify_chain(token)] == [0, 1, 2, 3, 4]


def test_four_levels_verify_and_a_fifth_does_not() -> None:
    keys = [DEVICE] + [generate_private_key("EdDSA") for _ in range(4)]
    token = root_token()
    for level in range(4):
        token = child(token, key=keys[level], cnf_jkt=key_thumbprint(keys[level + 1]))
    assert [g.depth for g in verify_chain(token)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="4 levels"):
        child(token, key=keys[4])
    with pytest.raises(InvalidKey, match="deeper"):
        verify_chain(sign_child(token, keys[4], {}))


def sign_child(
    parent: str,
    key: Any,
    claims: dict[str, Any],
    *,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> str:
    """A child key built field by field (what a hostile holder could send)."""
    now = int(time.time())
    body = {"prt": parent, "jti": "hand-made-child", "iat": now, "exp": now + 60} | claims
    for name in drop:
        body.pop(name)
    algorithm = algorithm_of(key)
    headers = {"typ": CHILD_KEY_TYPE, "jwk": public_jwk(key)} | (header or {})
    return jwt.encode(body, key, algorithm=algorithm, headers=headers)


def test_the_forging_helper_makes_good_children() -> None:
    assert verify_chain(sign_child(root_token(), DEVICE, {}))[-1].depth == 1


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: sign_child(p, DEVICE, {"models": ["m1", "m9"]}), "models"),
        (lambda p: sign_child(p, DEVICE, {"exp": int(time.time()) + 10_000}), "after its parent"),
        (lambda p: sign_child(p, DEVICE, {"exp": int(time.time()) - 100}), "expired"),
        (lambda p: sign_child(p, DEVICE, {"iat": int(time.time()) + 100}), "future"),
        (lambda p: sign_child(p, DEVICE, {"max_tokens": 1001}), "max_tokens"),
        (lambda p: sign_child(p, DEVICE, {"max_requests": 0}), "max_requests"),
        (lambda p: sign_child(p, DEVICE, {"cnf": {"jkt": "nope"}}), "cnf"),
        (lambda p: sign_child(p, DEVICE, {"jti": "x"}), "jti"),
        (lambda p: sign_child(p, DEVICE, {}, drop=("exp",)), "exp"),
        (lambda p: sign_child(p, DEVICE, {}, drop=("prt",)), "prt"),
        (lambda p: sign_child(p, THIRD, {}), "not signed by the key"),
        (lambda p: sign_child(p, SUB_AGENT, {}, header={"jwk": public_jwk(DEVICE)}), "alg"),
        (
            lambda p: sign_child(p, THIRD, {}, header={"jwk": public_jwk(DEVICE)}),
            "signature",
        ),
        (
            lambda p: sign_child(p, DEVICE, {}, header={"jwk": public_jwk(DEVICE) | {"d": "x"}}),
            "jwk",
        ),
        (lambda p: sign_child(p, DEVICE, {}, header={"jku": "https://x.example"}), "jku"),
    ],
)
def test_a_hostile_child_is_refused(make: Any, reason: str) -> None:
    with pytest.raises(InvalidKey, match=reason):
        verify_chain(make(root_token()))


def test_an_unbound_key_has_no_children() -> None:
    unbound = mint_key(SECRET, tenant_id="t1", model="m1", max_tokens=5).token
    with pytest.raises(InvalidKey, match="not bound"):
        verify_chain(sign_child(unbound, DEVICE, {}))


def test_the_parent_inside_a_child_cannot_be_swapped() -> None:
    """``prt`` is under the child's signature: a bigger parent cannot be slipped in."""
    small, big = root_token(max_tokens=10), root_token(max_tokens=1000)
    token = child(small)
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False}) | {"prt": big}
    forged_payload = jwt.api_jws.base64url_encode(
        jwt.utils.force_bytes(jwt.api_jwt.json.dumps(claims, separators=(",", ":")))
    ).decode()
    with pytest.raises(InvalidKey, match="signature"):
        verify_chain(f"{header}.{forged_payload}.{signature}")


def test_a_revoked_or_expired_parent_kills_the_child() -> None:
    """An expired root fails ``verify_key``; an expired middle link fails the chain."""
    now = time.time()
    parent = root_token(ttl=100)
    token = child(parent, ttl_seconds=50)
    assert verify_chain(token, now=now)
    with pytest.raises(InvalidKey, match="expired"):
        verify_chain(token, now=now + 200)
    first = child(root_token(), ttl_seconds=40, cnf_jkt=key_thumbprint(SUB_AGENT))
    grandchild = sign_child(first, SUB_AGENT, {"exp": int(now) + 30})
    with pytest.raises(InvalidKey, match="expired"):
        verify_chain(grandchild, now=now + 100)


def test_a_child_cannot_borrow_another_keys_event_id() -> None:
    victim = mint_key(SECRET, tenant_id="t1", model="m1", max_tokens=5)
    token = child(root_token(), jti=victim.event_id)
    assert verify_chain(token)[-1].event_id != victim.event_id


def test_the_root_grant_must_be_the_chains() -> None:
    token = child(root_token())
    chain = peek_chain(token)
    other = mint_key(SECRET, tenant_id="t2", model="m1", max_tokens=5, kid="k1")
    stranger = verify_key(
        peek_chain(other.token).root, [HS_KEY], audience=DEFAULT_AUDIENCE, now=time.time()
    )
    with pytest.raises(InvalidKey, match="root"):
        verify_child_chain(chain, stranger, now=time.time())


def test_an_oversized_chain_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidKey, match="too long"):
        peek_chain("a" * (MAX_CHAIN_LENGTH + 1))
    assert not is_child_key("a" * (MAX_CHAIN_LENGTH + 1))
