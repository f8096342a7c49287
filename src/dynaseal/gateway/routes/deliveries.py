"""A tenant's usage callbacks: the deliveries and their attempts, re-sending one, a test
event, and rotating the webhook secret they are signed with. Owner only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, cast

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from dynaseal.core.errors import APIError
from dynaseal.gateway.callbacks import outbox, webhook_secrets
from dynaseal.gateway.callbacks.retry import DeliveryStatus
from dynaseal.gateway.deps import CurrentTenant, Services
from dynaseal.storage.gateway_models import CallbackAttempt, CallbackDelivery, Tenant

router = APIRouter(tags=["usage callbacks"])


class AttemptOut(BaseModel):
    attempt: int
    attempted_at: datetime
    url: str
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: str = Field(description="The webhook-id: the same on every attempt.")
    type: str
    request_id: str | None
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    #: A ``usage.batch`` delivery: how many usage events it carries.
    events: int | None = None
    #: A ``batched`` usage event: the delivery that carries it.
    batch_id: str | None = None

    @classmethod
    def of(cls, row: CallbackDelivery) -> DeliveryOut:
        return cls(
            id=row.id,
            type=str(orjson.loads(row.payload).get("type", "usage")),
            request_id=row.request_id,
            url=row.url,
            status=cast(DeliveryStatus, row.status),  # the outbox writes no other
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            events=row.events,
            batch_id=row.batch_id,
        )


class DeliveryDetail(DeliveryOut):
    payload: dict[str, Any]
    attempt_log: list[AttemptOut]

    @classmethod
    def with_attempts(
        cls, row: CallbackDelivery, attempts: list[CallbackAttempt]
    ) -> DeliveryDetail:
        return cls(
            **DeliveryOut.of(row).model_dump(),
            payload=orjson.loads(row.payload),
            attempt_log=[AttemptOut.model_validate(a, from_attributes=True) for a in attempts],
        )


class DeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DeliveryOut]


class WebhookSecretOut(BaseModel):
    secret: str = Field(description="Shown once. Verify callbacks with it (Standard Webhooks).")
    previous_secret_valid_until: datetime | None = Field(
        description="Until then callbacks are also signed with the previous secret."
    )


@router.get("/deliveries", response_model=DeliveryList, summary="List callback deliveries")
async def list_deliveries(
    tenant: CurrentTenant,
    services: Services,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryList:
    async with services.db.sessions() as session:
        rows = await outbox.list_deliveries(session, tenant.id, status=status, limit=limit)
    return DeliveryList(data=[DeliveryOut.of(r) for r in rows])


@router.get(
    "/deliveries/{delivery_id}", response_model=DeliveryDetail, summary="A delivery's attempts"
)
async def show_delivery(delivery_id: str, tenant: CurrentTenant, services: Services) -> Any:
    async with services.db.sessions() as session:
        row = await outbox.get_delivery(session, tenant.id, delivery_id)
        attempts = await outbox.attempts_of(session, delivery_id)
    return DeliveryDetail.with_attempts(row, list(attempts))


@router.post(
    "/deliveries/{delivery_id}/resend", response_model=DeliveryOut, summary="Send one again now"
)
async def resend_delivery(delivery_id: str, tenant: CurrentTenant, services: Services) -> Any:
    async with services.db.transaction() as session:
        row = await outbox.get_delivery(session, tenant.id, delivery_id)
        current = await session.get(Tenant, tenant.id)
        outbox.resend(row, current.callback_url if current else None)
    services.delivery.notify()
    return DeliveryOut.of(row)


@router.post(
    "/deliveries/test", response_model=DeliveryOut, status_code=201, summary="Send a test event"
)
async def send_test_event(tenant: CurrentTenant, services: Services) -> Any:
    """A signed ``type: "test"`` callback with no usage, to check the receiving end."""
    async with services.db.transaction() as session:
        current = await session.get(Tenant, tenant.id)
        if current is None or not current.callback_url:
            raise APIError(
                409, "Set a callback_url first (PATCH /v1/user/me).", code="no_callback_url"
            )
        row = outbox.enqueue(
            session,
            tenant_id=tenant.id,
            url=current.callback_url,
            payload={
                "type": "test",
                "event_id": f"test_{uuid.uuid4().hex}",
                "content": "This is a test event from the Dynaseal gateway.",
                "tokens": 0,
                "created_at": datetime.now(UTC).isoformat(),
            },
        )
    services.delivery.notify()
    return DeliveryOut.of(row)


@router.post(
    "/webhook-secret/rotate", response_model=WebhookSecretOut, summary="New webhook secret"
)
async def rotate_webhook_secret(tenant: CurrentTenant, services: Services) -> WebhookSecretOut:
    overlap = timedelta(seconds=services.settings.webhook_secret_overlap_seconds)
    async with services.db.transaction() as session:
        row = await session.get(Tenant, tenant.id)
        assert row is not None
        secret = webhook_secrets.rotate(row, services.box, overlap)
    return WebhookSecretOut(
        secret=secret, previous_secret_valid_until=row.previous_webhook_secret_until
    )
