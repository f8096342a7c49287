"""The upstream model server: any OpenAI-compatible ``/chat/completions``.

One pooled keep-alive ``httpx.AsyncClient`` per gateway process. Both this and the
offline responder hand back an :class:`UpstreamReply`, so the proxy has one code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx
import orjson


class UpstreamReply(Protocol):
    status_code: int

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    description: str

    async def send(self, body: dict[str, Any]) -> UpstreamReply: ...

    async def probe(self) -> None:
        """Raise unless the upstream can be reached (any HTTP answer will do)."""

    async def aclose(self) -> None: ...


class UpstreamError(Exception):
    """The upstream could not be reached or broke off."""


class HttpUpstream:
    def __init__(
        self, base_url: str, api_key: str | None, *, timeout: float, max_connections: int
    ) -> None:
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self.description = base_url
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def send(self, body: dict[str, Any]) -> UpstreamReply:
        request = self._client.build_request("POST", "chat/completions", content=orjson.dumps(body))
        try:
            return await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from exc

    async def probe(self) -> None:
        await self._client.get("models", timeout=2.0)

    async def aclose(self) -> None:
        await self._client.aclose()
