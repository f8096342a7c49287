"""A stand-in callback receiver that records what the gateway delivers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class CallbackSink:
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    fail_next: int = 0  # answer 503 to this many deliveries first
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/callback/usage", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> JSONResponse:
        payload = await request.json()
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return JSONResponse({"error": "not now"}, status_code=503)
            self.received.append((dict(request.headers), payload))
        return JSONResponse({"received": True})

    def payloads(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p for _, p in self.received]

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
            self.fail_next = 0
