"""``POST /v1/chat/completions``: the body is checked by :mod:`..admission.chat_request`."""

from __future__ import annotations

from typing import Any

from dynaseal.gateway.admission import chat_request
from dynaseal.gateway.endpoints.base import Demand, Endpoint
from dynaseal.gateway.relay.token_estimate import estimate_prompt_tokens
from dynaseal.gateway.relay.transcript import Transcript


class ChatCompletions(Endpoint):
    name = "chat"
    path = "/chat/completions"

    def parse(self, raw: bytes) -> dict[str, Any]:
        return chat_request.parse_chat_body(raw)

    def demand(self, body: dict[str, Any]) -> Demand:
        return Demand(
            estimate_prompt_tokens(body), chat_request.requested_cap(body), body.get("n") or 1
        )

    def upstream_body(self, body: dict[str, Any], cap: int) -> dict[str, Any]:
        return chat_request.upstream_body(body, cap)

    def transcript(self, body: dict[str, Any]) -> Transcript:
        return Transcript(wants_usage_chunk=chat_request.wants_usage_chunk(body))


CHAT = ChatCompletions()
