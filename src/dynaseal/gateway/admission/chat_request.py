"""Checking a chat completion request body before anything else happens.

Only what the gateway relies on is checked (model, messages, stream, token caps, n, and
how deeply it nests); which other fields reach the upstream, and at what cap, is
:mod:`.upstream_fields`' decision.
"""

from __future__ import annotations

from typing import Any

from dynaseal.core.errors import bad_request
from dynaseal.gateway.admission import upstream_fields
from dynaseal.gateway.endpoints.base import check_stream_flag, json_object, positive_int

_MAX_CHOICES = 16


def parse_chat_body(raw: bytes) -> dict[str, Any]:
    """Parse and check the body; raise a 400 in OpenAI's format when it is malformed."""
    body = json_object(raw, "chat completion")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages is required and must be a non-empty list.", param="messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise bad_request("each message must be an object with a role.", param="messages")
    check_stream_flag(body)
    positive_int(body, "max_tokens")
    positive_int(body, "max_completion_tokens")
    positive_int(body, "n", maximum=_MAX_CHOICES)
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
