"""What only the admin (ADMIN_USER_PASSWORD) may do: register tenants, and the operator's
daily tasks on a tenant — list, disable and enable it, manage its signing keys, revoke
its dynamic keys, read its usage.

Acting on a tenant reuses the tenant's own route functions with the tenant named in the
path, so the admin sees and does exactly what the tenant would; tenants themselves never
reach these routes (403), so they cannot act on each other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import or_, select

from dynaseal.core.errors import APIError
from dynaseal.gateway import tenants
from dynaseal.gateway.callbacks import webhook_secrets
from dynaseal.gateway.deps import CurrentAdmin, Services, allowed_callback_url
from dynaseal.gateway.routes import api_keys, revocations, usage
from dynaseal.gateway.routes.account import TenantOut
from dynaseal.storage.gateway_models import Tenant
from dynaseal.storage.types import utcnow

router = APIRouter(tags=["admin"])

TenantRef = Annotated[str, Path(description="The tenant's id or username.", max_length=256)]


class TenantCreate(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=8, max_length=128)
    email: str | None = Field(default=None, max_length=256)
    callback_url: str | None = None

    @field_validator("email")
    @classmethod
    def _blank_is_none(cls, email: str | None) -> str | None:
        """``""`` is no email (else a second tenant without one would clash with the first)."""
        if email is None or not email.strip():
            return None
        return email.strip()


class NewTenantOut(TenantOut):
    webhook_secret: str = Field(description="Shown once. Verifies the usage callbacks.")


class AdminTenantOut(TenantOut):
    disabled_at: datetime | None

    @classmethod
    def of(cls, tenant: Tenant) -> AdminTenantOut:
        return cls.model_validate(tenant, from_attributes=True)


@router.post("/tenants", response_model=NewTenantOut, status_code=201, summary="Register a tenant")
@router.post(
    "/admin/tenants",
    response_model=NewTenantOut,
    status_code=201,
    summary="Register a tenant (same as POST /v1/tenants)",
)
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


@router.get("/admin/tenants", response_model=list[AdminTenantOut], summary="List the tenants")
async def list_tenants(_: CurrentAdmin, services: Services) -> list[AdminTenantOut]:
    async with services.db.sessions() as session:
        rows = await session.scalars(
            select(Tenant).where(Tenant.is_admin.is_(False)).order_by(Tenant.created_at)
        )
        return [AdminTenantOut.of(row) for row in rows]


async def _tenant(services: Services, ref: str) -> Tenant:
    """The tenant (never an admin account) by id or username, or a 404."""
    async with services.db.sessions() as session:
        tenant = await session.scalar(
            select(Tenant).where(
                or_(Tenant.id == ref, Tenant.username == ref), Tenant.is_admin.is_(False)
            )
        )
    if tenant is None:
        raise APIError(404, f"No tenant {ref!r}.", code="not_found", param="tenant")
    return tenant


@router.get("/admin/tenants/{tenant}", response_model=AdminTenantOut, summary="One tenant")
async def show_tenant(tenant: TenantRef, _: CurrentAdmin, services: Services) -> AdminTenantOut:
    return AdminTenantOut.of(await _tenant(services, tenant))


async def _set_disabled(services: Services, ref: str, disabled: bool) -> AdminTenantOut:
    target = await _tenant(services, ref)
    async with services.db.transaction() as session:
        row = await session.get(Tenant, target.id)
        assert row is not None
        if disabled and row.disabled_at is None:
            row.disabled_at = utcnow()
        elif not disabled:
            row.disabled_at = None
    services.key_ring.forget(row.id)
    return AdminTenantOut.of(row)


@router.post(
    "/admin/tenants/{tenant}/disable",
    response_model=AdminTenantOut,
    summary="Disable a tenant: no login, every dynamic key refused, data kept",
)
async def disable_tenant(tenant: TenantRef, _: CurrentAdmin, services: Services) -> AdminTenantOut:
    return await _set_disabled(services, tenant, True)


@router.post(
    "/admin/tenants/{tenant}/enable", response_model=AdminTenantOut, summary="Enable a tenant"
)
async def enable_tenant(tenant: TenantRef, _: CurrentAdmin, services: Services) -> AdminTenantOut:
    return await _set_disabled(services, tenant, False)


@router.post(
    "/admin/tenants/{tenant}/api-keys",
    response_model=api_keys.NewApiKeyOut,
    response_model_exclude_none=True,
    status_code=201,
    summary="Create an API key for a tenant",
)
async def create_api_key(
    tenant: TenantRef,
    _: CurrentAdmin,
    services: Services,
    body: api_keys.ApiKeyCreate | None = None,
) -> api_keys.NewApiKeyOut:
    return await api_keys.create(await _tenant(services, tenant), services, body)


@router.get(
    "/admin/tenants/{tenant}/api-keys",
    response_model=list[api_keys.ApiKeyOut],
    summary="A tenant's API keys (never the secrets)",
)
async def list_api_keys(
    tenant: TenantRef, _: CurrentAdmin, services: Services
) -> list[api_keys.ApiKeyOut]:
    return await api_keys.list_keys(await _tenant(services, tenant), services)


@router.post(
    "/admin/tenants/{tenant}/api-keys/{kid}/retire",
    response_model=api_keys.ApiKeyOut,
    summary="Retire a tenant's key after a grace period",
)
async def retire_api_key(
    tenant: TenantRef,
    kid: str,
    _: CurrentAdmin,
    services: Services,
    body: api_keys.ApiKeyRetire | None = None,
) -> api_keys.ApiKeyOut:
    return await api_keys.retire(kid, await _tenant(services, tenant), services, body)


@router.delete(
    "/admin/tenants/{tenant}/api-keys/{kid}",
    response_model=api_keys.ApiKeyOut,
    summary="Revoke a tenant's key at once",
)
async def revoke_api_key(
    tenant: TenantRef, kid: str, _: CurrentAdmin, services: Services
) -> api_keys.ApiKeyOut:
    return await api_keys.revoke(kid, await _tenant(services, tenant), services)


@router.post(
    "/admin/tenants/{tenant}/revocations",
    response_model=revocations.RevocationOut,
    summary="Revoke one of a tenant's event ids, or every key it minted before a time",
)
async def revoke(
    tenant: TenantRef,
    body: revocations.RevocationRequest,
    _: CurrentAdmin,
    services: Services,
) -> revocations.RevocationOut:
    return await revocations.revoke(body, await _tenant(services, tenant), services)


@router.get(
    "/admin/tenants/{tenant}/usage", response_model=usage.UsageOut, summary="A tenant's usage"
)
async def tenant_usage(
    tenant: TenantRef,
    _: CurrentAdmin,
    services: Services,
    event_id: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> usage.UsageOut:
    return await usage.usage(await _tenant(services, tenant), services, event_id, limit)
