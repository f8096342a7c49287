"""The device endpoints (``POST /v1/chat/completions``, ``/v1/responses``,
``/v1/embeddings``, ``/v1/completions``) in the gateway's OpenAPI document (``/docs``).

The routes are plain Starlette endpoints so that the hot path skips FastAPI's request
validation, and FastAPI leaves such routes out of ``/openapi.json``. This adds them, once,
when the document is first built: the models below describe the requests and answers
for readers of the documentation and are never used to parse a request.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; every other OpenAI field is forwarded as given."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="A model the dynamic key allows.")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = Field(default=False, description="Answer as server-sent events.")
    max_tokens: int | None = Field(
        default=None, description="Reserved from the key's budget; the remaining budget if unset."
    )
    max_completion_tokens: int | None = None
    n: int | None = Field(default=None, description="Choices; each one reserves max_tokens.")
    stream_options: dict[str, Any] | None = None


class ResponsesRequest(BaseModel):
    """OpenAI's Responses API request; other fields are forwarded (or, for a chat-only
    upstream, translated or refused with a 400 naming them)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="A model the dynamic key allows.")
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    stream: bool = Field(default=False, description="Answer as semantic server-sent events.")
    max_output_tokens: int | None = Field(
        default=None, description="Reserved from the key's budget; the remaining budget if unset."
    )


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request: input tokens only, no generated-token budget used."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="A model the dynamic key allows.")
    input: str | list[str] | list[int] | list[list[int]]


class CompletionsRequest(BaseModel):
    """OpenAI's legacy completions request (``max_tokens`` defaults to 16, as there)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="A model the dynamic key allows.")
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = None
    stream: bool = False


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """The upstream's answer, relayed as it came (``text/event-stream`` chunks when
    streaming, ending with ``data: [DONE]``)."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: Usage | None = None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class Error(BaseModel):
    """OpenAI's error format; refusals of the key also carry ``x-dynaseal-refusal``."""

    error: ErrorDetail


_ERRORS = {
    "400": "Malformed request.",
    "401": "Invalid, expired or revoked dynamic key (x-dynaseal-refusal: invalid_key).",
    "403": "The key does not allow this model (model_not_allowed), or it has a max_cost "
    "and the model no price (model_not_priced).",
    "413": "Request body too large.",
    "429": "A budget of the key cannot hold the request (insufficient_quota, "
    "x-should-retry: false; the message names the budget) or rate limited (rate_limited, "
    "Retry-After).",
    "502": "The upstream model server is unreachable.",
    "503": "Usage or shared state cannot be recorded right now (Retry-After).",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


#: Path, operation id, summary, request model, what the answer is.
_ENDPOINTS: list[tuple[str, str, str, type[BaseModel], str]] = [
    (
        "/v1/chat/completions",
        "chat_completions",
        "Chat completions with a dynamic key",
        ChatCompletionRequest,
        "OpenAI's chat completions (see OpenAI's API reference).",
    ),
    (
        "/v1/responses",
        "responses",
        "The Responses API with a dynamic key",
        ResponsesRequest,
        "OpenAI's Responses API; `max_output_tokens` is the completion cap. For an upstream "
        "with chat completions only, the common subset is translated.",
    ),
    (
        "/v1/embeddings",
        "embeddings",
        "Embeddings with a dynamic key",
        EmbeddingsRequest,
        "OpenAI's embeddings; they count against max_total_tokens and cost only.",
    ),
    (
        "/v1/completions",
        "completions",
        "Legacy completions with a dynamic key",
        CompletionsRequest,
        "OpenAI's legacy text completions.",
    ),
]


def _operation(path: str, name: str, summary: str, request: type[BaseModel], what: str) -> Any:
    answer = _ref(ChatCompletion) if name == "chat_completions" else {"type": "object"}
    responses: dict[str, Any] = {
        "200": {
            "description": "The answer (JSON), or its events (server-sent events). "
            "x-dynaseal-budget-remaining-tokens, -total-tokens, -cost and -requests give what "
            "the key has left of each budget it has (see GET /v1/key).",
            "content": {
                "application/json": {"schema": answer},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    }
    for status, description in _ERRORS.items():
        responses[status] = {
            "description": description,
            "content": {"application/json": {"schema": _ref(Error)}},
        }
    tail = path.removeprefix("/v1")
    return {
        "tags": ["OpenAI-compatible"],
        "summary": summary,
        "description": (
            f"{what} Send the dynamic key as `Authorization: Bearer <dynamic key>`: the "
            "gateway verifies it, reserves from its budget, forwards the request upstream, "
            "and books the real usage before the end of the answer; the tenant's backend "
            f"gets a usage callback. Also served at {tail} and /api/v1{tail}."
        ),
        "operationId": name,
        "security": [{"DynamicKey": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(request)}},
        },
        "responses": responses,
    }


_DOCUMENTED: list[type[BaseModel]] = [r for _, _, _, r, _ in _ENDPOINTS] + [ChatCompletion, Error]


def document(app: FastAPI) -> None:
    """Add the device endpoints to ``app``'s OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _, definitions = models_json_schema(
                [(m, "validation") for m in _DOCUMENTED],
                ref_template="#/components/schemas/{model}",
            )
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(definitions["$defs"])
            components.setdefault("securitySchemes", {})["DynamicKey"] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
            }
            for endpoint in _ENDPOINTS:
                schema["paths"][endpoint[0]] = {"post": _operation(*endpoint)}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
