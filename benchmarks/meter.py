"""Counting the bytes that cross a process, by kind of request.

The paper's claim is about the business backend's traffic, so the benchmark wraps the
backend (and the relay it is compared with) in :class:`ByteMeter` and reads the totals
from ``GET /__bench__/meter`` (``POST`` reads and resets). Counts are HTTP/1.1 as on the
wire, roughly: request and status lines, headers (plus the ``date`` and ``server``
headers uvicorn adds), bodies; chunked framing is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import orjson

from benchmarks.upstream import Receive, Scope, Send, respond

METER_PATH = "/__bench__/meter"
#: Event ids of keys the benchmark mints itself: their callbacks are load, not the flow.
LOAD_EVENT_PREFIX = "bench-load-"
#: ``date: ...`` and ``server: uvicorn`` added by uvicorn, invisible to ASGI.
_SERVER_ADDED_HEADERS = 55
_KEPT_BODY = 4096

Classify = Callable[[str, bytes], str]


def headers_size(headers: list[tuple[bytes, bytes]]) -> int:
    """``name: value\\r\\n`` per header plus the blank line."""
    return sum(len(name) + len(value) + 4 for name, value in headers) + 2


@dataclass(slots=True)
class Totals:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


class ByteMeter:
    """ASGI middleware: every request is counted under the bucket ``classify`` names."""

    def __init__(self, app: Callable[..., object], classify: Classify) -> None:
        self.app = app
        self.classify = classify
        self.totals: dict[str, Totals] = {}

    def add(self, bucket: str, bytes_in: int, bytes_out: int, requests: int = 1) -> None:
        totals = self.totals.setdefault(bucket, Totals())
        totals.requests += requests
        totals.bytes_in += bytes_in
        totals.bytes_out += bytes_out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        if scope["path"] == METER_PATH:
            await self._report(scope, send)
            return
        head_in = len(scope["method"]) + len(scope["raw_path"]) + len(scope["query_string"])
        bytes_in = head_in + 12 + headers_size(scope["headers"])
        kept = bytearray()
        bytes_out = 0

        async def counting_receive() -> dict:
            nonlocal bytes_in
            message = await receive()
            body = message.get("body", b"")
            bytes_in += len(body)
            if len(kept) < _KEPT_BODY:
                kept.extend(body[: _KEPT_BODY - len(kept)])
            return message

        async def counting_send(message: dict) -> None:
            nonlocal bytes_out
            if message["type"] == "http.response.start":
                bytes_out += 17 + headers_size(message.get("headers", [])) + _SERVER_ADDED_HEADERS
            elif message["type"] == "http.response.body":
                bytes_out += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)  # type: ignore[operator]
        finally:
            self.add(self.classify(scope["path"], bytes(kept)), bytes_in, bytes_out)

    async def _report(self, scope: Scope, send: Send) -> None:
        body = orjson.dumps({name: asdict(t) for name, t in self.totals.items()})
        if scope["method"] == "POST":
            self.totals = {}
        await respond(send, 200, body, [(b"content-type", b"application/json")])


def backend_bucket(path: str, body: bytes) -> str:
    """Key minting, the flow's callbacks, the load phases' callbacks, logins, the rest."""
    if path.endswith("/key/create"):
        return "key_create"
    if path.endswith("/callback/usage"):
        try:
            event_id = str(orjson.loads(body).get("event_id", ""))
        except (orjson.JSONDecodeError, AttributeError):
            event_id = ""
        return "callback_load" if event_id.startswith(LOAD_EVENT_PREFIX) else "callback"
    if path.endswith("/user/login"):
        return "login"
    return "other"
