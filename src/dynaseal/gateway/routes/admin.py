"""What only the admin (ADMIN_USER_PASSWORD) may do: register tenants."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from dynaseal.gateway import tenants, webhook_secrets
from dynaseal.gateway.deps import CurrentAdmin, Services, allowed_callback_url
from dynaseal.gateway.routes.account import TenantOut

router = APIRouter(prefix="/tenants", tags=["admin"])


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
