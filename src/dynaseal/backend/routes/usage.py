"""The gateway's usage callbacks, and the usage they report."""

from __future__ import annotations

import logging
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ValidationError

from dynaseal.backend import callback_body, crud
from dynaseal.backend.deps import CurrentUser, DatabaseDep, VerifierDep
from dynaseal.backend.metrics import BackendMetrics
from dynaseal.backend.schemas import BATCH_TYPE, UsageBatch, UsageEntry, UsageList, UsagePayload
from dynaseal.core.errors import APIError, bad_request

router = APIRouter(tags=["usage"])
log = logging.getLogger("dynaseal.backend")
M = TypeVar("M", bound=BaseModel)


def delivery_id(request: Request, payload: UsagePayload) -> str:
    """Standard Webhooks' ``webhook-id`` names a delivery; older senders only have ids
    in the payload."""
    return request.headers.get("webhook-id") or payload.request_id or payload.event_id


@router.post("/callback/usage")
async def usage_callback(
    request: Request, db: DatabaseDep, verifier: VerifierDep
) -> dict[str, Any]:
    """Verified once per delivery, then stored once per event: a single callback under
    its ``webhook-id``, each event of a ``usage.batch`` under its own ``id``. A retried
    or replayed delivery is acknowledged (so the gateway stops) but never counted twice."""
    # The raw body is read here (not by FastAPI) because the signature covers the exact
    # bytes the gateway signed.
    metrics: BackendMetrics = request.app.state.metrics
    limit = request.app.state.settings.max_callback_bytes
    body = callback_body.decoded(await request.body(), request.headers, limit)
    try:
        verified = verifier.verify(body, request.headers)
    except APIError:
        metrics.callback_received("invalid_signature")
        raise
    parsed = _json(body, metrics)
    batch = isinstance(parsed, dict) and parsed.get("type") == BATCH_TYPE
    if batch:
        events: list[tuple[str, UsagePayload]] = [
            (event.id, event) for event in _valid(UsageBatch, parsed, metrics).data
        ]
    else:
        payload = _valid(UsagePayload, parsed, metrics)
        if payload.type == "test":
            metrics.callback_received("test")
            log.info("test callback received: event_id=%s", payload.event_id)
            return {"received": True, "test": True}
        events = [(delivery_id(request, payload), payload)]
    stored = await crud.store_callbacks(db, events, signature_verified=verified)
    metrics.callback_received("stored", stored)
    metrics.callback_received("duplicate", len(events) - stored)
    # Never the content: it is an end user's conversation (GET /usage shows it to them).
    log.info(
        "usage callback: %d event(s), %d new, tokens=%d, signature=%s",
        len(events),
        stored,
        sum(payload.tokens for _, payload in events),
        "verified" if verified else "unchecked",
    )
    if batch:
        return {"received": True, "events": len(events), "duplicates": len(events) - stored}
    return {"received": True} if stored else {"received": True, "duplicate": True}


def _malformed(metrics: BackendMetrics, message: str, param: str | None = None) -> APIError:
    metrics.callback_received("malformed")
    return bad_request(f"malformed usage callback: {message}", param)


def _json(body: bytes, metrics: BackendMetrics) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _malformed(metrics, "the body is not JSON") from None


def _valid(model: type[M], parsed: object, metrics: BackendMetrics) -> M:
    try:
        return model.model_validate(parsed)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise _malformed(metrics, first["msg"], param) from None


@router.get("/usage")
async def usage(
    user: CurrentUser,
    db: DatabaseDep,
    event_id: Annotated[str | None, Query(max_length=256)] = None,
    user_id: Annotated[str | None, Query(max_length=64, description="admin only")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> UsageList:
    """The caller's own callbacks, newest first; an admin sees every user's (or one's)."""
    async with db.transaction() as session:
        rows, total, cost = await crud.list_usage(
            session,
            user_id=user_id if user.is_admin else user.id,
            event_id=event_id,
            limit=limit,
        )
    return UsageList(
        data=[
            UsageEntry(
                delivery_id=row.delivery_id,
                event_id=row.event_id,
                user_id=row.user_id,
                tokens=row.tokens,
                cost=row.cost,
                content=row.content,
                model=row.payload.get("model"),
                status=row.payload.get("status"),
                signature_verified=row.signature_verified,
                received_at=int(row.received_at.timestamp()),
                payload=row.payload,
            )
            for row in rows
        ],
        total_tokens=total,
        total_cost=cost,
    )
