"""The operator's view: every tenant with its recent usage and refusals, registering a
tenant (its webhook secret is shown once), disabling and enabling one; and the
refusals of keys naming no tenant at all."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form
from pydantic import ValidationError
from starlette.responses import Response

from dynaseal.core.errors import APIError
from dynaseal.gateway.console.pages import AdminPage, Page
from dynaseal.gateway.console.queries import admin as queries
from dynaseal.gateway.console.queries.overview import REFUSAL_LABELS
from dynaseal.gateway.routes import admin
from dynaseal.storage.gateway_models import UNKNOWN_TENANT
from dynaseal.storage.types import utcnow
from dynaseal.webui.app import problem

router = APIRouter()

WINDOW = timedelta(hours=24)


async def _render(page: Page, *, status: int = 200, **context: Any) -> Response:
    since = utcnow() - WINDOW
    async with page.services.db.sessions() as session:
        summaries = await queries.tenant_summaries(session, since)
        refusals = await queries.refusals_by_tenant(session, since)
    return page.render(
        "admin.html",
        status=status,
        section="admin",
        summaries=summaries,
        unknown=refusals.get(UNKNOWN_TENANT, {}),
        refusal_labels=REFUSAL_LABELS,
        **context,
    )


@router.get("/admin", include_in_schema=False)
async def admin_page(page: AdminPage) -> Response:
    return await _render(page)


@router.post("/admin/tenants", include_in_schema=False)
async def register_tenant(
    page: AdminPage,
    username: Annotated[str, Form(max_length=128)],
    password: Annotated[str, Form(max_length=128)],
    email: Annotated[str, Form(max_length=256)] = "",
    callback_url: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    try:
        body = admin.TenantCreate(
            username=username.strip(),
            password=password,
            email=email.strip() or None,
            callback_url=callback_url.strip() or None,
        )
        created = await admin.create_tenant(page.tenant, page.services, body)
    except (ValidationError, APIError) as exc:
        return await _render(page, **problem(exc))
    # The webhook secret is in this answer only.
    return await _render(page, created=created, shows_secret=True)


@router.post("/admin/tenants/{tenant_id}/disable", include_in_schema=False)
async def disable(tenant_id: str, page: AdminPage) -> Response:
    await admin.disable_tenant(tenant_id, page.tenant, page.services)
    return page.done("/admin", "tenant_disabled")


@router.post("/admin/tenants/{tenant_id}/enable", include_in_schema=False)
async def enable(tenant_id: str, page: AdminPage) -> Response:
    await admin.enable_tenant(tenant_id, page.tenant, page.services)
    return page.done("/admin", "tenant_enabled")
