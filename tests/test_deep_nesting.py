"""Issue 12.9: chat requests nested 255 to 1,024 levels deep (orjson parses them, cannot
serialise them again) are a 400 in OpenAI's format, and reserve nothing: the key's whole
budget is still there afterwards and the ledger has no request it did not serve."""

from __future__ import annotations

import httpx
import pytest

from dynaseal.core.original_demo import DEMO_TENANT_PASSWORD, DEMO_TENANT_USERNAME
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, event_of, login, mint
from support.upstream import FakeUpstream


def nested(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


SHAPES = {
    "content": '[{{"role": "user", "content": {deep}}}]',
    "content part": (
        '[{{"role": "user", "content": [{{"type": "text", "text": "hi", "x": {deep}}}]}}]'
    ),
    "message field": '[{{"role": "user", "content": "hi", "name": {deep}}}]',
}


def body(shape: str, depth: int) -> str:
    if shape == "tools":
        messages, tools = '[{"role": "user", "content": "hi"}]', f', "tools": {nested(depth)}'
    else:
        messages, tools = SHAPES[shape].format(deep=nested(depth)), ""
    return f'{{"model": "{DEMO_MODEL}", "messages": {messages}{tools}}}'


@pytest.mark.parametrize("depth", [65, 250, 255, 300, 1000, 1020, 1100])
@pytest.mark.parametrize("shape", [*SHAPES, "tools"])
def test_deeply_nested_requests_are_refused_and_reserve_nothing(
    gateway: ServerThread, upstream: FakeUpstream, shape: str, depth: int
) -> None:
    key = mint(max_tokens=500)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = gateway.url + "/v1/chat/completions"
    refused = httpx.post(url, content=body(shape, depth), headers=headers, timeout=30)
    assert refused.status_code == 400, refused.text
    assert set(refused.json()["error"]) == {"message", "type", "param", "code"}
    assert upstream.count == 0

    # The whole budget is still there: the next request is forwarded all of it.
    served = httpx.post(
        url,
        json={"model": DEMO_MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
        timeout=30,
    )
    assert served.status_code == 200
    assert upstream.requests[0]["max_tokens"] == 500  # all it may generate
    tenant = login(gateway.url, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)
    ledger = httpx.get(
        gateway.url + "/v1/usage", headers=tenant, params={"event_id": event_of(key)}
    ).json()
    assert ledger["totals"]["requests"] == 1


def test_a_request_nested_within_the_limit_is_served(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    schema: dict[str, object] = {"type": "string"}
    for _ in range(12):  # an object schema twelve properties deep
        schema = {"type": "object", "properties": {"p": schema}}
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    reply = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={
            "model": DEMO_MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [tool],
        },
        headers={"Authorization": f"Bearer {mint()}"},
        timeout=30,
    )
    assert reply.status_code == 200
    assert upstream.requests[0]["tools"] == [tool]
