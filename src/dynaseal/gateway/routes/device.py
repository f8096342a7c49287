"""The OpenAI-compatible surface devices call with their dynamic key: chat completions,
the Responses API, embeddings, legacy completions, and the models the key may call."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from dynaseal.core import tracing
from dynaseal.core.access_log import note
from dynaseal.core.errors import APIError
from dynaseal.core.http import ROUTE_PREFIXES
from dynaseal.gateway.admission.proofs import Presented
from dynaseal.gateway.budget import store
from dynaseal.gateway.deps import Services
from dynaseal.gateway.endpoints.base import Endpoint
from dynaseal.gateway.endpoints.chat import CHAT
from dynaseal.gateway.endpoints.completions import COMPLETIONS
from dynaseal.gateway.endpoints.embeddings import EMBEDDINGS
from dynaseal.gateway.endpoints.responses import RESPONSES
from dynaseal.gateway.relay import proxy

router = APIRouter(tags=["OpenAI-compatible"])

Authorization = Annotated[str | None, Header()]
Origin = Annotated[str | None, Header()]


def _relayed(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    """The route of one endpoint: verify the key, reserve its budget, proxy upstream,
    settle and report usage.

    A plain Starlette endpoint: the hot path skips FastAPI's dependency resolution. The
    request and answer are OpenAI's, documented there.
    """

    async def relay(request: Request) -> Response:
        services = request.app.state.services
        if services.ledger.backlogged:
            raise APIError(
                503,
                "Usage cannot be recorded right now; retry shortly.",
                code="service_unavailable",
                headers={"Retry-After": "1"},
            )
        authorization = request.headers.get("authorization")
        try:
            raw = await request.body()  # at most MAX_REQUEST_BYTES: core.body_limit counts it
            admission = await services.gatekeeper.admit(
                authorization,
                raw,
                endpoint,
                origin=request.headers.get("origin"),
                screen=services.upstream.screen,
                request=Presented(request, services.settings.public_url),
            )
        except APIError as refusal:  # counted in memory, for the console's charts
            services.refusals.refused(authorization, refusal)
            raise
        grant = admission.grant
        note(tenant=grant.tenant_id, event_id=grant.event_id)
        relay = proxy.stream if admission.stream else proxy.complete
        response = await relay(services.upstream, admission, services.settler, services.relay)
        response.headers.update(admission.response_headers())
        return response

    return relay


Handler = Callable[[Request], Awaitable[Response]]
_RELAYED: dict[str, Handler] = {}
for _endpoint in (CHAT, RESPONSES, EMBEDDINGS, COMPLETIONS):
    _RELAYED[_endpoint.path] = _relayed(_endpoint)
    router.add_route(_endpoint.path, _RELAYED[_endpoint.path], methods=["POST"])


class DirectRoutes:
    """ASGI middleware, innermost: a ``POST`` to a relayed endpoint goes straight to its
    handler, past FastAPI's router, exception and exit-stack layers — a dozen coroutine
    frames every await of the request would resume through. Errors come out as the
    app's handlers make them (``APIError`` here, anything else to the server-error
    handler outside). Every other request, these paths' other methods, and everything
    while tracing is on (FastAPI names the server span after the route it selected) go
    on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes = {
            prefix + path: handler
            for prefix in ROUTE_PREFIXES
            for path, handler in _RELAYED.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST" or tracing.enabled():
            await self.app(scope, receive, send)
            return
        scope["endpoint"] = handler  # as the router would: the metrics label by it
        try:
            response = await handler(Request(scope, receive, send))
        except APIError as refusal:
            response = refusal.response()
        await response(scope, receive, send)


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(time.time()), "owned_by": "dynaseal"}


@router.get("/models", summary="The models this dynamic key may call")
async def list_models(
    request: Request, services: Services, authorization: Authorization = None, origin: Origin = None
) -> dict[str, Any]:
    proved = Presented(request, services.settings.public_url)
    grant, _ = await services.gatekeeper.verify(authorization, origin, proved)
    await store.ensure_not_revoked(services.db, grant)
    callable_models = [m for m in grant.models if services.upstream.serves(m)]
    return {"object": "list", "data": [_model(m) for m in callable_models]}


@router.get("/models/{model_id:path}", summary="One model this dynamic key may call")
async def get_model(
    model_id: str,
    request: Request,
    services: Services,
    authorization: Authorization = None,
    origin: Origin = None,
) -> dict[str, Any]:
    proved = Presented(request, services.settings.public_url)
    grant, _ = await services.gatekeeper.verify(authorization, origin, proved)
    await store.ensure_not_revoked(services.db, grant)
    if not grant.allows_model(model_id) or not services.upstream.serves(model_id):
        raise APIError(404, f"The model {model_id!r} does not exist.", code="model_not_found")
    return _model(model_id)
