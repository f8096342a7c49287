"""``POST /v1/completions``, OpenAI's legacy text completions.

As at OpenAI, ``max_tokens`` defaults to 16; ``best_of`` candidates are generated (and
paid for) whether or not they are returned, so each one reserves ``max_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dynaseal.core.errors import bad_request
from dynaseal.gateway.endpoints.base import (
    Demand,
    Endpoint,
    check_stream_flag,
    json_object,
    positive_int,
)
from dynaseal.gateway.endpoints.embeddings import input_tokens
from dynaseal.gateway.relay.token_estimate import estimate_text_tokens
from dynaseal.gateway.relay.transcript import Transcript

#: OpenAI's default when a legacy completion request gives no max_tokens.
DEFAULT_MAX_TOKENS = 16
_MAX_CHOICES = 20


@dataclass(slots=True)
class CompletionsTranscript(Transcript):
    """Legacy completions carry their text in ``choices[].text``, whole or streamed."""

    @staticmethod
    def choice_text(choice: dict[str, Any], *, streamed: bool) -> Any:
        return choice.get("text")


class Completions(Endpoint):
    name = "completions"
    path = "/completions"

    def parse(self, raw: bytes) -> dict[str, Any]:
        body = json_object(raw, "completion")
        if "prompt" not in body:
            raise bad_request("prompt is required.", param="prompt")
        input_tokens(body.get("prompt"), "prompt")  # checks its shape
        suffix = body.get("suffix")
        if suffix is not None and not isinstance(suffix, str):
            raise bad_request("suffix must be a string.", param="suffix")
        check_stream_flag(body)
        positive_int(body, "max_tokens")
        n = positive_int(body, "n", maximum=_MAX_CHOICES) or 1
        best_of = positive_int(body, "best_of", maximum=_MAX_CHOICES)
        if best_of is not None and best_of < n:
            raise bad_request("best_of must be at least n.", param="best_of")
        return body

    def demand(self, body: dict[str, Any]) -> Demand:
        prompt = input_tokens(body.get("prompt"), "prompt")
        prompt += estimate_text_tokens(body.get("suffix") or "")
        choices = max(body.get("n") or 1, body.get("best_of") or 1)
        return Demand(prompt, body.get("max_tokens") or DEFAULT_MAX_TOKENS, choices)

    def upstream_body(self, body: dict[str, Any], cap: int) -> dict[str, Any]:
        forwarded = {**body, "max_tokens": cap}
        if body.get("stream"):
            options = body.get("stream_options") or {}
            forwarded["stream_options"] = {**options, "include_usage": True}
        return forwarded

    def transcript(self, body: dict[str, Any]) -> Transcript:
        asked = bool((body.get("stream_options") or {}).get("include_usage"))
        return CompletionsTranscript(wants_usage_chunk=asked)


COMPLETIONS = Completions()
