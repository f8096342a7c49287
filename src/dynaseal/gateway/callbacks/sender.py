"""One delivery attempt: a usage callback POSTed, signed the Standard Webhooks way.

``webhook-id`` is the outbox row's id, the same on every retry, so receivers can
de-duplicate. The whole exchange is bounded in time and the answer's body is never read.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import aiohttp

from dynaseal.gateway.callbacks import webhook_secrets
from dynaseal.gateway.callbacks.outbox import Claimed
from dynaseal.gateway.callbacks.retry import AttemptResult, Outcome, retry_after_seconds
from dynaseal.gateway.callbacks.url_policy import (
    CallbackPolicy,
    CallbackURLRefused,
    check_callback_url,
)


def _outcome(status_code: int) -> Outcome:
    if 200 <= status_code < 300:
        return Outcome.DELIVERED
    return Outcome.GONE if status_code == 410 else Outcome.FAILED


class CallbackSender:
    def __init__(self, policy: CallbackPolicy, *, timeout: float) -> None:
        self._policy = policy
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None  # made in the running loop

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _headers(self, delivery: Claimed) -> dict[str, str]:
        sent_at = datetime.now(UTC).replace(microsecond=0)
        headers = {
            "content-type": "application/json",
            "user-agent": "dynaseal-gateway",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
        }
        if delivery.secrets:
            headers["webhook-signature"] = webhook_secrets.signature_header(
                delivery.secrets, delivery.id, sent_at, delivery.payload
            )
        return headers

    async def send(self, delivery: Claimed) -> AttemptResult:
        try:
            # Again at send time: the name may resolve elsewhere than when it was set.
            await check_callback_url(delivery.url, self._policy)
        except CallbackURLRefused as exc:
            return AttemptResult(Outcome.REFUSED_URL, None, None, f"callback URL refused: {exc}", 0)
        headers = self._headers(delivery)
        started = time.monotonic()
        status_code: int | None = None
        retry_after: float | None = None
        try:
            # The whole exchange is bounded, not just each read: a receiver dripping
            # bytes cannot hold the row. Its answer body is never read.
            async with (
                asyncio.timeout(self.timeout),
                self._client().post(
                    delivery.url, data=delivery.payload, headers=headers, allow_redirects=False
                ) as r,
            ):
                status_code = r.status
                retry_after = retry_after_seconds(r.headers.get("retry-after"), datetime.now(UTC))
            outcome = _outcome(status_code)
            error = None if outcome is Outcome.DELIVERED else f"HTTP {status_code}"
        except TimeoutError:
            outcome, error = Outcome.FAILED, f"no answer within {self.timeout:g} s"
        except aiohttp.ClientError as exc:
            outcome, error = Outcome.FAILED, f"{type(exc).__name__}: {exc}"
        duration_ms = round((time.monotonic() - started) * 1000)
        return AttemptResult(outcome, status_code, retry_after, error, duration_ms)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
