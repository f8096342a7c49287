"""Settlement: book what a request really used, in one transaction with its ledger row
and its callback in the outbox — so usage is never counted without being reported, nor
reported without being counted."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import select, update

from dynaseal.gateway.admission import Admission
from dynaseal.gateway.token_estimate import estimate_text_tokens
from dynaseal.gateway.transcript import Transcript
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import CallbackDelivery, KeyBudget, Tenant, UsageRecord

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


def callback_payload(
    admission: Admission, transcript: Transcript, usage: Usage, status: Status, ended_at: float
) -> dict[str, Any]:
    grant = admission.grant
    return {
        "type": "usage",
        "event_id": grant.event_id,
        "request_id": admission.request_id,
        "content": transcript.content,
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
        "started_at": _iso(admission.started_at),
        "ended_at": _iso(ended_at),
    }


async def settle(
    db: Database, admission: Admission, transcript: Transcript, status: Status
) -> str | None:
    """Book the request; returns the id of the callback queued, if the tenant has a URL."""
    ended_at = time.time()
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
        await session.execute(
            update(KeyBudget)
            .where(KeyBudget.tenant_id == grant.tenant_id, KeyBudget.event_id == grant.event_id)
            .values(
                reserved=KeyBudget.reserved - admission.reservation.amount,
                spent=KeyBudget.spent + usage.total_tokens,
            )
        )
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
                started_at=datetime.fromtimestamp(admission.started_at, UTC),
                ended_at=datetime.fromtimestamp(ended_at, UTC),
            )
        )
        callback_url = await session.scalar(
            select(Tenant.callback_url).where(Tenant.id == grant.tenant_id)
        )
        if callback_url:
            delivery_id = f"msg_{uuid.uuid4().hex}"
            payload = callback_payload(admission, transcript, usage, status, ended_at)
            session.add(
                CallbackDelivery(
                    id=delivery_id,
                    tenant_id=grant.tenant_id,
                    request_id=admission.request_id,
                    url=callback_url,
                    payload=orjson.dumps(payload).decode(),
                )
            )
    return delivery_id
