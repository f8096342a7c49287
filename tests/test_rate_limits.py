"""Rate limits per key, per end user and per tenant, in one process and through Redis."""

from __future__ import annotations

import httpx

from support.servers import ServerThread
from support.tenants import DEMO_MODEL, TenantHandle, create_tenant
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]


def limited_tenant(gateway: ServerThread, **limits: int) -> TenantHandle:
    tenant = create_tenant(gateway.url, with_api_key=True)
    response = httpx.patch(
        gateway.url + "/v1/user/me", headers=tenant.auth, json={"rate_limits": limits}
    )
    assert response.status_code == 200, response.text
    assert response.json()["rate_limits"] == limits
    return tenant


def chat(gateway: ServerThread, key: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES},
        timeout=10,
    )


def test_requests_per_minute_per_key(any_gateway: ServerThread, upstream: FakeUpstream) -> None:
    tenant = limited_tenant(any_gateway, key_rpm=3)
    key = tenant.key()
    responses = [chat(any_gateway, key) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0].headers["x-ratelimit-limit-requests"] == "3"
    refused = responses[3]
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["x-dynaseal-refusal"] == "rate_limited"
    assert upstream.count == 3
    # Another key of the same tenant has its own allowance.
    assert chat(any_gateway, tenant.key()).status_code == 200


def test_tokens_per_minute_per_tenant(any_gateway: ServerThread, upstream: FakeUpstream) -> None:
    tenant = limited_tenant(any_gateway, tenant_tpm=40)
    statuses = [chat(any_gateway, tenant.key()).status_code for _ in range(4)]
    # 19 tokens each: after two (38) the third still starts, after three (57) none does.
    assert statuses == [200, 200, 200, 429]
    assert upstream.count == 3


def test_requests_per_minute_per_end_user(any_gateway: ServerThread) -> None:
    tenant = limited_tenant(any_gateway, sub_rpm=2)
    alice = [chat(any_gateway, tenant.key(sub="alice")).status_code for _ in range(3)]
    assert alice == [200, 200, 429]
    assert chat(any_gateway, tenant.key(sub="bob")).status_code == 200


def test_unknown_limit_names_are_refused(gateway: ServerThread) -> None:
    tenant = create_tenant(gateway.url)
    response = httpx.patch(
        gateway.url + "/v1/user/me", headers=tenant.auth, json={"rate_limits": {"rps": 1}}
    )
    assert response.status_code == 400
