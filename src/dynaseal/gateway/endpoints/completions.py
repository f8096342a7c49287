"""``POST /v1/completions``, OpenAI's legacy text completions.

As at OpenAI, ``max_tokens`` defaults to 16. ``best_of`` never reaches the upstream
(:data:`~dynaseal.gateway.admission.upstream_fields.NEVER_FORWARDED`: its candidates would
be generated, and paid for, beyond the reservation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from dynaseal.core.errors import bad_request
from dynaseal.gateway.admission.upstream_fields import Forwarded, forward
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

    CHUNK_OBJECT: ClassVar[str] = "text_completion"

    @staticmethod
    def generated(choice: dict[str, Any], *, streamed: bool) -> Any:
        text = choice.get("text")
        return {"content": text} if isinstance(text, str) else None

    @staticmethod
    def length_choice(index: int) -> dict[str, Any]:
        return {"index": index, "text": "", "finish_reason": "length", "logprobs": None}


class Completions(Endpoint):
    name = "completions"
    path = "/completions"
    always = frozenset({"model", "prompt", "max_tokens", "stream", "stream_options", "n"})
    default_fields = always | {
        "suffix",
        "echo",
        "temperature",
        "top_p",
        "frequency_penalty",
        "presence_penalty",
        "stop",
        "seed",
        "logit_bias",
        "logprobs",
        "user",
    }

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
        return Demand(prompt, body.get("max_tokens") or DEFAULT_MAX_TOKENS, body.get("n") or 1)

    def upstream_body(
        self, body: dict[str, Any], cap: int, allowed: frozenset[str], cap_fields: list[str]
    ) -> Forwarded:
        forwarded = forward({**body, "max_tokens": cap}, cap, allowed, cap_fields)
        if body.get("stream"):
            options = body.get("stream_options") or {}
            forwarded.body["stream_options"] = {**options, "include_usage": True}
        return forwarded

    def transcript(
        self, body: dict[str, Any], *, cap: int | None = None, content_limit: int = 65_536
    ) -> Transcript:
        asked = bool((body.get("stream_options") or {}).get("include_usage"))
        return CompletionsTranscript(
            wants_usage_chunk=asked,
            cap=cap,
            choices_asked=body.get("n") or 1,
            content_limit=content_limit,
        )


COMPLETIONS = Completions()
