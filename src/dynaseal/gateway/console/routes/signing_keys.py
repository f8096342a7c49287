"""Signing keys: list, create (an HS256 secret is shown once, on the answer to the
form, with the backend's settings beside it), retire with a grace period, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from pydantic import ValidationError
from starlette.responses import Response

from dynaseal.core.errors import APIError
from dynaseal.gateway.console.pages import Page, TenantPage
from dynaseal.gateway.routes import api_keys
from dynaseal.storage.types import utcnow
from dynaseal.webui.app import problem

router = APIRouter()

#: Grace periods offered when retiring a key (seconds, label).
GRACE_PERIODS = ((0, "now"), (3600, "1 hour"), (24 * 3600, "1 day"), (7 * 24 * 3600, "7 days"))


async def _render(page: Page, *, status: int = 200, **context: Any) -> Response:
    keys = await api_keys.list_keys(page.tenant, page.services)
    return page.render(
        "keys.html",
        status=status,
        section="keys",
        keys=keys,
        now=utcnow(),
        grace_periods=GRACE_PERIODS,
        gateway_url=page.gateway_url,
        **context,
    )


@router.get("/keys", include_in_schema=False)
async def keys_page(page: TenantPage) -> Response:
    return await _render(page)


@router.post("/keys", include_in_schema=False)
async def create_key(
    page: TenantPage,
    label: Annotated[str, Form(max_length=128)] = "",
    algorithm: Annotated[str, Form(max_length=16)] = "HS256",
    public_key: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    try:
        body = api_keys.ApiKeyCreate(
            label=label.strip() or None,
            algorithm=algorithm,  # type: ignore[arg-type]
            public_key=public_key.strip() or None,
        )
        created = await api_keys.create(page.tenant, page.services, body)
    except (ValidationError, APIError) as exc:
        return await _render(page, **problem(exc))
    # The secret is in this answer only: never stored in clear, never shown again.
    return await _render(page, created=created, shows_secret=created.secret is not None)


@router.post("/keys/{kid}/retire", include_in_schema=False)
async def retire_key(
    kid: str, page: TenantPage, grace_seconds: Annotated[int, Form(ge=0, le=30 * 24 * 3600)]
) -> Response:
    body = api_keys.ApiKeyRetire(grace_seconds=grace_seconds)
    await api_keys.retire(kid, page.tenant, page.services, body)
    return page.done("/keys", "key_retired")


@router.post("/keys/{kid}/revoke", include_in_schema=False)
async def revoke_key(kid: str, page: TenantPage) -> Response:
    await api_keys.revoke(kid, page.tenant, page.services)
    return page.done("/keys", "key_revoked")
