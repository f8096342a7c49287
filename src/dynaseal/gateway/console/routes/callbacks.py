"""Callbacks: the endpoint and what callbacks carry, the webhook secret (a rotated one is
shown once), the deliveries with every attempt, re-sending one, a test event."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Form, Query
from starlette.responses import Response

from dynaseal.core.errors import APIError
from dynaseal.gateway.callbacks.retry import DeliveryStatus
from dynaseal.gateway.console.pages import Page, TenantPage
from dynaseal.gateway.console.queries import callbacks as queries
from dynaseal.gateway.routes import account, deliveries
from dynaseal.webui.app import problem

router = APIRouter()

STATUSES = ("pending", "delivered", "failed", "disabled", "batched")
LISTED = 50


async def _render(
    page: Page, status_filter: str = "", *, status: int = 200, **context: Any
) -> Response:
    listed = await deliveries.list_deliveries(
        page.tenant,
        page.services,
        cast(DeliveryStatus, status_filter) if status_filter else None,
        LISTED,
    )
    async with page.services.db.sessions() as session:
        attempts = await queries.attempts_of(session, [d.id for d in listed.data])
    return page.render(
        "callbacks.html",
        status=status,
        section="callbacks",
        deliveries=listed.data,
        attempts=attempts,
        statuses=STATUSES,
        status_filter=status_filter,
        overlap_seconds=page.services.settings.webhook_secret_overlap_seconds,
        **context,
    )


@router.get("/callbacks", include_in_schema=False)
async def callbacks_page(
    page: TenantPage, status: Annotated[str, Query(max_length=16)] = ""
) -> Response:
    return await _render(page, status if status in STATUSES else "")


@router.post("/callbacks/settings", include_in_schema=False)
async def save_settings(
    page: TenantPage,
    callback_url: Annotated[str, Form(max_length=2048)] = "",
    include_content: Annotated[bool, Form()] = False,
    include_prompt: Annotated[bool, Form()] = False,
    batch_seconds: Annotated[float, Form(ge=0, le=account.MAX_BATCH_SECONDS)] = 0.0,
    batch_max: Annotated[int, Form(ge=1, le=account.MAX_BATCH_EVENTS)] = 100,
) -> Response:
    body = account.TenantUpdate(
        callback_url=callback_url.strip() or None,
        callback_include_content=include_content,
        callback_include_prompt=include_prompt,
        callback_batch_seconds=batch_seconds,
        callback_batch_max=batch_max,
    )
    try:
        await account.update_me(page.tenant, page.services, body)
    except APIError as exc:  # e.g. a URL this gateway may not call
        return await _render(page, **problem(exc))
    return page.done("/callbacks", "callback_saved")


@router.post("/callbacks/rotate-secret", include_in_schema=False)
async def rotate_secret(page: TenantPage) -> Response:
    rotated = await deliveries.rotate_webhook_secret(page.tenant, page.services)
    # Shown in this answer only: the gateway keeps it sealed and never shows it again.
    return await _render(page, rotated=rotated, shows_secret=True)


@router.post("/callbacks/test", include_in_schema=False)
async def send_test(page: TenantPage) -> Response:
    try:
        await deliveries.send_test_event(page.tenant, page.services)
    except APIError as exc:  # no callback URL yet
        return await _render(page, **problem(exc))
    return page.done("/callbacks", "test_sent")


@router.post("/callbacks/{delivery_id}/resend", include_in_schema=False)
async def resend(delivery_id: str, page: TenantPage) -> Response:
    await deliveries.resend_delivery(delivery_id, page.tenant, page.services)
    return page.done("/callbacks", "resent")
