"""One delivery attempt: a usage callback POSTed, signed the Standard Webhooks way,
through the pinned, policy-checked session (:mod:`.pinned`).

``webhook-id`` is the outbox row's id, the same on every retry, so receivers can
de-duplicate. The whole exchange is bounded in time and the answer's body is never read.

A ``usage.batch`` goes gzip-compressed (``content-encoding: gzip``): its events repeat
the same fields, so it shrinks several times, and what the tenant's backend receives is
what issue 10 counts. The signature covers the JSON, as for every callback: a receiver
decompresses, then verifies. Single callbacks stay exactly as the original sent them.

The attempt log is the tenant's to read, and a tenant picks the URL: read as a port
scanner it must say nothing about the gateway's network. So it tells only coarse
categories — an HTTP status, no answer in time, could not connect, or refused — and a
refused host name reads the same whether it does not exist or resolves inside, with no
timing. The particulars (addresses, errors) go to the operator's log only.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from datetime import UTC, datetime

import aiohttp

from dynaseal.gateway.callbacks import webhook_secrets
from dynaseal.gateway.callbacks.outbox import Claimed
from dynaseal.gateway.callbacks.pinned import PinnedSession
from dynaseal.gateway.callbacks.retry import AttemptResult, Outcome, retry_after_seconds
from dynaseal.gateway.callbacks.url_policy import (
    AddressRefused,
    CallbackPolicy,
    CallbackURLRefused,
    HostRefused,
)

#: What an attempt log may say besides ``HTTP <status>`` and the time-out.
COULD_NOT_CONNECT = "could not connect"
REFUSED_HOST = "refused: host does not resolve to public addresses"
REFUSED_ADDRESS = "refused: non-public address"
REFUSED_URL = "refused: invalid callback URL"


def _outcome(status_code: int) -> Outcome:
    if 200 <= status_code < 300:
        return Outcome.DELIVERED
    return Outcome.GONE if status_code == 410 else Outcome.FAILED


def _refused(exc: CallbackURLRefused) -> AttemptResult:
    """A refusal made before any connection: no status, no duration."""
    if isinstance(exc, HostRefused):
        # DNS may change (or be fixed): retried like a receiver that is down.
        return AttemptResult(Outcome.FAILED, None, None, REFUSED_HOST, 0, exc.detail)
    error = REFUSED_ADDRESS if isinstance(exc, AddressRefused) else REFUSED_URL
    return AttemptResult(Outcome.REFUSED_URL, None, None, error, 0, exc.detail)


class CallbackSender:
    def __init__(self, policy: CallbackPolicy, *, timeout: float) -> None:
        self._http = PinnedSession(policy)
        self.timeout = timeout

    def _headers(self, delivery: Claimed) -> dict[str, str]:
        sent_at = datetime.now(UTC).replace(microsecond=0)
        headers = {
            "content-type": "application/json",
            "user-agent": "dynaseal-gateway",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
        }
        if delivery.events is not None:
            headers["content-encoding"] = "gzip"
        if delivery.secrets:
            headers["webhook-signature"] = webhook_secrets.signature_header(
                delivery.secrets, delivery.id, sent_at, delivery.payload
            )
        return headers

    async def send(self, delivery: Claimed) -> AttemptResult:
        headers = self._headers(delivery)
        body = delivery.payload.encode()
        if delivery.events is not None:
            body = gzip.compress(body, mtime=0)
        started = time.monotonic()
        status_code: int | None = None
        retry_after: float | None = None
        detail: str | None = None
        try:
            # The whole exchange is bounded, not just each read: a receiver dripping
            # bytes cannot hold the row. Its answer body is never read.
            async with (
                asyncio.timeout(self.timeout),
                self._http.post(delivery.url, data=body, headers=headers) as r,
            ):
                status_code = r.status
                retry_after = retry_after_seconds(r.headers.get("retry-after"), datetime.now(UTC))
            outcome = _outcome(status_code)
            error = None if outcome is Outcome.DELIVERED else f"HTTP {status_code}"
        except CallbackURLRefused as exc:
            return _refused(exc)
        except TimeoutError:
            outcome, error = Outcome.FAILED, f"no answer within {self.timeout:g} s"
        except aiohttp.ClientError as exc:
            outcome, error = Outcome.FAILED, COULD_NOT_CONNECT
            detail = f"{type(exc).__name__}: {exc}"
        duration_ms = round((time.monotonic() - started) * 1000)
        return AttemptResult(outcome, status_code, retry_after, error, duration_ms, detail)

    async def aclose(self) -> None:
        await self._http.aclose()
