"""Dynamic keys in use: recent event ids with budget used and left, requests, last use
and status; revoke one event id, or every key minted until now."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from pydantic import ValidationError
from starlette.responses import Response

from dynaseal.gateway.console.pages import Page, TenantPage
from dynaseal.gateway.console.queries import events as queries
from dynaseal.gateway.routes import revocations
from dynaseal.storage.types import utcnow
from dynaseal.webui.app import problem

router = APIRouter()


async def _render(page: Page, event_id: str = "", *, status: int = 200, **context: Any) -> Response:
    now = utcnow()
    lookback = timedelta(seconds=page.services.settings.key_max_lifetime_seconds)
    async with page.services.db.sessions() as session:
        events = await queries.recent_events(session, page.tenant.id, now, lookback, event_id)
    return page.render(
        "events.html",
        status=status,
        section="events",
        events=events,
        now=now,
        event_id=event_id,
        lookback=lookback.total_seconds(),
        **context,
    )


@router.get("/events", include_in_schema=False)
async def events_page(
    page: TenantPage, event_id: Annotated[str, Query(max_length=256)] = ""
) -> Response:
    return await _render(page, event_id.strip())


@router.post("/events/revoke", include_in_schema=False)
async def revoke_event(
    page: TenantPage, event_id: Annotated[str, Form(max_length=256)] = ""
) -> Response:
    try:
        body = revocations.RevocationRequest(event_id=event_id.strip())
    except ValidationError as exc:
        return await _render(page, **problem(exc))
    await revocations.revoke(body, page.tenant, page.services)
    return page.done("/events", "event_revoked")


@router.post("/events/revoke-all", include_in_schema=False)
async def revoke_all(page: TenantPage) -> Response:
    everything = revocations.RevocationRequest(all_keys=True)
    await revocations.revoke(everything, page.tenant, page.services)
    return page.done("/events", "all_revoked")
