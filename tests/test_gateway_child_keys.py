"""Child keys at the real gateway (issue 17): a bound key's holder narrows it offline for
a sub-agent; the gateway verifies the chain and charges every request to the child and
to each ancestor, in each of the three budget stores."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from dynaseal.client import DeviceKey
from dynaseal.keys import (
    CHILD_KEY_TYPE,
    MintedChild,
    make_dpop_proof,
    mint_child_key,
    public_jwk,
)
from support.callbacks import CallbackSink
from support.gateways import demo_gateway
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, create_tenant, event_of, login, mint
from support.upstream import FakeUpstream

MESSAGES: Any = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def database_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[ServerThread]:
    """Budgets reserved under row locks in the database (several processes' store)."""
    with demo_gateway(
        tmp_path_factory.mktemp("db-budget"), upstream, budget_store="database"
    ) as server:
        yield server


@pytest.fixture(params=["gateway", "database_gateway", "redis_gateway"])
def store_gateway(request: pytest.FixtureRequest) -> ServerThread:
    """One gateway per budget store: memory, database, Redis."""
    gateway: ServerThread = request.getfixturevalue(request.param)
    return gateway


def chat(
    gateway: ServerThread, token: str, signer: DeviceKey | None = None, max_tokens: int = 8
) -> httpx.Response:
    url = f"{gateway.url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {token}"}
    if signer is not None:
        headers["DPoP"] = make_dpop_proof(signer.private_key, "POST", url, token, now=time.time())
    body = {"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": max_tokens}
    return httpx.post(url, json=body, headers=headers, timeout=30)


def hand_made_child(parent: str, signer: DeviceKey, **claims: Any) -> str:
    """A child key written by hand, so it may claim what ``mint_child_key`` refuses."""
    now = int(time.time())
    body = {"prt": parent, "jti": uuid.uuid4().hex, "iat": now, "exp": now + 60, **claims}
    headers = {"typ": CHILD_KEY_TYPE, "jwk": public_jwk(signer.private_key)}
    return jwt.encode(body, signer.private_key, algorithm=signer.algorithm, headers=headers)


def family(parent_tokens: int, child_tokens: int) -> tuple[DeviceKey, str, MintedChild]:
    """A device key, a key bound to it (demo tenant) and an unbound child of that key."""
    device = DeviceKey.generate()
    parent = mint(cnf_jkt=device.jkt, max_tokens=parent_tokens)
    child = mint_child_key(parent, device.private_key, now=time.time(), max_tokens=child_tokens)
    return device, parent, child


