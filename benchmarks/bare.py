"""The calibration row: a bare Python pass-through, with no checks at all.

Starlette and one pooled ``aiohttp`` session, served by uvicorn in its own process like
the gateway: the request body goes upstream as it came, the answer comes back as it
came (streams chunk by chunk). What the gateway costs beyond this is the price of its
checks and bookkeeping; this is the floor any Python relay on this stack pays.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

_POOL = 4096


class PassThrough:
    def __init__(self, upstream_url: str) -> None:
        self.url = upstream_url.rstrip("/") + "/v1/chat/completions"
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:  # made inside the server's event loop
            connector = aiohttp.TCPConnector(limit=_POOL, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"content-type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=None, sock_read=120),
            )
        return self._session

    async def chat(self, request: Request) -> Response:
        reply = await self.session().post(self.url, data=await request.body())
        media_type = reply.headers.get("content-type", "application/json")
        if media_type.startswith("text/event-stream"):
            return StreamingResponse(_relay(reply), reply.status, media_type=media_type)
        async with reply:
            return Response(await reply.read(), reply.status, media_type=media_type)


async def _relay(reply: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async with reply:
        async for chunk in reply.content.iter_any():
            yield chunk


def app(upstream_url: str) -> Starlette:
    relay = PassThrough(upstream_url)
    routes = [Route("/v1/chat/completions", relay.chat, methods=["POST"])]
    return Starlette(routes=routes)


def from_environment() -> Starlette:
    """The app for a server started by command line (``UPSTREAM_URL``), e.g. Granian."""
    return app(os.environ["UPSTREAM_URL"])
