"""Settlement: book what a request really used, in one transaction with its ledger row
and its callback in the outbox — so usage is never counted without being reported, nor
reported without being counted."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select, update

from dynaseal.gateway import outbox
from dynaseal.gateway.admission import Admission
from dynaseal.gateway.budget import BudgetStore
from dynaseal.gateway.token_estimate import estimate_text_tokens
from dynaseal.gateway.transcript import Transcript
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import Tenant, UsageRecord

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
class Booked:
    used: int  # total tokens booked
    delivery_id: str | None  # the callback queued, if the tenant has a URL


async def settle(
    db: Database,
    budget: BudgetStore,
    admission: Admission,
    transcript: Transcript,
    status: Status,
) -> Booked:
    """Book the request: budget, tenant total, ledger row and callback in one transaction."""
    timing = Timing(admission.started_at, time.time(), transcript.first_token_at)
    usage = measure(admission, transcript, status)
    grant = admission.grant
    if usage.total_tokens > admission.reservation.amount:
        log.warning(
            "request %s used %d tokens, %d were reserved",
            admission.request_id,
            usage.total_tokens,
            admission.reservation.amount,
        )
    delivery_id = None
    async with db.transaction() as session:
        await budget.book(session, grant, admission.reservation, usage.total_tokens)
        await session.execute(
            update(Tenant)
            .where(Tenant.id == grant.tenant_id)
            .values(total_tokens=Tenant.total_tokens + usage.total_tokens)
        )
        session.add(
            UsageRecord(
                request_id=admission.request_id,
                tenant_id=grant.tenant_id,
                event_id=grant.event_id,
                sub=grant.sub,
                model=admission.model,
                stream=admission.stream,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
                usage_source=usage.source,
                status=status,
                started_at=datetime.fromtimestamp(timing.started_at, UTC),
                ended_at=datetime.fromtimestamp(timing.ended_at, UTC),
                latency_ms=timing.latency_ms,
                time_to_first_token_ms=timing.time_to_first_token_ms,
            )
        )
        tenant = (
            await session.execute(
                select(
                    Tenant.callback_url,
                    Tenant.callback_include_content,
                    Tenant.callback_include_prompt,
                    Tenant.callback_disabled_at,
                ).where(Tenant.id == grant.tenant_id)
            )
        ).one_or_none()
        if tenant is not None and tenant.callback_url:
            privacy = CallbackPrivacy(
                tenant.callback_include_content, tenant.callback_include_prompt
            )
            queued = outbox.enqueue(
                session,
                tenant_id=grant.tenant_id,
                url=tenant.callback_url,
                payload=callback_payload(admission, transcript, usage, status, timing, privacy),
                request_id=admission.request_id,
                disabled=tenant.callback_disabled_at is not None,
            )
            delivery_id = queued.id
    return Booked(usage.total_tokens, delivery_id)
