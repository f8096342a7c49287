"""The attacker's view: forged, confused, malformed, replayed and revoked keys against a
running gateway. Every one is refused, and none reaches the upstream."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dynaseal.core.original_demo import DEMO_TENANT_API_KEY, DEMO_TENANT_ID
from dynaseal.keys import KEY_TYPE, generate_key_pair, mint_key
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, TenantHandle, create_tenant, mint, original_key
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(json.dumps(value).encode())


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def own_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    event = uuid.uuid4().hex
    claims = {
        "api-key": DEMO_TENANT_ID,
        "iss": DEMO_TENANT_ID,
        "aud": "dynaseal-gateway",
        "model": DEMO_MODEL,
        "max_tokens": 100,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "expiring": now + 600,
        "jti": event,
        "event_id": event,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


def demo_signed(claims: dict[str, Any], **header: Any) -> str:
    return hs256({"alg": "HS256", "typ": KEY_TYPE, **header}, claims, DEMO_TENANT_API_KEY.encode())


def chat(gateway: ServerThread, token: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES},
        timeout=10,
    )


@pytest.fixture(scope="module")
def ed_tenant(gateway: ServerThread) -> tuple[TenantHandle, Any, str]:
    """A tenant that registered only an Ed25519 public key: (tenant, key pair, kid)."""
    tenant = create_tenant(gateway.url)
    pair = generate_key_pair("EdDSA")
    key = tenant.add_api_key(algorithm="EdDSA", public_key=pair.public_pem)
    assert "secret" not in key  # an Ed25519 key has no secret, and the answer says none
    return tenant, pair, key["kid"]


def attacker_jwk_token() -> str:
    attacker = Ed25519PrivateKey.generate()
    raw = attacker.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    header = {
        "alg": "EdDSA",
        "typ": KEY_TYPE,
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)},
    }
    signing_input = f"{segment(header)}.{segment(own_claims())}"
    return f"{signing_input}.{b64(attacker.sign(signing_input.encode()))}"


def alg_none(alg: str, signature: str = "") -> str:
    return f"{segment({'alg': alg, 'typ': KEY_TYPE})}.{segment(own_claims())}.{signature}"


def wrong_type(claim: str, value: Any) -> Callable[[], str]:
    return lambda: demo_signed(own_claims(**{claim: value}))


def original_wrong_type(claim: str, value: Any) -> Callable[[], str]:
    claims = {
        "api-key": DEMO_TENANT_ID,
        "model": DEMO_MODEL,
        "max_tokens": 100,
        "expiring": int(time.time()) + 600,
        "event_id": uuid.uuid4().hex,
    }
    claims[claim] = value
    return lambda: hs256({"alg": "HS256", "typ": "JWT"}, claims, DEMO_TENANT_API_KEY.encode())


ATTACKS: dict[str, Callable[[], str]] = {
    "forged signature (other secret)": lambda: mint(secret="attacker-secret-0123456789-abcdefgh"),
    "tampered payload": lambda: (
        lambda t: ".".join(
            [
                t.split(".")[0],
                segment(
                    {
                        **json.loads(base64.urlsafe_b64decode(t.split(".")[1] + "==")),
                        "max_tokens": 10**9,
                    }
                ),
                t.split(".")[2],
            ]
        )
    )(mint()),
    "alg none, empty signature": lambda: alg_none("none"),
    "alg None": lambda: alg_none("None"),
    "alg NONE": lambda: alg_none("NONE"),
    "alg nOnE": lambda: alg_none("nOnE"),
    "alg none with a signature": lambda: alg_none("none", "c2ln"),
    "null signature": lambda: mint().rsplit(".", 1)[0] + ".",
    "blank HMAC secret": lambda: hs256({"alg": "HS256", "typ": KEY_TYPE}, own_claims(), b""),
    "alg HS512 on an HS256 key": lambda: (
        lambda c: (
            f"{segment({'alg': 'HS512'})}.{segment(c)}."
            + b64(
                hmac.new(
                    DEMO_TENANT_API_KEY.encode(),
                    f"{segment({'alg': 'HS512'})}.{segment(c)}".encode(),
                    hashlib.sha512,
                ).digest()
            )
        )
    )(own_claims()),
    "injected jwk header": attacker_jwk_token,
    "injected jku header": lambda: demo_signed(own_claims(), jku="https://attacker.example/jwks"),
    "injected x5u header": lambda: demo_signed(own_claims(), x5u="https://attacker.example/c"),
    "injected x5c header": lambda: demo_signed(own_claims(), x5c=["MIIB"]),
    "unknown crit header": lambda: demo_signed(own_claims(), crit=["exp"]),
    "kid path traversal": lambda: demo_signed(own_claims(), kid="../../../etc/passwd"),
    "kid SQL injection": lambda: demo_signed(own_claims(), kid="' OR '1'='1"),
    "kid too long": lambda: demo_signed(own_claims(), kid="k" * 500),
    "tenant id SQL injection": lambda: demo_signed(
        own_claims(**{"api-key": "x' OR 1=1--", "iss": "x' OR 1=1--"})
    ),
    "max_tokens null": wrong_type("max_tokens", None),
    "max_tokens true": wrong_type("max_tokens", True),
    "max_tokens 0": wrong_type("max_tokens", 0),
    "max_tokens string": wrong_type("max_tokens", "100"),
    "max_tokens negative": wrong_type("max_tokens", -5),
    "exp null": wrong_type("exp", None),
    "exp true": wrong_type("exp", True),
    "exp 0": wrong_type("exp", 0),
    "exp string": wrong_type("exp", "2099-01-01"),
    "iat missing": wrong_type("iat", ...),
    "iat bool": wrong_type("iat", False),
    "aud missing": wrong_type("aud", ...),
    "model null": wrong_type("model", None),
    "model 0": wrong_type("model", 0),
    "jti 0": wrong_type("jti", 0),
    "jti null": wrong_type("jti", None),
    "max_requests 0": wrong_type("max_requests", 0),
    "max_requests string": wrong_type("max_requests", "1"),
    "original: expiring null": original_wrong_type("expiring", None),
    "original: expiring bool": original_wrong_type("expiring", True),
    "original: expiring 0": original_wrong_type("expiring", 0),
    "original: expiring string": original_wrong_type("expiring", "tomorrow"),
    "original: max_tokens string": original_wrong_type("max_tokens", "100"),
    "original: event_id null": original_wrong_type("event_id", None),
    "original: event_id 0": original_wrong_type("event_id", 0),
    "original: api-key 0": original_wrong_type("api-key", 0),
    "oversize token": lambda: demo_signed(own_claims(metadata={"pad": "x" * 5000})),
    "two-part token": lambda: ".".join(mint().split(".")[:2]),
    "four-part token": lambda: mint() + ".AAAA",
    "non-base64 header": lambda: "!!!." + ".".join(mint().split(".")[1:]),
    "expired": lambda: mint(now=time.time() - 3600, ttl_seconds=600),
    "expired original": lambda: original_key(expiring=int(time.time()) - 120),
    "not yet valid (nbf)": lambda: demo_signed(own_claims(nbf=int(time.time()) + 3600)),
    "issued in the future": lambda: demo_signed(
        own_claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 4000)
    ),
    "lifetime over the cap": lambda: demo_signed(own_claims(exp=int(time.time()) + 30 * 86400)),
    "wrong aud": lambda: mint(audience="some-other-gateway"),
    "aud list without us": lambda: demo_signed(own_claims(aud=["a", "b"])),
    "iss and api-key disagree": lambda: demo_signed(own_claims(iss="ffffffffffffffffffffffff")),
    "unknown tenant": lambda: mint(tenant_id="ffffffffffffffffffffffff"),
}


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_attack_is_refused_before_the_upstream(
    gateway: ServerThread, upstream: FakeUpstream, attack: str
) -> None:
    response = chat(gateway, ATTACKS[attack]())
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["message"] == "Invalid, expired or revoked dynamic key."
    assert upstream.count == 0


def test_key_of_tenant_a_presented_with_tenant_b_id(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    tenant_b = create_tenant(gateway.url)
    tenant_b.add_api_key()
    forged = mint(tenant_id=tenant_b.id)  # signed with the demo tenant's secret
    assert chat(gateway, forged).status_code == 401
    assert upstream.count == 0


def test_ed25519_key_works_and_hs256_with_its_public_key_is_refused(
    gateway: ServerThread, upstream: FakeUpstream, ed_tenant: tuple[TenantHandle, Any, str]
) -> None:
    tenant, pair, kid = ed_tenant

    def ed_key(private_pem: str, kid: str | None) -> str:
        return mint_key(
            private_pem,
            algorithm="EdDSA",
            kid=kid,
            tenant_id=tenant.id,
            model=DEMO_MODEL,
            max_tokens=100,
        ).token

    assert chat(gateway, ed_key(pair.private_pem, kid)).status_code == 200
    assert upstream.count == 1
    claims = own_claims(**{"api-key": tenant.id, "iss": tenant.id})
    for header_kid in (kid, None):
        header = {"alg": "HS256", "typ": KEY_TYPE} | ({"kid": header_kid} if header_kid else {})
        for secret in (pair.public_pem.encode(), pair.public_pem.strip().encode()):
            assert chat(gateway, hs256(header, claims, secret)).status_code == 401
    # Without a kid it is tried against the tenant's EdDSA key; another pair never verifies.
    assert chat(gateway, ed_key(pair.private_pem, None)).status_code == 200
    assert chat(gateway, ed_key(generate_key_pair("EdDSA").private_pem, kid)).status_code == 401
    assert upstream.count == 2


def test_max_requests_is_enforced(gateway: ServerThread, upstream: FakeUpstream) -> None:
    key = mint(max_requests=2)
    assert [chat(gateway, key).status_code for _ in range(4)] == [200, 200, 429, 429]
    assert upstream.count == 2


async def test_single_use_key_under_a_burst_of_50(
    any_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    key = mint(max_requests=1)
    async with httpx.AsyncClient(
        base_url=any_gateway.url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/v1/chat/completions", json={"model": DEMO_MODEL, "messages": MESSAGES}
                )
                for _ in range(50)
            )
        )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 1
    assert statuses.count(429) == 49
    assert upstream.count == 1


def test_rotation_and_revocation(gateway: ServerThread, upstream: FakeUpstream) -> None:
    tenant = create_tenant(gateway.url)
    old, new = tenant.add_api_key(), tenant.add_api_key()
    key_for = tenant.key_with

    # Retiring the old key with a grace period: it keeps working until the grace ends.
    retire = httpx.post(
        gateway.url + f"/v1/api-keys/{old['kid']}/retire",
        headers=tenant.auth,
        json={"grace_seconds": 1},
    )
    assert retire.status_code == 200 and retire.json()["retires_at"]
    assert chat(gateway, key_for(old)).status_code == 200
    time.sleep(1.2)
    assert chat(gateway, key_for(old)).status_code == 401
    assert chat(gateway, key_for(new)).status_code == 200

    # Revoking one event id refuses that key at once, and only that one.
    doomed, spared = key_for(new), key_for(new)
    assert chat(gateway, doomed).status_code == 200
    event_id = json.loads(base64.urlsafe_b64decode(doomed.split(".")[1] + "=="))["jti"]
    revoked = httpx.post(
        gateway.url + "/v1/revocations", headers=tenant.auth, json={"event_id": event_id}
    )
    assert revoked.status_code == 200
    assert chat(gateway, doomed).status_code == 401
    unused = key_for(new, event_id="never-used")
    httpx.post(
        gateway.url + "/v1/revocations", headers=tenant.auth, json={"event_id": "never-used"}
    )
    assert chat(gateway, unused).status_code == 401
    assert chat(gateway, spared).status_code == 200

    # Revoking everything minted so far; keys minted afterwards work.
    before = key_for(new)
    cutoff = httpx.post(
        gateway.url + "/v1/revocations", headers=tenant.auth, json={"all_keys": True}
    )
    assert cutoff.status_code == 200 and cutoff.json()["keys_not_before"]
    assert chat(gateway, before).status_code == 401
    time.sleep(1.0)
    assert chat(gateway, key_for(new)).status_code == 200

    # Revoking the signing key itself.
    httpx.delete(gateway.url + f"/v1/api-keys/{new['kid']}", headers=tenant.auth)
    assert chat(gateway, key_for(new)).status_code == 401


def test_revocation_needs_the_owner(gateway: ServerThread) -> None:
    response = httpx.post(gateway.url + "/v1/revocations", json={"all_keys": True})
    assert response.status_code == 401
    tenant = create_tenant(gateway.url)
    bad = httpx.post(
        gateway.url + "/v1/revocations",
        headers=tenant.auth,
        json={"event_id": "x", "all_keys": True},
    )
    assert bad.status_code == 400


def test_a_revocation_cut_off_in_the_future_is_refused(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    """Else one request would disable every key the tenant ever mints, forever."""
    tenant = create_tenant(gateway.url, with_api_key=True)
    for cutoff in ("9999-12-31T23:59:59Z", "2999-01-01T00:00:00+00:00"):
        refused = httpx.post(
            gateway.url + "/v1/revocations", headers=tenant.auth, json={"minted_before": cutoff}
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "minted_before"
    key = tenant.key(model=DEMO_MODEL, max_tokens=100)
    chat = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES},
    )
    assert chat.status_code == 200, chat.text


def test_login_brute_force_is_throttled(gateway: ServerThread) -> None:
    name = create_tenant(gateway.url).username  # a fresh account: other tests unaffected
    statuses = [
        httpx.post(
            gateway.url + "/v1/user/login", data={"username": name, "password": f"guess-{i}"}
        ).status_code
        for i in range(7)
    ]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
    locked = httpx.post(
        gateway.url + "/v1/user/login", data={"username": name, "password": "password-123"}
    )
    assert locked.status_code == 429  # even the right password waits out the window
    assert int(locked.headers["Retry-After"]) > 0


def test_callback_urls_into_private_networks_are_refused(gateway: ServerThread) -> None:
    tenant = create_tenant(gateway.url)
    for url in (
        "http://10.0.0.5/cb",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:192.168.1.1]/cb",
        "http://192.168.0.1:8080/x",
        "gopher://x/",
    ):
        response = httpx.patch(
            gateway.url + "/v1/user/me", headers=tenant.auth, json={"callback_url": url}
        )
        assert response.status_code == 400, url
    # The gateway under test runs with demo data, which allows loopback (the original
    # demo's callback URL is on 127.0.0.1).
    ok = httpx.patch(
        gateway.url + "/v1/user/me",
        headers=tenant.auth,
        json={"callback_url": "http://127.0.0.1:9/cb"},
    )
    assert ok.status_code == 200
