"""Issue 12.3: no field a device sends makes the upstream generate past the cap, and what
an upstream generates past it anyway is cut (streams), booked and reported.

The fake upstream plays the servers that made the bypass possible: llama.cpp, whose
``n_predict`` wins over ``max_tokens``; a server that reads only ``max_tokens`` and so
ignores a lower ``max_completion_tokens``; and one that ignores every length field."""

from __future__ import annotations

import httpx
import orjson
import pytest

from support.callbacks import CallbackSink
from support.chat import MESSAGES, chat
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, TenantHandle, create_tenant, event_of, mint, original_key
from support.upstream import FakeUpstream

LLAMA_CPP = ("n_predict", "max_tokens")


def stream_events(gateway: ServerThread, key: str, **body: object) -> list[bytes]:
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES, "stream": True, **body},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        return [line[6:].encode() for line in response.iter_lines() if line.startswith("data: ")]


def test_n_predict_cannot_lift_the_cap_on_llama_cpp(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    """The attack of the report: max_tokens 20 and n_predict 3000 on a 100-token key."""
    upstream.script.length_fields = LLAMA_CPP
    upstream.script.words = 3000
    key = original_key(max_tokens=100)
    reply = chat(gateway, key, max_tokens=20, n_predict=3000)
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] == 20
    sent = upstream.requests[0]
    assert "n_predict" not in sent and sent["max_tokens"] == 20
    assert reply.headers["x-dynaseal-dropped-fields"] == "n_predict"
    [callback] = sink.wait_for(1, event_id=event_of(key))
    assert callback["tokens"] <= 100 and callback["overshoot_tokens"] == 0


def test_a_lower_max_completion_tokens_reaches_a_server_reading_only_max_tokens(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.length_fields = ("max_tokens",)
    upstream.script.words = 3000
    key = original_key(max_tokens=100)
    reply = chat(gateway, key, max_completion_tokens=5, max_tokens=2000)
    assert reply.status_code == 200
    sent = upstream.requests[0]
    assert sent["max_tokens"] == sent["max_completion_tokens"] == 5
    assert reply.json()["usage"]["completion_tokens"] == 5
    [callback] = sink.wait_for(1, event_id=event_of(key))
    assert callback["tokens"] <= 100


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_stream_past_its_cap_is_cut_with_finish_reason_length(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink, include_usage: bool
) -> None:
    upstream.script.length_fields = ()  # generates its 500 words whatever it is told
    upstream.script.words = 500
    upstream.script.chunk_delay = 0.01  # five seconds: it is still generating when cut
    key = mint(max_tokens=1000)
    events = stream_events(
        gateway,
        key,
        max_tokens=10,
        stream_options={"include_usage": include_usage},
    )
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )
    assert text.split() == [f"w{i}" for i in range(10)]
    finishes = [ch["finish_reason"] for c in chunks for ch in c.get("choices", [])]
    assert finishes[-1] == "length" and finishes.count("length") == 1
    usage = [c["usage"] for c in chunks if not c.get("choices") and c.get("usage")]
    assert len(usage) == (1 if include_usage else 0)
    # The upstream was closed, not read to its end.
    [record] = upstream.streams
    assert record.ended.wait(10) and not record.finished
    assert record.words_sent < 500
    [callback] = sink.wait_for(1, event_id=event_of(key))
    assert callback["status"] == "completed"
    assert callback["overshoot_tokens"] >= 1  # the event that crossed the cap
    assert callback["completion_tokens"] >= 11
    if include_usage:
        assert usage[0]["completion_tokens"] == callback["completion_tokens"]


def test_a_long_non_streaming_answer_is_booked_and_reported(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    """It cannot be taken back: the whole usage is booked, the overshoot reported, and the
    key, now over its budget, refuses the next request."""
    upstream.script.length_fields = ()
    upstream.script.words = 70
    key = original_key(max_tokens=60)
    reply = chat(gateway, key, max_tokens=10)
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] == 70
    [callback] = sink.wait_for(1, event_id=event_of(key))
    assert callback["completion_tokens"] == 70 and callback["overshoot_tokens"] == 60
    assert callback["tokens"] == 81  # 70 generated, over the key's 60: booked, not lost
    again = chat(gateway, key, max_tokens=1)
    assert again.status_code == 429
    assert again.json()["error"]["code"] == "insufficient_quota"


@pytest.fixture
def tenant(gateway: ServerThread) -> TenantHandle:
    return create_tenant(gateway.url, with_api_key=True)


def set_fields(tenant: TenantHandle, fields: list[str] | None) -> httpx.Response:
    return httpx.patch(
        tenant.base_url + "/v1/user/me", headers=tenant.auth, json={"upstream_fields": fields}
    )


def test_a_tenant_chooses_the_fields_that_pass_and_length_fields_are_capped(
    gateway: ServerThread, upstream: FakeUpstream, tenant: TenantHandle
) -> None:
    from dynaseal.gateway.admission.upstream_fields import DEFAULT_FIELDS

    profile = httpx.get(gateway.url + "/v1/user/me", headers=tenant.auth).json()
    assert profile["upstream_fields"] == sorted(DEFAULT_FIELDS)

    updated = set_fields(tenant, ["top_k", "options", "n_predict", "parameters"])
    assert updated.status_code == 200, updated.text
    assert "top_k" in updated.json()["upstream_fields"]
    assert "temperature" not in updated.json()["upstream_fields"]

    upstream.script.length_fields = LLAMA_CPP
    reply = chat(
        gateway,
        tenant.key(max_tokens=1000),
        max_tokens=20,
        top_k=40,
        temperature=0.5,
        n_predict=-1,  # llama.cpp: "until the context is full"
        options={"num_predict": 5000, "num_ctx": 8192},
        parameters={"max_new_tokens": 7, "auto_max_new_tokens": True},
    )
    assert reply.status_code == 200
    sent = upstream.requests[0]
    assert sent["top_k"] == 40 and "temperature" not in sent
    assert sent["n_predict"] == 20 and sent["max_tokens"] == 20
    assert sent["options"] == {"num_predict": 20, "num_ctx": 8192}
    assert sent["parameters"] == {"max_new_tokens": 7}  # a lower one of the device's stays
    assert reply.headers["x-dynaseal-dropped-fields"] == "temperature"

    assert set_fields(tenant, None).json()["upstream_fields"] == profile["upstream_fields"]


@pytest.mark.parametrize(
    "fields", [["ok", "bad name"], ["x" * 65], ["new\nline"], [""], ["f"] * 201]
)
def test_field_names_are_checked(tenant: TenantHandle, fields: list[str]) -> None:
    response = set_fields(tenant, fields)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "upstream_fields"
