"""A tenant's API keys: the secrets it signs dynamic keys with. Owner only; the secret
is shown once, at creation."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from dynaseal.gateway import tenants
from dynaseal.gateway.deps import CurrentTenant, Services
from dynaseal.storage.gateway_models import TenantKey

router = APIRouter(prefix="/api-keys", tags=["tenant API keys"])


class ApiKeyOut(BaseModel):
    kid: str
    algorithm: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: TenantKey) -> ApiKeyOut:
        return cls.model_validate(record, from_attributes=True)


class NewApiKeyOut(ApiKeyOut):
    tenant_id: str
    secret: str = Field(description="Shown once. Sign dynamic keys with it (HS256).")


class ApiKeyCreate(BaseModel):
    label: str | None = Field(default=None, max_length=128)


@router.post("", response_model=NewApiKeyOut, status_code=201, summary="Create an API key")
async def create(
    tenant: CurrentTenant, services: Services, body: ApiKeyCreate | None = None
) -> NewApiKeyOut:
    async with services.db.transaction() as session:
        new = await tenants.create_api_key(
            session, services.box, tenant.id, label=body.label if body else None
        )
    services.key_ring.forget(tenant.id)
    return NewApiKeyOut(
        **ApiKeyOut.of(new.record).model_dump(), tenant_id=tenant.id, secret=new.secret
    )


@router.get("", response_model=list[ApiKeyOut], summary="List API keys (never the secrets)")
async def list_keys(tenant: CurrentTenant, services: Services) -> list[ApiKeyOut]:
    async with services.db.sessions() as session:
        records = await tenants.list_api_keys(session, tenant.id)
    return [ApiKeyOut.of(r) for r in records]


@router.delete("/{kid}", response_model=ApiKeyOut, summary="Revoke an API key")
async def revoke(kid: str, tenant: CurrentTenant, services: Services) -> ApiKeyOut:
    async with services.db.transaction() as session:
        await tenants.revoke_api_key(session, tenant.id, kid)
        records = await tenants.list_api_keys(session, tenant.id)
    services.key_ring.forget(tenant.id)
    return ApiKeyOut.of(next(r for r in records if r.kid == kid))