def test_a_child_narrows_and_cannot_widen(
    store_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    device = DeviceKey.generate()
    parent = mint(cnf_jkt=device.jkt, model=[DEMO_MODEL, "gpt-4o-mini"], max_tokens=100)
    child = mint_child_key(
        parent, device.private_key, now=time.time(), models=[DEMO_MODEL], max_tokens=16
    ).token
    assert chat(store_gateway, child).status_code == 200  # an unbound child: no proof
    other_model = httpx.post(
        f"{store_gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"Authorization": f"Bearer {child}"},
    )
    assert other_model.status_code == 403  # the parent may, the child may not
    assert upstream.count == 1

    parent_exp = int(jwt.decode(parent, options={"verify_signature": False})["exp"])
    widened = {
        "a model the parent lacks": hand_made_child(parent, device, models=["o3"]),
        "a later exp": hand_made_child(parent, device, exp=parent_exp + 60),
        "a larger max_tokens": hand_made_child(parent, device, max_tokens=101),
        "signed by another key": hand_made_child(parent, DeviceKey.generate()),
        "of an unbound parent": hand_made_child(mint(), device),
    }
    for what, token in widened.items():
        response = chat(store_gateway, token)
        assert response.status_code == 401, what
        assert response.json()["error"]["message"] == "Invalid, expired or revoked dynamic key."
    assert upstream.count == 1


async def test_child_and_parent_budgets_both_hold_under_concurrency(
    store_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    upstream.script.chunk_delay = 0.02  # keep requests in flight together
    tenant = create_tenant(store_gateway.url, with_api_key=True)
    tenant.without_in_flight_limit()
    device = DeviceKey.generate()
    parent = tenant.key(cnf_jkt=device.jkt, max_tokens=40)
    child = mint_child_key(parent, device.private_key, now=time.time(), max_tokens=16).token
    body = {"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": 8, "stream": True}
    url = f"{store_gateway.url}/v1/chat/completions"

    async def one(client: httpx.AsyncClient, token: str, signer: DeviceKey | None) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        if signer is not None:
            proof = make_dpop_proof(signer.private_key, "POST", url, token, now=time.time())
            headers["DPoP"] = proof
        async with client.stream("POST", url, json=body, headers=headers) as response:
            await response.aread()
            return response.status_code

    async with httpx.AsyncClient(timeout=30) as client:
        children, parents = await asyncio.gather(
            asyncio.gather(*(one(client, child, None) for _ in range(8))),
            asyncio.gather(*(one(client, parent, device) for _ in range(8))),
        )
    # 8 tokens each: the child's 16 hold two requests, the parent's 40 five in all.
    assert children.count(200) <= 2
    assert children.count(200) + parents.count(200) == 5 == upstream.count
    assert set(children + parents) == {200, 429}
    assert chat(store_gateway, child).status_code == 429
    assert chat(store_gateway, parent, device).status_code == 429


def test_children_share_their_root_keys_rate_limit(
    store_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    """Children are made offline, as many as the holder likes: they must not multiply
    the per-key limits."""
    tenant = create_tenant(store_gateway.url, with_api_key=True)
    limits = {"rate_limits": {"key_rpm": 2}}
    assert httpx.patch(store_gateway.url + "/v1/user/me", headers=tenant.auth, json=limits)
    device = DeviceKey.generate()
    parent = tenant.key(cnf_jkt=device.jkt, max_tokens=100)
    children = [
        mint_child_key(parent, device.private_key, now=time.time(), max_tokens=20).token
        for _ in range(2)
    ]
    assert chat(store_gateway, parent, device).status_code == 200
    assert chat(store_gateway, children[0]).status_code == 200
    limited = chat(store_gateway, children[1])
    assert limited.status_code == 429
    assert limited.headers["x-dynaseal-refusal"] == "rate_limited"
    assert upstream.count == 2


def test_a_spent_parent_starves_its_child(
    store_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    device, parent, minted = family(16, 16)
    child = minted.token
    assert [chat(store_gateway, parent, device).status_code for _ in range(2)] == [200, 200]
    refused = chat(store_gateway, child)
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith("Its parent key's max_tokens budget")
    assert upstream.count == 2


def test_revoking_the_parent_kills_the_child(
    store_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    device, parent, minted = family(100, 50)
    child = minted.token
    assert chat(store_gateway, child).status_code == 200
    tenant = login(store_gateway.url, "user1", "user1")
    revoked = httpx.post(
        f"{store_gateway.url}/v1/revocations",
        headers=tenant,
        json={"event_id": event_of(parent)},
    )
    assert revoked.is_success, revoked.text
    assert chat(store_gateway, child).status_code == 401
    assert chat(store_gateway, parent, device).status_code == 401
    for path in ("/v1/models", "/v1/key"):
        looked = httpx.get(store_gateway.url + path, headers={"Authorization": f"Bearer {child}"})
        assert looked.status_code == 401, path
    assert upstream.count == 1


def test_a_grandchild_bound_to_a_third_key_needs_that_keys_proofs(
    store_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    device, sub_agent, tool = (
        DeviceKey.generate(),
        DeviceKey.generate("ES256"),
        DeviceKey.generate(),
    )
    parent = mint(cnf_jkt=device.jkt, max_tokens=100)
    child = mint_child_key(
        parent, device.private_key, now=time.time(), max_tokens=50, cnf_jkt=sub_agent.jkt
    ).token
    grandchild = mint_child_key(
        child, sub_agent.private_key, now=time.time(), max_tokens=20, cnf_jkt=tool.jkt
    ).token
    for signer in (None, device, sub_agent):
        response = chat(store_gateway, grandchild, signer)
        assert response.status_code == 401
        assert "invalid_dpop_proof" in response.headers["www-authenticate"]
    assert upstream.count == 0
    assert chat(store_gateway, grandchild, tool).status_code == 200
    assert chat(store_gateway, child, sub_agent).status_code == 200
    assert chat(store_gateway, child, device).status_code == 401
    own = f"{store_gateway.url}/v1/key"
    proof = make_dpop_proof(tool.private_key, "GET", own, grandchild, now=time.time())
    seen = httpx.get(own, headers={"Authorization": f"Bearer {grandchild}", "DPoP": proof})
    assert seen.json()["budgets"]["max_tokens"]["used"] == 8
    assert "prt" not in seen.json()["claims"]
    assert upstream.count == 2


def test_a_childs_callback_names_its_chain(gateway: ServerThread, sink: CallbackSink) -> None:
    device, parent, child = family(100, 50)
    assert chat(gateway, child.token).status_code == 200
    [payload] = sink.wait_for(event_id=child.event_id)
    assert payload["chain"] == [event_of(parent), child.event_id]
    assert chat(gateway, parent, device).status_code == 200
    [own] = sink.wait_for(event_id=event_of(parent))
    assert "chain" not in own
