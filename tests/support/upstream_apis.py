"""The fake upstream's Responses API, embeddings and legacy completions: the answers of
:class:`support.upstream.FakeUpstream` beyond chat completions, in OpenAI's real wire
format (JSON, or SSE with named semantic events for the Responses API)."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

#: Arguments of the function call a scripted model makes (streamed in two pieces).
CALL_ARGUMENTS = ('{"city": ', '"Paris"}')


def words_for(script: Any, cap: Any) -> list[str]:
    limit = cap if isinstance(cap, int) and cap > 0 else 1_000_000
    return [f"w{i} " for i in range(min(script.words, limit))]


def error(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def sse(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream")


async def _paced(script: Any, words: list[str]) -> AsyncIterator[tuple[int, str]]:
    for i, word in enumerate(words):
        if script.break_after is not None and i >= script.break_after:
            raise RuntimeError("upstream dies mid-stream")
        await asyncio.sleep(script.chunk_delay)
        yield i, word


# ---------------------------------------------------------------- chat: a tool call


def chat_tool_call(body: dict[str, Any], name: str, script: Any) -> Response:
    """A chat completion in which the model calls ``name`` (whole, or streamed)."""
    base = {"id": "chatcmpl-call", "created": int(time.time()), "model": body["model"]}
    usage = {"prompt_tokens": script.prompt_tokens, "completion_tokens": 5}
    usage["total_tokens"] = usage["prompt_tokens"] + 5
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}
    if not body.get("stream"):
        whole = {**call, "function": {"name": name, "arguments": "".join(CALL_ARGUMENTS)}}
        message = {"role": "assistant", "content": None, "tool_calls": [whole]}
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        return JSONResponse(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        )

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        payload = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
        return f"data: {json.dumps(payload)}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": None, "tool_calls": [{"index": 0, **call}]})
        for piece in CALL_ARGUMENTS:
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls")
        if (body.get("stream_options") or {}).get("include_usage"):
            yield chunk(None, usage=usage)
        yield b"data: [DONE]\n\n"

    return sse(events())


# ---------------------------------------------------------------- Responses API


def _calls_a_tool(body: dict[str, Any], script: Any) -> str | None:
    tools = body.get("tools") or []
    if script.tool_call and tools and tools[0].get("type") == "function":
        return str(tools[0]["name"])
    return None


def responses(body: dict[str, Any], script: Any, stored: dict[str, int]) -> Response:
    """``POST /v1/responses``: earlier responses are kept (unless ``store: false``) so a
    ``previous_response_id`` adds their tokens to the input, as the real API does."""
    prompt = script.prompt_tokens
    previous = body.get("previous_response_id")
    if previous is not None:
        if previous not in stored:
            return error(
                400,
                f"Previous response with id '{previous}' not found.",
                "previous_response_not_found",
                "previous_response_id",
            )
        prompt += stored[previous]
    # A server that honours no length field (script.length_fields empty) ignores it too.
    cap = body.get("max_output_tokens") if script.length_fields else None
    words = words_for(script, cap)
    tool = _calls_a_tool(body, script)
    output_tokens = len(words) if tool is None else 5
    response_id = f"resp_{uuid.uuid4().hex}"
    if body.get("store", True):
        stored[response_id] = prompt + output_tokens
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output_tokens,
    }
    cut = tool is None and isinstance(cap, int) and script.words > cap
    shell = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "model": body["model"],
        "output": [],
        "usage": None,
        "error": None,
        "incomplete_details": None,
        "previous_response_id": previous,
        "store": body.get("store", True),
        "max_output_tokens": cap,
        "instructions": body.get("instructions"),
        "tools": body.get("tools") or [],
        "tool_choice": body.get("tool_choice", "auto"),
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "metadata": {},
    }
    message_id, call_id = f"msg_{uuid.uuid4().hex}", f"call_{uuid.uuid4().hex[:8]}"
    text = "".join(words)
    if tool is None:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = {
            "id": message_id,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
    else:
        item = {
            "id": f"fc_{uuid.uuid4().hex}",
            "type": "function_call",
            "status": "completed",
            "call_id": call_id,
            "name": tool,
            "arguments": "".join(CALL_ARGUMENTS),
        }
    final = {
        **shell,
        "status": "incomplete" if cut else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "output": [item],
        "usage": usage if script.send_usage else None,
    }
    if not body.get("stream"):
        return JSONResponse(final)
    return sse(_response_events(script, shell, final, item, words))


async def _response_events(
    script: Any,
    shell: dict[str, Any],
    final: dict[str, Any],
    item: dict[str, Any],
    words: list[str],
) -> AsyncIterator[bytes]:
    sequence = 0

    def event(kind: str, **fields: Any) -> bytes:
        nonlocal sequence
        payload = {"type": kind, "sequence_number": sequence, **fields}
        sequence += 1
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

    yield event("response.created", response=shell)
    yield event("response.in_progress", response=shell)
    at = {"item_id": item["id"], "output_index": 0}
    if item["type"] == "function_call":
        yield event("response.output_item.added", output_index=0, item={**item, "arguments": ""})
        for piece in CALL_ARGUMENTS:
            yield event("response.function_call_arguments.delta", **at, delta=piece)
        yield event("response.function_call_arguments.done", **at, arguments=item["arguments"])
    else:
        started = {**item, "status": "in_progress", "content": []}
        yield event("response.output_item.added", output_index=0, item=started)
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield event("response.content_part.added", **at, content_index=0, part=empty)
        async for _, word in _paced(script, words):
            yield event(
                "response.output_text.delta", **at, content_index=0, delta=word, logprobs=[]
            )
        part = item["content"][0]
        yield event(
            "response.output_text.done", **at, content_index=0, text=part["text"], logprobs=[]
        )
        yield event("response.content_part.done", **at, content_index=0, part=part)
    yield event("response.output_item.done", output_index=0, item=item)
    yield event(f"response.{final['status']}", response=final)


# ---------------------------------------------------------------- embeddings


def _vector(text: str, dimensions: int) -> list[float]:
    seed = sum(text.encode()) or 1
    return [((seed * (i + 7)) % 97) / 97 for i in range(dimensions)]


def embeddings(body: dict[str, Any], script: Any) -> Response:
    """``POST /v1/embeddings``: a made-up vector per input; ``prompt_tokens`` per input."""
    given = body["input"]
    inputs = [given] if isinstance(given, str) or (given and isinstance(given[0], int)) else given
    dimensions = body.get("dimensions") or 8
    data = []
    for index, one in enumerate(inputs):
        vector = _vector(str(one), dimensions)
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = script.prompt_tokens * len(inputs)
    reply: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
    if script.send_usage:
        reply["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return JSONResponse(reply)


# ---------------------------------------------------------------- legacy completions


def completions(body: dict[str, Any], script: Any) -> Response:
    """``POST /v1/completions``: ``choices[].text``, whole or streamed."""
    words = words_for(script, body.get("max_tokens") or 16)
    usage = {
        "prompt_tokens": script.prompt_tokens,
        "completion_tokens": len(words),
        "total_tokens": script.prompt_tokens + len(words),
    }
    base = {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time())}
    base["model"] = body["model"]
    finish = "length" if script.words > len(words) else "stop"
    if not body.get("stream"):
        choice = {"index": 0, "text": "".join(words), "finish_reason": finish, "logprobs": None}
        reply: dict[str, Any] = {**base, "choices": [choice]}
        if script.send_usage:
            reply["usage"] = usage
        return JSONResponse(reply)
    include_usage = (body.get("stream_options") or {}).get("include_usage")

    def chunk(payload: dict[str, Any]) -> bytes:
        return f"data: {json.dumps({**base, **payload})}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        async for _, word in _paced(script, words):
            choice = {"index": 0, "text": word, "finish_reason": None, "logprobs": None}
            yield chunk({"choices": [choice]})
        yield chunk({"choices": [{"index": 0, "text": "", "finish_reason": finish}]})
        if include_usage and script.send_usage:
            yield chunk({"choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"

    return sse(events())
