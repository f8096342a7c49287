"""Token counts when the upstream gives none, and the prompt estimate budgets reserve.

Without the model's tokenizer we over-estimate on purpose: one token per three UTF-8
bytes (English averages about four, CJK about three per character) plus the chat
format's per-message overhead. Over-estimating a reservation only delays spending;
under-estimating could overspend.

Cutting a stream that runs past its cap needs the opposite bias: a count that is not
above the truth, or an honest answer would be cut short. :func:`fewest_tokens` allows
sixteen bytes per token, more than any common tokenizer averages over real text.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

_PER_MESSAGE = 4
_PER_REQUEST = 3
_FEWEST_BYTES_PER_TOKEN = 3
_MOST_BYTES_PER_TOKEN = 16


def estimate_bytes_tokens(byte_count: int) -> int:
    """The estimate for ``byte_count`` bytes of UTF-8 text (rounded up)."""
    return math.ceil(byte_count / _FEWEST_BYTES_PER_TOKEN)


def estimate_text_tokens(text: str) -> int:
    return estimate_bytes_tokens(len(text.encode())) if text else 0


def fewest_tokens(byte_count: int) -> int:
    """A count of the tokens in ``byte_count`` bytes of generated text that errs low."""
    return math.ceil(byte_count / _MOST_BYTES_PER_TOKEN)


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
