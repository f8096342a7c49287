"""Revoking dynamic keys the tenant already handed out: one event id, or everything
minted before a time. Refusal is immediate on this process and within the key cache
lifetime (1 s) on every other."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from dynaseal.core.errors import bad_request
from dynaseal.gateway.deps import CurrentTenant, Services
from dynaseal.storage.gateway_models import Tenant
from dynaseal.storage.types import utcnow

router = APIRouter(prefix="/revocations", tags=["revocation"])


class RevocationRequest(BaseModel):
    event_id: str | None = Field(default=None, min_length=1, max_length=256)
    minted_before: datetime | None = Field(
        default=None, description="Refuse every key minted before this time (default: now)."
    )
    all_keys: bool = Field(default=False, description="Refuse every key minted until now.")

    @model_validator(mode="after")
    def _one_target(self) -> RevocationRequest:
        if (self.event_id is not None) == (self.all_keys or self.minted_before is not None):
            raise ValueError("give either event_id, or all_keys / minted_before")
        return self


class RevocationOut(BaseModel):
    event_id: str | None = None
    keys_not_before: datetime | None = None


@router.post("", response_model=RevocationOut, summary="Revoke an event id or all earlier keys")
async def revoke(
    body: RevocationRequest, tenant: CurrentTenant, services: Services
) -> RevocationOut:
    settings = services.settings
    if body.event_id is not None:
        keep_until = utcnow() + timedelta(seconds=settings.key_max_lifetime_seconds)
        await services.budget.revoke_event(tenant.id, body.event_id, keep_until)
        return RevocationOut(event_id=body.event_id)
    now = utcnow()
    cutoff = body.minted_before or now
    if cutoff.tzinfo is None:
        raise bad_request("minted_before needs a timezone.", param="minted_before")
    if cutoff > now + timedelta(seconds=settings.key_leeway_seconds):
        # A future cut-off would refuse every key minted until then: maybe all, forever.
        raise bad_request("minted_before must not be in the future.", param="minted_before")
    async with services.db.transaction() as session:
        row = await session.get(Tenant, tenant.id)
        assert row is not None
        if row.keys_not_before is None or row.keys_not_before < cutoff:
            row.keys_not_before = cutoff
        cutoff = row.keys_not_before
    services.key_ring.forget(tenant.id)
    return RevocationOut(keys_not_before=cutoff)
