"""``POST /v1/chat/completions`` in the gateway's OpenAPI document (``/docs``).

The route is a plain Starlette endpoint so that the hot path skips FastAPI's request
validation, and FastAPI leaves such routes out of ``/openapi.json``. This adds it, once,
when the document is first built: the models below describe the request and the answer
for readers of the documentation and are never used to parse a request.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

PATH = "/v1/chat/completions"


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
    "403": "The key does not allow this model (model_not_allowed).",
    "413": "Request body too large.",
    "429": "Budget spent (insufficient_quota) or rate limited (rate_limited, Retry-After).",
    "502": "The upstream model server is unreachable.",
    "503": "Usage or shared state cannot be recorded right now (Retry-After).",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation() -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "The completion (JSON), or its chunks (server-sent events).",
            "content": {
                "application/json": {"schema": _ref(ChatCompletion)},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    }
    for status, description in _ERRORS.items():
        responses[status] = {
            "description": description,
            "content": {"application/json": {"schema": _ref(Error)}},
        }
    return {
        "tags": ["OpenAI-compatible"],
        "summary": "Chat completions with a dynamic key",
        "description": (
            "OpenAI's chat completions (see OpenAI's API reference). Send the dynamic key "
            "as `Authorization: Bearer <dynamic key>`: the gateway verifies it, reserves "
            "from its budget, forwards the request upstream, and books the real usage "
            "before the end of the answer; the tenant's backend gets a usage callback. "
            "Also served at /chat/completions and /api/v1/chat/completions."
        ),
        "operationId": "chat_completions",
        "security": [{"DynamicKey": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(ChatCompletionRequest)}},
        },
        "responses": responses,
    }


def document(app: FastAPI) -> None:
    """Add ``POST /v1/chat/completions`` to ``app``'s OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _, definitions = models_json_schema(
                [(m, "validation") for m in (ChatCompletionRequest, ChatCompletion, Error)],
                ref_template="#/components/schemas/{model}",
            )
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(definitions["$defs"])
            components.setdefault("securitySchemes", {})["DynamicKey"] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
            }
            schema["paths"][PATH] = {"post": _operation()}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
