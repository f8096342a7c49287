"""One id per HTTP request, ``req_…``, in the ``x-request-id`` header of every answer.

The same id names the request everywhere: the access line, the log lines written while
it is served, the gateway's ledger row and its usage callback. So a device that reports
"request req_… failed" points the operator at all of them. Plain ASGI, outermost: even
answers the app never sees (CORS preflights, 404s) carry it.
"""

from __future__ import annotations

import os
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"

_current: ContextVar[str | None] = ContextVar("dynaseal_request_id", default=None)


def new_request_id() -> str:
    return "req_" + os.urandom(16).hex()  # 128 random bits, as uuid4 but cheaper


def current_request_id() -> str:
    """The id of the request being served (a fresh one outside a request)."""
    return _current.get() or new_request_id()


class RequestIds:
    """ASGI middleware: give the request its id and put it on the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        token = _current.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != HEADER]
                headers.append((HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
