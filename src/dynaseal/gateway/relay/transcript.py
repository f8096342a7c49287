"""What the upstream said: the generated text and the usage, read off as it passes by.

For streams this also decides what the device sees of each event: the extra usage
chunk the gateway asked for is dropped when the device did not ask for it, and every
other event is forwarded as the upstream framed it (no re-serialising).

This one reads chat completions; the other endpoints' answers are read by subclasses in
:mod:`dynaseal.gateway.endpoints`, which also frame their own errors and stream ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from dynaseal.core.errors import error_body
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

    @staticmethod
    def choice_text(choice: dict[str, Any], *, streamed: bool) -> Any:
        """The generated text of one choice (of a whole answer, or of a streamed chunk)."""
        return (choice.get("delta" if streamed else "message") or {}).get("content")

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
                self._take_text(self.choice_text(choice, streamed=False))
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
                self._take_text(self.choice_text(choice, streamed=True))
        if not choices and chunk.get("usage") and not self.wants_usage_chunk:
            return None
        return sse.frame(data)

    def error_frame(self, message: str, code: str) -> bytes:
        """The event telling the device the stream failed after it started."""
        return sse.frame(orjson.dumps(error_body(message, "upstream_error", code)))

    def closing_frame(self) -> bytes | None:
        """What ends the stream for the device (chat completions: ``[DONE]``)."""
        return sse.frame(sse.DONE)
