"""Device-bound keys at the real gateway (issue 17): a key with ``cnf.jkt`` works only
with a fresh DPoP proof by its device key, and a copied key never reaches the upstream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from dynaseal.backend.demo_data import DEMO_USER_PASSWORD, DEMO_USER_USERNAME
from dynaseal.client import DeviceClient, DeviceKey
from dynaseal.keys import make_dpop_proof
from support.backend import backend_for
from support.gateways import demo_gateway
from support.redis_server import RedisServer
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, mint
from support.upstream import FakeUpstream

MESSAGES: Any = [{"role": "user", "content": "hello"}]
BODY = {"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": 10}
GENERIC = "Invalid, expired or revoked dynamic key."


@pytest.fixture
def device() -> DeviceKey:
    return DeviceKey.generate()


def send(
    url: str,
    token: str,
    proof: str | None,
    *,
    method: str = "POST",
    scheme: str = "Bearer",
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}", **(extra or {})}
    if proof is not None:
        headers["DPoP"] = proof
    return httpx.request(method, url, headers=headers, json=BODY if method == "POST" else None)


def assert_refused_as_unproven(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["message"] == GENERIC
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert 'error="invalid_dpop_proof"' in response.headers["www-authenticate"]
    assert response.headers["www-authenticate"].startswith("DPoP ")


def test_a_stolen_bound_key_is_refused_whatever_the_thief_tries(
    gateway: ServerThread, upstream: FakeUpstream, device: DeviceKey
) -> None:
    token = mint(cnf_jkt=device.jkt)
    url = f"{gateway.url}/v1/chat/completions"
    now = time.time()
    other_device = DeviceKey.generate("ES256")
    attempts = {
        "no proof": None,
        "signed by another key": make_dpop_proof(
            other_device.private_key, "POST", url, token, now=now
        ),
        "for another URL": make_dpop_proof(
            device.private_key, "POST", f"{gateway.url}/v1/embeddings", token, now=now
        ),
        "for another method": make_dpop_proof(device.private_key, "GET", url, token, now=now),
        "stale iat": make_dpop_proof(device.private_key, "POST", url, token, now=now - 120),
        "iat in the future": make_dpop_proof(device.private_key, "POST", url, token, now=now + 120),
        "for another key (ath)": make_dpop_proof(
            device.private_key, "POST", url, mint(cnf_jkt=device.jkt), now=now
        ),
        "without ath": make_dpop_proof(device.private_key, "POST", url, None, now=now),
        "not a JWT": "garbage",
    }
    for what, proof in attempts.items():
        response = send(url, token, proof)
        assert response.status_code == 401, what
        assert_refused_as_unproven(response)
    two = make_dpop_proof(device.private_key, "POST", url, token, now=now)
    both = httpx.post(
        url,
        json=BODY,
        headers=[("Authorization", f"Bearer {token}"), ("DPoP", two), ("DPoP", two)],
    )
    assert_refused_as_unproven(both)
    assert upstream.count == 0

    good = make_dpop_proof(device.private_key, "POST", url, token, now=time.time())
    assert send(url, token, good).status_code == 200
    assert_refused_as_unproven(send(url, token, good))  # the same proof again: a replay
    assert upstream.count == 1


def test_a_good_proof_works_on_every_mount_with_either_scheme(
    gateway: ServerThread, upstream: FakeUpstream, device: DeviceKey
) -> None:
    token = mint(cnf_jkt=device.jkt)
    for path, scheme in [
        ("/v1/chat/completions", "DPoP"),
        ("/chat/completions", "Bearer"),
        ("/api/v1/chat/completions?ignored=1", "Bearer"),
    ]:
        url = gateway.url + path
        proof = make_dpop_proof(device.private_key, "POST", url, token, now=time.time())
        response = send(url, token, proof, scheme=scheme)
        assert response.status_code == 200, (path, response.text)
    models = f"{gateway.url}/v1/models"
    proof = make_dpop_proof(device.private_key, "GET", models, token, now=time.time())
    assert send(models, token, proof, method="GET").json()["data"][0]["id"] == DEMO_MODEL
    assert_refused_as_unproven(send(models, token, None, method="GET"))
    own = f"{gateway.url}/v1/key"
    proof = make_dpop_proof(device.private_key, "GET", own, token, now=time.time())
    seen = send(own, token, proof, method="GET").json()
    assert seen["claims"]["cnf"] == {"jkt": device.jkt}
    assert upstream.count == 3


def test_the_official_sdk_with_a_signing_http_client(
    gateway: ServerThread, upstream: FakeUpstream, device: DeviceKey
) -> None:
    token = mint(cnf_jkt=device.jkt)
    for base in ("/v1", "/api/v1"):
        llm = openai.OpenAI(
            api_key=token, base_url=gateway.url + base, http_client=device.http_client()
        )
        reply = llm.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
        assert reply.choices[0].message.content
    thief = openai.OpenAI(api_key=token, base_url=gateway.url + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        thief.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    assert "invalid_dpop_proof" in refused.value.response.headers["www-authenticate"]
    assert upstream.count == 2


@pytest.fixture(scope="module")
def backend_url(gateway: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backend_for(tmp_path_factory.mktemp("dpop-backend"), gateway.url) as url:
        yield url


def test_the_device_client_proves_possession_to_the_gateway(
    backend_url: str, upstream: FakeUpstream
) -> None:
    with DeviceClient(backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD, bind=True) as device:
        llm = device.openai()
        for _ in range(3):
            reply = llm.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
            assert reply.choices[0].message.content
        stolen = device.current_key()
    assert stolen.jkt is not None
    thief = openai.OpenAI(api_key=stolen.token, base_url=stolen.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        thief.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    assert upstream.count == 3


def test_a_proof_used_at_one_replica_is_refused_at_another(
    redis_gateway: ServerThread,
    redis_server: RedisServer,
    upstream: FakeUpstream,
    device: DeviceKey,
    tmp_path: Path,
) -> None:
    token = mint(cnf_jkt=device.jkt)
    url = f"{redis_gateway.url}/v1/chat/completions"
    proof = make_dpop_proof(device.private_key, "POST", url, token, now=time.time())
    assert send(url, token, proof).status_code == 200
    with demo_gateway(tmp_path, upstream, redis_url=redis_server.url) as other:
        # Behind one load balancer both replicas see the same Host header.
        host = {"Host": httpx.URL(redis_gateway.url).netloc.decode()}
        replayed = send(f"{other.url}/v1/chat/completions", token, proof, extra=host)
        assert_refused_as_unproven(replayed)
        fresh = make_dpop_proof(device.private_key, "POST", url, token, now=time.time())
        assert send(f"{other.url}/v1/chat/completions", token, fresh, extra=host).status_code == 200
    assert upstream.count == 2


def test_behind_a_proxy_proofs_name_the_public_url(
    upstream: FakeUpstream, device: DeviceKey, tmp_path: Path
) -> None:
    public = "https://llm.example.com/gw"
    token = mint(cnf_jkt=device.jkt)
    with demo_gateway(tmp_path, upstream, public_url=public) as proxied:
        direct = f"{proxied.url}/v1/chat/completions"
        named_direct = make_dpop_proof(device.private_key, "POST", direct, token, now=time.time())
        assert_refused_as_unproven(send(direct, token, named_direct))
        named_public = make_dpop_proof(
            device.private_key, "POST", f"{public}/v1/chat/completions", token, now=time.time()
        )
        assert send(direct, token, named_public).status_code == 200
    assert upstream.count == 1


def test_an_unbound_key_ignores_a_proof(
    gateway: ServerThread, upstream: FakeUpstream, device: DeviceKey
) -> None:
    token = mint()
    url = f"{gateway.url}/v1/chat/completions"
    proof = make_dpop_proof(device.private_key, "POST", url, token, now=time.time())
    assert send(url, token, proof).status_code == 200
    assert send(url, token, None).status_code == 200
    assert upstream.count == 2
