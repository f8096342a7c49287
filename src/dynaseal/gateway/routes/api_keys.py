"""A tenant's API keys: what it signs dynamic keys with. Owner only. An HS256 secret is
shown once, at creation; an Ed25519 / ES256 key is registered by its public half."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

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
    public_key: str | None = Field(default=None, validation_alias="public_key_pem")
    created_at: datetime
    retires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: TenantKey) -> ApiKeyOut:
        return cls.model_validate(record, from_attributes=True)


class NewApiKeyOut(ApiKeyOut):
    tenant_id: str
    secret: str | None = Field(
        description="HS256 only, shown once: sign dynamic keys with it (kid in the header)."
    )


class ApiKeyCreate(BaseModel):
    label: str | None = Field(default=None, max_length=128)
    algorithm: Literal["HS256", "EdDSA", "ES256"] = "HS256"
    public_key: str | None = Field(
        default=None, max_length=4096, description="PEM public key, for EdDSA and ES256"
    )


class ApiKeyRetire(BaseModel):
    grace_seconds: int = Field(default=3600, ge=0, le=30 * 24 * 3600)


@router.post(
    "",
    response_model=NewApiKeyOut,
    response_model_exclude_none=True,  # no "public_key": null for HS256, no "secret" for EdDSA
    status_code=201,
    summary="Create an API key",
)
async def create(
    tenant: CurrentTenant, services: Services, body: ApiKeyCreate | None = None
) -> NewApiKeyOut:
    body = body or ApiKeyCreate()
    async with services.db.transaction() as session:
        new = await tenants.create_api_key(
            session,
            services.box,
            tenant.id,
            label=body.label,
            algorithm=body.algorithm,
            public_key_pem=body.public_key,
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


@router.post("/{kid}/retire", response_model=ApiKeyOut, summary="Retire a key after a grace period")
async def retire(
    kid: str, tenant: CurrentTenant, services: Services, body: ApiKeyRetire | None = None
) -> ApiKeyOut:
    grace = (body or ApiKeyRetire()).grace_seconds
    async with services.db.transaction() as session:
        record = await tenants.retire_api_key(session, tenant.id, kid, grace)
    services.key_ring.forget(tenant.id)
    return ApiKeyOut.of(record)


@router.delete("/{kid}", response_model=ApiKeyOut, summary="Revoke an API key at once")
async def revoke(kid: str, tenant: CurrentTenant, services: Services) -> ApiKeyOut:
    async with services.db.transaction() as session:
        record = await tenants.revoke_api_key(session, tenant.id, kid)
    services.key_ring.forget(tenant.id)
    return ApiKeyOut.of(record)
