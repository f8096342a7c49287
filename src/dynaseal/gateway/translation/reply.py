"""A chat upstream's reply, read as the Responses API answer the device asked for.

Errors (any status but 200) pass through untouched: chat and Responses share OpenAI's
error format. A stream is translated event by event as it arrives, so the device still
sees each piece of text when the upstream generates it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from dynaseal.gateway.endpoints.responses import event_frame
from dynaseal.gateway.relay import sse
from dynaseal.gateway.relay.upstream import UpstreamReply
from dynaseal.gateway.translation.answers import to_response
from dynaseal.gateway.translation.events import ChatToResponseEvents


def _frame(event: dict[str, Any]) -> bytes:
    return event_frame(orjson.dumps(event), str(event["type"]))


class TranslatedReply:
    def __init__(self, chat: UpstreamReply, request: dict[str, Any]) -> None:
        self._chat = chat
        self._request = request
        self.status_code = chat.status_code
        self.headers: Mapping[str, str] = chat.headers

    async def aread(self) -> bytes:
        raw = await self._chat.aread()
        if self.status_code != 200:
            return raw
        try:
            chat = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        if not isinstance(chat, dict):
            return raw
        return orjson.dumps(to_response(chat, self._request))

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        if self.status_code != 200:
            async for chunk in self._chat.aiter_raw():
                yield chunk
            return
        events = ChatToResponseEvents(self._request)
        async for data in sse.iter_event_data(self._chat.aiter_raw()):
            if data.strip() == sse.DONE:
                break
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(chunk, dict):
                translated = events.chunk(chunk)
                if translated:
                    yield b"".join(_frame(event) for event in translated)
        yield b"".join(_frame(event) for event in events.finish())

    async def aclose(self) -> None:
        await self._chat.aclose()
