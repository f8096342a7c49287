"""A stand-in callback receiver that records what the gateway delivers, and helpers to
sign and verify callbacks the Standard Webhooks way."""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any]

    def verify(self, secret: str) -> None:
        """Raise unless signed with ``secret`` (and fresh)."""
        Webhook(secret).verify(self.body, self.headers)

    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")


@dataclass
class CallbackSink:
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0  # refuse this many deliveries first ...
    fail_status: int = 503  # ... with this status
    fail_headers: dict[str, str] = field(default_factory=dict)  # ... and these headers
    url: str = ""  # its callback URL: set by the fixture that serves it
    refused: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/callback/usage", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":  # a usage.batch
            body = gzip.decompress(body)
        got = Received(dict(request.headers), body, json.loads(body))
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.refused.append(got)
                return JSONResponse(
                    {"error": "not now"}, status_code=self.fail_status, headers=self.fail_headers
                )
            self.received.append(got)
        return JSONResponse({"received": True})

    def payloads(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.payload for r in self.received]

    def delivery_of(self, payload: dict[str, Any]) -> Received:
        with self._lock:
            return next(r for r in self.received if r.payload is payload)

    def wait_for(
        self, request_count: int = 1, timeout: float = 10.0, **match: Any
    ) -> list[dict[str, Any]]:
        """Wait until ``request_count`` callbacks matching ``match`` arrived; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [p for p in self.payloads() if all(p.get(k) == v for k, v in match.items())]
            if len(found) >= request_count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.refused.clear()
            self.fail_next = 0
            self.fail_status = 503
            self.fail_headers = {}


def signed_headers(
    secret: str, body: bytes, msg_id: str, at: datetime | None = None
) -> dict[str, str]:
    """The headers the gateway sends with ``body``, signed with ``secret`` at ``at``."""
    at = (at or datetime.now(UTC)).replace(microsecond=0)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }
