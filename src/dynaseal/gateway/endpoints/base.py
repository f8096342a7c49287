"""What every OpenAI endpoint the gateway serves has to say about its requests.

The gateway admits, budgets, proxies and settles every endpoint the same way; only
these differ: how the body is checked, what it asks of the key's budgets, what goes
upstream, and how the answer is read. An :class:`Endpoint` says each of them once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from dynaseal.core.errors import bad_request
from dynaseal.gateway.admission.json_depth import MAX_DEPTH, deeper_than
from dynaseal.gateway.admission.upstream_fields import Forwarded
from dynaseal.gateway.relay.transcript import Transcript

EndpointName = Literal["chat", "responses", "embeddings", "completions"]
ENDPOINT_NAMES: tuple[EndpointName, ...] = ("chat", "responses", "embeddings", "completions")


@dataclass(frozen=True, slots=True)
class Demand:
    """What a checked request asks of its key's budgets, whatever the endpoint."""

    prompt_estimate: int
    #: Generated tokens per choice the request asked for; ``None``: whatever remains
    #: (and that is forwarded as its cap); ``0``: it generates nothing (embeddings).
    requested_cap: int | None
    choices: int = 1


class Endpoint(ABC):
    """One OpenAI endpoint: ``name`` is how routing files name it, ``path`` where it is
    under an upstream's base URL."""

    name: EndpointName
    path: str

    @abstractmethod
    def parse(self, raw: bytes) -> dict[str, Any]:
        """The checked body; a 400 in OpenAI's format when it is malformed."""

    @abstractmethod
    def demand(self, body: dict[str, Any]) -> Demand:
        """What the request asks of the key's budgets."""

    #: What the gateway itself reads and rewrites: always forwarded.
    always: frozenset[str]
    #: What else passes when the tenant set no list of its own (``upstream_fields``).
    default_fields: frozenset[str]

    def allowed(self, tenant_fields: frozenset[str] | None) -> frozenset[str]:
        """The fields that may reach the upstream, by the tenant's list or the default."""
        return self.always | (self.default_fields if tenant_fields is None else tenant_fields)

    @abstractmethod
    def upstream_body(
        self, body: dict[str, Any], cap: int, allowed: frozenset[str], cap_fields: list[str]
    ) -> Forwarded:
        """The body sent upstream: the allowed fields, every length field at the granted
        cap (``cap_fields`` set on every request), and usage asked for."""

    @abstractmethod
    def transcript(
        self, body: dict[str, Any], *, cap: int | None = None, content_limit: int = 65_536
    ) -> Transcript:
        """A reader of the answer (text, usage, errors) for this request; a stream past
        ``cap`` tokens per choice is cut."""


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    """The body as a JSON object with a ``model``, or the 400 saying what is wrong."""
    if not raw:
        raise bad_request(f"The request body is empty; send a JSON {what} request.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    if deeper_than(body, MAX_DEPTH):
        raise bad_request(f"The request nests more than {MAX_DEPTH} levels deep.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required and must be a string.", param="model")
    return body


def positive_int(body: dict[str, Any], name: str, maximum: int | None = None) -> int | None:
    value: object = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(f"{name} must be a positive integer.", param=name)
    if maximum is not None and value > maximum:
        raise bad_request(f"{name} must be at most {maximum}.", param=name)
    return value


def check_stream_flag(body: dict[str, Any]) -> None:
    if not isinstance(body.get("stream", False), bool | None):
        raise bad_request("stream must be a boolean.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("stream_options must be an object.", param="stream_options")
