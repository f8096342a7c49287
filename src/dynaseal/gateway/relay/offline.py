"""The built-in offline responder, used when no upstream is configured.

It speaks the same protocol as a real upstream (JSON or SSE, usage included when asked),
honours ``max_tokens``, and says plainly that it is the offline responder, so the demo
works on a machine with no network and nobody mistakes it for a model.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from dynaseal.core.errors import error_body
from dynaseal.gateway.relay import sse
from dynaseal.gateway.relay.attempts import Attempt
from dynaseal.gateway.relay.token_estimate import estimate_prompt_tokens

_INTRO = (
    "Hello from the Dynaseal offline responder: no upstream model is configured "
    "(set OPENAI_BASE_URL and OPENAI_API_KEY to use a real one). "
)


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
    return ""


def _words(body: dict[str, Any]) -> list[str]:
    prompt = " ".join(_last_user_text(body).split()[:40])
    text = _INTRO + (f'You said: "{prompt}"' if prompt else "")
    words = [w + " " for w in text.split(" ")]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0:
        words = words[:limit]
    if words:
        words[-1] = words[-1].rstrip()
    return words


class _Reply:
    def __init__(self, status_code: int, chunks: AsyncIterator[bytes]) -> None:
        self.status_code = status_code
        self.headers: Mapping[str, str] = {}
        self._chunks = chunks

    def aiter_raw(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def aread(self) -> bytes:
        return b"".join([c async for c in self._chunks])

    async def aclose(self) -> None:
        return None


async def _single(body: dict[str, Any]) -> AsyncIterator[bytes]:
    yield orjson.dumps(body)


class OfflineUpstream:
    description = "offline responder"

    def __init__(self, word_delay: float = 0.02) -> None:
        self._word_delay = word_delay

    async def send(
        self,
        body: dict[str, Any],
        *,
        path: str = "/chat/completions",
        attempts: list[Attempt] | None = None,
    ) -> _Reply:
        """Chat completions only: routing translates Responses requests for it."""
        if path != "/chat/completions":
            return _Reply(
                404,
                _single(
                    error_body(f"The offline responder has no {path}.", "invalid_request_error")
                ),
            )
        words = _words(body)
        usage = {
            "prompt_tokens": estimate_prompt_tokens(body),
            "completion_tokens": len(words),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        model = str(body.get("model", ""))
        if body.get("stream"):
            return _Reply(200, self._stream(model, words, usage, body))
        return _Reply(200, self._whole(model, words, usage))

    async def _whole(
        self, model: str, words: list[str], usage: dict[str, int]
    ) -> AsyncIterator[bytes]:
        yield orjson.dumps(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(words)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )

    async def _stream(
        self, model: str, words: list[str], usage: dict[str, int], body: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return sse.frame(orjson.dumps({**base, "choices": [choice]}))

        yield chunk({"role": "assistant", "content": ""})
        for word in words:
            await asyncio.sleep(self._word_delay)
            yield chunk({"content": word})
        yield chunk({}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            yield sse.frame(orjson.dumps({**base, "choices": [], "usage": usage}))
        yield sse.frame(sse.DONE)

    async def probe(self) -> None:
        return None  # built in: always there

    async def aclose(self) -> None:
        return None
