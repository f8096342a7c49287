"""FastAPI wiring both services share: route aliases, CORS, errors, access lines and
metrics."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from dynaseal.core import metrics as prometheus
from dynaseal.core.access_log import AccessLog
from dynaseal.core.errors import install_error_handlers
from dynaseal.core.lifespan_errors import ConfigErrorsAtStartup
from dynaseal.core.settings import ServiceSettings

#: Canonical routes live under /v1; the original's root paths and /api/v1 keep working.
ROUTE_PREFIXES = ("/v1", "", "/api/v1")


def include_everywhere(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    for prefix in ROUTE_PREFIXES:
        for router in routers:
            app.include_router(router, prefix=prefix, include_in_schema=prefix == "/v1")


def configure(app: FastAPI, settings: ServiceSettings, metrics: prometheus.ServiceMetrics) -> None:
    """OpenAI-format errors everywhere; CORS closed unless origins are listed; start-up
    configuration errors logged as one line; one access line per request, measured;
    ``GET /metrics``."""
    install_error_handlers(app)
    app.add_middleware(ConfigErrorsAtStartup)
    if settings.cors_origins:
        # Bearer tokens, not cookies: credentials are never needed cross-origin.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    # Outermost: it sees every answer, CORS ones included.
    app.add_middleware(AccessLog, metrics=metrics.http)
    metrics.http.routes.served_under(ROUTE_PREFIXES)
    scrape = prometheus.scrape_endpoint(metrics, settings.metrics_token)
    app.add_route(prometheus.PATH, scrape, methods=["GET"], include_in_schema=False)
