"""What only the admin (ADMIN_USER_PASSWORD) may do: register tenants."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from dynaseal.gateway import tenants
from dynaseal.gateway.deps import CurrentAdmin, Services
from dynaseal.gateway.routes.account import TenantOut

router = APIRouter(prefix="/tenants", tags=["admin"])


class TenantCreate(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=8, max_length=128)
    email: str | None = Field(default=None, max_length=256)
    callback_url: str | None = None


@router.post("", response_model=TenantOut, status_code=201, summary="Register a tenant")
async def create_tenant(_: CurrentAdmin, services: Services, body: TenantCreate) -> TenantOut:
    async with services.db.transaction() as session:
        tenant = await tenants.create_tenant(
            session,
            username=body.username,
            password=body.password,
            email=body.email,
            callback_url=body.callback_url,
        )
    return TenantOut.of(tenant)
