"""What one delivery attempt's outcome means for its callback: delivered, retried later
(back-off with jitter, stretched by the receiver's ``Retry-After``), or given up on.

Pure: no clock, no I/O. The delivery loop applies the :class:`Step` to the outbox row.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

#: Delay before each retry: Standard Webhooks' schedule (5 s, 5 min, 30 min, 2 h, 5 h,
#: 10 h, 10 h) stretched by two daily retries, so a receiver may be down ~3 days (75.6 h).
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0, 86400.0, 86400.0)

#: A row's status in the outbox (``CallbackDelivery.status``); ``batched``: sent inside
#: a ``usage.batch`` delivery (:mod:`.batches`), never by an attempt of its own.
DeliveryStatus = Literal["pending", "delivered", "failed", "disabled", "batched"]


class Outcome(enum.Enum):
    """How one attempt ended."""

    DELIVERED = "delivered"  # a 2xx answer
    GONE = "gone"  # HTTP 410: the receiver asks for no more callbacks
    REFUSED_URL = "refused_url"  # the URL itself is refused (malformed, non-public address)
    FAILED = "failed"  # any other answer, or none in time: worth retrying


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: Outcome
    status_code: int | None  # None: no HTTP answer
    retry_after: float | None  # the receiver's Retry-After, in seconds
    error: str | None  # None when delivered; else what the tenant's attempt log shows
    duration_ms: int
    detail: str | None = None  # the particulars, for the operator's log only


@dataclass(frozen=True, slots=True)
class Step:
    """What becomes of the row after an attempt."""

    status: DeliveryStatus
    last_error: str | None
    retry_in: float | None = None  # seconds; set when status is "pending"
    exhausted: bool = False  # failed because the schedule ran out


def _jitter() -> float:
    return random.uniform(0.8, 1.2)


class RetryPolicy:
    def __init__(
        self,
        schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        *,
        jitter: Callable[[], float] = _jitter,
    ) -> None:
        self.schedule = tuple(schedule)
        # A receiver's Retry-After may stretch a wait, but not past the longest planned one.
        self.max_delay = max(self.schedule, default=0.0)
        self._jitter = jitter

    def after(self, result: AttemptResult, attempt: int) -> Step:
        """The row's fate after its ``attempt``-th attempt (counted from 1) ended so."""
        if result.outcome is Outcome.DELIVERED:
            return Step("delivered", None)
        if result.outcome is Outcome.GONE:
            return Step("disabled", "HTTP 410: endpoint disabled")
        if result.outcome is Outcome.REFUSED_URL:
            return Step("failed", result.error)
        if attempt > len(self.schedule):
            return Step("failed", result.error, exhausted=True)
        delay = self.schedule[attempt - 1] * self._jitter()
        if result.retry_after is not None:
            delay = max(delay, min(result.retry_after, self.max_delay))
        return Step("pending", result.error, retry_in=delay)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP-date; ``None`` when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
