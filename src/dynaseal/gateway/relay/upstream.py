"""One upstream model server: any OpenAI-compatible API (``/chat/completions``,
``/responses``, ``/embeddings``, ``/completions`` under its base URL).

One pooled keep-alive ``aiohttp`` session per gateway process (aiohttp rather than httpx
here: its connection pool stays cheap with hundreds of connections open, which is what
many concurrent streams mean). Both this and the offline responder hand back an
:class:`UpstreamReply`, so the proxy has one code path; client errors surface as
:class:`UpstreamError` whatever the client library. :mod:`dynaseal.gateway.routing`
puts several of them behind the same :class:`Upstream` protocol.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import aiohttp
import orjson
import yarl

from dynaseal.gateway.relay.attempts import Attempt

_CLIENT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


class UpstreamReply(Protocol):
    status_code: int
    headers: Mapping[str, str]  # case-insensitive when they came over HTTP

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    description: str

    async def send(
        self,
        body: dict[str, Any],
        *,
        path: str = "/chat/completions",
        attempts: list[Attempt] | None = None,
    ) -> UpstreamReply:
        """POST ``body`` to ``path``; a router notes each deployment it tried in
        ``attempts`` (a single server has nothing to note)."""

    async def probe(self) -> None:
        """Raise unless the upstream can be reached (any HTTP answer will do)."""

    async def aclose(self) -> None: ...


class UpstreamError(Exception):
    """The upstream could not be reached or broke off."""


def _error(exc: BaseException) -> UpstreamError:
    return UpstreamError(f"{type(exc).__name__}: {exc}")


class _Reply:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code = response.status
        self.headers: Mapping[str, str] = response.headers

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except _CLIENT_ERRORS as exc:
            raise _error(exc) from exc

    async def aread(self) -> bytes:
        try:
            return await self._response.read()
        except _CLIENT_ERRORS as exc:
            raise _error(exc) from exc

    async def aclose(self) -> None:
        # An answer read to its end leaves a reusable connection; one cut short (device
        # gone, cap reached) is closed, so the upstream stops generating at once.
        if self._response.content.is_eof():
            self._response.release()
        else:
            self._response.close()


class HttpUpstream:
    def __init__(
        self, base_url: str, api_key: str | None, *, timeout: float, max_connections: int
    ) -> None:
        url = yarl.URL(base_url)
        # Credentials in the URL (a proxy that wants basic auth) go in the Authorization
        # header, once; the URL kept, shown and logged has neither them nor the query.
        self.description = str(url.with_user(None).with_query(None))
        self._base = str(url.with_user(None)).rstrip("/")
        # Uncompressed: the answer is relayed as it comes, chunk by chunk.
        self._headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        elif url.user is not None:
            pair = f"{url.user}:{url.password or ''}".encode()  # RFC 7617, charset UTF-8
            self._headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
        # No total timeout: a long stream is fine as long as bytes keep coming. Only the
        # TCP connect is timed, not the wait for a pooled connection (``connect`` would
        # count both): admission already seats requests in the pool fairly (.pool).
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=10.0, sock_read=timeout
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # One parsed URL per endpoint path: aiohttp would parse a string on every request.
        self._urls: dict[str, yarl.URL] = {}

    def _url(self, path: str) -> yarl.URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = yarl.URL(self._base + path)
        return url

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made inside the running event loop, as aiohttp wants
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, keepalive_timeout=30, ttl_dns_cache=300
                ),
                headers=self._headers,
                timeout=self._timeout,
            )
        return self._session

    async def send(
        self,
        body: dict[str, Any],
        *,
        path: str = "/chat/completions",
        attempts: list[Attempt] | None = None,
    ) -> UpstreamReply:
        try:
            response = await self._client().post(
                self._url(path), data=orjson.dumps(body), allow_redirects=False
            )
        except _CLIENT_ERRORS as exc:
            raise _error(exc) from exc
        return _Reply(response)

    async def probe(self) -> None:
        async with self._client().get(
            f"{self._base}/models", timeout=aiohttp.ClientTimeout(total=2.0)
        ) as response:
            await response.read()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
