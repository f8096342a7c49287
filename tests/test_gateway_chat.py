"""The gateway's OpenAI-compatible surface, driven by the official OpenAI SDK."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from support.callbacks import CallbackSink
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, event_of, mint, original_key
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]


def sdk(gateway: ServerThread, key: str, prefix: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + prefix, api_key=key, max_retries=0)


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1", ""])
def test_original_format_key_minted_with_plain_pyjwt_works(
    gateway: ServerThread, upstream: FakeUpstream, prefix: str
) -> None:
    reply = sdk(gateway, original_key(), prefix).chat.completions.create(
        model=DEMO_MODEL, messages=MESSAGES
    )
    assert reply.choices[0].message.content == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert reply.usage is not None and reply.usage.total_tokens == 11 + 8
    assert upstream.count == 1


def test_stream_arrives_chunk_by_chunk_and_ends_with_done(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    stream = sdk(gateway, mint()).chat.completions.create(
        model=DEMO_MODEL, messages=MESSAGES, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w0 w1 w2 w3 w4 w5 w6 w7 "
    # The gateway asked the upstream for usage, but the device did not: no usage chunk.
    assert all(c.choices for c in chunks)
    assert upstream.requests[0]["stream_options"] == {"include_usage": True}

    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {mint()}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES, "stream": True},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"


def test_usage_chunk_kept_when_the_device_asks_for_it(gateway: ServerThread) -> None:
    stream = sdk(gateway, mint()).chat.completions.create(
        model=DEMO_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    usage = [c.usage for c in stream if not c.choices]
    assert len(usage) == 1 and usage[0] is not None and usage[0].total_tokens == 19


def test_stream_is_relayed_as_it_is_generated(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    upstream.script.chunk_delay = 0.15
    upstream.script.words = 4
    started = time.monotonic()
    stream = sdk(gateway, mint()).chat.completions.create(
        model=DEMO_MODEL, messages=MESSAGES, stream=True
    )
    arrivals = [
        time.monotonic() - started for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(arrivals) == 4
    # The first word reaches the device long before the last one is generated.
    assert arrivals[-1] - arrivals[0] > 0.3


def test_openai_fields_pass_through_and_budget_is_forwarded(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    raw = sdk(gateway, mint(max_tokens=500)).chat.completions.with_raw_response.create(
        model=DEMO_MODEL,
        messages=MESSAGES,
        temperature=0.3,
        top_p=0.9,
        seed=7,
        user="u-1",
        tools=tools,
        extra_body={"vendor_specific": {"x": 1}},
    )
    sent = upstream.requests[0]
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.9 and sent["seed"] == 7
    assert sent["user"] == "u-1" and sent["tools"] == tools
    # Off the tenant's allow-list (the default one here): dropped, and the answer says so.
    assert "vendor_specific" not in sent
    assert raw.headers["x-dynaseal-dropped-fields"] == "vendor_specific"
    # No max_tokens in the request: what the key may still generate is forwarded.
    assert sent["max_tokens"] == 500


def test_missing_usage_is_counted_by_the_gateway(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.send_usage = False
    key = mint()
    sdk(gateway, key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES, stream=True)
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["usage_source"] == "estimated"
    assert payload["completion_tokens"] > 0 and payload["prompt_tokens"] > 0
    assert payload["tokens"] == payload["prompt_tokens"] + payload["completion_tokens"]


def test_models_lists_what_the_key_allows(gateway: ServerThread) -> None:
    models = sdk(gateway, mint(model=["deepseek-chat", "deepseek-reasoner"])).models.list()
    assert [m.id for m in models.data] == ["deepseek-chat", "deepseek-reasoner"]
