"""Token counts when the upstream gives none, and the prompt estimate budgets reserve.

Without the model's tokenizer we over-estimate on purpose: one token per three UTF-8
bytes (English averages about four, CJK about three per character) plus the chat
format's per-message overhead. Over-estimating a reservation only delays spending;
under-estimating could overspend.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

_PER_MESSAGE = 4
_PER_REQUEST = 3


def estimate_text_tokens(text: str) -> int:
    if not text:
        return 0
    return math.ceil(len(text.encode()) / 3)


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    parts = []
    for key, value in message.items():
        if key == "role":
            continue
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and isinstance(item.get("text"), str):
                    parts.append(item["text"])
                elif item is not None:
                    parts.append(orjson.dumps(item).decode())
        elif value is not None:
            parts.append(orjson.dumps(value).decode())
    return "".join(parts)


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """Estimate the prompt of a chat request: messages plus tool definitions."""
    messages = body.get("messages") or []
    total = _PER_REQUEST + _PER_MESSAGE * len(messages)
    total += sum(estimate_text_tokens(_message_text(m)) for m in messages)
    for extra in ("tools", "functions", "response_format"):
        if body.get(extra):
            total += estimate_text_tokens(orjson.dumps(body[extra]).decode())
    return total
