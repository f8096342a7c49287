"""Replies that already proved themselves before the device saw anything.

The router only hands the proxy a reply once the deployment has really answered: a
whole body (not streaming), or the first chunk of a stream. Until then a failure —
connection reset, timeout, a stream that dies at once — is a failed *attempt* and the
next deployment is tried; after it, the device has the first byte and a failure ends
the stream with an error event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from dynaseal.gateway.relay.upstream import UpstreamReply


class WholeReply:
    """A body already read in full."""

    def __init__(self, reply: UpstreamReply, body: bytes) -> None:
        self.status_code = reply.status_code
        self.headers: Mapping[str, str] = reply.headers
        self._body = body

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        yield self._body

    async def aread(self) -> bytes:
        return self._body

    async def aclose(self) -> None:
        return None


class PrimedStream:
    """A stream whose first chunk has arrived; it is sent first, then the rest."""

    def __init__(self, reply: UpstreamReply, first: bytes, rest: AsyncIterator[bytes]) -> None:
        self.status_code = reply.status_code
        self.headers: Mapping[str, str] = reply.headers
        self._reply = reply
        self._first = first
        self._rest = rest

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        if self._first:
            yield self._first
        async for chunk in self._rest:
            yield chunk

    async def aread(self) -> bytes:
        return self._first + b"".join([chunk async for chunk in self._rest])

    async def aclose(self) -> None:
        await self._reply.aclose()


async def prime(reply: UpstreamReply, stream: bool) -> UpstreamReply:
    """Wait for the whole body, or a stream's first chunk; raises UpstreamError."""
    if not stream:
        try:
            body = await reply.aread()
        finally:
            await reply.aclose()
        return WholeReply(reply, body)
    chunks = aiter(reply.aiter_raw())
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""
    except BaseException:
        await reply.aclose()
        raise
    return PrimedStream(reply, first, chunks)
