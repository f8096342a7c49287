"""One access line per HTTP request, with what the routes learnt about it, and the
request's HTTP metrics.

:class:`AccessLog` is plain ASGI (no request objects, no body buffering): it times the
request, reads the status and the ``x-dynaseal-refusal`` header off the response start,
and logs one line on ``dynaseal.access`` when the response ended — after the last chunk
of a stream. Routes add what only they know (tenant, event id, tokens, their own request
id) with :func:`note`; lines logged while a request is served carry its request id
(:class:`RequestFields`), so "dynamic key refused: …" is tied to its access line. The
request id is the one :mod:`.request_id` gave the request (its ``x-request-id``).
same timing feeds :class:`~dynaseal.core.metrics.HttpMetrics` (counted even when the
access lines are off), so the metrics add no middleware of their own.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dynaseal.core.metrics import HttpMetrics
from dynaseal.core.request_id import current_request_id

log = logging.getLogger("dynaseal.access")

REFUSAL_HEADER = b"x-dynaseal-refusal"
_EVENT_STREAM = b"text/event-stream"

_fields: ContextVar[dict[str, Any] | None] = ContextVar("dynaseal_request_fields", default=None)


def note(**fields: Any) -> None:
    """Add fields to the access line of the request being served (no-op outside one)."""
    current = _fields.get()
    if current is not None:
        current.update(fields)


class RequestFields(logging.Filter):
    """Logging filter: a line logged while serving a request gets its ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _fields.get()
        if current is not None and not hasattr(record, "request_id"):
            record.request_id = current["request_id"]
        return True


#: The order fields appear in on a text line; JSON lines carry them as keys.
_SHOWN = (
    "tenant",
    "event_id",
    "outcome",
    "tokens",
    "refusal",
    "refusal_reason",
    "deployment",
    "upstream_request_id",
    "upstream_ratelimit",
    "client",
)


def _text(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if " " in text else text


class AccessLog:
    """ASGI middleware logging one line per HTTP request at INFO, and measuring it."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        logged = log.isEnabledFor(logging.INFO)
        fields: dict[str, Any] = {"request_id": current_request_id()} if logged else {}
        token = _fields.set(fields) if logged else None
        metrics = self.metrics
        metrics.started()
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering
        streamed = False

        async def send_and_watch(message: Message) -> None:
            nonlocal status, streamed
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == REFUSAL_HEADER:
                        fields["refusal"] = value.decode("latin-1")
                    elif name == b"content-type" and value.startswith(_EVENT_STREAM):
                        streamed = True
                        metrics.stream_opened()
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            seconds = time.perf_counter() - started
            metrics.finished(scope, status, seconds, streamed=streamed)
            if token is not None:
                _fields.reset(token)
                client = scope.get("client")
                if client:
                    fields["client"] = client[0]
                self._log(scope, status, seconds * 1000, fields)

    @staticmethod
    def _log(scope: Scope, status: int, latency_ms: float, fields: dict[str, Any]) -> None:
        method, path = scope["method"], scope["path"]
        shown = " ".join(f"{name}={_text(fields[name])}" for name in _SHOWN if name in fields)
        log.info(
            "%s %s %d %.1f ms %s %s",
            method,
            path,
            status,
            latency_ms,
            fields["request_id"],
            shown,
            extra={
                **fields,
                "method": method,
                "path": path,
                "status": status,
                "latency_ms": round(latency_ms, 1),
            },
        )
