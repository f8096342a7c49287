"""Errors in OpenAI's format, so every OpenAI SDK shows them properly.

``{"error": {"message", "type", "param", "code"}}`` with the right status, for our
own refusals and for anything FastAPI or Starlette rejects. Unexpected exceptions
become a generic 500 without a traceback in the body.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

log = logging.getLogger("dynaseal")

_TYPES_BY_STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
}


class APIError(Exception):
    """An error the caller should see, already in OpenAI's vocabulary."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type or _TYPES_BY_STATUS.get(status, "api_error")
        self.param = param
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(
    message: str, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def unauthorized(message: str = "Invalid or expired credentials.") -> APIError:
    return APIError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def bad_request(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, code="invalid_request", param=param)


def too_many_requests(message: str, code: str, retry_after: float) -> APIError:
    """A 429 telling the caller how many whole seconds to wait (at least one)."""
    seconds = max(1, math.ceil(retry_after))
    return APIError(
        429,
        message.format(retry_after=seconds),
        code=code,
        type="rate_limit_error",
        headers={"Retry-After": str(seconds)},
    )


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return exc.response()


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "form")]
    param = ".".join(where) or None
    message = first.get("msg", "Invalid request.")
    if param:
        message = f"{param}: {message}"
    return bad_request(message, param).response()


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404 and exc.detail == "Not Found":  # no route has this path
        message = f"Unknown request URL: {request.method} {request.url.path}."
        return APIError(404, message, code="unknown_url").response()
    message = exc.detail if isinstance(exc.detail, str) else "Request refused."
    return APIError(exc.status_code, message, headers=exc.headers).response()


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return APIError(500, "Internal server error.", type="server_error").response()


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
