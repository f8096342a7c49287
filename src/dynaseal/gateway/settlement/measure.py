"""Measuring a request that ended: what it used (the upstream's count or our estimate),
how long it took, and the usage callback its tenant is sent. No I/O: :mod:`.ledger`
writes the result."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from dynaseal.core.money import usd
from dynaseal.gateway.admission.gatekeeper import Admission
from dynaseal.gateway.budget.rules import Amounts
from dynaseal.gateway.relay.transcript import Transcript

log = logging.getLogger("dynaseal.gateway")

#: ``interrupted``: its gateway process died before the answer ended (:mod:`.recovery`).
Status = Literal["completed", "failed", "client_disconnected", "interrupted"]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int  # reasoning tokens included, as OpenAI counts them
    source: Literal["upstream", "estimated"]
    cached_tokens: int = 0  # of the prompt tokens, those the upstream served from cache

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _cached(usage: dict[str, Any]) -> int:
    """Cached prompt tokens: OpenAI's ``prompt_tokens_details``, or DeepSeek's field."""
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and _count(details.get("cached_tokens")) is not None:
        return int(details["cached_tokens"])
    return _count(usage.get("prompt_cache_hit_tokens")) or 0


def measure(admission: Admission, transcript: Transcript, status: Status) -> Usage:
    """The upstream's own count when it gave one, else our estimate."""
    usage = transcript.usage or {}
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if prompt is not None and completion is not None:
        return Usage(prompt, completion, "upstream", min(_cached(usage), prompt))
    completion = transcript.estimated_completion_tokens()
    nothing_sent_upstream = status == "failed" and not completion
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


def callback_payload(settled: Settled, privacy: CallbackPrivacy) -> dict[str, Any]:
    admission, transcript, usage, timing = (
        settled.admission,
        settled.transcript,
        settled.usage,
        settled.timing,
    )
    grant = admission.grant
    payload: dict[str, Any] = {
        "type": "usage",
        "event_id": grant.event_id,
        "request_id": admission.request_id,
        "content": transcript.content if privacy.include_content else None,
        "content_truncated": privacy.include_content and transcript.content_truncated,
        "tokens": usage.total_tokens,
        "cost": None if settled.cost is None else usd(settled.cost),
        "model": admission.model,
        "endpoint": admission.endpoint.name,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "usage_source": usage.source,
        "status": settled.status,
        "stream": admission.stream,
        "sub": grant.sub,
        "metadata": grant.metadata,
        "error": transcript.error,
        "overshoot_tokens": overshoot_tokens(admission, transcript),
        "started_at": _iso(timing.started_at),
        "ended_at": _iso(timing.ended_at),
        "latency_ms": timing.latency_ms,
        "time_to_first_token_ms": timing.time_to_first_token_ms,
    }
    if grant.ancestors:  # a child key: every event id it was charged to, root first
        payload["chain"] = [key.event_id for key in grant.chain]
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
    cost: int | None = None  # money units; None when the model has no price

    @property
    def used(self) -> int:
        """Tokens, prompt and generated: what rate limits and tenant totals count."""
        return self.usage.total_tokens

    @property
    def amounts(self) -> Amounts:
        """What the request used of each of its key's budgets."""
        return Amounts(self.usage.completion_tokens, self.usage.total_tokens, self.cost or 0)


def overshoot_tokens(admission: Admission, transcript: Transcript) -> int:
    """Completion tokens the upstream certainly generated past the cap it was sent."""
    allowed = admission.reservation.completion_cap * (admission.body.get("n") or 1)
    return max(0, transcript.fewest_completion_tokens() - allowed)


def finish(admission: Admission, transcript: Transcript, status: Status) -> Settled:
    """Measure a request that just ended (no I/O)."""
    usage = measure(admission, transcript, status)
    overshoot = overshoot_tokens(admission, transcript)
    if overshoot:
        log.warning(
            "upstream misbehaving: request %s (model %s) generated at least %d tokens past "
            "the cap of %d it was sent; they are booked",
            admission.request_id,
            admission.model,
            overshoot,
            admission.reservation.completion_cap,
        )
    price = admission.price
    cost = None
    if price is not None:
        cost = price.cost(usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens)
    timing = Timing(admission.started_at, time.time(), transcript.first_token_at)
    return Settled(admission, transcript, status, usage, timing, cost)
