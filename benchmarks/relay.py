"""The paper's "before" picture: a business backend relaying every device request.

The device sends its chat request to the backend, the backend forwards it to the LLM
and returns the answer. Deliberately minimal (no login check, no bookkeeping), so the
relay's numbers are a floor for a real one. Both legs are metered: the device side by
:class:`~benchmarks.meter.ByteMeter`, the upstream side here, because both cross the
backend's network.
"""

from __future__ import annotations

import httpx

from benchmarks.meter import ByteMeter, headers_size
from benchmarks.upstream import Receive, Scope, Send, read_body, respond

_HEAD = [(b"content-type", b"application/json")]


class Relay:
    """ASGI app forwarding ``POST .../chat/completions`` to ``upstream_url``."""

    def __init__(self, upstream_url: str) -> None:
        self.url = upstream_url.rstrip("/") + "/v1/chat/completions"
        self.meter: ByteMeter | None = None
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # created in the server's event loop
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
            self._client = httpx.AsyncClient(limits=limits, timeout=60.0)
        return self._client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not (scope["method"] == "POST" and scope["path"].endswith("/chat/completions")):
            await respond(send, 404, b'{"error":{"message":"not found"}}', _HEAD)
            return
        body = await read_body(receive)
        reply = await self.client().post(
            self.url, content=body, headers={"content-type": "application/json"}
        )
        self._count_upstream_leg(reply, len(body))
        head = [(b"content-type", reply.headers.get("content-type", "application/json").encode())]
        await respond(send, reply.status_code, reply.content, head)

    def _count_upstream_leg(self, reply: httpx.Response, body_size: int) -> None:
        if self.meter is None:
            return
        sent = len(self.url) + 16 + headers_size(reply.request.headers.raw) + body_size
        received = 17 + headers_size(reply.headers.raw) + len(reply.content)
        # Seen from the backend: the answer comes in, the forwarded request goes out.
        self.meter.add("relay_upstream", received, sent, requests=0)


def metered_relay(upstream_url: str) -> ByteMeter:
    relay = Relay(upstream_url)
    meter = ByteMeter(relay, lambda _path, _body: "relay")
    relay.meter = meter
    return meter
