"""The cumulative budget of a key: over several requests and under concurrency."""

from __future__ import annotations

import asyncio

import httpx
import openai

from support.callbacks import CallbackSink
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, event_of, mint, original_key
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_budget_holds_over_several_requests(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    key = original_key(max_tokens=100)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    granted = 0
    for _ in range(20):
        try:
            client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES, max_tokens=10)
        except openai.RateLimitError as exc:
            assert exc.code == "insufficient_quota"
            break
        granted += 1
    # Each request uses 11 prompt + 8 completion tokens: five fit in 100, a sixth would not.
    assert granted == 5
    assert upstream.count == 5
    spent = sum(p["tokens"] for p in sink.wait_for(5, event_id=event_of(key)))
    assert spent == 95


def test_request_without_max_tokens_gets_the_remaining_budget(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=mint(max_tokens=60), max_retries=0)
    client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    first, second = (r["max_tokens"] for r in upstream.requests)
    assert second == first - 19  # the first request really used 19 tokens
    assert first < 60


async def test_concurrent_requests_never_overspend(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.chunk_delay = 0.05  # keep requests in flight together
    key = mint(max_tokens=200)
    body = {"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": 10, "stream": True}

    async def one(client: httpx.AsyncClient) -> int:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            await response.aread()
            return response.status_code

    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        statuses = await asyncio.gather(*(one(client) for _ in range(30)))

    granted = statuses.count(200)
    assert statuses.count(429) == 30 - granted
    # Each admission reserves prompt estimate + 10; at most 200 can be held at once.
    assert 1 <= granted <= 10
    assert upstream.count == granted
    callbacks = await asyncio.to_thread(sink.wait_for, granted, 10.0, event_id=event_of(key))
    assert len(callbacks) == granted
    assert sum(p["tokens"] for p in callbacks) <= 200
