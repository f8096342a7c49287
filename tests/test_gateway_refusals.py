"""Keys and requests the gateway must refuse, each with the right status and OpenAI's
error format, and none of them reaching the upstream."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from support.servers import ServerThread
from support.tenants import DEMO_MODEL, mint, original_key
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]


def post(gateway: ServerThread, key: str | None, body: Any = None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    if body is None and "content" not in kwargs:
        body = {"model": DEMO_MODEL, "messages": MESSAGES}
    return httpx.post(
        gateway.url + "/v1/chat/completions", headers=headers, json=body, timeout=10, **kwargs
    )


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("no key", None),
        ("garbage", "not-a-jwt"),
        ("tampered signature", tampered(mint())),
        ("wrong secret", mint(secret="x" * 32)),
        ("expired original key", original_key(expiring=int(time.time()) - 3600)),
        ("expired own key", mint(now=time.time() - 7200, ttl_seconds=60)),
        ("wrong audience", mint(audience="another-gateway")),
        ("unknown tenant", mint(tenant_id="000000000000000000000000")),
    ],
)
def test_bad_keys_get_401(
    gateway: ServerThread, upstream: FakeUpstream, name: str, key: str | None
) -> None:
    response = post(gateway, key)
    assert_openai_error(response, 401, "invalid_api_key")
    assert response.headers["x-dynaseal-refusal"] == "invalid_key"
    assert upstream.count == 0, name


def test_every_bad_key_gets_the_same_message(gateway: ServerThread) -> None:
    messages = {
        post(gateway, k).json()["error"]["message"]
        for k in ["x.y.z", tampered(mint()), mint(audience="other")]
    }
    assert len(messages) == 1


def test_wrong_model_gets_403(gateway: ServerThread, upstream: FakeUpstream) -> None:
    response = post(gateway, mint(), {"model": "gpt-4o", "messages": MESSAGES})
    assert_openai_error(response, 403, "model_not_allowed")
    assert upstream.count == 0


def test_asking_for_more_than_the_budget_gets_429(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    response = post(
        gateway,
        original_key(max_tokens=100),
        {"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": 500},
    )
    assert_openai_error(response, 429, "insufficient_quota")
    assert response.headers["x-dynaseal-refusal"] == "insufficient_quota"
    assert upstream.count == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": DEMO_MODEL}, "messages"),
        ({"model": DEMO_MODEL, "messages": []}, "messages"),
        ({"model": DEMO_MODEL, "messages": ["hi"]}, "messages"),
        ({"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": -1}, "max_tokens"),
        ({"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": "10"}, "max_tokens"),
        ({"model": DEMO_MODEL, "messages": MESSAGES, "stream": "yes"}, "stream"),
        ([1, 2], None),
    ],
)
def test_malformed_requests_get_400(
    gateway: ServerThread, upstream: FakeUpstream, body: Any, param: str | None
) -> None:
    response = post(gateway, mint(), body)
    assert_openai_error(response, 400)
    assert response.json()["error"]["param"] == param
    assert upstream.count == 0


def test_bad_json_gets_400(gateway: ServerThread, upstream: FakeUpstream) -> None:
    for content in (b"{not json", b"", b"\xff\xfe"):
        response = post(gateway, mint(), content=content)
        assert_openai_error(response, 400)
    assert upstream.count == 0


def test_refused_request_does_not_spend_the_budget(gateway: ServerThread) -> None:
    key = original_key(max_tokens=60)
    assert post(gateway, key, {"model": "other", "messages": MESSAGES}).status_code == 403
    assert post(gateway, key, {"model": DEMO_MODEL}).status_code == 400
    assert post(gateway, key).status_code == 200
