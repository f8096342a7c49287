"""A byte limit on request bodies, enforced while they stream in, per route.

A ``Content-Length`` check alone lets a chunked body through, and a framework that reads
the whole body before the endpoint runs (FastAPI's JSON and form routes) holds all of it
in memory before any authentication. This ASGI middleware counts the bytes as the
server hands them over: past the route's limit it answers 413 in OpenAI's format at
once, with ``Connection: close`` so the server stops reading, and the application sees
no more of the body. An answer given before the body was read to its end (a refusal
that did not need it) also closes the connection, or the server would keep reading and
discarding whatever the client still sends. Routes are matched by the end of their
path, so ``/v1/…``, ``/…`` and ``/api/v1/…`` share a limit.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dynaseal.core.errors import error_body


class BodyTooLarge(Exception):
    """Raised from ``receive`` once the body passes its limit (the 413 is already sent)."""


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length; -1 for a chunked body; None when there is no body."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
        if name == b"transfer-encoding":
            return -1
    return None


_CLOSE = (b"connection", b"close")


class BodyLimit:
    """ASGI middleware: ``default`` bytes for any route, ``routes`` maps the end of a path
    (``"/chat/completions"``) to its own limit."""

    def __init__(self, app: ASGIApp, *, default: int, routes: Mapping[str, int]) -> None:
        self.app = app
        self.default = default
        self.routes = dict(routes)

    def limit_for(self, path: str) -> int:
        for suffix, limit in self.routes.items():
            if path.endswith(suffix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0
        started = refused = False
        unread = declared is not None and declared != 0  # a body not yet read to its end

        async def limited_receive() -> Message:
            nonlocal received, refused, unread
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                unread = unread and message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        await _refuse(send, limit)
                        refused = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the application's answer to BodyTooLarge: the 413 went instead
            if message["type"] == "http.response.start":
                started = True
                if unread:
                    message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not refused:
                raise  # an answer had started: the server closes the connection


async def _refuse(send: Send, limit: int) -> None:
    body = orjson.dumps(
        error_body(
            f"The request body is larger than {limit} bytes.",
            "invalid_request_error",
            "request_too_large",
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
