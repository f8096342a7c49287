"""Liveness and readiness for load balancers and orchestrators.

``/healthz`` says the process is up. ``/readyz`` says whether it can serve: the database
answers, Redis answers (when configured), every model has an upstream deployment that
accepts connections (each deployment is listed) and usage is being written (no backlog
of settled requests). A load balancer takes a replica out of
rotation while it is not ready. Both answer anyone, so they name no address and repeat
no error: the log has those.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

router = APIRouter(tags=["operations"])
log = logging.getLogger("dynaseal.gateway")

_CHECK_TIMEOUT_SECONDS = 2.0


async def _check(name: str, probe: Any) -> str:
    """``ok`` or ``unavailable``: why is for the operator's log, not for anyone asking."""
    try:
        await asyncio.wait_for(probe, _CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("not ready: the %s check failed: %s: %s", name, type(exc).__name__, exc)
        return "unavailable"
    return "ok"


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database, Redis and upstream reachable")
async def readyz(request: Request) -> JSONResponse:
    services = request.app.state.services
    checks = {"database": await _check("database", services.db.ping())}
    if services.redis is not None:
        checks["redis"] = await _check("Redis", services.redis.ping())
    reachable = await services.upstream.readiness()
    covered = services.upstream.models_covered(reachable)
    checks["upstream"] = "ok" if covered else "unavailable"
    if services.ledger.backlogged:
        checks["ledger"] = f"error: {services.ledger.backlog} settled requests not yet written"
    ready = all(value == "ok" for value in checks.values())
    deployments = {name: "ok" if ok else "unavailable" for name, ok in reachable.items()}
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks, "deployments": deployments},
        status_code=200 if ready else 503,
    )
