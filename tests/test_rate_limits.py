"""Rate limits per key, per end user and per tenant, in one process and through Redis."""

from __future__ import annotations

import httpx
import pytest

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


def test_null_rate_limits_clear_the_tenants_own(gateway: ServerThread) -> None:
    tenant = limited_tenant(gateway, key_rpm=1)
    key = tenant.key()
    assert [chat(gateway, key).status_code for _ in range(2)] == [200, 429]
    cleared = httpx.patch(
        gateway.url + "/v1/user/me", headers=tenant.auth, json={"rate_limits": None}
    )
    assert cleared.status_code == 200 and cleared.json()["rate_limits"] is None
    assert chat(gateway, key).status_code == 200  # the gateway's default: no limit


@pytest.mark.parametrize(
    "body",
    [{}, {"callback_include_content": None}, {"ratelimits": {"key_rpm": 1}}],
    ids=["nothing", "null-flag", "misspelt"],
)
def test_a_profile_update_that_changes_nothing_is_refused(
    gateway: ServerThread, body: dict[str, object]
) -> None:
    tenant = limited_tenant(gateway, key_rpm=5)
    response = httpx.patch(gateway.url + "/v1/user/me", headers=tenant.auth, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    me = httpx.get(gateway.url + "/v1/user/me", headers=tenant.auth).json()
    assert me["rate_limits"] == {"key_rpm": 5} and me["callback_include_content"] is False
