"""A chat completion as the Response object the device asked for, and the pieces of a
Response that the stream's events (:mod:`.events`) share with it."""

from __future__ import annotations

import time
import uuid
from typing import Any


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage(chat: Any) -> dict[str, Any] | None:
    """Chat's usage in the Responses API's terms."""
    if not isinstance(chat, dict):
        return None
    prompt, completion = chat.get("prompt_tokens"), chat.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    cached = (chat.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (chat.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": chat.get("total_tokens", prompt + completion),
    }


def status_of(finish_reason: Any) -> tuple[str, dict[str, str] | None]:
    """A Response's status and incomplete details for chat's finish reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def shell(request: dict[str, Any], response_id: str, model: Any, status: str) -> dict[str, Any]:
    """A Response with no output yet: what the request asked, echoed as OpenAI does."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model if isinstance(model, str) else request.get("model"),
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": request.get("reasoning") or {"effort": None, "summary": None},
        "store": False,
        "temperature": request.get("temperature", 1.0),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation", "disabled"),
        "usage": None,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": parts,
    }


def call_item(item_id: str, call_id: Any, name: Any, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def _output(message: dict[str, Any]) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    parts = []
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append(text_part(message["content"]))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        output.append(message_item(new_id("msg"), parts, "completed"))
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") or {}
        output.append(
            call_item(
                new_id("fc"),
                call.get("id"),
                function.get("name"),
                function.get("arguments") or "",
                "completed",
            )
        )
    return output


def to_response(chat: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The Response for a whole chat completion (its first choice: Responses have one)."""
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    status, incomplete = status_of(choice.get("finish_reason"))
    response = shell(request, new_id("resp"), chat.get("model"), status)
    message = choice.get("message")
    response["output"] = _output(message) if isinstance(message, dict) else []
    response["incomplete_details"] = incomplete
    response["usage"] = usage(chat.get("usage"))
    return response
