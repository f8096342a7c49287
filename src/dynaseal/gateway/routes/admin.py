"""What only the admin (ADMIN_USER_PASSWORD) may do: register, disable and enable tenants."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from dynaseal.gateway import tenants, webhook_secrets
from dynaseal.gateway.deps import CurrentAdmin, Services, allowed_callback_url
from dynaseal.gateway.routes.account import TenantOut

router = APIRouter(prefix="/tenants", tags=["admin"])


class TenantCreate(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=8, max_length=128)
    email: str | None = Field(default=None, max_length=256)
    callback_url: str | None = None


class NewTenantOut(TenantOut):
    webhook_secret: str = Field(description="Shown once. Verifies the usage callbacks.")


@router.post("", response_model=NewTenantOut, status_code=201, summary="Register a tenant")
async def create_tenant(_: CurrentAdmin, services: Services, body: TenantCreate) -> NewTenantOut:
    callback_url = await allowed_callback_url(services, body.callback_url)
    async with services.db.transaction() as session:
        tenant = await tenants.create_tenant(
            session,
            username=body.username,
            password=body.password,
            email=body.email,
            callback_url=callback_url,
        )
        webhook_secret = webhook_secrets.install(tenant, services.box)
    return NewTenantOut(**TenantOut.of(tenant).model_dump(), webhook_secret=webhook_secret)


@router.post("/{tenant_id}/disable", response_model=TenantOut, summary="Refuse a tenant's keys")
async def disable_tenant(tenant_id: str, _: CurrentAdmin, services: Services) -> TenantOut:
    return await _set_disabled(services, tenant_id, True)


@router.post("/{tenant_id}/enable", response_model=TenantOut, summary="Accept its keys again")
async def enable_tenant(tenant_id: str, _: CurrentAdmin, services: Services) -> TenantOut:
    return await _set_disabled(services, tenant_id, False)


async def _set_disabled(services: Services, tenant_id: str, disabled: bool) -> TenantOut:
    async with services.db.transaction() as session:
        tenant = await tenants.set_disabled(session, tenant_id, disabled)
    services.key_ring.forget(tenant_id)
    return TenantOut.of(tenant)
