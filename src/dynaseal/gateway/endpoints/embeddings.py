"""``POST /v1/embeddings``: input tokens only.

An embedding generates nothing, so it asks no generated tokens of the key (its
``max_tokens`` budget is untouched); its input counts against ``max_total_tokens`` and
the key's cost, as the prompt of any request does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from dynaseal.core.errors import bad_request
from dynaseal.gateway.admission.upstream_fields import Forwarded, forward
from dynaseal.gateway.endpoints.base import Demand, Endpoint, json_object, positive_int
from dynaseal.gateway.relay.token_estimate import estimate_text_tokens
from dynaseal.gateway.relay.transcript import Transcript

#: OpenAI's limit on the inputs of one request.
MAX_INPUTS = 2048


def _is_tokens(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)
    )


def input_tokens(value: Any, param: str) -> int:
    """The estimated tokens of an ``input`` (or a legacy ``prompt``): a string, a list of
    strings, a list of token ids or a list of such lists; a 400 for anything else."""
    if isinstance(value, str) and value:
        return estimate_text_tokens(value)
    if _is_tokens(value):
        return len(value)
    if isinstance(value, list) and value and len(value) <= MAX_INPUTS:
        if all(isinstance(v, str) and v for v in value):
            return sum(estimate_text_tokens(v) for v in value)
        if all(_is_tokens(v) for v in value):
            return sum(len(v) for v in value)
    raise bad_request(
        f"{param} must be a non-empty string, a list of them, a list of token ids or a list "
        f"of such lists (at most {MAX_INPUTS} of them).",
        param=param,
    )


@dataclass(slots=True)
class EmbeddingsTranscript(Transcript):
    """An embeddings answer: usage only (its vectors are not text anyone reads back)."""

    def read_completion(self, raw: bytes) -> None:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if not isinstance(body, dict):
            return
        usage = body.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            self.usage = {**usage, "completion_tokens": 0}
        if isinstance(body.get("error"), dict):
            self.error = str(body["error"].get("message"))


class Embeddings(Endpoint):
    name = "embeddings"
    path = "/embeddings"
    always = frozenset({"model", "input", "encoding_format", "dimensions"})
    default_fields = always | {"user"}

    def parse(self, raw: bytes) -> dict[str, Any]:
        body = json_object(raw, "embeddings")
        if "input" not in body:
            raise bad_request("input is required.", param="input")
        input_tokens(body["input"], "input")
        if body.get("stream"):
            raise bad_request("Embeddings are not streamed.", param="stream")
        positive_int(body, "dimensions")
        if body.get("encoding_format") not in (None, "float", "base64"):
            raise bad_request("encoding_format must be float or base64.", param="encoding_format")
        return body

    def demand(self, body: dict[str, Any]) -> Demand:
        return Demand(input_tokens(body["input"], "input"), requested_cap=0)

    def upstream_body(
        self, body: dict[str, Any], cap: int, allowed: frozenset[str], cap_fields: list[str]
    ) -> Forwarded:
        return forward(body, cap, allowed, cap_field=None)

    def transcript(
        self, body: dict[str, Any], *, cap: int | None = None, content_limit: int = 65_536
    ) -> Transcript:
        return EmbeddingsTranscript()


EMBEDDINGS = Embeddings()
