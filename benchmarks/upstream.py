"""A minimal, fast OpenAI-compatible upstream, so the benchmark measures the gateway.

Raw ASGI with answers serialised once at import: non-streaming JSON with ``usage``, or
SSE chunks (a usage chunk when ``stream_options.include_usage``) ending in
``data: [DONE]``. The model ``long-answer`` answers 300 words instead of 16;
``slow-stream`` dribbles a chunk every 100 ms until ``POST /bench/release`` (or a safety
cap), so the benchmark can hold many streams open through the gateway at once and then
let them end normally.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

SLOW_MODEL = "slow-stream"
LONG_MODEL = "long-answer"
LONG_WORDS = 300
SLOW_INTERVAL_SECONDS = 0.1
SLOW_MAX_SECONDS = 120.0
RELEASE_PATH = "/bench/release"
WORDS = 16
PROMPT_TOKENS = 9
_MAX_BODY = 1 << 20

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_BASE = {"id": "chatcmpl-bench", "created": int(time.time()), "model": "bench-model"}


def _usage(completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
    }


def _event(payload: dict[str, Any]) -> bytes:
    chunk = {**_BASE, "object": "chat.completion.chunk", **payload}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _delta(delta: dict[str, str], finish: str | None = None) -> bytes:
    return _event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def _usage_event(completion_tokens: int) -> bytes:
    return _event({"choices": [], "usage": _usage(completion_tokens)})


def _completion(words: int) -> bytes:
    text = "".join(f"w{i} " for i in range(words))
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    answer = {**_BASE, "object": "chat.completion", "choices": [choice], "usage": _usage(words)}
    return orjson.dumps(answer)


COMPLETION = _completion(WORDS)
#: A chat-sized answer for the relay-vs-Dynaseal comparison, where sizes matter.
LONG_COMPLETION = _completion(LONG_WORDS)
FIRST_CHUNK = _delta({"role": "assistant", "content": "w0 "})
WORD_CHUNKS = tuple(_delta({"content": f"w{i} "}) for i in range(1, WORDS))
STOP_CHUNK = _delta({}, "stop")
USAGE_CHUNK = _usage_event(WORDS)
DONE = b"data: [DONE]\n\n"

_JSON_HEAD = [(b"content-type", b"application/json")]
_SSE_HEAD = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class _Release:
    """The current generation of slow streams; releasing ends them and starts the next."""

    event: asyncio.Event | None = None

    @classmethod
    def current(cls) -> asyncio.Event:
        if cls.event is None:
            cls.event = asyncio.Event()
        return cls.event

    @classmethod
    def release(cls) -> None:
        cls.current().set()
        cls.event = asyncio.Event()


async def read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    size = 0
    for _ in range(100_000):
        message = await receive()
        part = message.get("body", b"")
        size += len(part)
        if size > _MAX_BODY:
            break
        parts.append(part)
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def respond(send: Send, status: int, body: bytes, head: list[tuple[bytes, bytes]]) -> None:
    headers = [*head, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _fast_stream(send: Send, include_usage: bool) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEAD})
    for data in (FIRST_CHUNK, *WORD_CHUNKS, STOP_CHUNK):
        await _chunk(send, data)
    if include_usage:
        await _chunk(send, USAGE_CHUNK)
    await send({"type": "http.response.body", "body": DONE})


async def _slow_stream(send: Send, include_usage: bool) -> None:
    release = _Release.current()
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEAD})
    await _chunk(send, FIRST_CHUNK)
    sent = 1
    deadline = time.monotonic() + SLOW_MAX_SECONDS
    while not release.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(SLOW_INTERVAL_SECONDS)
        await _chunk(send, WORD_CHUNKS[sent % len(WORD_CHUNKS)])
        sent += 1
    await _chunk(send, STOP_CHUNK)
    if include_usage:
        await _chunk(send, _usage_event(sent))
    await send({"type": "http.response.body", "body": DONE})


async def _chat(receive: Receive, send: Send) -> None:
    try:
        body = orjson.loads(await read_body(receive))
    except orjson.JSONDecodeError:
        await respond(send, 400, b'{"error":{"message":"bad json"}}', _JSON_HEAD)
        return
    if not body.get("stream"):
        answer = LONG_COMPLETION if body.get("model") == LONG_MODEL else COMPLETION
        await respond(send, 200, answer, _JSON_HEAD)
        return
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    relay = _slow_stream if body.get("model") == SLOW_MODEL else _fast_stream
    await relay(send, include_usage)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The whole upstream: chat completions, the slow-stream release, and 404."""
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if method == "POST" and path.endswith("/chat/completions"):
        await _chat(receive, send)
    elif method == "POST" and path == RELEASE_PATH:
        _Release.release()
        await respond(send, 200, b'{"released":true}', _JSON_HEAD)
    else:
        await respond(send, 404, b'{"error":{"message":"not found"}}', _JSON_HEAD)
