"""Embeddings and legacy completions through the gateway, with the official OpenAI SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from support.callbacks import CallbackSink
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, event_of, mint
from support.upstream import FakeUpstream


def sdk(gateway: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def test_embeddings_are_answered_and_counted_in_input_tokens(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    key = mint()
    client = sdk(gateway, key)
    one = client.embeddings.create(model=DEMO_MODEL, input="hello")  # the SDK asks base64
    assert len(one.data) == 1 and len(one.data[0].embedding) == 8
    floats = client.embeddings.create(
        model=DEMO_MODEL, input=["a", "b", "c"], encoding_format="float", dimensions=4
    )
    assert [len(d.embedding) for d in floats.data] == [4, 4, 4]
    assert floats.usage.prompt_tokens == 33 and floats.usage.total_tokens == 33
    assert upstream.paths == ["/v1/embeddings"] * 2
    # Nothing is generated: no completion cap is added to what goes upstream.
    assert "max_tokens" not in upstream.requests[1] and upstream.requests[1]["dimensions"] == 4
    payloads = sink.wait_for(2, event_id=event_of(key))
    assert sorted(p["tokens"] for p in payloads) == [11, 33]
    assert {(p["endpoint"], p["completion_tokens"]) for p in payloads} == {("embeddings", 0)}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"input": [1, "a"]}, "input"),
        ({"input": []}, "input"),
        ({"input": "x", "stream": True}, "stream"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
    ],
)
def test_malformed_embeddings_requests_are_400(
    gateway: ServerThread, upstream: FakeUpstream, body: dict, param: str
) -> None:
    refused = httpx.post(
        gateway.url + "/v1/embeddings",
        headers={"Authorization": f"Bearer {mint()}"},
        json={"model": DEMO_MODEL, **body},
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == param
    assert upstream.count == 0


def test_legacy_completions_whole_and_streamed(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    key = mint()
    client = sdk(gateway, key)
    whole = client.completions.create(model=DEMO_MODEL, prompt="Say", max_tokens=5)
    assert whole.choices[0].text == "w0 w1 w2 w3 w4 "
    assert whole.usage is not None and whole.usage.completion_tokens == 5
    chunks = list(
        client.completions.create(
            model=DEMO_MODEL, prompt="Say", stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert [c.usage.total_tokens for c in chunks if c.usage] == [19]
    # As at OpenAI, max_tokens defaults to 16; the gateway asks for the stream's usage.
    assert upstream.requests[1]["max_tokens"] == 16
    assert upstream.requests[1]["stream_options"] == {"include_usage": True}
    payloads = sink.wait_for(2, event_id=event_of(key))
    assert sorted(p["content"] for p in payloads) == ["w0 w1 w2 w3 w4 ", text]
    assert {p["endpoint"] for p in payloads} == {"completions"}


def test_the_usage_chunk_is_dropped_unless_asked_for(gateway: ServerThread) -> None:
    chunks = list(
        sdk(gateway, mint()).completions.create(model=DEMO_MODEL, prompt="Say", stream=True)
    )
    assert chunks and all(c.choices for c in chunks)


def test_best_of_never_reaches_the_upstream(gateway: ServerThread, upstream: FakeUpstream) -> None:
    """Its extra candidates would be generated, and paid for, beyond the reservation."""
    answer = httpx.post(
        gateway.url + "/v1/completions",
        headers={"Authorization": f"Bearer {mint()}"},
        json={"model": DEMO_MODEL, "prompt": "Say", "max_tokens": 10, "best_of": 3},
    )
    assert answer.status_code == 200
    assert answer.headers["x-dynaseal-dropped-fields"] == "best_of"
    assert "best_of" not in upstream.requests[0] and upstream.requests[0]["max_tokens"] == 10
