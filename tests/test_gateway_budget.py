"""The budgets of a key, as a device sees them: what each claim means over several
requests, the refusals, the remaining-budget headers and ``GET /v1/key``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt
import openai
import pytest

from dynaseal.core.original_demo import DEMO_TENANT_API_KEY, DEMO_TENANT_ID
from support.callbacks import CallbackSink
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, create_tenant, event_of, mint, original_key
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]
LONG_PROMPT = [{"role": "user", "content": "Summarise this. " + "lorem ipsum " * 250}]


def chat(url: str, key: str, **body: Any) -> httpx.Response:
    payload = {"model": DEMO_MODEL, "messages": MESSAGES, **body}
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json=payload,
        timeout=10,
    )


def test_the_original_devices_request_on_the_original_backends_key(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    """Done when of issue 11: a key minted with plain PyJWT in the original format, the
    original client's request through the OpenAI SDK (default retries), then spent."""
    key = jwt.encode(
        {
            "api-key": DEMO_TENANT_ID,
            "model": DEMO_MODEL,
            "max_tokens": 100,
            "expiring": int(time.time()) + 600,
            "event_id": f"original-{time.time_ns()}",
        },
        DEMO_TENANT_API_KEY,
        algorithm="HS256",
    )
    upstream.script.words = 100  # the model writes all it may
    sent: list[httpx.Request] = []
    client = openai.OpenAI(
        base_url=gateway.url + "/v1",
        api_key=key,
        http_client=httpx.Client(event_hooks={"request": [sent.append]}),
    )
    messages: Any = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Tell me a story."},
    ]
    answer = client.chat.completions.create(model=DEMO_MODEL, messages=messages, max_tokens=100)
    assert answer.usage is not None and answer.usage.completion_tokens == 100
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=DEMO_MODEL, messages=messages, max_tokens=100)
    assert refused.value.code == "insufficient_quota"
    assert "max_tokens budget (generated tokens) is spent" in refused.value.message
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert refused.value.response.headers["x-dynaseal-refusal"] == "insufficient_quota"
    assert len(sent) == 2  # the SDK did not retry the refusal
    assert upstream.count == 1


