"""Checking a chat completion request body before anything else happens.

Only what the gateway relies on is checked (model, messages, stream, token caps, n, and
how deeply it nests); which other fields reach the upstream, and at what cap, is
:mod:`.upstream_fields`' decision.
"""

from __future__ import annotations

from typing import Any

import orjson

from dynaseal.core.errors import bad_request
from dynaseal.gateway.admission import upstream_fields
from dynaseal.gateway.admission.json_depth import MAX_DEPTH, deeper_than

_MAX_CHOICES = 16


def _positive_int(body: dict[str, Any], name: str, maximum: int | None = None) -> int | None:
    value: object = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(f"{name} must be a positive integer.", param=name)
    if maximum is not None and value > maximum:
        raise bad_request(f"{name} must be at most {maximum}.", param=name)
    return value


def parse_chat_body(raw: bytes) -> dict[str, Any]:
    """Parse and check the body; raise a 400 in OpenAI's format when it is malformed."""
    if not raw:
        raise bad_request("The request body is empty; send a JSON chat completion request.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required and must be a string.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages is required and must be a non-empty list.", param="messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise bad_request("each message must be an object with a role.", param="messages")
    if not isinstance(body.get("stream", False), bool | None):
        raise bad_request("stream must be a boolean.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("stream_options must be an object.", param="stream_options")
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    _positive_int(body, "n", maximum=_MAX_CHOICES)
    if deeper_than(body, MAX_DEPTH):
        raise bad_request(f"The request nests more than {MAX_DEPTH} levels deep.")
    return body


def requested_cap(body: dict[str, Any]) -> int | None:
    """The completion cap the device asked for (the newer field wins)."""
    return body.get("max_completion_tokens") or body.get("max_tokens")


def upstream_body(
    body: dict[str, Any], cap: int, allowed: frozenset[str], cap_fields: list[str]
) -> upstream_fields.Forwarded:
    """The body sent upstream: the allowed fields, every length field at the cap, and
    usage requested."""
    forwarded = upstream_fields.forward(body, cap, allowed, cap_fields)
    if body.get("stream"):
        options = body.get("stream_options") or {}
        forwarded.body["stream_options"] = {**options, "include_usage": True}
    return forwarded


def wants_usage_chunk(body: dict[str, Any]) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))
