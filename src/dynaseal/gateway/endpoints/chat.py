"""``POST /v1/chat/completions``: the body is checked by :mod:`..admission.chat_request`,
and what of it goes upstream decided by :mod:`..admission.upstream_fields`."""

from __future__ import annotations

from typing import Any

from dynaseal.gateway.admission import chat_request, upstream_fields
from dynaseal.gateway.endpoints.base import Demand, Endpoint
from dynaseal.gateway.relay.token_estimate import estimate_prompt_tokens
from dynaseal.gateway.relay.transcript import Transcript


class ChatCompletions(Endpoint):
    name = "chat"
    path = "/chat/completions"
    always = upstream_fields.ALWAYS
    default_fields = upstream_fields.DEFAULT_FIELDS

    def parse(self, raw: bytes) -> dict[str, Any]:
        return chat_request.parse_chat_body(raw)

    def demand(self, body: dict[str, Any]) -> Demand:
        return Demand(
            estimate_prompt_tokens(body), chat_request.requested_cap(body), body.get("n") or 1
        )

    def upstream_body(
        self, body: dict[str, Any], cap: int, allowed: frozenset[str], cap_fields: list[str]
    ) -> upstream_fields.Forwarded:
        return chat_request.upstream_body(body, cap, allowed, cap_fields)

    def transcript(
        self, body: dict[str, Any], *, cap: int | None = None, content_limit: int = 65_536
    ) -> Transcript:
        return Transcript(
            wants_usage_chunk=chat_request.wants_usage_chunk(body),
            cap=cap,
            choices_asked=body.get("n") or 1,
            content_limit=content_limit,
        )


CHAT = ChatCompletions()
