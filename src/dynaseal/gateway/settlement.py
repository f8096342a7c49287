"""Settlement: book what a request really used, in one transaction with its ledger row
and its callback in the outbox — so usage is never counted without being reported, nor
reported without being counted. :mod:`.ledger_writer` runs these transactions, several
requests per transaction under load (group commit)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.gateway import outbox
from dynaseal.gateway.admission import Admission
from dynaseal.gateway.budget import BudgetStore
from dynaseal.gateway.token_estimate import estimate_text_tokens
from dynaseal.gateway.transcript import Transcript
from dynaseal.storage.gateway_models import CallbackDelivery, Tenant, UsageRecord

log = logging.getLogger("dynaseal.gateway")

Status = Literal["completed", "failed", "client_disconnected"]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    source: Literal["upstream", "estimated"]

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def measure(admission: Admission, transcript: Transcript, status: Status) -> Usage:
    """The upstream's own count when it gave one, else our estimate."""
    usage = transcript.usage or {}
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if prompt is not None and completion is not None:
        return Usage(prompt, completion, "upstream")
    completion = estimate_text_tokens(transcript.content)
    nothing_sent_upstream = status == "failed" and not transcript.content
    prompt = 0 if nothing_sent_upstream else admission.reservation.prompt_estimate
    return Usage(prompt, completion, "estimated")


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


@dataclass(frozen=True, slots=True)
class Timing:
    started_at: float
    ended_at: float
    first_token_at: float | None

    @property
    def latency_ms(self) -> int:
        return _ms(self.ended_at - self.started_at)

    @property
    def time_to_first_token_ms(self) -> int | None:
        if self.first_token_at is None:
            return None
        return _ms(self.first_token_at - self.started_at)


@dataclass(frozen=True, slots=True)
class CallbackPrivacy:
    """What of the conversation the tenant wants in its callbacks."""

    include_content: bool
    include_prompt: bool


def callback_payload(
    admission: Admission,
    transcript: Transcript,
    usage: Usage,
    status: Status,
    timing: Timing,
    privacy: CallbackPrivacy,
) -> dict[str, Any]:
    grant = admission.grant
    payload: dict[str, Any] = {
        "type": "usage",
        "event_id": grant.event_id,
        "request_id": admission.request_id,
        "content": transcript.content if privacy.include_content else None,
        "tokens": usage.total_tokens,
        "model": admission.model,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "usage_source": usage.source,
        "status": status,
        "stream": admission.stream,
        "sub": grant.sub,
        "metadata": grant.metadata,
        "error": transcript.error,
        "started_at": _iso(timing.started_at),
        "ended_at": _iso(timing.ended_at),
        "latency_ms": timing.latency_ms,
        "time_to_first_token_ms": timing.time_to_first_token_ms,
    }
    if privacy.include_prompt:
        payload["messages"] = admission.body.get("messages")
    return payload


@dataclass(frozen=True, slots=True)
class Settled:
    """A finished request, measured: what the ledger records and the callback reports."""

    admission: Admission
    transcript: Transcript
    status: Status
    usage: Usage
    timing: Timing

    @property
    def used(self) -> int:
        return self.usage.total_tokens


def finish(admission: Admission, transcript: Transcript, status: Status) -> Settled:
    """Measure a request that just ended (no I/O)."""
    usage = measure(admission, transcript, status)
    if usage.total_tokens > admission.reservation.amount:
        log.warning(
            "request %s used %d tokens, %d were reserved",
            admission.request_id,
            usage.total_tokens,
            admission.reservation.amount,
        )
    timing = Timing(admission.started_at, time.time(), transcript.first_token_at)
    return Settled(admission, transcript, status, usage, timing)


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
        "usage_source": usage.source,
        "status": settled.status,
        "started_at": datetime.fromtimestamp(timing.started_at, UTC),
        "ended_at": datetime.fromtimestamp(timing.ended_at, UTC),
        "latency_ms": timing.latency_ms,
        "time_to_first_token_ms": timing.time_to_first_token_ms,
    }


async def record(session: AsyncSession, budget: BudgetStore, batch: Sequence[Settled]) -> int:
    """Write a batch of finished requests in the caller's transaction: the keys' budgets,
    the tenants' totals, one ledger row and one callback (if the tenant has a URL) each.
    Returns how many callbacks were queued."""
    per_key: dict[tuple[str, str], list[Settled]] = defaultdict(list)
    per_tenant: dict[str, int] = defaultdict(int)
    for settled in batch:
        grant = settled.admission.grant
        per_key[(grant.tenant_id, grant.event_id)].append(settled)
        per_tenant[grant.tenant_id] += settled.used
    for key_batch in per_key.values():
        await budget.book(
            session,
            key_batch[0].admission.grant,
            reserved=sum(s.admission.reservation.amount for s in key_batch),
            used=sum(s.used for s in key_batch),
            requests=len(key_batch),
        )
    for tenant_id, used in per_tenant.items():
        await session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(total_tokens=Tenant.total_tokens + used)
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
            payload=callback_payload(
                settled.admission,
                settled.transcript,
                settled.usage,
                settled.status,
                settled.timing,
                privacy,
            ),
            request_id=settled.admission.request_id,
            disabled=tenant.callback_disabled_at is not None,
        )
        deliveries.append(delivery)
    if deliveries:
        await session.execute(insert(CallbackDelivery), deliveries)
    return len(deliveries)
