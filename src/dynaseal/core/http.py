"""FastAPI wiring both services share: route aliases, CORS, errors, body limits, access
lines and metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import SecretStr

from dynaseal.core import metrics as prometheus
from dynaseal.core.access_log import AccessLog
from dynaseal.core.body_limit import BodyLimit
from dynaseal.core.errors import install_error_handlers
from dynaseal.core.lifespan_errors import ConfigErrorsAtStartup

#: Canonical routes live under /v1; the original's root paths and /api/v1 keep working.
ROUTE_PREFIXES = ("/v1", "", "/api/v1")


def include_everywhere(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    for prefix in ROUTE_PREFIXES:
        for router in routers:
            app.include_router(router, prefix=prefix, include_in_schema=prefix == "/v1")


def configure(
    app: FastAPI,
    cors_origins: Sequence[str],
    *,
    body_limit: int,
    body_limits: Mapping[str, int] | None = None,
    metrics: prometheus.ServiceMetrics,
    metrics_token: SecretStr | None,
) -> None:
    """OpenAI-format errors everywhere; CORS closed unless origins are listed; start-up
    configuration errors logged as one line; one access line per request, measured;
    request bodies of at most ``body_limit`` bytes, or the limit of the route whose path
    ends as a key of ``body_limits``; ``GET /metrics`` for ``metrics_token`` (or this
    machine)."""
    install_error_handlers(app)
    app.add_middleware(ConfigErrorsAtStartup)
    app.add_middleware(BodyLimit, default=body_limit, routes=body_limits or {})
    if cors_origins:
        # Bearer tokens, not cookies: credentials are never needed cross-origin.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    # Outermost: it sees every answer, CORS ones included.
    app.add_middleware(AccessLog, metrics=metrics.http)
    metrics.http.routes.served_under(ROUTE_PREFIXES)
    scrape = prometheus.scrape_endpoint(metrics, metrics_token)
    app.add_route(prometheus.PATH, scrape, methods=["GET"], include_in_schema=False)
