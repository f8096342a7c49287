"""FastAPI wiring both services share: route aliases, CORS, errors, body limits, access
lines and metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from dynaseal.core import metrics as prometheus
from dynaseal.core.access_log import AccessLog
from dynaseal.core.body_limit import BodyLimit
from dynaseal.core.errors import install_error_handlers
from dynaseal.core.lifespan_errors import ConfigErrorsAtStartup
from dynaseal.core.request_id import RequestIds

#: Canonical routes live under /v1; the original's root paths and /api/v1 keep working.
ROUTE_PREFIXES = ("/v1", "", "/api/v1")


def include_everywhere(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    for prefix in ROUTE_PREFIXES:
        for router in routers:
            app.include_router(router, prefix=prefix, include_in_schema=prefix == "/v1")


class _CorsExcept(CORSMiddleware):
    """``CORS_ORIGINS``' CORS, except on the paths that have CORS of their own."""

    def __init__(
        self, app: ASGIApp, *, exempt: Callable[[str], bool], allow_origins: Sequence[str]
    ) -> None:
        # Bearer tokens, not cookies: credentials are never needed cross-origin.
        super().__init__(
            app,
            allow_origins=allow_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
        self._app = app
        self._exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._exempt(scope["path"]):
            await self._app(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def configure(
    app: FastAPI,
    cors_origins: Sequence[str],
    *,
    body_limit: int,
    body_limits: Mapping[str, int] | None = None,
    cors_exempt: Callable[[str], bool] = lambda path: False,
    metrics: prometheus.ServiceMetrics,
    metrics_token: SecretStr | None,
) -> None:
    """OpenAI-format errors everywhere; CORS closed unless origins are listed (and never
    on the ``cors_exempt`` paths, which have their own); start-up configuration errors
    logged as one line; one access line per request, measured, each request with its
    id; request bodies of at most ``body_limit`` bytes, or the limit of the route whose
    path ends as a key of ``body_limits``; ``GET /metrics`` for ``metrics_token`` (or
    this machine)."""
    install_error_handlers(app)
    app.add_middleware(ConfigErrorsAtStartup)
    app.add_middleware(BodyLimit, default=body_limit, routes=body_limits or {})
    if cors_origins:
        app.add_middleware(_CorsExcept, exempt=cors_exempt, allow_origins=list(cors_origins))
    app.add_middleware(AccessLog, metrics=metrics.http)  # it sees every answer, CORS too
    app.add_middleware(RequestIds)  # outermost: every answer carries x-request-id
    metrics.http.routes.served_under(ROUTE_PREFIXES)
    scrape = prometheus.scrape_endpoint(metrics, metrics_token)
    app.add_route(prometheus.PATH, scrape, methods=["GET"], include_in_schema=False)
