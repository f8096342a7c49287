"""What the upstream said: the generated text and the usage, read off as it passes by.

For streams this also decides what the device sees of each event: the extra usage
chunk the gateway asked for is dropped when the device did not ask for it, every other
event is forwarded as the upstream framed it (no re-serialising), and an event that
takes a choice past the completion cap is not forwarded at all (:attr:`past_cap`: the
proxy then ends the stream). Generation is counted per choice, every kind of generated
text included (content, reasoning, refusals, tool-call arguments).

The text kept for the callback's ``content`` is bounded (``content_limit`` characters):
a long answer costs the gateway no more memory, nor the outbox more space, than that.

This one reads chat completions; the other endpoints' answers are read by subclasses in
:mod:`dynaseal.gateway.endpoints`, which also frame their own errors and stream ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from dynaseal.core.errors import error_body
from dynaseal.gateway.relay import sse
from dynaseal.gateway.relay.token_estimate import estimate_bytes_tokens, fewest_tokens

#: Fields of a message or a streamed delta whose text the model generated.
_GENERATED_TEXT = ("content", "reasoning_content", "reasoning", "refusal")


@dataclass(slots=True)
class _Choice:
    pieces: int = 0  # streamed events that carried generated text: at least a token each
    generated_bytes: int = 0
    finished: bool = False

    def fewest_tokens(self) -> int:
        return max(self.pieces, fewest_tokens(self.generated_bytes))


def _call_text(call: Any) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return ""
    parts = (function.get("name"), function.get("arguments"))
    return "".join(p for p in parts if isinstance(p, str))


def _generated_bytes(delta: dict[str, Any]) -> int:
    """UTF-8 bytes of everything generated in one message or delta."""
    total = sum(
        len(text.encode()) for k in _GENERATED_TEXT if isinstance(text := delta.get(k), str)
    )
    calls = delta.get("tool_calls")
    if isinstance(calls, list):
        total += sum(len(_call_text(call).encode()) for call in calls)
    if isinstance(delta.get("function_call"), dict):
        total += len(_call_text({"function": delta["function_call"]}).encode())
    return total


@dataclass(slots=True)
class Transcript:
    CHUNK_OBJECT: ClassVar[str] = "chat.completion.chunk"  # of the chunks it makes itself

    wants_usage_chunk: bool = True
    #: Completion cap per choice and the choices asked for; None: nothing is cut.
    cap: int | None = None
    choices_asked: int = 1
    content_limit: int = 65_536
    parts: list[str] = field(default_factory=list)
    kept_chars: int = 0
    content_truncated: bool = False
    choices: dict[int, _Choice] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    error: str | None = None
    first_token_at: float | None = None
    done: bool = False
    past_cap: bool = False
    #: id, object, created and model of the upstream's chunks, for a chunk of our own.
    chunk_base: dict[str, Any] = field(default_factory=dict)

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def _take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.usage = usage

    def _keep(self, text: Any) -> None:
        if not isinstance(text, str) or not text:
            return
        if self.first_token_at is None:
            self.first_token_at = time.time()
        room = self.content_limit - self.kept_chars
        if len(text) > room:
            text = text[: max(room, 0)]
            self.content_truncated = True
        if text:
            self.parts.append(text)
            self.kept_chars += len(text)

    def _choice(self, index: Any) -> _Choice:
        key = index if isinstance(index, int) else 0
        found = self.choices.get(key)
        if found is None:
            found = self.choices[key] = _Choice()
        return found

    # ------------------------------------------------------------------ what it used

    def estimated_completion_tokens(self) -> int:
        """Our estimate of the completion (it errs high), for when the upstream gives none."""
        return estimate_bytes_tokens(sum(c.generated_bytes for c in self.choices.values()))

    def upstream_completion_tokens(self) -> int | None:
        tokens = (self.usage or {}).get("completion_tokens")
        return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None

    def fewest_completion_tokens(self) -> int:
        """What the upstream certainly generated: its count, else a count that errs low."""
        counted = self.upstream_completion_tokens()
        if counted is not None:
            return counted
        return sum(choice.fewest_tokens() for choice in self.choices.values())

    def _over_cap(self, choice: _Choice | None) -> bool:
        if self.cap is None:
            return False
        if choice is not None and choice.fewest_tokens() > self.cap:
            return True
        counted = self.upstream_completion_tokens()  # some servers send it with every chunk
        return counted is not None and counted > self.cap * self.choices_asked

    # ------------------------------------------------------------------ reading

    @staticmethod
    def generated(choice: dict[str, Any], *, streamed: bool) -> Any:
        """What one choice generated: the message of a whole answer, or a chunk's delta
        (an object whose ``content`` is the text, as :func:`_generated_bytes` reads it)."""
        return choice.get("delta" if streamed else "message")

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
                message = self.generated(choice, streamed=False)
                if isinstance(message, dict):
                    self._choice(choice.get("index")).generated_bytes += _generated_bytes(message)
                    self._keep(message.get("content"))
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
        if not self.chunk_base and "id" in chunk:
            self.chunk_base = {k: chunk.get(k) for k in ("id", "created", "model")}
        if isinstance(chunk.get("error"), dict):
            self.error = str(chunk["error"].get("message"))
        self._take_usage(chunk.get("usage"))
        choices = chunk.get("choices") or []
        kept: list[Any] = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            counted = self._choice(choice.get("index"))
            delta = self.generated(choice, streamed=True)
            if isinstance(delta, dict) and (generated := _generated_bytes(delta)):
                counted.pieces += 1
                counted.generated_bytes += generated
                if self._over_cap(counted):
                    self.past_cap = True
                    return None
                kept.append(delta.get("content"))
            if choice.get("finish_reason"):
                counted.finished = True
        if choices and self._over_cap(None):
            self.past_cap = True
            return None
        for text in kept:
            self._keep(text)
        if not choices and chunk.get("usage") and not self.wants_usage_chunk:
            return None
        return sse.frame(data)

    # ------------------------------------------------------------------ our own chunks

    def length_finish(self) -> bytes:
        """The chunk that ends every unfinished choice with ``finish_reason: length``."""
        unfinished = [
            i
            for i in range(max(self.choices_asked, len(self.choices)))
            if not self._choice(i).finished
        ]
        choices = [self.length_choice(i) for i in unfinished]
        return sse.frame(orjson.dumps({**self._base(), "choices": choices}))

    @staticmethod
    def length_choice(index: int) -> dict[str, Any]:
        return {"index": index, "delta": {}, "finish_reason": "length"}

    def usage_chunk(self, usage: dict[str, int]) -> bytes:
        return sse.frame(orjson.dumps({**self._base(), "choices": [], "usage": usage}))

    def _base(self) -> dict[str, Any]:
        base = {"id": "", "object": self.CHUNK_OBJECT, "created": int(time.time())}
        return base | {k: v for k, v in self.chunk_base.items() if v is not None}

    def error_frame(self, message: str, code: str) -> bytes:
        """The event telling the device the stream failed after it started."""
        return sse.frame(orjson.dumps(error_body(message, "upstream_error", code)))

    def closing_frame(self) -> bytes | None:
        """What ends the stream for the device (chat completions: ``[DONE]``)."""
        return sse.frame(sse.DONE)
