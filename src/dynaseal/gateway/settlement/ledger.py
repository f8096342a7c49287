"""The ledger: book what requests really used, in one transaction with their ledger rows
and their callbacks in the outbox — so usage is never counted without being reported,
nor reported without being counted. :mod:`.writer` runs these transactions, several
requests per transaction under load (group commit)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.core.money import to_usd
from dynaseal.gateway.budget.rules import Amounts
from dynaseal.gateway.budget.store import BudgetStore
from dynaseal.gateway.callbacks import outbox
from dynaseal.gateway.settlement.measure import (
    CallbackPrivacy,
    Settled,
    callback_payload,
    overshoot_tokens,
)
from dynaseal.storage.gateway_models import CallbackDelivery, Tenant, UsageRecord


def _ledger_row(settled: Settled) -> dict[str, Any]:
    admission, usage, timing = settled.admission, settled.usage, settled.timing
    grant = admission.grant
    return {
        "request_id": admission.request_id,
        "tenant_id": grant.tenant_id,
        "event_id": grant.event_id,
        "sub": grant.sub,
        "model": admission.model,
        "stream": admission.stream,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost": None if settled.cost is None else to_usd(settled.cost),
        "usage_source": usage.source,
        "status": settled.status,
        "overshoot_tokens": overshoot_tokens(admission, settled.transcript),
        "started_at": datetime.fromtimestamp(timing.started_at, UTC),
        "ended_at": datetime.fromtimestamp(timing.ended_at, UTC),
        "latency_ms": timing.latency_ms,
        "time_to_first_token_ms": timing.time_to_first_token_ms,
        "endpoint": admission.endpoint.name,
        "attempts": [attempt.to_json() for attempt in admission.attempts] or None,
    }


async def record(session: AsyncSession, budget: BudgetStore, batch: Sequence[Settled]) -> int:
    """Write a batch of finished requests in the caller's transaction: the keys' budgets,
    the tenants' totals, one ledger row and one callback (if the tenant has a URL) each.
    Returns how many callbacks were queued."""
    per_key: dict[tuple[str, str], list[Settled]] = defaultdict(list)
    per_tenant: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for settled in batch:
        grant = settled.admission.grant
        per_key[(grant.tenant_id, grant.event_id)].append(settled)
        tokens, cost = per_tenant[grant.tenant_id]
        per_tenant[grant.tenant_id] = (tokens + settled.used, cost + (settled.cost or 0))
    for key_batch in per_key.values():
        await budget.book(
            session,
            key_batch[0].admission.grant,
            reserved=sum((s.admission.reservation.amounts for s in key_batch), Amounts()),
            used=sum((s.amounts for s in key_batch), Amounts()),
            requests=len(key_batch),
        )
    for tenant_id, (tokens, cost) in per_tenant.items():
        await session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(
                total_tokens=Tenant.total_tokens + tokens,
                total_cost=Tenant.total_cost + to_usd(cost),
            )
        )
    await session.execute(insert(UsageRecord), [_ledger_row(s) for s in batch])
    tenants = {
        row.id: row
        for row in await session.execute(
            select(
                Tenant.id,
                Tenant.callback_url,
                Tenant.callback_include_content,
                Tenant.callback_include_prompt,
                Tenant.callback_disabled_at,
            ).where(Tenant.id.in_(per_tenant))
        )
    }
    deliveries = []
    for settled in batch:
        tenant = tenants.get(settled.admission.grant.tenant_id)
        if tenant is None or not tenant.callback_url:
            continue
        privacy = CallbackPrivacy(tenant.callback_include_content, tenant.callback_include_prompt)
        delivery = outbox.new_delivery(
            tenant_id=tenant.id,
            url=tenant.callback_url,
            payload=callback_payload(settled, privacy),
            request_id=settled.admission.request_id,
            disabled=tenant.callback_disabled_at is not None,
        )
        deliveries.append(delivery)
    if deliveries:
        await session.execute(insert(CallbackDelivery), deliveries)
    return len(deliveries)
