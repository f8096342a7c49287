"""Issue 12.10: what a stream costs the gateway is bounded. The text kept for the callback
is capped (and the callback says so), and a device that goes away — disconnecting, or just
no longer reading — gets its upstream closed at once and its request settled as
``client_disconnected`` with the tokens generated so far."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from support.callbacks import CallbackSink
from support.gateways import demo_gateway
from support.raw_http import connect, request_head
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, event_of, mint
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]
CONTENT_LIMIT = 100


@pytest.fixture(scope="module")
def edgy_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream, sink: CallbackSink
) -> Iterator[ServerThread]:
    """A gateway that keeps 100 characters per callback and gives up on a device that has
    not taken the next event within half a second."""
    with demo_gateway(
        tmp_path_factory.mktemp("edgy"),
        upstream,
        callback_url=sink.url,
        callback_content_max_chars=CONTENT_LIMIT,
        client_write_timeout_seconds=0.5,
    ) as server:
        yield server


def chat_body(**extra: object) -> dict[str, object]:
    return {"model": DEMO_MODEL, "messages": MESSAGES, **extra}


@pytest.mark.parametrize("stream", [True, False])
def test_the_callback_content_is_capped_and_says_so(
    edgy_gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink, stream: bool
) -> None:
    upstream.script.words = 200  # "w0 w1 … w199 ": 890 characters
    key = mint(max_tokens=5000)
    reply = httpx.post(
        edgy_gateway.url + "/v1/chat/completions",
        json=chat_body(stream=stream),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert reply.status_code == 200
    assert reply.text.count("w199") == 1  # the device gets everything
    [callback] = sink.wait_for(1, event_id=event_of(key))
    assert callback["content"] == "".join(f"w{i} " for i in range(200))[:CONTENT_LIMIT]
    assert callback["content_truncated"] is True
    assert callback["completion_tokens"] == 200  # the usage is the whole answer's


def test_short_answers_are_not_marked_truncated(
    edgy_gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    key = mint()
    httpx.post(
        edgy_gateway.url + "/v1/chat/completions",
        json=chat_body(),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    [callback] = sink.wait_for(1, event_id=event_of(key))
    assert callback["content"] == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert callback["content_truncated"] is False


def test_a_device_that_disconnects_mid_stream_closes_the_upstream(
    edgy_gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.words = 200
    upstream.script.chunk_delay = 0.05  # ten seconds of answer
    upstream.script.send_usage = False
    key = mint(max_tokens=5000)
    with httpx.stream(
        "POST",
        edgy_gateway.url + "/v1/chat/completions",
        json=chat_body(stream=True),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as response:
        seen = 0
        for line in response.iter_lines():
            seen += '"content": "w' in line
            if seen == 3:
                break  # leaving the block closes the connection
    # The device is gone: the upstream's stream ends long before its ten seconds.
    [record] = upstream.streams
    assert record.ended.wait(5) and not record.finished
    assert record.words_sent < 100
    [callback] = sink.wait_for(1, event_id=event_of(key))
    assert callback["status"] == "client_disconnected"
    assert callback["usage_source"] == "estimated"
    assert 3 <= callback["completion_tokens"] <= record.words_sent * 2


def test_a_device_that_stops_reading_is_given_up_on(
    edgy_gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    """It keeps its connection open and reads nothing: once the socket buffers are full the
    gateway's next write waits, and after CLIENT_WRITE_TIMEOUT_SECONDS it lets go."""
    upstream.script.words = 1_000_000  # far more than any buffer holds
    upstream.script.send_usage = False
    key = mint(max_tokens=10_000_000)
    device = connect(edgy_gateway.url)
    device.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = orjson.dumps(chat_body(stream=True))
    head = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
    }
    try:
        device.sendall(request_head("POST", "/v1/chat/completions", head) + body)
        assert device.recv(1024).startswith(b"HTTP/1.1 200")
        # ... and never reads again.
        [record] = upstream.streams
        assert record.ended.wait(60) and not record.finished
        [callback] = sink.wait_for(1, timeout=30, event_id=event_of(key))
        assert callback["status"] == "client_disconnected"
        assert 0 < callback["completion_tokens"] < 1_000_000
    finally:
        device.close()
