"""Rate and in-flight limits: the gateway's defaults, the tenant's own values over them,
editable (an empty field goes back to the default)."""

from __future__ import annotations

from typing import get_args

from fastapi import APIRouter, Request
from starlette.responses import Response

from dynaseal.gateway.console.pages import Page, TenantPage
from dynaseal.gateway.routes.account import RateLimitName
from dynaseal.storage.gateway_models import Tenant

router = APIRouter()

LIMITS = {
    "key_rpm": "Requests per minute, per dynamic key (event id)",
    "key_tpm": "Tokens per minute, per dynamic key",
    "sub_rpm": "Requests per minute, per end user (sub)",
    "sub_tpm": "Tokens per minute, per end user",
    "tenant_rpm": "Requests per minute, whole tenant",
    "tenant_tpm": "Tokens per minute, whole tenant",
    "key_concurrency": "Requests in flight at once, per dynamic key",
    "sub_concurrency": "Requests in flight at once, per end user",
    "tenant_concurrency": "Requests in flight at once, whole tenant",
}
assert set(LIMITS) == set(get_args(RateLimitName))
_MAX_LIMIT = 10**12


def _render(page: Page, *, status: int = 200, error: str | None = None) -> Response:
    settings = page.services.settings
    return page.render(
        "limits.html",
        status=status,
        section="limits",
        limits=LIMITS,
        defaults=settings.rate_limits({}) | page.services.concurrency.defaults,
        own=page.tenant.rate_limits or {},
        settings=settings,
        error=error,
    )


@router.get("/limits", include_in_schema=False)
async def limits_page(page: TenantPage) -> Response:
    return _render(page)


@router.post("/limits", include_in_schema=False)
async def save_limits(page: TenantPage, request: Request) -> Response:
    form = await request.form()
    own: dict[str, int] = {}
    for name in LIMITS:
        value = str(form.get(name) or "").strip()
        if not value:
            continue  # the gateway's default
        if not value.isdigit() or int(value) > _MAX_LIMIT:
            return _render(page, status=400, error=f"{name}: a whole number of at least 0.")
        own[name] = int(value)
    async with page.services.db.transaction() as session:
        row = await session.get(Tenant, page.tenant.id)
        assert row is not None
        row.rate_limits = own or None
    page.services.key_ring.forget(page.tenant.id)  # the limits are cached with the keys
    return page.done("/limits", "limits_saved")
