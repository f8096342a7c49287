"""Server-sent events: split an upstream byte stream into the ``data`` of each event."""

from __future__ import annotations

from collections.abc import AsyncIterator

DONE = b"[DONE]"


def frame(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def _event_data(block: bytes) -> bytes | None:
    lines = [line for line in block.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None  # a comment or keep-alive
    return b"\n".join(line[6:] if line[5:6] == b" " else line[5:] for line in lines)


async def iter_event_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield each event's data as soon as its terminating blank line has arrived."""
    buffer = b""
    cr = False  # the last read ended in CR: the LF of its CRLF may open the next read
    async for chunk in chunks:
        if cr:
            chunk = b"\r" + chunk
        cr = chunk.endswith(b"\r")
        buffer += (chunk[:-1] if cr else chunk).replace(b"\r\n", b"\n")
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            block, buffer = buffer[:end], buffer[end + 2 :]
            data = _event_data(block)
            if data is not None:
                yield data
    data = _event_data(buffer.strip(b"\n"))  # a last event without its blank line
    if data is not None:
        yield data
