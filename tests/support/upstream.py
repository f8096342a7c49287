"""A scriptable OpenAI-compatible upstream on loopback, recording what reached it.

It speaks chat completions (here), the Responses API, embeddings and legacy completions
(:mod:`support.upstream_apis`), each answer with the ``x-request-id`` and
``x-ratelimit-*`` headers a real provider sends. ``script.endpoints`` makes it a server
without some of them (a chat-only vLLM: 404 elsewhere)."""

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
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from support import upstream_apis

ALL_ENDPOINTS = frozenset({"chat", "responses", "embeddings", "completions"})
#: The rate-limit headers every answer carries (the operator's account: never relayed).
RATE_LIMIT_HEADERS = {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "99"}


@dataclass
class UpstreamScript:
    """How the fake upstream behaves; tests change it between requests."""

    words: int = 8  # completion length when max_tokens allows
    prompt_tokens: int = 11
    cached_tokens: int = 0  # of the prompt tokens, reported as served from cache
    send_usage: bool = True  # False: never report usage (gateway must count)
    chunk_delay: float = 0.0
    status: int = 200  # non-200: answer with an OpenAI-format error
    break_after: int | None = None  # streaming: drop the connection after N content chunks
    endpoints: frozenset[str] = ALL_ENDPOINTS  # the others answer 404, as on a real server
    tool_call: bool = False  # with tools given, the model calls the first one
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
    paths: list[str] = field(default_factory=list)  # the path of each request
    authorizations: list[str | None] = field(default_factory=list)  # of each request
    stored: dict[str, int] = field(default_factory=dict)  # response id -> its tokens
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
            self.paths.clear()
            self.authorizations.clear()
            self.stored.clear()
            self.streams.clear()
        self.script = UpstreamScript()

    def app(self) -> ASGIApp:
        routes = [
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/responses", self._answer("responses"), methods=["POST"]),
            Route("/v1/embeddings", self._answer("embeddings"), methods=["POST"]),
            Route("/v1/completions", self._answer("completions"), methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ]
        return _ProviderHeaders(Starlette(routes=routes))

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": []})

    async def _received(self, request: Request, endpoint: str) -> tuple[Any, Response | None]:
        """Record the request; the refusal to send instead of an answer, if any."""
        body = await request.json()
        with self._lock:
            self.requests.append(body)
            self.paths.append(request.url.path)
            self.authorizations.append(request.headers.get("authorization"))
        if endpoint not in self.script.endpoints:
            return body, upstream_apis.error(404, "Not found.", "not_found")
        if self.script.status != 200:
            return body, upstream_apis.error(self.script.status, "upstream says no", "boom")
        return body, None

    def _answer(self, endpoint: str) -> Any:
        async def answer(request: Request) -> Response:
            body, refusal = await self._received(request, endpoint)
            if refusal is not None:
                return refusal
            if endpoint == "responses":
                return upstream_apis.responses(body, self.script, self.stored)
            if endpoint == "embeddings":
                return upstream_apis.embeddings(body, self.script)
            return upstream_apis.completions(body, self.script)

        return answer

    async def _chat(self, request: Request) -> Response:
        body, refusal = await self._received(request, "chat")
        if refusal is not None:
            return refusal
        script = self.script
        tools = body.get("tools") or []
        if script.tool_call and tools:
            return upstream_apis.chat_tool_call(body, tools[0]["function"]["name"], script)
        found = [body[name] for name in script.length_fields if body.get(name)]
        cap = found[0] if found else 1_000_000
        words = [f"w{i} " for i in range(min(script.words, cap))]
        finish = "length" if script.words > cap else "stop"
        usage: dict[str, Any] = {
            "prompt_tokens": script.prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": script.prompt_tokens + len(words),
        }
        if script.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": script.cached_tokens}
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            reply = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(words)},
                        "finish_reason": finish,
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
            yield event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if include_usage and script.send_usage:
                yield event({"choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


class _ProviderHeaders:
    """Every answer carries a request id of the provider's and its rate-limit headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._count += 1
        request_id = f"upstream-req-{self._count}".encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                added = [(b"x-request-id", request_id)]
                added += [(k.encode(), v.encode()) for k, v in RATE_LIMIT_HEADERS.items()]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
