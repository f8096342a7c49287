"""Usage callbacks: sent for every kind of ending, retried until the receiver says 2xx."""

from __future__ import annotations

import httpx
import openai

from conftest import DEMO_MODEL, event_of, mint, original_key
from dynaseal.core.original_demo import DEMO_TENANT_PASSWORD, DEMO_TENANT_USERNAME
from support.callbacks import CallbackSink
from support.servers import ServerThread
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(gateway: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def test_callback_for_a_non_streaming_request(gateway: ServerThread, sink: CallbackSink) -> None:
    key = original_key()
    client(gateway, key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["content"] == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert payload["tokens"] == 19
    assert (payload["prompt_tokens"], payload["completion_tokens"]) == (11, 8)
    assert payload["model"] == DEMO_MODEL
    assert payload["status"] == "completed" and payload["stream"] is False
    assert payload["request_id"].startswith("req_")


def test_callback_for_a_stream_is_signed_with_a_stable_id(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    key = mint(sub="user-42", metadata={"order": 7})
    list(
        client(gateway, key).chat.completions.create(
            model=DEMO_MODEL, messages=MESSAGES, stream=True
        )
    )
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["status"] == "completed" and payload["stream"] is True
    assert payload["tokens"] == 19
    assert payload["sub"] == "user-42" and payload["metadata"] == {"order": 7}
    headers = next(h for h, p in sink.received if p is payload)
    assert headers["webhook-id"].startswith("msg_")
    assert headers["webhook-timestamp"].isdigit()


def test_callback_when_the_device_disconnects_mid_stream(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.words = 200
    upstream.script.chunk_delay = 0.02
    key = mint()
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES, "stream": True},
        timeout=10,
    ) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(10)]
    assert any("w0" in line for line in received)
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["status"] == "client_disconnected"
    assert payload["content"].startswith("w0 w1 ")
    assert 0 < payload["completion_tokens"] < 200
    assert payload["tokens"] > payload["completion_tokens"]


def test_callback_when_the_upstream_fails(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.status = 500
    key = mint()
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES},
    )
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "upstream says no"
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["status"] == "failed" and payload["tokens"] == 0


def test_upstream_breaking_mid_stream_ends_with_an_error_event(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.break_after = 3
    key = mint()
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES, "stream": True},
        timeout=10,
    ) as response:
        events = [line for line in response.iter_lines() if line]
    assert '"error"' in events[-2] and events[-1] == "data: [DONE]"
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["status"] == "failed"
    assert payload["content"] == "w0 w1 w2 "


def test_undelivered_callback_is_retried_with_the_same_id(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    sink.fail_next = 2
    key = mint()
    client(gateway, key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    [payload] = sink.wait_for(1, timeout=15, event_id=event_of(key))
    assert payload["tokens"] == 19
    assert sink.fail_next == 0  # the receiver refused twice before accepting


def test_tenant_total_grows_with_usage(gateway: ServerThread) -> None:
    login = httpx.post(
        gateway.url + "/user/login",
        data={"username": DEMO_TENANT_USERNAME, "password": DEMO_TENANT_PASSWORD},
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    before = httpx.get(gateway.url + "/v1/user/me", headers=headers).json()["total_tokens"]
    client(gateway, mint()).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    after = httpx.get(gateway.url + "/v1/user/me", headers=headers).json()["total_tokens"]
    assert after - before == 19
