"""FastAPI dependencies: the process's services and the logged-in tenant."""

from __future__ import annotations

import logging
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from dynaseal.core.errors import APIError, bad_request, unauthorized
from dynaseal.core.session_tokens import InvalidSessionToken
from dynaseal.gateway.callbacks.url_policy import CallbackURLRefused, check_callback_url
from dynaseal.gateway.services import GatewayServices
from dynaseal.storage.gateway_models import Tenant

log = logging.getLogger("dynaseal.gateway")

_bearer = OAuth2PasswordBearer(tokenUrl="/v1/user/login", auto_error=False)


def get_services(request: Request) -> GatewayServices:
    return cast(GatewayServices, request.app.state.services)


Services = Annotated[GatewayServices, Depends(get_services)]


async def current_tenant(
    services: Services, token: Annotated[str | None, Depends(_bearer)]
) -> Tenant:
    """The tenant whose *access* token is presented (a refresh token is refused)."""
    if not token:
        raise unauthorized("Log in first: send Authorization: Bearer <access_token>.")
    try:
        tenant_id = services.sessions.subject(token, "access")
    except InvalidSessionToken:
        raise unauthorized() from None
    async with services.db.sessions() as session:
        tenant = await session.get(Tenant, tenant_id)
    if tenant is None or tenant.disabled_at is not None:
        raise unauthorized()
    return tenant


CurrentTenant = Annotated[Tenant, Depends(current_tenant)]


async def current_admin(tenant: CurrentTenant) -> Tenant:
    if not tenant.is_admin:
        raise APIError(403, "Only the admin may do this.", code="admin_only")
    return tenant


CurrentAdmin = Annotated[Tenant, Depends(current_admin)]


async def allowed_callback_url(services: GatewayServices, url: str | None) -> str | None:
    """The URL to store (its host in the one spelling it is called by) if this gateway may
    call it (empty means none), else a 400 that tells the tenant no more than it knows."""
    if not url:
        return None
    try:
        return await check_callback_url(url, services.callback_policy)
    except CallbackURLRefused as exc:
        log.info("callback_url refused: %s", exc.detail)
        raise bad_request(f"{exc}.", param="callback_url") from None
