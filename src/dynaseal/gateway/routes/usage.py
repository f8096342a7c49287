"""The usage ledger of the logged-in tenant: one record per admitted request."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import func, select

from dynaseal.core.money import Usd
from dynaseal.gateway.deps import CurrentTenant, Services
from dynaseal.storage.gateway_models import Tenant, UsageRecord

router = APIRouter(tags=["usage"])


class UsageRecordOut(BaseModel):
    request_id: str
    event_id: str
    sub: str | None
    model: str
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Usd | None  # USD; null when the model had no price
    usage_source: str
    status: str
    overshoot_tokens: int  # generated past the cap the upstream was sent (booked)
    started_at: datetime
    ended_at: datetime
    latency_ms: int
    time_to_first_token_ms: int | None
    endpoint: str
    #: Each upstream deployment tried: {"deployment", "status", "latency_ms"}.
    attempts: list[dict[str, Any]] | None


class UsageTotals(BaseModel):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Usd  # of the records with a price


class UsageOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[UsageRecordOut]
    totals: UsageTotals  # of every record matching the filter, not only those listed
    tenant_total_tokens: int
    tenant_total_cost: Usd


@router.get("/usage", response_model=UsageOut, summary="The tenant's usage ledger")
async def usage(
    tenant: CurrentTenant,
    services: Services,
    event_id: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> UsageOut:
    """Newest first."""
    where = [UsageRecord.tenant_id == tenant.id]
    if event_id is not None:
        where.append(UsageRecord.event_id == event_id)
    async with services.db.sessions() as session:
        rows = await session.scalars(
            select(UsageRecord).where(*where).order_by(UsageRecord.ended_at.desc()).limit(limit)
        )
        sums = (
            await session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
                    func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
                    func.coalesce(func.sum(UsageRecord.total_tokens), 0),
                    func.coalesce(func.sum(UsageRecord.cost), Decimal(0)),
                ).where(*where)
            )
        ).one()
        tenant_totals = (
            await session.execute(
                select(Tenant.total_tokens, Tenant.total_cost).where(Tenant.id == tenant.id)
            )
        ).one()
    return UsageOut(
        data=[UsageRecordOut.model_validate(r, from_attributes=True) for r in rows],
        totals=UsageTotals(
            requests=sums[0],
            prompt_tokens=sums[1],
            completion_tokens=sums[2],
            total_tokens=sums[3],
            cost=sums[4] or Decimal(0),
        ),
        tenant_total_tokens=tenant_totals.total_tokens,
        tenant_total_cost=tenant_totals.total_cost,
    )
