"""CORS for the endpoints devices call with a dynamic key, so a web page can be a device.

These endpoints use no cookies — the key travels in ``Authorization`` — so there is no
ambient credential for CORS to protect: a preflight (which carries no key) is answered
for any origin, with the headers the official OpenAI SDKs send (``x-stainless-*``), the
``DPoP`` proof of device-bound keys, and a long ``Access-Control-Max-Age`` so a page
pays for it once. Answers expose what a device needs to read: ``Retry-After``, the
request ids, the rate-limit and ``x-dynaseal-*`` headers. A tenant that wants its keys
used only from its own pages lists them (``allowed_origins``): the real request's
``Origin`` is checked with the key, in admission.

The management API and the console get none of this (only ``CORS_ORIGINS``, if set).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dynaseal.core.http import ROUTE_PREFIXES

#: The paths (under each prefix) a dynamic key is presented to.
_DEVICE_PATHS = frozenset(
    {"/chat/completions", "/responses", "/embeddings", "/completions", "/models", "/key"}
)
#: Request headers a page may send (besides the ``x-stainless-`` family of the SDKs).
_ALLOWED_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "accept",
        "dpop",
        "idempotency-key",
        "openai-organization",
        "openai-project",
        "openai-beta",
    }
)
_EXPOSED = frozenset({"retry-after", "x-request-id", "x-upstream-request-id", "x-should-retry"})
_EXPOSED_PREFIXES = ("x-ratelimit-", "x-dynaseal-")
#: Seconds a browser may keep a preflight's answer (Chromium keeps at most 7200).
MAX_AGE = 7200


def is_device_path(path: str) -> bool:
    for prefix in sorted(ROUTE_PREFIXES, key=len, reverse=True):
        if prefix and path.startswith(prefix + "/"):
            path = path[len(prefix) :]
            break
    return path in _DEVICE_PATHS or path.startswith("/models/")


def _allowed_header(name: str) -> bool:
    return name in _ALLOWED_HEADERS or name.startswith("x-stainless-")


def _exposed(name: str) -> bool:
    return name in _EXPOSED or name.startswith(_EXPOSED_PREFIXES)


class DeviceCors:
    """ASGI middleware: CORS on the device endpoints, nothing elsewhere."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_device_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if "origin" not in headers:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(headers)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent = message.get("headers", [])
                # x-request-id is added outside this middleware, on every answer.
                exposed = {"x-request-id"} | {k.decode() for k, _ in sent if _exposed(k.decode())}
                added = [
                    (b"access-control-allow-origin", b"*"),
                    (b"access-control-expose-headers", ", ".join(sorted(exposed)).encode()),
                ]
                message = {**message, "headers": [*sent, *added]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    def _preflight(headers: Headers) -> Response:
        asked = headers.get("access-control-request-headers", "")
        names = [n.strip().lower() for n in asked.split(",") if n.strip()]
        answer = {
            "access-control-allow-origin": "*",
            "access-control-allow-methods": "GET, POST, OPTIONS",
            "access-control-max-age": str(MAX_AGE),
        }
        allowed = [n for n in names if _allowed_header(n)]
        if allowed:
            answer["access-control-allow-headers"] = ", ".join(allowed)
        return Response(status_code=204, headers=answer)
