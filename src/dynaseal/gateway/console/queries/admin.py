"""The operator's view across tenants: who uses the gateway, how much, and what is
refused — including refusals of keys naming no tenant at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.storage.gateway_models import RefusalCount, Tenant, UsageRecord


@dataclass(frozen=True)
class TenantSummary:
    tenant: Tenant
    requests: int  # since the window's start
    tokens: int
    cost: Decimal  # USD, of the requests whose model had a price
    refusals: int
    last_use: datetime | None


async def tenant_summaries(session: AsyncSession, since: datetime) -> list[TenantSummary]:
    tenants = list(await session.scalars(select(Tenant).order_by(Tenant.created_at)))
    usage = {
        tenant_id: (requests, tokens, cost, last)
        for tenant_id, requests, tokens, cost, last in await session.execute(
            select(
                UsageRecord.tenant_id,
                func.count(),
                func.coalesce(func.sum(UsageRecord.total_tokens), 0),
                func.sum(UsageRecord.cost),  # None when no request had a price
                func.max(UsageRecord.ended_at),
            )
            .where(UsageRecord.ended_at >= since)
            .group_by(UsageRecord.tenant_id)
        )
    }
    refusals = await refusals_by_tenant(session, since)
    summaries = []
    for tenant in tenants:
        requests, tokens, cost, last_use = usage.get(tenant.id, (0, 0, Decimal(0), None))
        refused = sum(refusals.get(tenant.id, {}).values())
        summaries.append(
            TenantSummary(tenant, int(requests), int(tokens), cost or Decimal(0), refused, last_use)
        )
    return summaries


async def refusals_by_tenant(session: AsyncSession, since: datetime) -> dict[str, dict[str, int]]:
    """Tenant id (or ``UNKNOWN_TENANT``) → reason → refusals since ``since``."""
    rows = await session.execute(
        select(RefusalCount.tenant_id, RefusalCount.reason, func.sum(RefusalCount.count))
        .where(RefusalCount.minute >= since)
        .group_by(RefusalCount.tenant_id, RefusalCount.reason)
    )
    found: dict[str, dict[str, int]] = {}
    for tenant_id, reason, count in rows:
        found.setdefault(tenant_id, {})[reason] = int(count)
    return found
