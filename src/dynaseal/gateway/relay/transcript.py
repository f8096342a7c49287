"""What the upstream said: the generated text and the usage, read off as it passes by.

For streams this also decides what the device sees of each event: the extra usage
chunk the gateway asked for is dropped when the device did not ask for it, and every
other event is forwarded as the upstream framed it (no re-serialising).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from dynaseal.gateway.relay import sse


@dataclass(slots=True)
class Transcript:
    wants_usage_chunk: bool = True
    parts: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: str | None = None
    first_token_at: float | None = None
    done: bool = False

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def _take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.usage = usage

    def _take_text(self, text: Any) -> None:
        if isinstance(text, str) and text:
            if self.first_token_at is None:
                self.first_token_at = time.time()
            self.parts.append(text)

    def read_completion(self, raw: bytes) -> None:
        """Read a whole (non-streaming) chat completion body."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if not isinstance(body, dict):
            return
        self._take_usage(body.get("usage"))
        for choice in body.get("choices") or []:
            if isinstance(choice, dict):
                self._take_text((choice.get("message") or {}).get("content"))
        if isinstance(body.get("error"), dict):
            self.error = str(body["error"].get("message"))

    def relay_event(self, data: bytes) -> bytes | None:
        """Read one streamed event; return the bytes to send the device, or None to drop."""
        if data.strip() == sse.DONE:
            self.done = True
            return sse.frame(sse.DONE)
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return sse.frame(data)
        if not isinstance(chunk, dict):
            return sse.frame(data)
        if isinstance(chunk.get("error"), dict):
            self.error = str(chunk["error"].get("message"))
        self._take_usage(chunk.get("usage"))
        choices = chunk.get("choices") or []
        for choice in choices:
            if isinstance(choice, dict):
                self._take_text((choice.get("delta") or {}).get("content"))
        if not choices and chunk.get("usage") and not self.wants_usage_chunk:
            return None
        return sse.frame(data)
