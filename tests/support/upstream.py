"""A scriptable OpenAI-compatible upstream on loopback, recording what reached it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class UpstreamScript:
    """How the fake upstream behaves; tests change it between requests."""

    words: int = 8  # completion length when max_tokens allows
    prompt_tokens: int = 11
    send_usage: bool = True  # False: never report usage (gateway must count)
    chunk_delay: float = 0.0
    status: int = 200  # non-200: answer with an OpenAI-format error
    break_after: int | None = None  # streaming: drop the connection after N content chunks
    #: The length fields it honours, first found wins (llama.cpp: n_predict, max_tokens);
    #: () ignores them all.
    length_fields: tuple[str, ...] = ("max_completion_tokens", "max_tokens")


@dataclass
class StreamRecord:
    """What one stream sent, and how it ended."""

    words_sent: int = 0
    finished: bool = False  # sent [DONE]
    ended: threading.Event = field(default_factory=threading.Event)  # finished or aborted


@dataclass
class FakeUpstream:
    script: UpstreamScript = field(default_factory=UpstreamScript)
    requests: list[dict[str, Any]] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""  # where it is served: set by the fixture that serves it

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.streams.clear()
        self.script = UpstreamScript()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self.requests.append(body)
        script = self.script
        if script.status != 200:
            error = {
                "message": "upstream says no",
                "type": "server_error",
                "param": None,
                "code": "boom",
            }
            return JSONResponse({"error": error}, status_code=script.status)
        found = [body[name] for name in script.length_fields if body.get(name)]
        cap = found[0] if found else 1_000_000
        words = [f"w{i} " for i in range(min(script.words, cap))]
        usage = {
            "prompt_tokens": script.prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": script.prompt_tokens + len(words),
        }
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            reply = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(words)},
                        "finish_reason": "stop",
                    }
                ],
            }
            if script.send_usage:
                reply["usage"] = usage
            return JSONResponse(reply)

        include_usage = (body.get("stream_options") or {}).get("include_usage")
        record = StreamRecord()
        with self._lock:
            self.streams.append(record)

        async def events():
            try:
                async for event in generate():
                    yield event
                record.finished = True
            finally:
                record.ended.set()

        async def generate():
            def event(payload: dict[str, Any]) -> bytes:
                chunk = {**base, "object": "chat.completion.chunk", **payload}
                return f"data: {json.dumps(chunk)}\n\n".encode()

            yield event(
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                    ]
                }
            )
            for i, word in enumerate(words):
                if script.break_after is not None and i >= script.break_after:
                    raise RuntimeError("upstream dies mid-stream")
                # Even without a delay: a server that never yields cannot see its client go.
                await asyncio.sleep(script.chunk_delay)
                yield event(
                    {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                )
                record.words_sent += 1
            yield event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if include_usage and script.send_usage:
                yield event({"choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
