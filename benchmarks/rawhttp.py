"""A tiny keep-alive HTTP/1.1 client on raw asyncio streams.

httpx costs a few hundred microseconds per request on the client side, as much as the
gateway is meant to add; this client costs a few tens, so the async load generator and
the stream timings measure the servers rather than the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_MAX_CHUNKS = 1_000_000
_READ_LIMIT = 1 << 20

OnChunk = Callable[[bytes], None]


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes


def build_request(
    method: str,
    path: str,
    port: int,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """The exact bytes of one request, built once and sent many times."""
    lines = [f"{method} {path} HTTP/1.1", f"host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _header(head: bytes, name: bytes) -> bytes | None:
    """A header's value from a lower-cased response head."""
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    return head[start : head.find(b"\r\n", start)].strip()


class Connection:
    """One keep-alive connection to 127.0.0.1; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=_READ_LIMIT)
        return cls(reader, writer)

    async def exchange(self, request: bytes, on_chunk: OnChunk | None = None) -> Reply:
        """Send, then read the whole answer; ``on_chunk`` sees each body piece as it arrives."""
        self.writer.write(request)
        head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        status = int(head[9:12])
        length = _header(head, b"content-length")
        if length is not None:
            body = await self.reader.readexactly(int(length))
            if on_chunk is not None:
                on_chunk(body)
        elif _header(head, b"transfer-encoding") == b"chunked":
            body = await self._read_chunked(on_chunk)
        else:
            body = await self.reader.read()
        return Reply(status, body)

    async def _read_chunked(self, on_chunk: OnChunk | None) -> bytes:
        parts: list[bytes] = []
        for _ in range(_MAX_CHUNKS):
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                break
            data = (await self.reader.readexactly(size + 2))[:-2]
            if on_chunk is not None:
                on_chunk(data)
            parts.append(data)
        return b"".join(parts)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