def test_generated_tokens_are_counted_not_prompt_tokens(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    key = original_key(max_tokens=100)
    # A prompt far longer than the whole budget does not count against it.
    assert chat(gateway.url, key, messages=LONG_PROMPT, max_tokens=10).status_code == 200
    statuses = [chat(gateway.url, key, max_tokens=10).status_code for _ in range(12)]
    # Each answer generates 8 tokens: 12 fit (96), the 13th asks 10 of the 4 left.
    assert statuses == [200] * 11 + [429]
    callbacks = sink.wait_for(12, event_id=event_of(key))
    assert sum(p["completion_tokens"] for p in callbacks) == 96


def test_a_request_without_max_tokens_gets_what_is_left_to_generate(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    key = mint(max_tokens=60)
    for _ in range(2):
        assert chat(gateway.url, key).status_code == 200
    first, second = (r["max_tokens"] for r in upstream.requests)
    assert (first, second) == (60, 52)  # the first answer generated 8


def test_max_total_tokens_counts_the_prompt_and_names_the_estimate(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    key = mint(max_tokens=1000, max_total_tokens=300)
    refused = chat(gateway.url, key, messages=LONG_PROMPT, max_tokens=10)
    assert refused.status_code == 429 and refused.headers["x-should-retry"] == "false"
    message = refused.json()["error"]["message"]
    assert message.startswith(
        "This key's max_total_tokens budget (prompt + generated tokens) has 300 tokens left; "
        "this request needs an estimated "
    )
    assert "spent" not in message
    # A short prompt fits: the estimate plus 10 is held, 11 + 8 are booked.
    assert chat(gateway.url, key, max_tokens=10).status_code == 200
    assert upstream.count == 1


def test_refusal_says_what_would_fit(gateway: ServerThread, upstream: FakeUpstream) -> None:
    key = mint(max_tokens=30)
    assert chat(gateway.url, key, max_tokens=20).status_code == 200  # generates 8
    refused = chat(gateway.url, key, max_tokens=25)
    assert refused.json()["error"]["message"] == (
        "This key's max_tokens budget (generated tokens) has 22 generated tokens left; this "
        "request asks for up to 25 generated tokens. max_tokens up to 22 would fit."
    )


def test_answers_carry_what_the_key_has_left(gateway: ServerThread, upstream: FakeUpstream) -> None:
    key = mint(max_tokens=100, max_total_tokens=500, max_requests=5)
    answer = chat(gateway.url, key, max_tokens=20)
    # Settled before it is sent: what the request really used (8 + 11 tokens).
    assert answer.headers["x-dynaseal-budget-remaining-tokens"] == "92"
    assert answer.headers["x-dynaseal-budget-remaining-total-tokens"] == "481"
    assert answer.headers["x-dynaseal-budget-remaining-requests"] == "4"
    assert "x-dynaseal-budget-remaining-cost" not in answer.headers  # no such budget
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": 20, "stream": True},
    ) as stream:
        # Sent before the answer: what remains whatever this request generates.
        assert stream.headers["x-dynaseal-budget-remaining-tokens"] == "72"
        assert stream.headers["x-dynaseal-budget-remaining-requests"] == "3"


def test_a_key_looks_at_itself(gateway: ServerThread, upstream: FakeUpstream) -> None:
    key = mint(max_tokens=100, max_total_tokens=500, max_requests=5, ttl_seconds=600)
    assert chat(gateway.url, key, max_tokens=20).status_code == 200
    for prefix in ("/v1", "", "/api/v1"):
        seen = httpx.get(gateway.url + prefix + "/key", headers={"Authorization": f"Bearer {key}"})
        assert seen.status_code == 200, seen.text
        body = seen.json()
        assert body["event_id"] == event_of(key) and body["format"] == "dynaseal"
        assert body["claims"]["max_tokens"] == 100 and body["models"] == [DEMO_MODEL]
        assert key.split(".")[2] not in seen.text  # never the signature
        assert body["budgets"] == {
            "max_tokens": {
                "limit": 100,
                "used": 8,
                "reserved": 0,
                "remaining": 92,
                "source": "claim",
            },
            "max_total_tokens": {
                "limit": 500,
                "used": 19,
                "reserved": 0,
                "remaining": 481,
                "source": "claim",
            },
            "max_cost": None,
        }
        assert body["requests"] == {"limit": 5, "used": 1, "remaining": 4}
        assert 590 <= body["expires_in"] <= 600


def test_a_revoked_or_forged_key_cannot_look_at_itself(gateway: ServerThread) -> None:
    forged = mint(secret="x" * 32)
    assert (
        httpx.get(gateway.url + "/v1/key", headers={"Authorization": f"Bearer {forged}"}).json()[
            "error"
        ]["code"]
        == "invalid_api_key"
    )
    tenant = create_tenant(gateway.url, with_api_key=True)
    key = tenant.key()
    revoked = httpx.post(
        gateway.url + "/v1/revocations", headers=tenant.auth, json={"event_id": event_of(key)}
    )
    assert revoked.status_code == 200
    seen = httpx.get(gateway.url + "/v1/key", headers={"Authorization": f"Bearer {key}"})
    assert seen.status_code == 401


def test_tenant_defaults_cap_keys_without_their_own(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    tenant = create_tenant(gateway.url, with_api_key=True)
    key = tenant.key(max_tokens=1000)
    assert chat(gateway.url, key, max_tokens=10).status_code == 200  # 19 tokens in all
    set_defaults = httpx.patch(
        gateway.url + "/v1/user/me",
        headers=tenant.auth,
        json={"key_defaults": {"max_total_tokens": 40}},
    )
    assert set_defaults.status_code == 200
    assert set_defaults.json()["key_defaults"] == {"max_total_tokens": 40, "max_cost": None}
    # Already used: 19 of the 40 now in force.
    seen = httpx.get(gateway.url + "/v1/key", headers={"Authorization": f"Bearer {key}"}).json()
    assert seen["budgets"]["max_total_tokens"] == {
        "limit": 40,
        "used": 19,
        "reserved": 0,
        "remaining": 21,
        "source": "tenant_default",
    }
    assert chat(gateway.url, key, max_tokens=5).status_code == 200  # 10 + 5 of 21
    refused = chat(gateway.url, key, max_tokens=5)  # 35 used: 10 + 5 more would pass 40
    assert refused.status_code == 429
    assert "max_total_tokens" in refused.json()["error"]["message"]
    # A key's own claim wins over the default.
    assert chat(gateway.url, tenant.key(max_total_tokens=100), max_tokens=50).status_code == 200


@pytest.mark.parametrize(
    ("defaults", "param"),
    [
        ({"max_total_tokens": 0}, "key_defaults.max_total_tokens"),
        ({"max_cost": 0.5}, "key_defaults.max_cost"),
        ({"max_cost": "1e3"}, "key_defaults.max_cost"),
        ({"max_cost": "-1"}, "key_defaults.max_cost"),
    ],
)
def test_bad_key_defaults_are_refused(
    gateway: ServerThread, defaults: dict[str, Any], param: str
) -> None:
    tenant = create_tenant(gateway.url)
    response = httpx.patch(
        gateway.url + "/v1/user/me", headers=tenant.auth, json={"key_defaults": defaults}
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == param


async def test_concurrent_requests_never_overspend(
    any_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    upstream.script.chunk_delay = 0.02  # keep requests in flight together
    tenant = create_tenant(any_gateway.url, with_api_key=True)
    tenant.without_in_flight_limit()
    key = tenant.key(max_tokens=200, max_total_tokens=300)
    body = {"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": 10, "stream": True}

    async def one(client: httpx.AsyncClient) -> int:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            await response.aread()
            return response.status_code

    async with httpx.AsyncClient(
        base_url=any_gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        statuses = await asyncio.gather(*(one(client) for _ in range(40)))
        seen = (await client.get("/v1/key")).json()["budgets"]

    granted = statuses.count(200)
    assert statuses.count(429) == 40 - granted and upstream.count == granted
    # Each holds 10 estimated + 10 and books 11 + 8: whatever the order, 15 fit in 300.
    assert granted == 15
    assert seen["max_tokens"]["used"] == 8 * granted <= 200
    assert seen["max_total_tokens"]["used"] == 19 * granted <= 300
