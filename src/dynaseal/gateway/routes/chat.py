"""The OpenAI-compatible surface devices call with their dynamic key."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from starlette.responses import Response

from dynaseal.core.access_log import note
from dynaseal.core.errors import APIError
from dynaseal.gateway.budget import store
from dynaseal.gateway.deps import Services
from dynaseal.gateway.relay import proxy

router = APIRouter(tags=["OpenAI-compatible"])

Authorization = Annotated[str | None, Header()]


async def chat_completions(request: Request) -> Response:
    """Verify the key, reserve its budget, proxy upstream, settle and report usage.

    A plain Starlette endpoint: the hot path skips FastAPI's dependency resolution. The
    request and answer are OpenAI's ``POST /v1/chat/completions``, documented there.
    """
    services = request.app.state.services
    if services.ledger.backlogged:
        raise APIError(
            503,
            "Usage cannot be recorded right now; retry shortly.",
            code="service_unavailable",
            headers={"Retry-After": "1"},
        )
    try:
        raw = await request.body()  # at most MAX_REQUEST_BYTES: core.body_limit counts it
        admission = await services.gatekeeper.admit(request.headers.get("authorization"), raw)
    except APIError as refusal:  # counted in memory, for the console's charts
        services.refusals.refused(request.headers.get("authorization"), refusal)
        raise
    grant = admission.grant
    note(request_id=admission.request_id, tenant=grant.tenant_id, event_id=grant.event_id)
    relay = proxy.stream if admission.stream else proxy.complete
    response = await relay(services.upstream, admission, services.settler, services.relay)
    response.headers.update(admission.response_headers())
    return response


router.add_route("/chat/completions", chat_completions, methods=["POST"])


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(time.time()), "owned_by": "dynaseal"}


@router.get("/models", summary="The models this dynamic key may call")
async def list_models(services: Services, authorization: Authorization = None) -> dict[str, Any]:
    grant, _ = await services.gatekeeper.verify(authorization)
    await store.ensure_not_revoked(services.db, grant)
    return {"object": "list", "data": [_model(m) for m in grant.models]}


@router.get("/models/{model_id:path}", summary="One model this dynamic key may call")
async def get_model(
    model_id: str, services: Services, authorization: Authorization = None
) -> dict[str, Any]:
    grant, _ = await services.gatekeeper.verify(authorization)
    await store.ensure_not_revoked(services.db, grant)
    if not grant.allows_model(model_id):
        raise APIError(404, f"The model {model_id!r} does not exist.", code="model_not_found")
    return _model(model_id)
