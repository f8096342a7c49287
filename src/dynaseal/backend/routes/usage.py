"""The gateway's usage callbacks, and the usage they report."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError

from dynaseal.backend import crud
from dynaseal.backend.deps import CurrentUser, DatabaseDep, VerifierDep
from dynaseal.backend.metrics import BackendMetrics
from dynaseal.backend.schemas import UsageEntry, UsageList, UsagePayload
from dynaseal.core.errors import APIError, bad_request

router = APIRouter(tags=["usage"])
log = logging.getLogger("dynaseal.backend")


def delivery_id(request: Request, payload: UsagePayload) -> str:
    """Standard Webhooks' ``webhook-id`` names a delivery; older senders only have ids
    in the payload."""
    return request.headers.get("webhook-id") or payload.request_id or payload.event_id


@router.post("/callback/usage")
async def usage_callback(
    request: Request, db: DatabaseDep, verifier: VerifierDep
) -> dict[str, bool]:
    """Verified, then stored once per ``webhook-id``: a retried or replayed delivery is
    acknowledged (so the gateway stops) but never counted twice."""
    # The raw body is read here (not by FastAPI) because the signature covers the exact
    # bytes the gateway signed.
    metrics: BackendMetrics = request.app.state.metrics
    body = await request.body()
    try:
        verified = verifier.verify(body, request.headers)
    except APIError:
        metrics.callback_received("invalid_signature")
        raise
    try:
        payload = UsagePayload.model_validate_json(body)
    except ValidationError as exc:
        metrics.callback_received("malformed")
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise bad_request(f"malformed usage callback: {first['msg']}", param) from None
    if payload.type == "test":
        metrics.callback_received("test")
        log.info("test callback received: event_id=%s", payload.event_id)
        return {"received": True, "test": True}
    stored = await crud.store_callback(
        db, delivery_id(request, payload), payload, signature_verified=verified
    )
    metrics.callback_received("stored" if stored else "duplicate")
    if not stored:
        return {"received": True, "duplicate": True}
    # Never the content: it is an end user's conversation (GET /usage shows it to them).
    log.info(
        "usage callback: event_id=%s tokens=%d status=%s signature=%s",
        payload.event_id,
        payload.tokens,
        payload.status,
        "verified" if verified else "unchecked",
    )
    return {"received": True}


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
