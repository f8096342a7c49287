"""``POST /v1/responses``, OpenAI's Responses API.

``max_output_tokens`` is the completion cap (reasoning included), reserved and forwarded
like chat's ``max_tokens``. Streams are semantic events (``event: response.…``); the
usage comes in ``response.completed`` (or ``response.incomplete`` / ``response.failed``)
and is read in chat's terms, so settlement knows one vocabulary. Background responses
are refused: the gateway could never settle what they use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from dynaseal.core.errors import bad_request
from dynaseal.gateway.admission.upstream_fields import Forwarded, forward
from dynaseal.gateway.endpoints.base import (
    Demand,
    Endpoint,
    check_stream_flag,
    json_object,
    positive_int,
)
from dynaseal.gateway.relay import sse
from dynaseal.gateway.relay.token_estimate import estimate_prompt_tokens
from dynaseal.gateway.relay.transcript import Transcript

#: Events that close a response; each carries the whole response, usage included.
FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def input_items(body: dict[str, Any]) -> list[Any]:
    """The input as a list of items (a string is one user message)."""
    given = body.get("input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    return list(given or [])


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """A Responses ``usage`` in chat's terms (what settlement reads), details kept."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    read: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.get("total_tokens", prompt + completion),
    }
    if isinstance(details := usage.get("input_tokens_details"), dict):
        read["prompt_tokens_details"] = details
    if isinstance(details := usage.get("output_tokens_details"), dict):
        read["completion_tokens_details"] = details
    return read


def output_text(response: dict[str, Any]) -> str:
    """The text of a response's messages (what ``response.output_text`` gives)."""
    texts = []
    for item in response.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
    return "".join(t for t in texts if isinstance(t, str))


def event_frame(data: bytes, event: str) -> bytes:
    return b"event: " + event.encode() + b"\n" + sse.frame(data)


#: Events carrying generated text of some kind: what counts against the cap.
GENERATED_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
    }
)


@dataclass(slots=True)
class ResponsesTranscript(Transcript):
    """Reads a response, whole or as its stream of semantic events; a stream generating
    past the cap is cut with ``response.incomplete``."""

    sequence_number: int = -1
    response: dict[str, Any] = field(default_factory=dict)  # as response.created gave it

    def _take_response(self, response: Any) -> None:
        if not isinstance(response, dict):
            return
        self.usage = chat_usage(response.get("usage")) or self.usage
        error = response.get("error")
        if isinstance(error, dict) and error.get("message"):
            self.error = str(error["message"])

    def read_completion(self, raw: bytes) -> None:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if not isinstance(body, dict):
            return
        self._take_response(body)
        text = output_text(body)
        self._choice(0).generated_bytes += len(text.encode())
        self._keep(text)

    def relay_event(self, data: bytes) -> bytes | None:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return sse.frame(data)
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return sse.frame(data)
        kind = event["type"]
        if isinstance(event.get("sequence_number"), int):
            self.sequence_number = event["sequence_number"]
        if kind in GENERATED_DELTAS and isinstance(delta := event.get("delta"), str):
            generated = self._choice(0)
            generated.pieces += 1
            generated.generated_bytes += len(delta.encode())
            if self._over_cap(generated):
                self.past_cap = True
                return None
            if kind == "response.output_text.delta":
                self._keep(delta)
        elif kind == "response.created" and isinstance(event.get("response"), dict):
            self.response = event["response"]
        elif kind in FINAL_EVENTS:
            self._take_response(event.get("response"))
        elif kind == "error":
            nested = event.get("error")
            found = nested.get("message") if isinstance(nested, dict) else event.get("message")
            self.error = str(found or "error")
        return event_frame(data, kind)

    def _event(self, kind: str, **fields: Any) -> bytes:
        self.sequence_number += 1
        event = {"type": kind, "sequence_number": self.sequence_number, **fields}
        return event_frame(orjson.dumps(event), kind)

    def length_finish(self) -> bytes:
        """The response cut at the cap: ``response.incomplete`` (``max_output_tokens``)."""
        response = {
            **self.response,
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
        }
        return self._event("response.incomplete", response=response)

    def error_frame(self, message: str, code: str) -> bytes:
        """OpenAI's ``error`` event: its documented fields, and the nested ``error`` the
        API really sends (which makes the SDKs raise)."""
        error = {"type": "upstream_error", "code": code, "message": message, "param": None}
        return self._event("error", code=code, message=message, param=None, error=error)

    def closing_frame(self) -> bytes | None:
        return None  # a Responses stream ends with its final event, no [DONE]


_REFUSED = {
    "background": "Background responses are not served through the gateway: their usage "
    "could not be settled. Stream instead.",
}


class Responses(Endpoint):
    name = "responses"
    path = "/responses"
    #: ``store`` always passes: dropping ``store: false`` would have OpenAI keep the
    #: conversation (its default is to store it).
    always = frozenset({"model", "input", "instructions", "stream", "max_output_tokens", "store"})
    default_fields = always | {
        "previous_response_id",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "temperature",
        "top_p",
        "text",
        "reasoning",
        "truncation",
        "include",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "stream_options",
    }

    def parse(self, raw: bytes) -> dict[str, Any]:
        body = json_object(raw, "Responses API")
        given = body.get("input")
        if given is None:
            if not any(body.get(k) for k in ("previous_response_id", "conversation", "prompt")):
                raise bad_request("input is required.", param="input")
        elif not isinstance(given, str) and not (
            isinstance(given, list) and all(isinstance(item, dict) for item in given)
        ):
            raise bad_request("input must be a string or a list of input items.", param="input")
        if not isinstance(body.get("instructions") or "", str):
            raise bad_request("instructions must be a string.", param="instructions")
        if body.get("tools") is not None and not isinstance(body["tools"], list):
            raise bad_request("tools must be a list.", param="tools")
        for name, message in _REFUSED.items():
            if body.get(name):
                raise bad_request(message, param=name)
        check_stream_flag(body)
        positive_int(body, "max_output_tokens")
        return body

    def demand(self, body: dict[str, Any]) -> Demand:
        messages = input_items(body)
        if isinstance(body.get("instructions"), str):
            messages.insert(0, {"role": "system", "content": body["instructions"]})
        shaped = {
            "messages": messages,
            "tools": body.get("tools"),
            "response_format": body.get("text"),
        }
        return Demand(estimate_prompt_tokens(shaped), body.get("max_output_tokens"))

    def upstream_body(
        self, body: dict[str, Any], cap: int, allowed: frozenset[str], cap_fields: list[str]
    ) -> Forwarded:
        return forward(body, cap, allowed, cap_fields, cap_field="max_output_tokens")

    def transcript(
        self, body: dict[str, Any], *, cap: int | None = None, content_limit: int = 65_536
    ) -> Transcript:
        return ResponsesTranscript(wants_usage_chunk=False, cap=cap, content_limit=content_limit)


RESPONSES = Responses()
